//! The verifier and the loader reject every malformed program, each with
//! its own error; a valid program round-trips byte for byte.

use kvlar_vm::op::{encode, Field, Instr, Quant, TestOp};
use kvlar_vm::program::{
    Chunk, Const, Dispatch, Matcher, PolicyInfo, ProgramParts, RuleInfo, Step,
};
use kvlar_vm::{Call, Effect, LoadError, Program, VerifyError};
use serde_json::json;

fn code(instrs: &[Instr]) -> Vec<u8> {
    let mut v = Vec::new();
    for i in instrs {
        encode(i, &mut v);
    }
    v
}

fn parts(chunks: Vec<Vec<u8>>) -> ProgramParts {
    ProgramParts {
        consts: vec![
            Const::Matchers(vec![Matcher::Exact("bash".into())]),
            Const::Json(json!("x")),
            Const::Regex(regex::Regex::new("a+").unwrap()),
        ],
        chunks: chunks.into_iter().map(|code| Chunk { code }).collect(),
        nregs: 2,
        rules: vec![RuleInfo {
            id: "r".into(),
            effect: Effect::Deny,
            reason: Some("no".into()),
            policy: 0,
        }],
        policies: vec![PolicyInfo {
            name: "p".into(),
            default_allow: false,
        }],
        ..Default::default()
    }
}

/// Decides rule 0 when the tool passes name list #0, else halts.
fn decide_if_named() -> Vec<u8> {
    code(&[
        Instr::NameIn {
            field: Field::Tool,
            list: 0,
        },
        Instr::JumpIfFalse { off: 3 },
        Instr::Decide { rule: 0 },
        Instr::Halt,
    ])
}

fn valid() -> Program {
    Program::new(parts(vec![decide_if_named()])).unwrap()
}

fn err(chunks: Vec<Vec<u8>>) -> VerifyError {
    Program::new(parts(chunks)).unwrap_err()
}

#[test]
fn valid_program_runs_and_round_trips() {
    let p = valid();
    let args = json!({});
    assert_eq!(p.evaluate(&Call::mcp("bash", &args)).rule(), "r");
    let bytes = p.to_bytes();
    let q = Program::from_bytes(&bytes).unwrap();
    assert_eq!(q.to_bytes(), bytes);
    assert_eq!(q.hash_hex(), p.hash_hex());
    assert_eq!(&bytes[..4], b"KVBC");
}

#[test]
fn bad_opcode() {
    assert_eq!(
        err(vec![vec![0xEE]]),
        VerifyError::BadOpcode {
            chunk: 0,
            pc: 0,
            byte: 0xEE
        }
    );
}

#[test]
fn truncated_instruction() {
    let mut c = code(&[Instr::Halt]);
    c.insert(0, kvlar_vm::op::opcode::DECIDE);
    c.truncate(2);
    assert_eq!(err(vec![c]), VerifyError::Truncated { chunk: 0, pc: 0 });
}

#[test]
fn bad_enumerated_operand() {
    let c = vec![
        kvlar_vm::op::opcode::NAME_IN,
        7,
        0,
        0,
        kvlar_vm::op::opcode::HALT,
    ];
    assert_eq!(
        err(vec![c]),
        VerifyError::BadOperand {
            chunk: 0,
            pc: 0,
            what: "field",
            value: 7
        }
    );
}

#[test]
fn jump_past_the_end() {
    let c = code(&[Instr::JumpIfFalse { off: 9 }, Instr::Halt]);
    assert_eq!(
        err(vec![c]),
        VerifyError::BadJump {
            chunk: 0,
            pc: 0,
            target: 12
        }
    );
}

#[test]
fn jump_into_an_instruction() {
    // Target 4 is the middle of the 3-byte Decide at 3.
    let c = code(&[
        Instr::Jump { off: 1 },
        Instr::Decide { rule: 0 },
        Instr::Halt,
    ]);
    assert_eq!(
        err(vec![c]),
        VerifyError::BadJump {
            chunk: 0,
            pc: 0,
            target: 4
        }
    );
}

#[test]
fn constant_out_of_range_and_wrong_kind() {
    let c = code(&[
        Instr::NameIn {
            field: Field::Tool,
            list: 9,
        },
        Instr::Halt,
    ]);
    assert_eq!(
        err(vec![c]),
        VerifyError::BadConst {
            chunk: 0,
            pc: 0,
            index: 9
        }
    );
    let c = code(&[
        Instr::NameIn {
            field: Field::Tool,
            list: 1,
        },
        Instr::Halt,
    ]);
    assert_eq!(
        err(vec![c]),
        VerifyError::ConstKind {
            chunk: 0,
            pc: 0,
            index: 1,
            expected: "matchers",
            found: "json"
        }
    );
}

#[test]
fn register_out_of_range() {
    let c = code(&[
        Instr::LoadName {
            dst: 2,
            field: Field::Tool,
        },
        Instr::Halt,
    ]);
    assert_eq!(
        err(vec![c]),
        VerifyError::BadRegister {
            chunk: 0,
            pc: 0,
            reg: 2
        }
    );
}

#[test]
fn quantifier_cannot_recurse() {
    let main = code(&[
        Instr::Quant {
            kind: Quant::Any,
            var: 0,
            src: 1,
            chunk: 0,
        },
        Instr::Halt,
    ]);
    assert_eq!(
        err(vec![main]),
        VerifyError::BadChunkRef {
            chunk: 0,
            pc: 0,
            target: 0
        }
    );
    let main = code(&[
        Instr::Quant {
            kind: Quant::Any,
            var: 0,
            src: 1,
            chunk: 1,
        },
        Instr::Halt,
    ]);
    let body = code(&[
        Instr::Quant {
            kind: Quant::All,
            var: 0,
            src: 1,
            chunk: 1,
        },
        Instr::Return,
    ]);
    assert_eq!(
        err(vec![main, body]),
        VerifyError::BadChunkRef {
            chunk: 1,
            pc: 0,
            target: 1
        }
    );
}

#[test]
fn chunks_must_end_properly_and_decide_only_in_entry() {
    assert_eq!(
        err(vec![code(&[Instr::Not])]),
        VerifyError::BadEnd {
            chunk: 0,
            expected: "Halt"
        }
    );
    assert_eq!(
        err(vec![vec![]]),
        VerifyError::BadEnd {
            chunk: 0,
            expected: "Halt"
        }
    );
    let main = code(&[Instr::Halt]);
    let body = code(&[Instr::Decide { rule: 0 }, Instr::Return]);
    assert_eq!(
        err(vec![main, body]),
        VerifyError::Misplaced {
            chunk: 1,
            pc: 0,
            instr: "Decide",
            kind: "quantifier body"
        }
    );
    assert_eq!(err(vec![]), VerifyError::NoChunks);
}

#[test]
fn rule_out_of_range() {
    let c = code(&[Instr::Decide { rule: 1 }, Instr::Halt]);
    assert_eq!(
        err(vec![c]),
        VerifyError::BadRule {
            chunk: 0,
            pc: 0,
            rule: 1
        }
    );
}

#[test]
fn loader_rejects_corruption() {
    let bytes = valid().to_bytes();
    assert_eq!(
        Program::from_bytes(b"ELF\x7f").unwrap_err(),
        LoadError::BadMagic
    );
    let mut v = bytes.clone();
    v[4] = 9;
    assert_eq!(
        Program::from_bytes(&v).unwrap_err(),
        LoadError::BadVersion(9)
    );
    let mut v = bytes.clone();
    let last = v.len() - 1;
    v[last] ^= 1;
    assert_eq!(Program::from_bytes(&v).unwrap_err(), LoadError::BadHash);
    // Trailing bytes, with a hash that covers them: still refused.
    let mut body = bytes[38..].to_vec();
    body.push(0);
    let mut v = bytes[..6].to_vec();
    use sha2::Digest;
    v.extend_from_slice(&sha2::Sha256::digest(&body));
    v.extend_from_slice(&body);
    assert_eq!(
        Program::from_bytes(&v).unwrap_err(),
        LoadError::TrailingBytes(1)
    );
    // Truncated body with a matching hash.
    let body = bytes[38..bytes.len() - 3].to_vec();
    let mut v = bytes[..6].to_vec();
    v.extend_from_slice(&sha2::Sha256::digest(&body));
    v.extend_from_slice(&body);
    assert!(matches!(
        Program::from_bytes(&v).unwrap_err(),
        LoadError::Truncated(_)
    ));
}

#[test]
fn quantifier_semantics() {
    // any(x in args.paths: x == "x") — register 1 holds the list, 0 the item.
    let main = code(&[
        Instr::LoadArgs { dst: 1, path: 3 },
        Instr::Quant {
            kind: Quant::Any,
            var: 0,
            src: 1,
            chunk: 1,
        },
        Instr::JumpIfFalse { off: 3 },
        Instr::Decide { rule: 0 },
        Instr::Halt,
    ]);
    let body = code(&[
        Instr::LoadConst { dst: 1, value: 1 },
        Instr::Test {
            op: TestOp::Eq,
            a: 0,
            b: 1,
        },
        Instr::Return,
    ]);
    let mut p = parts(vec![main, body]);
    p.consts
        .push(Const::Path(vec![kvlar_vm::program::PathSeg::Key(
            "paths".into(),
        )]));
    let p = Program::new(p).unwrap();
    let hit = json!({"paths": ["a", "x"]});
    let miss = json!({"paths": ["a", "b"]});
    let not_list = json!({"paths": "x"});
    assert_eq!(p.evaluate(&Call::mcp("t", &hit)).rule(), "r");
    // 5 entry instructions + per item 3 body instructions (the bound counts
    // the longest list, 2 items, for each quantifier entry).
    let (d, steps) = p.evaluate_counting(&Call::mcp("t", &miss));
    assert_eq!((d.rule(), steps), ("_default_deny", 1 + 1 + 3 + 3 + 1 + 1));
    assert_eq!(p.step_bound(&miss), 5 + 2 * 3);
    assert_eq!(p.evaluate(&Call::mcp("t", &miss)).rule(), "_default_deny");
    assert_eq!(
        p.evaluate(&Call::mcp("t", &not_list)).rule(),
        "_default_deny"
    );
}

/// A glob carries the regex of its own text: the fast tool-name paths
/// match the text, the others the regex, so a program where they differ
/// (a hand-made `.kvbc`) is refused.
#[test]
fn a_glob_carries_its_own_regex() {
    let glob = |glob: &str, re: &str| Matcher::Glob {
        glob: glob.into(),
        re: regex::Regex::new(re).unwrap(),
    };
    let main = decide_if_named();
    let mut ps = parts(vec![main.clone()]);
    ps.consts[0] = Const::Matchers(vec![glob("zzz*", "^exec.*$")]);
    assert_eq!(
        Program::new(ps).unwrap_err(),
        VerifyError::BadGlob {
            index: 0,
            glob: "zzz*".into()
        }
    );
    let mut ps = parts(vec![main]);
    let own = kvlar_vm::kvlar::glob_regex("exec*").expect("a glob");
    ps.consts[0] = Const::Matchers(vec![glob("exec*", &own)]);
    let p = Program::new(ps).expect("a glob with its own regex");
    let args = json!({});
    assert_eq!(p.evaluate(&Call::mcp("exec_x", &args)).rule(), "r");
    assert_eq!(p.evaluate(&Call::mcp("zzz", &args)).rule(), "_default_deny");
}

/// Each rule is entered in one chunk (its fast forms are derived per rule):
/// a dispatch table that enters a rule in two chunks is refused.
#[test]
fn a_rule_is_entered_in_one_chunk() {
    let entry = code(&[Instr::Dispatch { table: 3 }, Instr::Halt]);
    let body = code(&[Instr::SetFlag { value: true }, Instr::Return]);
    let with = |unknown_chunk: u16| {
        let mut ps = parts(vec![entry.clone(), body.clone(), body.clone()]);
        let rule = |chunk| Step::Rule {
            rule: 0,
            chunk,
            pc: 0,
        };
        ps.consts.push(Const::Dispatch(Dispatch::new(
            vec![("bash".into(), 0)],
            vec![vec![(0, rule(1))]],
            vec![],
            vec![(0, rule(unknown_chunk))],
        )));
        Program::new(ps)
    };
    assert_eq!(
        with(2).unwrap_err(),
        VerifyError::BadDispatch {
            index: 3,
            why: "rule #0 is entered in chunk 1 and in chunk 2".into()
        }
    );
    let p = with(1).expect("one chunk per rule");
    let args = json!({});
    assert_eq!(p.evaluate(&Call::mcp("bash", &args)).rule(), "r");
    assert_eq!(p.evaluate(&Call::mcp("other", &args)).rule(), "r");
}
