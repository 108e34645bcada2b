//! Reading newline-delimited messages with a length limit.

use std::io;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

/// The longest line read whole (64 MiB, excluding the terminator).
pub const MAX_LINE: usize = 64 * 1024 * 1024;

/// What one [`LineReader::read_line`] call read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// End of input; nothing was read.
    Eof,
    /// A line (with its `\n`, unless it was the last line of the input and had none).
    Line,
    /// A line longer than the limit: the buffer holds its first `limit` bytes;
    /// the rest of it was discarded.
    TooLong,
}

/// Reads lines of up to `limit` bytes; longer lines are cut and reported.
pub struct LineReader<R> {
    inner: BufReader<R>,
    limit: usize,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    pub fn new(inner: R, limit: usize) -> Self {
        LineReader {
            inner: BufReader::with_capacity(256 * 1024, inner),
            limit,
        }
    }

    /// Whether a whole line is already buffered, so the next
    /// [`read_line`](Self::read_line) returns without waiting for input.
    pub fn has_line(&self) -> bool {
        memchr::memchr(b'\n', self.inner.buffer()).is_some()
    }

    /// Reads the next line into `buf` (cleared first).
    pub async fn read_line(&mut self, buf: &mut Vec<u8>) -> io::Result<Read> {
        buf.clear();
        let mut any = false;
        let mut too_long = false;
        loop {
            let avail = self.inner.fill_buf().await?;
            if avail.is_empty() {
                return Ok(match (any, too_long) {
                    (false, _) => Read::Eof,
                    (true, true) => Read::TooLong,
                    (true, false) => Read::Line,
                });
            }
            any = true;
            let (n, done) = match memchr::memchr(b'\n', avail) {
                Some(i) => (i + 1, true),
                None => (avail.len(), false),
            };
            if !too_long {
                let content = if done { n - 1 } else { n };
                if buf.len() + content > self.limit {
                    let room = self.limit - buf.len();
                    buf.extend_from_slice(&avail[..room]);
                    too_long = true;
                } else {
                    buf.extend_from_slice(&avail[..n]);
                }
            }
            self.inner.consume(n);
            if done {
                return Ok(if too_long { Read::TooLong } else { Read::Line });
            }
        }
    }
}

/// The line without its terminator (`\n`; a `\r` before it stays: JSON treats it as whitespace).
pub fn body(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\n").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn all(input: &[u8], limit: usize) -> Vec<(Read, Vec<u8>)> {
        let mut r = LineReader::new(input, limit);
        let mut out = Vec::new();
        let mut buf = Vec::new();
        loop {
            let k = r.read_line(&mut buf).await.unwrap();
            if k == Read::Eof {
                return out;
            }
            out.push((k, buf.clone()));
        }
    }

    #[tokio::test]
    async fn splits_lines_and_keeps_bytes() {
        let got = all(b"{\"a\":1}\r\n\n{}\nlast", 100).await;
        assert_eq!(
            got,
            vec![
                (Read::Line, b"{\"a\":1}\r\n".to_vec()),
                (Read::Line, b"\n".to_vec()),
                (Read::Line, b"{}\n".to_vec()),
                (Read::Line, b"last".to_vec()),
            ]
        );
    }

    #[tokio::test]
    async fn cuts_long_lines_and_goes_on() {
        let got = all(b"0123456789\nabc\n0123\n", 4).await;
        assert_eq!(
            got,
            vec![
                (Read::TooLong, b"0123".to_vec()),
                (Read::Line, b"abc\n".to_vec()),
                (Read::Line, b"0123\n".to_vec()),
            ]
        );
    }

    #[tokio::test]
    async fn long_lines_across_buffer_refills() {
        let mut input = vec![b'x'; 600 * 1024];
        input.push(b'\n');
        input.extend_from_slice(b"ok\n");
        let got = all(&input, 300 * 1024).await;
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, Read::TooLong);
        assert_eq!(got[0].1.len(), 300 * 1024);
        assert_eq!(got[1], (Read::Line, b"ok\n".to_vec()));
        let got = all(&input, 1024 * 1024).await;
        assert_eq!(got[0].0, Read::Line);
        assert_eq!(got[0].1.len(), 600 * 1024 + 1);
    }
}
