//! Tests of the protocol layer: exact bytes on the wire, with a stand-in
//! [`Decide`] (the binary uses the compiled program).

use std::sync::Arc;

use arc_swap::ArcSwap;
use kvlar_vm::{Call, Decision, Effect, Verdict};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::classify::{client_line, scan_id, server_line, ClientLine, ServerLine};
use super::policy::Decide;
use super::session::{self, Context, IdKey, Pending};

/// Denies `get-env` and tools named `ask*` (approval); allows the rest.
struct Rules;

static NO_ENV: Verdict = Verdict::new(Effect::Deny, "no-env", Some("secrets"));
static ASK: Verdict = Verdict::new(Effect::RequireApproval, "ask", Some("needs a human"));
static NO_EVIL: Verdict = Verdict::new(Effect::Deny, "no-evil", Some("evil"));
static OK: Verdict = Verdict::new(Effect::Allow, "ok", None);

impl Decide for Rules {
    fn decide<'s>(&'s self, call: &Call<'_>) -> Decision<'s> {
        if call.tool == "get-env" {
            Decision::new(&NO_ENV)
        } else if call.tool.starts_with("ask") {
            Decision::new(&ASK)
        } else if call.args.get("evil").is_some() {
            Decision::new(&NO_EVIL)
        } else {
            Decision::new(&OK)
        }
    }
    fn policy_hash(&self) -> &str {
        "h1"
    }
}

fn reply(line: &str) -> String {
    match client_line(line.as_bytes()) {
        ClientLine::Reply(bytes)
        | ClientLine::Refuse {
            reply: Some(bytes), ..
        } => String::from_utf8(bytes).unwrap(),
        other => panic!("expected a reply to {line:?}, got {other:?}"),
    }
}

fn invalid(id: &str, why: &str) -> String {
    format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"error\":{{\"code\":-32600,\"message\":\"Invalid Request: \
         Kvlar refused this tools/call: {why}; it was not forwarded\"}}}}\n"
    )
}

#[test]
fn everything_but_tools_call_is_forwarded() {
    for line in [
        r#"{"jsonrpc":"2.0","id":0,"method":"server/discover","params":{}}"#,
        r#"{"jsonrpc":"2.0","id":"x","method":"initialize","params":{"protocolVersion":"2025-11-25"}}"#,
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        r#"{"jsonrpc":"2.0","id":0,"result":{"content":{"type":"text","text":"hi"}}}"#,
        r#"{"jsonrpc":"2.0","id":5,"error":{"code":-1,"message":"no"}}"#,
        r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":3}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"a":1,"a":2}}"#,
        r#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"x"}]"#,
        r#"[]"#,
        "5",
    ] {
        match client_line(line.as_bytes()) {
            ClientLine::Forward { .. } => {}
            other => panic!("{line}: {other:?}"),
        }
    }
    match client_line(br#"{"jsonrpc":"2.0","id":12345678901234567890123,"method":"ping"}"#) {
        ClientLine::Forward {
            request_id: Some(id),
            cancels: None,
        } => assert_eq!(id.get(), "12345678901234567890123"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn tools_call_is_evaluated() {
    let line = br#"{"jsonrpc":"2.0","id":"r-1","method":"tools/call","params":{"name":"echo","arguments":{"message":"hi"},"_meta":{"progressToken":1}}}"#;
    match client_line(line) {
        ClientLine::Evaluate(c) => {
            assert_eq!(c.id.get(), "\"r-1\"");
            assert_eq!(c.name, "echo");
            assert_eq!(c.args, serde_json::json!({"message": "hi"}));
        }
        other => panic!("{other:?}"),
    }
    // Absent arguments are an empty object; escapes are decoded.
    match client_line(br#"{"id":0,"method":"tools\/call","params":{"name":"get-\u0065nv"}}"#) {
        ClientLine::Evaluate(c) => {
            assert_eq!(c.id.get(), "0");
            assert_eq!(c.name, "get-env");
            assert_eq!(c.args, serde_json::json!({}));
        }
        other => panic!("{other:?}"),
    }
    // The stateless revision's retry is evaluated like any call.
    let retry = br#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"x","arguments":{},"inputResponses":{"a":{"action":"accept"}},"requestState":"s","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#;
    assert!(matches!(client_line(retry), ClientLine::Evaluate(_)));
}

#[test]
fn malformed_tools_calls_are_refused_with_their_id() {
    assert_eq!(
        reply(r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"arguments":{}}}"#),
        invalid("3", "params.name is missing or not a string")
    );
    assert_eq!(
        reply(r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":7}}"#),
        invalid("3", "params.name is missing or not a string")
    );
    assert_eq!(
        reply(
            r#"{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"x","arguments":[1]}}"#
        ),
        invalid("\"a\"", "params.arguments is not an object")
    );
    assert_eq!(
        reply(
            r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"x","arguments":null}}"#
        ),
        invalid("4", "params.arguments is not an object")
    );
    assert_eq!(
        reply(r#"{"jsonrpc":"2.0","id":4,"method":"tools/call"}"#),
        invalid("4", "params are missing")
    );
    assert_eq!(
        reply(r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":"x"}"#),
        invalid("4", "params is not an object")
    );
    let dup = "params contain duplicate keys (keys may not repeat, nor differ only by case)";
    assert_eq!(
        reply(
            r#"{"id":5,"method":"tools/call","params":{"name":"x","arguments":{"path":"/tmp","path":"/etc"}}}"#
        ),
        invalid("5", dup)
    );
    assert_eq!(
        reply(
            r#"{"id":5,"method":"tools/call","params":{"name":"x","arguments":{"a":{"b":1,"b":2}}}}"#
        ),
        invalid("5", dup)
    );
    assert_eq!(
        reply(r#"{"id":5,"method":"tools/call","params":{"name":"safe","name":"evil"}}"#),
        invalid("5", dup)
    );
    assert_eq!(
        reply(
            r#"{"id":5,"method":"tools/call","params":{"name":"x","arguments":{"cmd":"ls","CMD":"rm"}}}"#
        ),
        invalid("5", dup)
    );
    assert_eq!(
        reply(r#"{"id":6,"method":"tools/call","params":{"name":"x"},"params":{"name":"y"}}"#),
        invalid("6", "the message has duplicate keys")
    );
    assert_eq!(
        reply(r#"{"id":6,"id":7,"method":"tools/call","params":{"name":"x"}}"#),
        invalid(
            "null",
            "the id is missing, duplicated or not a number or string"
        )
    );
    assert_eq!(
        reply(r#"{"jsonrpc":"2.0","id":null,"method":"tools/call","params":{"name":"x"}}"#),
        invalid(
            "null",
            "its id is null (MCP request ids are strings or integers)"
        )
    );
    assert_eq!(
        reply(r#"{"jsonrpc":"2.0","id" : null ,"method":"tools/call","params":{"name":"x"}}"#),
        invalid(
            "null",
            "its id is null (MCP request ids are strings or integers)"
        )
    );
    assert_eq!(
        reply(r#"{"id":{"a":1},"method":"tools/call","params":{"name":"x"}}"#),
        invalid(
            "null",
            "the id is missing, duplicated or not a number or string"
        )
    );
    assert_eq!(
        reply(
            r#"{"id":6,"jsonrpc":"2.0","jsonrpc":"2.0","method":"tools/call","params":{"name":"x"}}"#
        ),
        invalid("6", "the message has duplicate keys")
    );
}

#[test]
fn look_alike_methods_are_refused() {
    let why = "the method differs from `tools/call` only by case, whitespace or invisible characters, or is given more than once";
    for line in [
        r#"{"id":1,"method":"Tools/Call","params":{"name":"get-env"}}"#,
        r#"{"id":1,"method":" tools/call","params":{"name":"get-env"}}"#,
        r#"{"id":1,"method":"tools/call\n","params":{"name":"get-env"}}"#,
        r#"{"id":1,"method":"tools/\u200bcall","params":{"name":"get-env"}}"#,
        r#"{"id":1,"method":"ping","Method":"tools/call","params":{"name":"get-env"}}"#,
        r#"{"id":1,"method":"tools/call","method":"ping","params":{"name":"get-env"}}"#,
        r#"{"id":1,"METHOD":"tools/call","params":{"name":"get-env"}}"#,
    ] {
        assert_eq!(reply(line), invalid("1", why), "{line}");
    }
}

/// Regression: a Python SDK server reads `\r` as a line break, so the middle
/// of this "notification" was executed as a `tools/call` of a denied tool.
#[test]
fn carriage_returns_inside_a_line_are_refused() {
    let why = "the line contains a carriage return (\\r) between its tokens, which some MCP servers read as a line break";
    let refused = |id: &str| {
        format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"error\":{{\"code\":-32600,\"message\":\"Invalid Request: \
             Kvlar refused this message: {}; it was not forwarded\"}}}}\n",
            why.replace('\\', "\\\\")
        )
    };
    let smuggled = "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":\r{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"get-env\"}}\r}";
    match client_line(smuggled.as_bytes()) {
        ClientLine::Refuse {
            reply: None,
            id: None,
            why: w,
        } => assert_eq!(w, why),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        reply("{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"ping\",\"params\":\r{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"tools/call\",\"params\":{\"name\":\"get-env\"}}}"),
        refused("7")
    );
    // An allowed call whose params hide a denied call for the server.
    assert_eq!(
        reply("{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"method\":\"tools/call\",\"params\":\r{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/call\",\"params\":{\"name\":\"get-env\"},\"name\":\"echo\"}\r}"),
        refused("\"a\"")
    );
    // Around the message (CRLF line ends, leading CR) it is harmless and forwarded.
    for line in [
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}\r",
        "\r{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}\r\r",
    ] {
        assert!(
            matches!(client_line(line.as_bytes()), ClientLine::Forward { .. }),
            "{line:?}"
        );
    }
    // Garbage with a CR still gets the parse error.
    assert!(reply("x\ry").contains("-32700"));
}

/// Go's encoding/json matches keys case-insensitively, with `ſ` as `s`.
#[test]
fn keys_a_case_insensitive_peer_would_merge_are_refused() {
    assert_eq!(
        reply(
            r#"{"id":1,"method":"tools/call","params":{"name":"echo"},"paramſ":{"name":"get-env"}}"#
        ),
        invalid("1", "the message has duplicate keys")
    );
    assert_eq!(
        reply(
            r#"{"id":1,"method":"tools/call","params":{"name":"echo","arguments":{"path":"/srv"},"argumentſ":{"path":"/etc"}}}"#
        ),
        invalid(
            "1",
            "params contain duplicate keys (keys may not repeat, nor differ only by case)"
        )
    );
    assert_eq!(
        reply(
            r#"{"id":1,"method":"tools/call","params":{"name":"x","arguments":{"maſk":1,"mask":2}}}"#
        ),
        invalid(
            "1",
            "params contain duplicate keys (keys may not repeat, nor differ only by case)"
        )
    );
    let why = "params has a key that differs from `name` or `arguments` only by case, whitespace or invisible characters";
    for params in [
        r#"{"name":"echo","Arguments":{"evil":1}}"#,
        r#"{"name":"echo","argumentſ":{"evil":1}}"#,
        r#"{"name":"echo","arguments ":{"evil":1}}"#,
        r#"{"name":"echo","NAME":"get-env"}"#,
        r#"{"Name":"get-env"}"#,
    ] {
        let line = format!(r#"{{"id":2,"method":"tools/call","params":{params}}}"#);
        let expected = if params == r#"{"name":"echo","NAME":"get-env"}"# {
            invalid(
                "2",
                "params contain duplicate keys (keys may not repeat, nor differ only by case)",
            )
        } else {
            invalid("2", why)
        };
        assert_eq!(reply(&line), expected, "{line}");
    }
}

/// Duplicate keys are found in objects of any size (many keys are kept in a
/// hash set rather than a list), including keys with escapes.
#[test]
fn duplicate_keys_in_big_objects_are_refused() {
    let dup = invalid(
        "1",
        "params contain duplicate keys (keys may not repeat, nor differ only by case)",
    );
    for n in [2, 15, 16, 17, 40] {
        let keys: Vec<String> = (0..n).map(|i| format!("\"k{i}\":{i}")).collect();
        let ok = format!(
            r#"{{"id":1,"method":"tools/call","params":{{"name":"echo","arguments":{{{}}}}}}}"#,
            keys.join(",")
        );
        assert!(
            matches!(client_line(ok.as_bytes()), ClientLine::Evaluate(_)),
            "{n} keys"
        );
        for extra in [
            r#""k0":"again""#,
            r#""K0":1"#,
            r#""\u006B0":1"#,
            r#""\u004b0":1"#,
        ] {
            for at_end in [true, false] {
                let mut all = keys.clone();
                if at_end {
                    all.push(extra.to_owned());
                } else {
                    all.insert(1.min(all.len()), extra.to_owned());
                }
                let line = format!(
                    r#"{{"id":1,"method":"tools/call","params":{{"name":"echo","arguments":{{{}}}}}}}"#,
                    all.join(",")
                );
                assert_eq!(reply(&line), dup, "{line}");
            }
        }
    }
    // Top-level keys too.
    let line = r#"{"id":1,"method":"tools/call","params":{"name":"echo"},"\u0070arams":{"name":"get-env"}}"#;
    assert_eq!(reply(line), invalid("1", "the message has duplicate keys"));
}

#[test]
fn tools_call_notifications_are_dropped() {
    for line in [
        r#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"get-env"}}"#,
        r#"{"jsonrpc":"2.0","method":"TOOLS/CALL","params":{"name":"get-env"}}"#,
    ] {
        match client_line(line.as_bytes()) {
            ClientLine::Refuse {
                reply: None,
                id: None,
                why,
            } => assert_eq!(why, "a tools/call notification (no id)"),
            other => panic!("{line}: {other:?}"),
        }
    }
    for line in ["", "  \r"] {
        assert!(matches!(client_line(line.as_bytes()), ClientLine::Drop));
    }
}

#[test]
fn garbage_and_invalid_utf8_get_parse_errors() {
    assert_eq!(
        reply("hello"),
        "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32700,\"message\":\"Parse error: the line is \
         not valid JSON (expected value at line 1 column 1); Kvlar did not forward it\"}}\n"
    );
    assert_eq!(
        reply(r#"{"id":1,"method":"tools/call","params":{"name":"x"}"#),
        "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32700,\"message\":\"Parse error: the line is \
         not valid JSON (EOF while parsing an object at line 1 column 51); Kvlar did not forward it\"}}\n"
    );
    match client_line(b"{\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"\xff\"}}") {
        ClientLine::Reply(bytes) => assert_eq!(
            String::from_utf8(bytes).unwrap(),
            "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32700,\"message\":\"Parse error: the line is \
             not valid UTF-8; Kvlar did not forward it\"}}\n"
        ),
        other => panic!("{other:?}"),
    }
    assert!(matches!(client_line(b"{\"a\":1} x"), ClientLine::Reply(_)));
}

#[test]
fn batches_with_tools_call_are_refused_whole() {
    let line = r#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}},{"jsonrpc":"2.0","id":"b","method":"ping"},{"jsonrpc":"2.0","method":"notifications/x"}]"#;
    assert_eq!(
        reply(line),
        "[{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":-32600,\"message\":\"Invalid Request: Kvlar refused \
         this request: a JSON-RPC batch may not contain tools/call; the batch was not forwarded\"}},\
         {\"jsonrpc\":\"2.0\",\"id\":\"b\",\"error\":{\"code\":-32600,\"message\":\"Invalid Request: Kvlar refused \
         this request: it was part of a JSON-RPC batch that contains a tools/call; the batch was not forwarded\"}}]\n"
    );
    // Nested, or only a notification: still never forwarded.
    assert!(matches!(
        client_line(br#"[[{"id":2,"method":"Tools/call","params":{}}]]"#),
        ClientLine::Refuse { reply: Some(_), .. }
    ));
    assert!(matches!(
        client_line(br#"[{"method":"tools/call","params":{"name":"x"}}]"#),
        ClientLine::Refuse { reply: None, .. }
    ));
}

#[test]
fn server_lines() {
    assert_eq!(
        server_line(br#"{"jsonrpc":"2.0","id":7,"result":{}}"#),
        ServerLine::Forward {
            response_id: Some("7")
        }
    );
    assert_eq!(
        server_line(br#"{"jsonrpc":"2.0","id":0,"method":"sampling/createMessage","params":{}}"#),
        ServerLine::Forward { response_id: None }
    );
    assert_eq!(
        server_line(br#"{"jsonrpc":"2.0","method":"notifications/progress","params":{}}"#),
        ServerLine::Forward { response_id: None }
    );
    assert!(matches!(
        server_line(b"Starting server..."),
        ServerLine::Invalid(_)
    ));
    assert!(matches!(server_line(b"\xff"), ServerLine::Invalid(_)));
}

/// The id of a response is read without building the message: exactly the
/// top-level member's raw text, never an `id` nested in the result.
#[test]
fn server_response_ids() {
    let id = |line: &str| match server_line(line.as_bytes()) {
        ServerLine::Forward { response_id } => response_id.map(str::to_owned),
        ServerLine::Invalid(why) => panic!("{line}: {why}"),
    };
    assert_eq!(
        id(r#"{"jsonrpc":"2.0","id":0,"result":{}}"#).as_deref(),
        Some("0")
    );
    assert_eq!(
        id(r#"{"jsonrpc":"2.0","id":"a\"b\u00e9\\","result":{}}"#).as_deref(),
        Some(r#""a\"b\u00e9\\""#)
    );
    assert_eq!(
        id(r#"{"id":123456789012345678901234567890,"result":1}"#).as_deref(),
        Some("123456789012345678901234567890")
    );
    assert_eq!(id(r#"{"id":-1.5e3,"result":1}"#).as_deref(), Some("-1.5e3"));
    assert_eq!(
        id(r#" { "id" : 4 , "result" : null } "#).as_deref(),
        Some("4")
    );
    // Nested ids (in the result, before and after the real one) are not the id.
    assert_eq!(
        id(r#"{"jsonrpc":"2.0","result":{"id":99,"items":[{"id":5},"\"id\":6"]},"id":3}"#)
            .as_deref(),
        Some("3")
    );
    assert_eq!(id(r#"{"result":{"id":99}}"#), None);
    assert_eq!(
        id(r#"{"error":{"code":1,"message":"m","data":{"id":8}},"id":null}"#).as_deref(),
        Some("null")
    );
    // A key with escapes is the key it decodes to; the first of repeated ids counts.
    assert_eq!(id(r#"{"\u0069d":11,"result":{}}"#).as_deref(), Some("11"));
    assert_eq!(id(r#"{"id":1,"id":2,"result":{}}"#).as_deref(), Some("1"));
    // A request or notification from the server is no response.
    assert_eq!(id(r#"{"id":5,"params":{},"\u006dethod":"ping"}"#), None);
    assert_eq!(id(r#"{"method":"ping","id":5}"#), None);
    // Anything else that is JSON is forwarded without an id.
    assert_eq!(id("[1,2]"), None);
    assert_eq!(id("\"text\""), None);
    // Not JSON: dropped, however close.
    for line in [
        r#"{"id":1,"result":{"a":tru}}"#,
        r#"{"id":1,"result":{}}x"#,
        r#"{"id":1,"result":{}"#,
        r#"{"id":01,"result":{}}"#,
        r#"{"id":1,"result":"\x"}"#,
        r#"{"id":1,"result":{"a":1,}}"#,
        r#"{"id":1 "result":{}}"#,
        r#"{id:1}"#,
        "",
    ] {
        assert!(
            matches!(server_line(line.as_bytes()), ServerLine::Invalid(_)),
            "{line}"
        );
    }
}

#[test]
fn ids_of_lines_too_long_to_read() {
    assert_eq!(
        scan_id(br#"{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"x","argu"#),
        Some("42")
    );
    assert_eq!(
        scan_id(br#"{"jsonrpc":"2.0","params":{"a":[1,{"id":3}],"s":"}\""},"id":"k","x"#),
        Some("\"k\"")
    );
    assert_eq!(
        scan_id(br#"{"method":"tools/call","params":{"name":"x","arguments":{"id":5"#),
        None
    );
    assert_eq!(scan_id(br#"{"id":12"#), None);
    assert_eq!(scan_id(br#"[{"id":1}"#), None);
    assert_eq!(scan_id(br#"{"id":{"a":1},"#), None);
}

#[test]
fn id_keys_match_as_a_javascript_peer_echoes_them() {
    assert_eq!(IdKey::of("1"), IdKey::of("1.0"));
    assert_eq!(IdKey::of("0"), IdKey::of("-0"));
    assert_eq!(IdKey::of("\"a\""), IdKey::of("\"\\u0061\""));
    assert_ne!(IdKey::of("1"), IdKey::of("\"1\""));
    assert_eq!(
        IdKey::of("12345678901234567890"),
        IdKey::of("12345678901234567000")
    );
    // Plain integers take a short cut; it keys them as the JSON parser does.
    for (plain, parsed) in [
        ("0", "0.0"),
        ("0", "-0e5"),
        ("7", "7e0"),
        ("9007199254740993", "9007199254740993.0"),
        ("1234567890123456789", "1234567890123456789.0"),
        ("9999999999999999999", "9999999999999999999.0"),
        ("18446744073709551615", "18446744073709551615.0"),
    ] {
        assert!(IdKey::of(plain).is_some(), "{plain}");
        assert_eq!(IdKey::of(plain), IdKey::of(parsed), "{plain} {parsed}");
    }
    assert_ne!(IdKey::of("1"), IdKey::of("2"));
    assert_eq!(IdKey::of("01"), None);
    assert_eq!(IdKey::of(""), None);
}

fn context(pending: Arc<Pending>) -> Arc<Context<Rules>> {
    Arc::new(Context {
        policy: Arc::new(ArcSwap::from_pointee(Rules)),
        agent: Arc::from("mcp-agent"),
        audit: None,
        pending,
    })
}

/// Runs the client → server loop over `input`; returns (what reached the
/// server, what the proxy answered the client).
async fn pump(input: &[u8], pending: Arc<Pending>) -> (String, String) {
    let (mut upstream_read, upstream_write) = tokio::io::duplex(1 << 20);
    let (out, mut rx) = mpsc::channel(1024);
    session::client_to_server(input, upstream_write, out, context(pending))
        .await
        .unwrap();
    let mut forwarded = Vec::new();
    upstream_read.read_to_end(&mut forwarded).await.unwrap();
    let mut answered = Vec::new();
    while let Ok(line) = rx.try_recv() {
        answered.extend(line);
    }
    (
        String::from_utf8(forwarded).unwrap(),
        String::from_utf8(answered).unwrap(),
    )
}

#[tokio::test]
async fn client_to_server_forwards_bytes_and_answers_denials() {
    let pending = Arc::new(Pending::default());
    let input = concat!(
        "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":{}}\r\n",
        "{ \"jsonrpc\":\"2.0\", \"id\":1, \"method\":\"tools/call\", \"params\":{\"name\":\"echo\",\"arguments\":{\"m\":\"\\u00e9\"}} }\n",
        "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"get-env\"}}\n",
        "not json\n",
        "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{\"name\":\"ask-me\"}}\n",
        "{\"jsonrpc\":\"2.0\",\"method\":\"tools/call\",\"params\":{\"name\":\"echo\"}}\n",
        "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/call\",\"params\":{\"name\":\"x\",\"arguments\":{\"evil\":1,\"evil\":2}}}\n",
        "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}"
    );
    let (forwarded, answered) = pump(input.as_bytes(), pending.clone()).await;
    assert_eq!(
        forwarded,
        concat!(
            "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":{}}\r\n",
            "{ \"jsonrpc\":\"2.0\", \"id\":1, \"method\":\"tools/call\", \"params\":{\"name\":\"echo\",\"arguments\":{\"m\":\"\\u00e9\"}} }\n",
            "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n"
        )
    );
    assert_eq!(
        answered,
        concat!(
            "{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"Kvlar denied the call to tool `get-env`: secrets (rule no-env)\"}],\"isError\":true,\"_meta\":{\"io.kvlar/decision\":{\"decision\":\"deny\",\"rule\":\"no-env\",\"reason\":\"secrets\",\"policy_hash\":\"h1\",\"tool\":\"get-env\"}}}}\n",
            "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32700,\"message\":\"Parse error: the line is not valid JSON (expected ident at line 1 column 2); Kvlar did not forward it\"}}\n",
            "{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"Kvlar denied the call to tool `ask-me`: it requires approval (needs a human), and no approval channel is configured (rule ask)\"}],\"isError\":true,\"_meta\":{\"io.kvlar/decision\":{\"decision\":\"require_approval\",\"rule\":\"ask\",\"reason\":\"needs a human\",\"policy_hash\":\"h1\",\"tool\":\"ask-me\"}}}}\n",
            "{\"jsonrpc\":\"2.0\",\"id\":4,\"error\":{\"code\":-32600,\"message\":\"Invalid Request: Kvlar refused this tools/call: params contain duplicate keys (keys may not repeat, nor differ only by case); it was not forwarded\"}}\n",
        )
    );
    // The two forwarded requests are pending until answered.
    let mut ids = pending.drain();
    ids.sort();
    assert_eq!(ids, vec!["0", "1"]);
}

#[tokio::test]
async fn oversized_lines_are_dropped_and_answered() {
    let mut input = b"{\"jsonrpc\":\"2.0\",\"id\":77,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\",\"arguments\":{\"m\":\"".to_vec();
    input.extend(std::iter::repeat_n(b'a', super::lines::MAX_LINE + 10));
    input.extend_from_slice(
        b"\"}}}\n{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n",
    );
    let (forwarded, answered) = pump(&input, Arc::new(Pending::default())).await;
    assert_eq!(
        forwarded,
        "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n"
    );
    assert_eq!(
        answered,
        "{\"jsonrpc\":\"2.0\",\"id\":77,\"error\":{\"code\":-32600,\"message\":\"Invalid Request: the message is \
         longer than Kvlar's limit of 64 MiB; it was not forwarded\"}}\n"
    );
}

#[tokio::test]
async fn server_to_client_forwards_json_and_clears_pending() {
    let pending = Arc::new(Pending::default());
    pending.insert("1");
    pending.insert("\"s\"");
    let input = concat!(
        "Server starting on stdio\n",
        "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\"}\n",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n",
        "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"roots/list\"}"
    );
    let (out, mut rx) = mpsc::channel(16);
    session::server_to_client(input.as_bytes(), out, pending.clone())
        .await
        .unwrap();
    let mut got = String::new();
    while let Ok(line) = rx.try_recv() {
        got.push_str(std::str::from_utf8(&line).unwrap());
    }
    assert_eq!(
        got,
        concat!(
            "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\"}\n",
            "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n",
            "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"roots/list\"}\n"
        )
    );
    // What is left gets an error when the server goes away.
    let (out, mut rx) = mpsc::channel(16);
    session::answer_pending(&pending, &out, "exit status 1").await;
    assert_eq!(
        String::from_utf8(rx.try_recv().unwrap()).unwrap(),
        "{\"jsonrpc\":\"2.0\",\"id\":\"s\",\"error\":{\"code\":-32000,\"message\":\"Kvlar: the upstream MCP server \
         exited (exit status 1) before answering this request\"}}\n"
    );
    assert!(rx.try_recv().is_err());
}

/// Lines read in one burst go to the writer together; a line bigger than a
/// batch goes whole; nothing is reordered or lost.
#[tokio::test]
async fn server_lines_are_batched_in_order() {
    let big = format!("{{\"id\":2,\"result\":\"{}\"}}\n", "x".repeat(100 * 1024));
    let mut input = String::new();
    input.push_str("{\"id\":1,\"result\":{}}\n");
    input.push_str(&big);
    for i in 3..2000 {
        input.push_str(&format!("{{\"id\":{i},\"result\":{{}}}}\n"));
        if i % 500 == 0 {
            input.push_str("not json\n");
        }
    }
    input.push_str("{\"id\":2000,\"result\":{}}");
    let pending = Arc::new(Pending::default());
    for i in 1..=2000 {
        pending.insert(&i.to_string());
    }
    pending.insert("2001");
    let (out, mut rx) = mpsc::channel(1024);
    session::server_to_client(input.as_bytes(), out, pending.clone())
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut messages = 0;
    while let Ok(chunk) = rx.try_recv() {
        assert!(chunk.ends_with(b"\n"));
        got.extend_from_slice(&chunk);
        messages += 1;
    }
    let expected = input.replace("not json\n", "") + "\n";
    assert_eq!(String::from_utf8(got).unwrap(), expected);
    assert!(messages < 20, "{messages} messages for 2000 lines");
    assert_eq!(pending.drain(), vec!["2001"]);
}

#[tokio::test]
async fn writer_keeps_lines_whole_and_in_order() {
    let (out, rx) = mpsc::channel(4);
    let (mut client_read, client_write) = tokio::io::duplex(64);
    let writer = tokio::spawn(session::writer(rx, client_write));
    let send = tokio::spawn(async move {
        for i in 0..100 {
            out.send(format!("{{\"n\":{i}}}\n").into_bytes())
                .await
                .unwrap();
        }
    });
    let mut got = String::new();
    client_read.read_to_string(&mut got).await.unwrap();
    send.await.unwrap();
    writer.await.unwrap();
    let expected: String = (0..100).map(|i| format!("{{\"n\":{i}}}\n")).collect();
    assert_eq!(got, expected);
}

#[tokio::test]
async fn a_dead_upstream_answers_requests_with_errors() {
    let (upstream_read, upstream_write) = tokio::io::duplex(64);
    drop(upstream_read);
    let (out, mut rx) = mpsc::channel(16);
    let pending = Arc::new(Pending::default());
    let input = b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}\n{\"jsonrpc\":\"2.0\",\"method\":\"n\"}\n";
    session::client_to_server(&input[..], upstream_write, out, context(pending.clone()))
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8(rx.try_recv().unwrap()).unwrap(),
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":-32000,\"message\":\"Kvlar: the upstream MCP server is \
         not accepting input; the request was not delivered\"}}\n"
    );
    assert!(rx.try_recv().is_err());
    assert!(pending.drain().is_empty());
    let _ = tokio::io::sink().write_all(b"").await;
}

#[tokio::test]
async fn a_dead_upstream_answers_every_buffered_request() {
    let (upstream_read, upstream_write) = tokio::io::duplex(64);
    drop(upstream_read);
    let (out, mut rx) = mpsc::channel(16);
    let pending = Arc::new(Pending::default());
    let input = concat!(
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}\n",
        "{\"jsonrpc\":\"2.0\",\"id\":\"a\\\"b\",\"method\":\"ping\"}\n",
        "{\"jsonrpc\":\"2.0\",\"method\":\"n\"}\n",
        "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\"}}\n",
        "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"ping\"}\n",
    );
    session::client_to_server(
        input.as_bytes(),
        upstream_write,
        out,
        context(pending.clone()),
    )
    .await
    .unwrap();
    let mut ids = Vec::new();
    while let Ok(line) = rx.try_recv() {
        let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["error"]["code"], -32000);
        ids.push(v["id"].clone());
    }
    assert_eq!(
        ids,
        vec![
            serde_json::json!(1),
            serde_json::json!("a\"b"),
            serde_json::json!(3),
            serde_json::json!(4)
        ]
    );
    assert!(pending.drain().is_empty());
}

#[tokio::test]
async fn cancelled_requests_are_no_longer_pending() {
    let pending = Arc::new(Pending::default());
    let input = concat!(
        "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"tools/call\",\"params\":{\"name\":\"slow\"}}\n",
        "{\"jsonrpc\":\"2.0\",\"id\":\"k\",\"method\":\"resources/read\",\"params\":{}}\n",
        "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{\"requestId\":9,\"reason\":\"x\"}}\n",
    );
    let (forwarded, answered) = pump(input.as_bytes(), pending.clone()).await;
    assert_eq!(forwarded, input);
    assert_eq!(answered, "");
    assert_eq!(pending.drain(), vec!["\"k\""]);
}

mod properties {
    use super::*;
    use proptest::prelude::*;
    use serde_json::Value;

    fn fold(s: &str) -> String {
        s.chars()
            .filter(|c| !c.is_whitespace() && !c.is_control() && *c != '\u{200b}')
            .flat_map(char::to_lowercase)
            .collect()
    }

    /// Objects assembled from keys and values that look like a tools/call.
    fn message() -> impl Strategy<Value = String> {
        let key = prop::sample::select(vec![
            "method", "Method", " method", "id", "ID", "params", "Params", "jsonrpc", "result",
        ]);
        let value = prop::sample::select(vec![
            "\"tools/call\"",
            "\"Tools/Call\"",
            "\"tools/call \"",
            "\"tools\\/call\"",
            "\"tools/\\u200bcall\"",
            "\"ping\"",
            "1",
            "\"x\"",
            "null",
            "{\"name\":\"echo\",\"arguments\":{\"a\":1}}",
            "{\"name\":\"echo\",\"name\":\"get-env\"}",
            "{\"name\":7}",
            "[]",
        ]);
        prop::collection::vec((key, value), 0..6).prop_map(|members| {
            let body: Vec<String> = members
                .iter()
                .map(|(k, v)| format!("{}:{v}", serde_json::to_string(k).unwrap()))
                .collect();
            format!("{{{}}}", body.join(","))
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn any_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = client_line(&bytes);
            let _ = server_line(&bytes);
            let _ = scan_id(&bytes);
        }

        #[test]
        fn nothing_that_a_peer_could_read_as_tools_call_is_forwarded(line in message()) {
            if let ClientLine::Forward { .. } = client_line(line.as_bytes()) {
                // Read it the way a lenient peer might: every member, any case.
                let mut de = serde_json::Deserializer::from_str(&line);
                let members: Vec<(String, Value)> = {
                    use serde::de::Deserializer as _;
                    struct V;
                    impl<'de> serde::de::Visitor<'de> for V {
                        type Value = Vec<(String, Value)>;
                        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                            f.write_str("object")
                        }
                        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
                            let mut out = Vec::new();
                            while let Some(kv) = m.next_entry()? {
                                out.push(kv);
                            }
                            Ok(out)
                        }
                    }
                    (&mut de).deserialize_map(V).unwrap()
                };
                for (k, v) in &members {
                    if fold(k) == "method" {
                        prop_assert_ne!(v.as_str().map(fold), Some("tools/call".to_owned()), "{}", line);
                    }
                }
            }
        }

        #[test]
        fn evaluated_calls_are_unambiguous(line in message()) {
            if let ClientLine::Evaluate(call) = client_line(line.as_bytes()) {
                let v: Value = serde_json::from_str(&line).unwrap();
                prop_assert_eq!(&v["method"], "tools/call");
                prop_assert_eq!(v["params"]["name"].as_str(), Some(&*call.name));
                let params_keys = line.matches("\"params\"").count() + line.matches("\"Params\"").count();
                prop_assert_eq!(params_keys, 1);
            }
        }
    }
}

/// `params` is read in one pass that builds only `arguments`: the members it
/// only checks (`_meta`, a `name` that is not a string, a `params` that is
/// not an object) are held to the same rules as the ones it builds.
#[test]
fn params_members_that_are_not_built_are_still_checked() {
    let dup = "params contain duplicate keys (keys may not repeat, nor differ only by case)";
    let line = |params: &str| format!(r#"{{"id":7,"method":"tools/call","params":{params}}}"#);
    for (params, why) in [
        (r#"{"name":"x","_meta":{"a":1,"A":2}}"#, dup),
        (r#"{"name":"x","_meta":[{"k":1},{"k":1,"k":2}]}"#, dup),
        (
            r#"{"_meta":{"progressToken":{"t":1,"t":2}},"name":"x"}"#,
            dup,
        ),
        (r#"{"name":{"a":1,"a":2}}"#, dup),
        (r#"{"name":[{"a":1,"a":2}]}"#, dup),
        (
            r#"{"name":{"a":1}}"#,
            "params.name is missing or not a string",
        ),
        (
            r#"{"name":["x"]}"#,
            "params.name is missing or not a string",
        ),
        (r#"[{"a":1,"a":2}]"#, dup),
        (r#"[{"name":"x"}]"#, "params is not an object"),
        (
            r#"{"name":"x","_meta":{"n":1e400}}"#,
            "params could not be read",
        ),
        (r#"{"name":1e400}"#, "params could not be read"),
        (r#"{"_meta":{},"NAME":"x","name":"y"}"#, dup),
    ] {
        assert_eq!(reply(&line(params)), invalid("7", why), "{params}");
    }
    // What is only checked is not kept: the call is evaluated with its name
    // (escapes decoded) and arguments, whatever else `params` holds.
    let ok = line(
        r#"{"_meta":{"a":[1,{"b":null}],"B":true},"name":"r\u0065ad","arguments":{"p":[1,2]}}"#,
    );
    match client_line(ok.as_bytes()) {
        ClientLine::Evaluate(c) => {
            assert_eq!(c.id.get(), "7");
            assert_eq!(c.name, "read");
            assert_eq!(c.args, serde_json::json!({"p": [1, 2]}));
        }
        other => panic!("{other:?}"),
    }
}

/// Plain integer ids are kept without their text; every other id keeps it,
/// and both come back as they were written when the server goes away.
#[test]
fn pending_ids_come_back_as_written() {
    let pending = Pending::default();
    // 2^53 + 1 has no double of its own: its text must be kept.
    for raw in [
        "0",
        "7",
        "123456789012345",
        "9007199254740993",
        "\"a\"",
        "1.5",
        "-3",
        "7",
    ] {
        pending.insert(raw);
    }
    pending.remove("1.5");
    let mut ids = pending.drain();
    ids.sort();
    assert_eq!(
        ids,
        [
            "\"a\"",
            "-3",
            "0",
            "123456789012345",
            "7",
            "7",
            "9007199254740993"
        ]
    );
    assert!(pending.drain().is_empty());
}
