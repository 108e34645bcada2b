//! The instruction set: opcodes, their operands and one decoder shared by the
//! verifier, the disassembler and the interpreter.
//!
//! Encoding: one opcode byte, then fixed-width little-endian operands
//! (registers `u8`, everything else `u16`). Jumps are **forward only**: the
//! operand is the distance from the end of the jump instruction, so every
//! chunk runs each instruction at most once per entry and terminates.

/// Which string of the call a name test or load reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Tool = 0,
    Agent = 1,
    Action = 2,
}

impl Field {
    pub fn from_u8(b: u8) -> Option<Field> {
        Some(match b {
            0 => Field::Tool,
            1 => Field::Agent,
            2 => Field::Action,
            _ => return None,
        })
    }
    pub fn name(self) -> &'static str {
        match self {
            Field::Tool => "tool",
            Field::Agent => "agent",
            Field::Action => "action",
        }
    }
}

/// Binary tests between two registers (native expressions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestOp {
    Eq = 0,
    Ne = 1,
    Lt = 2,
    Le = 3,
    Gt = 4,
    Ge = 5,
    In = 6,
    NotIn = 7,
    Contains = 8,
    StartsWith = 9,
    EndsWith = 10,
    Under = 11,
}

impl TestOp {
    pub const ALL: [TestOp; 12] = [
        TestOp::Eq,
        TestOp::Ne,
        TestOp::Lt,
        TestOp::Le,
        TestOp::Gt,
        TestOp::Ge,
        TestOp::In,
        TestOp::NotIn,
        TestOp::Contains,
        TestOp::StartsWith,
        TestOp::EndsWith,
        TestOp::Under,
    ];
    pub fn from_u8(b: u8) -> Option<TestOp> {
        Self::ALL.get(b as usize).copied()
    }
    pub fn name(self) -> &'static str {
        match self {
            TestOp::Eq => "eq",
            TestOp::Ne => "ne",
            TestOp::Lt => "lt",
            TestOp::Le => "le",
            TestOp::Gt => "gt",
            TestOp::Ge => "ge",
            TestOp::In => "in",
            TestOp::NotIn => "not_in",
            TestOp::Contains => "contains",
            TestOp::StartsWith => "startswith",
            TestOp::EndsWith => "endswith",
            TestOp::Under => "under",
        }
    }
}

/// Kvlar-format condition operators (both vocabularies map here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvOp {
    Eq = 0,
    Neq = 1,
    Contains = 2,
    StartsWith = 3,
    EndsWith = 4,
    GreaterThan = 5,
    LessThan = 6,
    Exists = 7,
    NotExists = 8,
    In = 9,
    NotIn = 10,
    Matches = 11,
    InDomain = 12,
    NotInDomain = 13,
}

impl KvOp {
    pub const ALL: [KvOp; 14] = [
        KvOp::Eq,
        KvOp::Neq,
        KvOp::Contains,
        KvOp::StartsWith,
        KvOp::EndsWith,
        KvOp::GreaterThan,
        KvOp::LessThan,
        KvOp::Exists,
        KvOp::NotExists,
        KvOp::In,
        KvOp::NotIn,
        KvOp::Matches,
        KvOp::InDomain,
        KvOp::NotInDomain,
    ];
    pub fn from_u8(b: u8) -> Option<KvOp> {
        Self::ALL.get(b as usize).copied()
    }
    pub fn name(self) -> &'static str {
        match self {
            KvOp::Eq => "eq",
            KvOp::Neq => "neq",
            KvOp::Contains => "contains",
            KvOp::StartsWith => "starts_with",
            KvOp::EndsWith => "ends_with",
            KvOp::GreaterThan => "greater_than",
            KvOp::LessThan => "less_than",
            KvOp::Exists => "exists",
            KvOp::NotExists => "not_exists",
            KvOp::In => "in",
            KvOp::NotIn => "not_in",
            KvOp::Matches => "matches",
            KvOp::InDomain => "in_domain",
            KvOp::NotInDomain => "not_in_domain",
        }
    }
}

/// One-argument functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    Len = 0,
    Lower = 1,
    Upper = 2,
    Host = 3,
    NormPath = 4,
}

impl Func {
    pub const ALL: [Func; 5] = [
        Func::Len,
        Func::Lower,
        Func::Upper,
        Func::Host,
        Func::NormPath,
    ];
    pub fn from_u8(b: u8) -> Option<Func> {
        Self::ALL.get(b as usize).copied()
    }
    pub fn name(self) -> &'static str {
        match self {
            Func::Len => "len",
            Func::Lower => "lower",
            Func::Upper => "upper",
            Func::Host => "host",
            Func::NormPath => "normpath",
        }
    }
}

/// Quantifier kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quant {
    Any = 0,
    All = 1,
}

/// A decoded instruction. `Reg` operands index the register file, `u16`
/// operands the constant pool / rule table / chunk table as named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Instr {
    /// flag ← the call's `field` matches one of the matchers in const `list` (a `Matchers` constant).
    NameIn {
        field: Field,
        list: u16,
    },
    /// flag ← Kvlar `parameters`: argument `key` (a `Str` constant) present and regex const `re` finds a match in its text.
    KvParam {
        key: u16,
        re: u16,
    },
    /// flag ← Kvlar condition `op` on argument field `field` (a `Str` const) against `value` (a `Json` const, or `Regex` for `matches` with a string value).
    KvCond {
        op: KvOp,
        field: u16,
        value: u16,
    },
    /// reg ← the call's `field` as a string.
    LoadName {
        dst: u8,
        field: Field,
    },
    /// reg ← lookup of path const `path` in the arguments (missing if absent).
    LoadArgs {
        dst: u8,
        path: u16,
    },
    /// reg ← constant `value` (a `Json` constant).
    LoadConst {
        dst: u8,
        value: u16,
    },
    /// reg ← lookup of path const `path` inside register `src`.
    GetPath {
        dst: u8,
        src: u8,
        path: u16,
    },
    /// reg ← `func(src)`.
    Call {
        dst: u8,
        func: Func,
        src: u8,
    },
    /// flag ← `a op b`.
    Test {
        op: TestOp,
        a: u8,
        b: u8,
    },
    /// flag ← `a` is a string and regex const `re` does (or, `negate`, does not) find a match.
    TestRegex {
        a: u8,
        re: u16,
        negate: bool,
    },
    /// flag ← pattern `pattern` of regex set const `set` matches the set's
    /// subject (negated for `!~`; false when the subject is absent or, for
    /// native subjects, not a string). The set runs once per call.
    TestSet {
        set: u16,
        pattern: u16,
        negate: bool,
    },
    /// flag ← register `a` holds a value (not missing).
    Exists {
        a: u8,
    },
    /// flag ← register `a` holds the boolean `true`.
    Truthy {
        a: u8,
    },
    /// flag ← !flag
    Not,
    /// flag ← constant
    SetFlag {
        value: bool,
    },
    JumpIfFalse {
        off: u16,
    },
    JumpIfTrue {
        off: u16,
    },
    Jump {
        off: u16,
    },
    /// flag ← any/all items of the list in `src` satisfy chunk `chunk`, run
    /// with the item in register `var`. Not a list: false.
    Quant {
        kind: Quant,
        var: u8,
        src: u8,
        chunk: u16,
    },
    /// Run the rules the dispatch table `table` selects for the call's tool,
    /// in order; the first whose chunk returns true decides. Falls through
    /// when none does.
    Dispatch {
        table: u16,
    },
    /// Stop: rule `rule` decides.
    Decide {
        rule: u16,
    },
    /// Stop: policy `policy`'s `default_outcome: allow` decides (`_default_allow`).
    DefaultAllow {
        policy: u16,
    },
    /// Stop: nothing decided (`_default_deny`). Ends the main chunk.
    Halt,
    /// End of a quantifier body chunk; its result is the flag.
    Return,
}

pub mod opcode {
    pub const NAME_IN: u8 = 0x01;
    pub const KV_PARAM: u8 = 0x02;
    pub const KV_COND: u8 = 0x03;
    pub const LOAD_NAME: u8 = 0x10;
    pub const LOAD_ARGS: u8 = 0x11;
    pub const LOAD_CONST: u8 = 0x12;
    pub const GET_PATH: u8 = 0x13;
    pub const CALL: u8 = 0x14;
    pub const TEST: u8 = 0x20;
    pub const TEST_REGEX: u8 = 0x21;
    pub const EXISTS: u8 = 0x23;
    pub const TEST_SET: u8 = 0x25;
    pub const TRUTHY: u8 = 0x24;
    pub const NOT: u8 = 0x30;
    pub const SET_FLAG: u8 = 0x31;
    pub const JUMP_IF_FALSE: u8 = 0x32;
    pub const JUMP_IF_TRUE: u8 = 0x33;
    pub const JUMP: u8 = 0x34;
    pub const QUANT: u8 = 0x35;
    pub const DECIDE: u8 = 0x40;
    pub const DISPATCH: u8 = 0x44;
    pub const DEFAULT_ALLOW: u8 = 0x41;
    pub const HALT: u8 = 0x42;
    pub const RETURN: u8 = 0x43;
}

/// Why an instruction could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The code ends inside an instruction.
    Truncated { pc: usize },
    /// Unknown opcode byte.
    BadOpcode { pc: usize, byte: u8 },
    /// An enumerated operand (field, test op, function…) is out of range.
    BadOperand {
        pc: usize,
        what: &'static str,
        value: u8,
    },
}

struct Reader<'a> {
    code: &'a [u8],
    start: usize,
    pos: usize,
}

impl Reader<'_> {
    fn u8(&mut self) -> Result<u8, DecodeError> {
        let b = *self
            .code
            .get(self.pos)
            .ok_or(DecodeError::Truncated { pc: self.start })?;
        self.pos += 1;
        Ok(b)
    }
    fn u16(&mut self) -> Result<u16, DecodeError> {
        let lo = self.u8()?;
        let hi = self.u8()?;
        Ok(u16::from_le_bytes([lo, hi]))
    }
    fn en<T>(&mut self, what: &'static str, f: impl Fn(u8) -> Option<T>) -> Result<T, DecodeError> {
        let b = self.u8()?;
        f(b).ok_or(DecodeError::BadOperand {
            pc: self.start,
            what,
            value: b,
        })
    }
}

/// Decodes the instruction at `pc`; returns it and the pc of the next one.
#[inline]
pub fn decode(code: &[u8], pc: usize) -> Result<(Instr, usize), DecodeError> {
    use opcode::*;
    let mut r = Reader {
        code,
        start: pc,
        pos: pc,
    };
    let op = r.u8()?;
    let instr = match op {
        NAME_IN => Instr::NameIn {
            field: r.en("field", Field::from_u8)?,
            list: r.u16()?,
        },
        KV_PARAM => Instr::KvParam {
            key: r.u16()?,
            re: r.u16()?,
        },
        KV_COND => Instr::KvCond {
            op: r.en("kvlar operator", KvOp::from_u8)?,
            field: r.u16()?,
            value: r.u16()?,
        },
        LOAD_NAME => Instr::LoadName {
            dst: r.u8()?,
            field: r.en("field", Field::from_u8)?,
        },
        LOAD_ARGS => Instr::LoadArgs {
            dst: r.u8()?,
            path: r.u16()?,
        },
        LOAD_CONST => Instr::LoadConst {
            dst: r.u8()?,
            value: r.u16()?,
        },
        GET_PATH => Instr::GetPath {
            dst: r.u8()?,
            src: r.u8()?,
            path: r.u16()?,
        },
        CALL => Instr::Call {
            dst: r.u8()?,
            func: r.en("function", Func::from_u8)?,
            src: r.u8()?,
        },
        TEST => Instr::Test {
            op: r.en("test operator", TestOp::from_u8)?,
            a: r.u8()?,
            b: r.u8()?,
        },
        TEST_REGEX => Instr::TestRegex {
            a: r.u8()?,
            re: r.u16()?,
            negate: r.en("negate flag", |b| match b {
                0 => Some(false),
                1 => Some(true),
                _ => None,
            })?,
        },
        EXISTS => Instr::Exists { a: r.u8()? },
        TEST_SET => Instr::TestSet {
            set: r.u16()?,
            pattern: r.u16()?,
            negate: r.en("negate flag", |b| match b {
                0 => Some(false),
                1 => Some(true),
                _ => None,
            })?,
        },
        TRUTHY => Instr::Truthy { a: r.u8()? },
        NOT => Instr::Not,
        SET_FLAG => Instr::SetFlag {
            value: r.en("flag value", |b| match b {
                0 => Some(false),
                1 => Some(true),
                _ => None,
            })?,
        },
        JUMP_IF_FALSE => Instr::JumpIfFalse { off: r.u16()? },
        JUMP_IF_TRUE => Instr::JumpIfTrue { off: r.u16()? },
        JUMP => Instr::Jump { off: r.u16()? },
        QUANT => Instr::Quant {
            kind: r.en("quantifier", |b| match b {
                0 => Some(Quant::Any),
                1 => Some(Quant::All),
                _ => None,
            })?,
            var: r.u8()?,
            src: r.u8()?,
            chunk: r.u16()?,
        },
        DECIDE => Instr::Decide { rule: r.u16()? },
        DISPATCH => Instr::Dispatch { table: r.u16()? },
        DEFAULT_ALLOW => Instr::DefaultAllow { policy: r.u16()? },
        HALT => Instr::Halt,
        RETURN => Instr::Return,
        byte => return Err(DecodeError::BadOpcode { pc, byte }),
    };
    Ok((instr, r.pos))
}

/// Appends the encoding of `instr` to `out`.
pub fn encode(instr: &Instr, out: &mut Vec<u8>) {
    use opcode::*;
    let u16 = |out: &mut Vec<u8>, v: u16| out.extend_from_slice(&v.to_le_bytes());
    match *instr {
        Instr::NameIn { field, list } => {
            out.extend_from_slice(&[NAME_IN, field as u8]);
            u16(out, list);
        }
        Instr::KvParam { key, re } => {
            out.push(KV_PARAM);
            u16(out, key);
            u16(out, re);
        }
        Instr::KvCond { op, field, value } => {
            out.extend_from_slice(&[KV_COND, op as u8]);
            u16(out, field);
            u16(out, value);
        }
        Instr::LoadName { dst, field } => out.extend_from_slice(&[LOAD_NAME, dst, field as u8]),
        Instr::LoadArgs { dst, path } => {
            out.extend_from_slice(&[LOAD_ARGS, dst]);
            u16(out, path);
        }
        Instr::LoadConst { dst, value } => {
            out.extend_from_slice(&[LOAD_CONST, dst]);
            u16(out, value);
        }
        Instr::GetPath { dst, src, path } => {
            out.extend_from_slice(&[GET_PATH, dst, src]);
            u16(out, path);
        }
        Instr::Call { dst, func, src } => out.extend_from_slice(&[CALL, dst, func as u8, src]),
        Instr::Test { op, a, b } => out.extend_from_slice(&[TEST, op as u8, a, b]),
        Instr::TestRegex { a, re, negate } => {
            out.extend_from_slice(&[TEST_REGEX, a]);
            u16(out, re);
            out.push(negate as u8);
        }
        Instr::Exists { a } => out.extend_from_slice(&[EXISTS, a]),
        Instr::TestSet {
            set,
            pattern,
            negate,
        } => {
            out.push(TEST_SET);
            u16(out, set);
            u16(out, pattern);
            out.push(negate as u8);
        }
        Instr::Truthy { a } => out.extend_from_slice(&[TRUTHY, a]),
        Instr::Not => out.push(NOT),
        Instr::SetFlag { value } => out.extend_from_slice(&[SET_FLAG, value as u8]),
        Instr::JumpIfFalse { off } => {
            out.push(JUMP_IF_FALSE);
            u16(out, off);
        }
        Instr::JumpIfTrue { off } => {
            out.push(JUMP_IF_TRUE);
            u16(out, off);
        }
        Instr::Jump { off } => {
            out.push(JUMP);
            u16(out, off);
        }
        Instr::Quant {
            kind,
            var,
            src,
            chunk,
        } => {
            out.extend_from_slice(&[QUANT, kind as u8, var, src]);
            u16(out, chunk);
        }
        Instr::Decide { rule } => {
            out.push(DECIDE);
            u16(out, rule);
        }
        Instr::Dispatch { table } => {
            out.push(DISPATCH);
            u16(out, table);
        }
        Instr::DefaultAllow { policy } => {
            out.push(DEFAULT_ALLOW);
            u16(out, policy);
        }
        Instr::Halt => out.push(HALT),
        Instr::Return => out.push(RETURN),
    }
}
