//! The `.kvbc` binary format.
//!
//! ```text
//! magic   "KVBC"            4 bytes
//! version u16 LE            currently 1
//! hash    [u8; 32]          SHA-256 of the body
//! body    sections, in order:
//!   nregs u8
//!   policies  u16 count × (name str, default_allow u8)
//!   rules     u16 count × (id str, effect u8, reason opt-str, policy u16)
//!   consts    u16 count × (tag u8, payload)
//!   chunks    u16 count × (code bytes)
//!   sources   u16 count × (name str)
//!   debug     u32 count × (chunk u16, pc u32, rule u16, label str, span opt(file u16, start u32, end u32))
//! str = u32 length + UTF-8 bytes; bytes = u32 length + bytes; opt = u8 0|1 + value.
//! ```
//!
//! Serialisation is deterministic (no hash-map iteration anywhere), so the
//! same policy compiles to the same bytes and the same hash. Loading checks
//! the magic, the version, the hash, that nothing trails the last section,
//! compiles the regexes, and runs the verifier.

use regex::Regex;
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::program::{
    Chunk, Const, DebugEntry, Dispatch, Matcher, PathSeg, PolicyInfo, Program, ProgramParts,
    RegexSet, RuleInfo, SetSubject, Step,
};
use crate::verify::VerifyError;
use crate::Effect;

pub const MAGIC: &[u8; 4] = b"KVBC";
pub const VERSION: u16 = 1;
const HEADER: usize = 4 + 2 + 32;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LoadError {
    #[error("not a Kvlar program (bad magic)")]
    BadMagic,
    #[error("unsupported program format version {0} (this build reads version {VERSION})")]
    BadVersion(u16),
    #[error("the program's content hash does not match: the file is corrupt or was modified")]
    BadHash,
    #[error("the program ends early (at byte {0})")]
    Truncated(usize),
    #[error("{0} trailing byte(s) after the program")]
    TrailingBytes(usize),
    #[error("invalid UTF-8 string at byte {0}")]
    BadUtf8(usize),
    #[error("bad tag {tag} for {what} at byte {at}")]
    BadTag {
        what: &'static str,
        tag: u8,
        at: usize,
    },
    #[error("invalid JSON constant at byte {0}")]
    BadJson(usize),
    #[error("invalid regex constant at byte {at}: {message}")]
    BadRegex { at: usize, message: String },
    #[error("verification failed: {0}")]
    Verify(#[from] VerifyError),
}

// ---------------------------------------------------------------- writing

struct W(Vec<u8>);

impl W {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.0.extend_from_slice(b);
    }
    fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
    fn opt_str(&mut self, s: Option<&str>) {
        match s {
            None => self.u8(0),
            Some(s) => {
                self.u8(1);
                self.str(s);
            }
        }
    }
}

fn effect_tag(e: Effect) -> u8 {
    match e {
        Effect::Allow => 0,
        Effect::Deny => 1,
        Effect::RequireApproval => 2,
    }
}

fn write_path(w: &mut W, segs: &[PathSeg]) {
    w.u16(segs.len() as u16);
    for s in segs {
        match s {
            PathSeg::Key(k) => {
                w.u8(0);
                w.str(k);
            }
            PathSeg::Index(i) => {
                w.u8(1);
                w.u64(*i);
            }
        }
    }
}

fn write_steps(w: &mut W, steps: &[(u32, Step)]) {
    w.u32(steps.len() as u32);
    for (key, step) in steps {
        w.u32(*key);
        match *step {
            Step::Rule { rule, chunk, pc } => {
                w.u8(0);
                w.u16(rule);
                w.u16(chunk);
                w.u32(pc);
            }
            Step::DefaultAllow { policy } => {
                w.u8(1);
                w.u16(policy);
            }
        }
    }
}

fn body(p: &Program) -> Vec<u8> {
    let mut w = W(Vec::with_capacity(256 + p.code_size()));
    w.u8(p.nregs);
    w.u16(p.policies.len() as u16);
    for pol in &p.policies {
        w.str(&pol.name);
        w.u8(pol.default_allow as u8);
    }
    w.u16(p.rules.len() as u16);
    for r in &p.rules {
        w.str(&r.id);
        w.u8(effect_tag(r.effect));
        w.opt_str(r.reason.as_deref());
        w.u16(r.policy);
    }
    w.u16(p.consts.len() as u16);
    for c in &p.consts {
        match c {
            Const::Str(s) => {
                w.u8(0);
                w.str(s);
            }
            Const::Json(v) => {
                w.u8(1);
                w.str(&v.to_string());
            }
            Const::Regex(re) => {
                w.u8(2);
                w.str(re.as_str());
            }
            Const::Path(segs) => {
                w.u8(3);
                write_path(&mut w, segs);
            }
            Const::RegexSet(rs) => {
                w.u8(6);
                w.u8(rs.slot);
                match &rs.subject {
                    SetSubject::KvField(f) => {
                        w.u8(0);
                        w.str(f);
                    }
                    SetSubject::KvParam(k) => {
                        w.u8(1);
                        w.str(k);
                    }
                    SetSubject::Args(segs) => {
                        w.u8(2);
                        write_path(&mut w, segs);
                    }
                }
                w.u16(rs.patterns.len() as u16);
                for pat in &rs.patterns {
                    w.str(pat);
                }
            }
            Const::Dispatch(d) => {
                w.u8(5);
                w.u32(d.names.len() as u32);
                for (name, list) in &d.names {
                    w.str(name);
                    w.u32(*list);
                }
                w.u32(d.lists.len() as u32);
                for list in &d.lists {
                    write_steps(&mut w, list);
                }
                write_steps(&mut w, &d.generic_known);
                write_steps(&mut w, &d.generic_unknown);
            }
            Const::Matchers(ms) => {
                w.u8(4);
                w.u16(ms.len() as u16);
                for m in ms {
                    match m {
                        Matcher::Exact(s) => {
                            w.u8(0);
                            w.str(s);
                        }
                        Matcher::Glob { glob, re } => {
                            w.u8(1);
                            w.str(glob);
                            w.str(re.as_str());
                        }
                    }
                }
            }
        }
    }
    w.u16(p.chunks.len() as u16);
    for c in &p.chunks {
        w.bytes(&c.code);
    }
    w.u16(p.source_names.len() as u16);
    for s in &p.source_names {
        w.str(s);
    }
    w.u32(p.debug.len() as u32);
    for d in &p.debug {
        w.u16(d.chunk);
        w.u32(d.pc);
        w.u16(d.rule);
        w.str(&d.label);
        match d.span {
            None => w.u8(0),
            Some((f, s, e)) => {
                w.u8(1);
                w.u16(f);
                w.u32(s);
                w.u32(e);
            }
        }
    }
    w.0
}

/// SHA-256 of the serialised body.
pub fn content_hash(p: &Program) -> [u8; 32] {
    Sha256::digest(body(p)).into()
}

/// Serialises a program to the `.kvbc` format.
pub fn to_bytes(p: &Program) -> Vec<u8> {
    let body = body(p);
    let mut out = Vec::with_capacity(HEADER + body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&Sha256::digest(&body));
    out.extend_from_slice(&body);
    out
}

// ---------------------------------------------------------------- reading

struct R<'a> {
    b: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> R<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], LoadError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or(LoadError::Truncated(self.base + self.pos))?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, LoadError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, LoadError> {
        let s = self.take(2)?;
        Ok(u16::from_le_bytes([s[0], s[1]]))
    }
    fn u32(&mut self) -> Result<u32, LoadError> {
        let s = self.take(4)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn u64(&mut self) -> Result<u64, LoadError> {
        let s = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(u64::from_le_bytes(a))
    }
    fn bytes(&mut self) -> Result<&'a [u8], LoadError> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    fn str(&mut self) -> Result<String, LoadError> {
        let at = self.base + self.pos;
        let b = self.bytes()?;
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| LoadError::BadUtf8(at))
    }
    fn opt_str(&mut self) -> Result<Option<String>, LoadError> {
        let at = self.base + self.pos;
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.str()?)),
            tag => Err(LoadError::BadTag {
                what: "optional string",
                tag,
                at,
            }),
        }
    }
    fn path(&mut self) -> Result<Vec<PathSeg>, LoadError> {
        let mut segs = Vec::new();
        for _ in 0..self.u16()? {
            let at = self.base + self.pos;
            segs.push(match self.u8()? {
                0 => PathSeg::Key(self.str()?),
                1 => PathSeg::Index(self.u64()?),
                tag => {
                    return Err(LoadError::BadTag {
                        what: "path segment",
                        tag,
                        at,
                    })
                }
            });
        }
        Ok(segs)
    }

    fn steps(&mut self) -> Result<Vec<(u32, Step)>, LoadError> {
        let n = self.u32()? as usize;
        // Each step takes at least 7 bytes: refuse counts the input cannot hold.
        if n > (self.b.len() - self.pos) / 7 {
            return Err(LoadError::Truncated(self.base + self.pos));
        }
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let key = self.u32()?;
            let at = self.base + self.pos;
            let step = match self.u8()? {
                0 => Step::Rule {
                    rule: self.u16()?,
                    chunk: self.u16()?,
                    pc: self.u32()?,
                },
                1 => Step::DefaultAllow {
                    policy: self.u16()?,
                },
                tag => {
                    return Err(LoadError::BadTag {
                        what: "dispatch step",
                        tag,
                        at,
                    })
                }
            };
            out.push((key, step));
        }
        Ok(out)
    }

    fn regex(&mut self) -> Result<Regex, LoadError> {
        let at = self.base + self.pos;
        let src = self.str()?;
        Regex::new(&src).map_err(|e| LoadError::BadRegex {
            at,
            message: e.to_string(),
        })
    }
}

/// Loads and verifies a `.kvbc` program.
pub fn from_bytes(bytes: &[u8]) -> Result<Program, LoadError> {
    if bytes.len() < HEADER {
        if bytes.len() < 4 || &bytes[..4] != MAGIC {
            return Err(LoadError::BadMagic);
        }
        return Err(LoadError::Truncated(bytes.len()));
    }
    if &bytes[..4] != MAGIC {
        return Err(LoadError::BadMagic);
    }
    let version = u16::from_le_bytes([bytes[4], bytes[5]]);
    if version != VERSION {
        return Err(LoadError::BadVersion(version));
    }
    let body = &bytes[HEADER..];
    let hash: [u8; 32] = Sha256::digest(body).into();
    if hash[..] != bytes[6..HEADER] {
        return Err(LoadError::BadHash);
    }
    let mut r = R {
        b: body,
        pos: 0,
        base: HEADER,
    };
    let nregs = r.u8()?;
    let mut policies = Vec::new();
    for _ in 0..r.u16()? {
        let name = r.str()?;
        let at = r.base + r.pos;
        let default_allow = match r.u8()? {
            0 => false,
            1 => true,
            tag => {
                return Err(LoadError::BadTag {
                    what: "default_allow",
                    tag,
                    at,
                })
            }
        };
        policies.push(PolicyInfo {
            name,
            default_allow,
        });
    }
    let mut rules = Vec::new();
    for _ in 0..r.u16()? {
        let id = r.str()?;
        let at = r.base + r.pos;
        let effect = match r.u8()? {
            0 => Effect::Allow,
            1 => Effect::Deny,
            2 => Effect::RequireApproval,
            tag => {
                return Err(LoadError::BadTag {
                    what: "effect",
                    tag,
                    at,
                })
            }
        };
        let reason = r.opt_str()?;
        let policy = r.u16()?;
        rules.push(RuleInfo {
            id,
            effect,
            reason,
            policy,
        });
    }
    let mut consts = Vec::new();
    for _ in 0..r.u16()? {
        let at = r.base + r.pos;
        let c = match r.u8()? {
            0 => Const::Str(r.str()?),
            1 => {
                let at = r.base + r.pos;
                let text = r.str()?;
                Const::Json(serde_json::from_str(&text).map_err(|_| LoadError::BadJson(at))?)
            }
            2 => Const::Regex(r.regex()?),
            3 => Const::Path(r.path()?),
            6 => {
                let slot = r.u8()?;
                let at = r.base + r.pos;
                let subject = match r.u8()? {
                    0 => SetSubject::KvField(r.str()?),
                    1 => SetSubject::KvParam(r.str()?),
                    2 => SetSubject::Args(r.path()?),
                    tag => {
                        return Err(LoadError::BadTag {
                            what: "regex set subject",
                            tag,
                            at,
                        })
                    }
                };
                let mut patterns = Vec::new();
                for _ in 0..r.u16()? {
                    patterns.push(r.str()?);
                }
                Const::RegexSet(RegexSet::new(slot, subject, patterns).ok_or(
                    LoadError::BadRegex {
                        at,
                        message: "the regex set does not compile".into(),
                    },
                )?)
            }
            4 => {
                let mut ms = Vec::new();
                for _ in 0..r.u16()? {
                    let at = r.base + r.pos;
                    ms.push(match r.u8()? {
                        0 => Matcher::Exact(r.str()?),
                        1 => Matcher::Glob {
                            glob: r.str()?,
                            re: r.regex()?,
                        },
                        tag => {
                            return Err(LoadError::BadTag {
                                what: "matcher",
                                tag,
                                at,
                            })
                        }
                    });
                }
                Const::Matchers(ms)
            }
            5 => {
                let mut names = Vec::new();
                for _ in 0..r.u32()? {
                    names.push((r.str()?, r.u32()?));
                }
                let mut lists = Vec::new();
                for _ in 0..r.u32()? {
                    lists.push(r.steps()?);
                }
                let generic_known = r.steps()?;
                let generic_unknown = r.steps()?;
                Const::Dispatch(Dispatch::new(names, lists, generic_known, generic_unknown))
            }
            tag => {
                return Err(LoadError::BadTag {
                    what: "constant",
                    tag,
                    at,
                })
            }
        };
        consts.push(c);
    }
    let mut chunks = Vec::new();
    for _ in 0..r.u16()? {
        chunks.push(Chunk {
            code: r.bytes()?.to_vec(),
        });
    }
    let mut source_names = Vec::new();
    for _ in 0..r.u16()? {
        source_names.push(r.str()?);
    }
    let mut debug = Vec::new();
    for _ in 0..r.u32()? {
        let chunk = r.u16()?;
        let pc = r.u32()?;
        let rule = r.u16()?;
        let label = r.str()?;
        let at = r.base + r.pos;
        let span = match r.u8()? {
            0 => None,
            1 => Some((r.u16()?, r.u32()?, r.u32()?)),
            tag => {
                return Err(LoadError::BadTag {
                    what: "debug span",
                    tag,
                    at,
                })
            }
        };
        debug.push(DebugEntry {
            chunk,
            pc,
            rule,
            label,
            span,
        });
    }
    if r.pos != body.len() {
        return Err(LoadError::TrailingBytes(body.len() - r.pos));
    }
    Ok(Program::new(ProgramParts {
        consts,
        chunks,
        nregs,
        rules,
        policies,
        debug,
        source_names,
    })?)
}

impl Program {
    /// Serialises the program (see the module docs for the layout).
    pub fn to_bytes(&self) -> Vec<u8> {
        to_bytes(self)
    }
    /// Loads and verifies a serialised program.
    pub fn from_bytes(bytes: &[u8]) -> Result<Program, LoadError> {
        from_bytes(bytes)
    }
}
