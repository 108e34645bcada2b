//! The proxy's own stdin and stdout.
//!
//! tokio's `stdin()`/`stdout()` do every read and write on a blocking thread
//! pool, which costs a thread hand-off per message. When both are pipes or
//! sockets (what an MCP client gives a server) and neither shares its open
//! file with stderr, they are switched to non-blocking mode and driven by the
//! runtime's reactor instead, so a message goes read → decide → write on one
//! thread. The original file flags are restored when the proxy is done.
//! Anything else (a terminal, a file) falls back to tokio's blocking stdio.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::pin::Pin;
use std::task::{Context, Poll};

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::unix::pipe;

/// The client side of the proxy: what it reads requests from and writes answers to.
pub enum ClientIn {
    Reactor(NonBlocking),
    Blocking(tokio::io::Stdin),
}

pub enum ClientOut {
    Reactor(NonBlocking),
    Blocking(tokio::io::Stdout),
}

/// Opens the proxy's stdin and stdout, non-blocking where that is safe.
pub fn open() -> (ClientIn, ClientOut) {
    if let Some((i, o)) = reactor_pair() {
        return (ClientIn::Reactor(i), ClientOut::Reactor(o));
    }
    (
        ClientIn::Blocking(tokio::io::stdin()),
        ClientOut::Blocking(tokio::io::stdout()),
    )
}

fn reactor_pair() -> Option<(NonBlocking, NonBlocking)> {
    let stdin = io::stdin();
    let stdout = io::stdout();
    let stderr = io::stderr();
    let id = |fd: BorrowedFd<'_>| -> Option<(u64, u64, bool)> {
        let file = File::from(fd.try_clone_to_owned().ok()?);
        let meta = file.metadata().ok()?;
        let ft = meta.file_type();
        Some((meta.dev(), meta.ino(), ft.is_fifo() || ft.is_socket()))
    };
    let (i, o) = (id(stdin.as_fd())?, id(stdout.as_fd())?);
    let e = id(stderr.as_fd()).map(|(d, n, _)| (d, n));
    let pollable = i.2 && o.2;
    let shared = (i.0, i.1) == (o.0, o.1) || e == Some((i.0, i.1)) || e == Some((o.0, o.1));
    if !pollable || shared {
        return None;
    }
    let input = NonBlocking::new(stdin.as_fd(), true).ok()?;
    let output = NonBlocking::new(stdout.as_fd(), false).ok()?;
    Some((input, output))
}

/// A pipe or socket in non-blocking mode, registered with the reactor
/// (through tokio's safe constructors), with its original flags restored on drop.
pub struct NonBlocking {
    io: Io,
    _restore: Restore,
}

enum Io {
    PipeIn(pipe::Receiver),
    PipeOut(pipe::Sender),
    Socket(tokio::net::UnixStream),
}

/// Puts a file description's flags back (through a duplicate of its fd).
struct Restore {
    fd: OwnedFd,
    flags: OFlag,
}

impl Drop for Restore {
    fn drop(&mut self) {
        let _ = fcntl(&self.fd, FcntlArg::F_SETFL(self.flags));
    }
}

impl NonBlocking {
    fn new(fd: BorrowedFd<'_>, read: bool) -> io::Result<NonBlocking> {
        let keep = fd.try_clone_to_owned()?;
        let flags = OFlag::from_bits_truncate(fcntl(&keep, FcntlArg::F_GETFL)?);
        let restore = Restore { fd: keep, flags };
        let owned = fd.try_clone_to_owned()?;
        let file_type = File::from(fd.try_clone_to_owned()?).metadata()?.file_type();
        let io = if file_type.is_fifo() {
            if read {
                Io::PipeIn(pipe::Receiver::from_owned_fd(owned)?)
            } else {
                Io::PipeOut(pipe::Sender::from_owned_fd(owned)?)
            }
        } else {
            let std = std::os::unix::net::UnixStream::from(owned);
            std.set_nonblocking(true)?;
            Io::Socket(tokio::net::UnixStream::from_std(std)?)
        };
        Ok(NonBlocking {
            io,
            _restore: restore,
        })
    }
}

impl AsyncRead for NonBlocking {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::PipeIn(r) => Pin::new(r).poll_read(cx, buf),
            Io::Socket(s) => Pin::new(s).poll_read(cx, buf),
            Io::PipeOut(_) => Poll::Ready(Err(io::Error::other("not readable"))),
        }
    }
}

impl AsyncWrite for NonBlocking {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::PipeOut(w) => Pin::new(w).poll_write(cx, data),
            Io::Socket(s) => Pin::new(s).poll_write(cx, data),
            Io::PipeIn(_) => Poll::Ready(Err(io::Error::other("not writable"))),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for ClientIn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientIn::Reactor(r) => Pin::new(r).poll_read(cx, buf),
            ClientIn::Blocking(r) => Pin::new(r).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ClientOut {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ClientOut::Reactor(w) => Pin::new(w).poll_write(cx, data),
            ClientOut::Blocking(w) => Pin::new(w).poll_write(cx, data),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientOut::Reactor(w) => Pin::new(w).poll_flush(cx),
            ClientOut::Blocking(w) => Pin::new(w).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientOut::Reactor(w) => Pin::new(w).poll_shutdown(cx),
            ClientOut::Blocking(w) => Pin::new(w).poll_shutdown(cx),
        }
    }
}
