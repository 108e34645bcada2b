//! Classifying lines: what the proxy does with each message.
//!
//! Client → server lines are forwarded byte for byte, evaluated (`tools/call`),
//! answered by the proxy itself (fail closed) or dropped. Server → client lines
//! are forwarded when they are JSON and dropped otherwise.
//!
//! Parsing is lazy: only the top-level members of an object are split out (as
//! raw JSON text, which serde_json validates while skipping), and only a
//! `tools/call`'s `params` are built into values — with a visitor that notices
//! duplicate keys, because the server's parser might read a different value
//! than ours.

use std::borrow::Cow;
use std::cell::Cell;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use smallvec::SmallVec;

/// JSON-RPC parse error.
pub const PARSE_ERROR: i64 = -32700;
/// JSON-RPC invalid request.
pub const INVALID_REQUEST: i64 = -32600;
/// Implementation-defined server error, used when the upstream server went away.
pub const UPSTREAM_GONE: i64 = -32000;

/// The one method the proxy evaluates.
pub const TOOLS_CALL: &str = "tools/call";

/// What to do with one line from the client.
#[derive(Debug)]
pub enum ClientLine<'a> {
    /// Forward the original bytes unchanged. `request_id` is set for a
    /// request (it has a method and an id) so its answer can be tracked;
    /// `cancels` for a `notifications/cancelled` (the request it gives up on).
    Forward {
        request_id: Option<&'a RawValue>,
        cancels: Option<&'a RawValue>,
    },
    /// A well-formed `tools/call` request: evaluate it.
    Evaluate(ToolCall<'a>),
    /// Do not forward; answer the client with this line (ends with `\n`).
    Reply(Vec<u8>),
    /// A `tools/call` attempt refused without evaluation (malformed, ambiguous,
    /// a notification, in a batch): never forwarded; answered with `reply`
    /// when there is an id to answer. Audited.
    Refuse {
        reply: Option<Vec<u8>>,
        /// The request id, raw JSON text, when there is one.
        id: Option<String>,
        why: Cow<'static, str>,
    },
    /// Do not forward and do not answer (a blank line).
    Drop,
}

/// A `tools/call` request that passed the structural checks.
#[derive(Debug)]
pub struct ToolCall<'a> {
    /// The request id as it was written (a number or a string).
    pub id: &'a RawValue,
    /// `params.name` (borrowed from the line unless it has escapes).
    pub name: Cow<'a, str>,
    /// `params.arguments` (`{}` when absent); always an object.
    pub args: Value,
}

/// What to do with one line from the server.
#[derive(Debug, PartialEq, Eq)]
pub enum ServerLine<'a> {
    /// Valid JSON: forward it. `response_id` is set for a response (an id and
    /// no method) so the pending request can be forgotten.
    Forward { response_id: Option<&'a str> },
    /// Not JSON: drop it (and log it).
    Invalid(String),
}

/// Classifies one client line (without its line terminator).
pub fn client_line(line: &[u8]) -> ClientLine<'_> {
    let text = match std::str::from_utf8(line) {
        Ok(t) => t,
        Err(_) => {
            return ClientLine::Reply(error_line(
                "null",
                PARSE_ERROR,
                "Parse error: the line is not valid UTF-8; Kvlar did not forward it",
            ))
        }
    };
    let trimmed = text.trim_matches(|c| matches!(c, ' ' | '\t' | '\r' | '\n'));
    if trimmed.is_empty() {
        return ClientLine::Drop;
    }
    let decided = classify_text(trimmed);
    if trimmed.contains('\r') {
        return carriage_return(decided);
    }
    decided
}

fn classify_text(trimmed: &str) -> ClientLine<'_> {
    match trimmed.as_bytes()[0] {
        b'{' => {
            let mut list = MemberList::new();
            // A `tools/call`'s params are read in the same pass when its
            // method comes first (see `MembersSeed`); any error, and the
            // line is read again the plain way, whose outcome decides.
            let mut params = None;
            if members(trimmed, &mut list, Some(&mut params)).is_ok() {
                return object(&list, params);
            }
            list.clear();
            match members(trimmed, &mut list, None) {
                Ok(()) => object(&list, None),
                Err(e) => parse_error(&e),
            }
        }
        b'[' => match serde_json::from_str::<Vec<&RawValue>>(trimmed) {
            Ok(items) => batch(&items),
            Err(e) => parse_error(&e),
        },
        _ => match serde_json::from_str::<IgnoredAny>(trimmed) {
            // A JSON scalar is no JSON-RPC message, but it cannot be a tools/call either.
            Ok(_) => ClientLine::Forward {
                request_id: None,
                cancels: None,
            },
            Err(e) => parse_error(&e),
        },
    }
}

/// Classifies one server line (without its line terminator).
pub fn server_line(line: &[u8]) -> ServerLine<'_> {
    let text = match std::str::from_utf8(line) {
        Ok(t) => t,
        Err(_) => return ServerLine::Invalid("not valid UTF-8".into()),
    };
    let trimmed = text.trim_matches(|c| matches!(c, ' ' | '\t' | '\r' | '\n'));
    if trimmed.starts_with('{') {
        match serde_json::from_str::<Envelope>(trimmed) {
            Ok(m) => ServerLine::Forward {
                response_id: if m.has_method {
                    None
                } else {
                    m.id.map(RawValue::get)
                },
            },
            Err(e) => ServerLine::Invalid(e.to_string()),
        }
    } else {
        match serde_json::from_str::<IgnoredAny>(trimmed) {
            Ok(_) => ServerLine::Forward { response_id: None },
            Err(e) => ServerLine::Invalid(e.to_string()),
        }
    }
}

/// A carriage return inside a line is JSON whitespace to us, but a line break
/// to peers that read with universal newlines (the Python SDK's stdio server,
/// Java's `readLine`, Node's `readline`): they would read the pieces between
/// the breaks as messages of their own, one of which can be a `tools/call`
/// nested in what we saw as, say, a notification's params. Such a line is
/// never forwarded (nor evaluated); a request is answered with its id.
fn carriage_return(decided: ClientLine<'_>) -> ClientLine<'_> {
    let id = match &decided {
        // Garbage, or already refused: nothing reaches the server either way.
        ClientLine::Reply(_) | ClientLine::Refuse { .. } | ClientLine::Drop => return decided,
        ClientLine::Forward { request_id, .. } => request_id.map(RawValue::get),
        ClientLine::Evaluate(call) => Some(call.id.get()),
    };
    let why = "the line contains a carriage return (\\r) between its tokens, which some MCP servers read as a line break";
    ClientLine::Refuse {
        reply: id.map(|id| {
            error_line(
                id,
                INVALID_REQUEST,
                &format!(
                    "Invalid Request: Kvlar refused this message: {why}; it was not forwarded"
                ),
            )
        }),
        id: id.map(str::to_owned),
        why: why.into(),
    }
}

fn parse_error(e: &serde_json::Error) -> ClientLine<'static> {
    ClientLine::Reply(error_line(
        "null",
        PARSE_ERROR,
        &format!("Parse error: the line is not valid JSON ({e}); Kvlar did not forward it"),
    ))
}

/// A JSON-RPC error response line (with `\n`). `id` is raw JSON text.
pub fn error_line(id: &str, code: i64, message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + id.len() + message.len());
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.extend_from_slice(id.as_bytes());
    out.extend_from_slice(b",\"error\":{\"code\":");
    out.extend_from_slice(code.to_string().as_bytes());
    out.extend_from_slice(b",\"message\":");
    write_json_str(&mut out, message);
    out.extend_from_slice(b"}}\n");
    out
}

/// Appends `s` as a JSON string literal.
pub fn write_json_str(out: &mut Vec<u8>, s: &str) {
    // Serializing a str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

// ---------------------------------------------------------------------------
// Objects

/// How one message looks once its top-level members are split out.
enum Shape<'a> {
    /// A `tools/call` attempt: exactly well-formed or not.
    ToolCall(Result<ToolCall<'a>, Rejection<'a>>),
    /// Any other request (a method and an id).
    Request(&'a RawValue),
    /// `notifications/cancelled` for this request id.
    Cancel(&'a RawValue),
    /// Notifications, responses, anything else.
    Other,
}

/// Why a `tools/call` attempt is refused, and the id to answer (`None`: a notification, no answer).
struct Rejection<'a> {
    id: Option<&'a str>,
    why: Cow<'static, str>,
}

/// `params`: a `tools/call`'s params already read (see `MembersSeed`).
fn object<'a>(members: &[Member<'a>], params: Option<Params<'a>>) -> ClientLine<'a> {
    match shape(members, params) {
        Shape::ToolCall(Ok(call)) => ClientLine::Evaluate(call),
        Shape::ToolCall(Err(Rejection { id, why })) => ClientLine::Refuse {
            reply: id.map(|id| error_line(id, INVALID_REQUEST, &invalid_message(&why))),
            id: id.map(str::to_owned),
            why,
        },
        Shape::Request(id) => ClientLine::Forward {
            request_id: Some(id),
            cancels: None,
        },
        Shape::Cancel(id) => ClientLine::Forward {
            request_id: None,
            cancels: Some(id),
        },
        Shape::Other => ClientLine::Forward {
            request_id: None,
            cancels: None,
        },
    }
}

fn invalid_message(why: &str) -> String {
    format!("Invalid Request: Kvlar refused this tools/call: {why}; it was not forwarded")
}

fn shape<'a>(members: &[Member<'a>], read: Option<Params<'a>>) -> Shape<'a> {
    // Each is there once in a well-formed message: no allocation for them.
    let mut methods: SmallVec<[_; 2]> = SmallVec::new();
    let mut ids: SmallVec<[_; 2]> = SmallVec::new();
    let mut params: SmallVec<[_; 2]> = SmallVec::new();
    for (k, v) in members {
        match &*fold(k) {
            "method" => methods.push((k, *v)),
            "id" => ids.push((k, *v)),
            "params" => params.push((k, *v)),
            _ => {}
        }
    }
    let attempt = methods.iter().any(|(_, v)| {
        serde_json::from_str::<Cow<'_, str>>(v.get()).is_ok_and(|m| fold(&m) == TOOLS_CALL)
    });
    if !attempt {
        return match (methods.as_slice(), ids.as_slice()) {
            ([(mk, _)], [(ik, id)]) if *mk == "method" && *ik == "id" && valid_id(id) => {
                Shape::Request(id)
            }
            ([(mk, m)], []) if *mk == "method" && m.get() == "\"notifications/cancelled\"" => {
                cancelled_id(&params).map_or(Shape::Other, Shape::Cancel)
            }
            _ => Shape::Other,
        };
    }
    Shape::ToolCall(tool_call(members, &methods, &ids, &params, read))
}

fn tool_call<'a>(
    members: &[(Cow<'a, str>, &'a RawValue)],
    methods: &[(&Cow<'a, str>, &'a RawValue)],
    ids: &[(&Cow<'a, str>, &'a RawValue)],
    params: &[(&Cow<'a, str>, &'a RawValue)],
    read: Option<Params<'a>>,
) -> Result<ToolCall<'a>, Rejection<'a>> {
    let id = match ids {
        [] => {
            return Err(Rejection {
                id: None,
                why: "a tools/call notification (no id)".into(),
            })
        }
        // MCP: "the ID MUST NOT be null" (JSON-RPC discourages it too); a
        // null id is neither a request we can answer by id nor a notification.
        [(k, v)] if *k == "id" && v.get() == "null" => {
            return Err(Rejection {
                id: Some("null"),
                why: "its id is null (MCP request ids are strings or integers)".into(),
            })
        }
        [(k, v)] if *k == "id" && valid_id(v) => *v,
        _ => {
            return Err(Rejection {
                id: Some("null"),
                why: "the id is missing, duplicated or not a number or string".into(),
            })
        }
    };
    let reject = |why: &'static str| Rejection {
        id: Some(id.get()),
        why: why.into(),
    };
    match methods {
        [(k, v)] if *k == "method" && v.get() == "\"tools/call\"" => {}
        [(k, v)]
            if *k == "method"
                && serde_json::from_str::<Cow<'_, str>>(v.get()).is_ok_and(|m| m == TOOLS_CALL) => {}
        _ => {
            return Err(reject(
                "the method differs from `tools/call` only by case, whitespace or invisible characters, or is given more than once",
            ))
        }
    }
    let mut seen = FoldedKeys::default();
    if !members.iter().all(|(k, _)| seen.insert(key_fold_str(k))) {
        return Err(reject("the message has duplicate keys"));
    }
    let raw_params = match params {
        [(k, v)] if *k == "params" => *v,
        [] => return Err(reject("params are missing")),
        _ => return Err(reject("params are given more than once")),
    };
    let params = match read {
        // Read with the members: `raw_params` is a placeholder then.
        Some(p) => p,
        None => match read_params(raw_params.get()) {
            Ok(p) => p,
            // Already validated as JSON; this only fails on numbers out of range and the like.
            Err(_) => return Err(reject("params could not be read")),
        },
    };
    if params.duplicate {
        return Err(reject(
            "params contain duplicate keys (keys may not repeat, nor differ only by case)",
        ));
    }
    if !params.object {
        return Err(reject("params is not an object"));
    }
    // A peer that matches keys case-insensitively (Go's encoding/json) would
    // read `Arguments` as the arguments we did not see.
    if params.lenient_key {
        return Err(reject(
            "params has a key that differs from `name` or `arguments` only by case, whitespace or invisible characters",
        ));
    }
    let name = match params.name {
        Some(Some(name)) => name,
        _ => return Err(reject("params.name is missing or not a string")),
    };
    let args = match params.arguments {
        None => Value::Object(Map::new()),
        Some(args @ Value::Object(_)) => args,
        Some(_) => return Err(reject("params.arguments is not an object")),
    };
    Ok(ToolCall { id, name, args })
}

/// What a `tools/call`'s `params` hold, read in one pass.
#[derive(Default)]
struct Params<'a> {
    /// Some object anywhere in `params` repeats a key (or two of its keys
    /// differ only by case).
    duplicate: bool,
    /// `params` is an object (the other fields are empty otherwise).
    object: bool,
    /// A key that folds to `name` or `arguments` without being it.
    lenient_key: bool,
    /// `name`: `Some(None)` when it is there but not a string.
    name: Option<Option<Cow<'a, str>>>,
    arguments: Option<Value>,
}

/// Reads `params`. Of an object, `arguments` is built into a [`Value`] (the
/// VM reads it), `name` is borrowed, and every other member is only checked
/// (parsed as strictly, duplicate keys noted, nothing built). Anything else
/// is refused, but its duplicate keys are reported first, as for an object.
fn read_params(text: &str) -> Result<Params<'_>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    let params = ParamsAny.deserialize(&mut de)?;
    de.end()?;
    Ok(params)
}

struct ParamsSeed<'c> {
    dup: &'c Cell<bool>,
}

/// `params` of any type (see [`read_params`]): an object read with
/// [`ParamsSeed`], anything else only checked; duplicate keys anywhere in
/// it are noted in `duplicate`.
struct ParamsAny;

impl<'de> DeserializeSeed<'de> for ParamsAny {
    type Value = Params<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Params<'de>, D::Error> {
        let dup = Cell::new(false);
        let mut params = d.deserialize_any(AnyParams { dup: &dup })?;
        params.duplicate |= dup.get();
        Ok(params)
    }
}

struct AnyParams<'c> {
    dup: &'c Cell<bool>,
}

impl<'de> Visitor<'de> for AnyParams<'_> {
    type Value = Params<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Params<'de>, A::Error> {
        ParamsSeed { dup: self.dup }.visit_map(map)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Params<'de>, A::Error> {
        Check { dup: self.dup }.visit_seq(seq)?;
        Ok(Params::default())
    }
    fn visit_bool<E>(self, _: bool) -> Result<Params<'de>, E> {
        Ok(Params::default())
    }
    fn visit_i64<E>(self, _: i64) -> Result<Params<'de>, E> {
        Ok(Params::default())
    }
    fn visit_u64<E>(self, _: u64) -> Result<Params<'de>, E> {
        Ok(Params::default())
    }
    fn visit_f64<E>(self, _: f64) -> Result<Params<'de>, E> {
        Ok(Params::default())
    }
    fn visit_str<E>(self, _: &str) -> Result<Params<'de>, E> {
        Ok(Params::default())
    }
    fn visit_unit<E>(self) -> Result<Params<'de>, E> {
        Ok(Params::default())
    }
    fn visit_none<E>(self) -> Result<Params<'de>, E> {
        Ok(Params::default())
    }
}

impl<'de> DeserializeSeed<'de> for ParamsSeed<'_> {
    type Value = Params<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Params<'de>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ParamsSeed<'_> {
    type Value = Params<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Params<'de>, A::Error> {
        let mut out = Params {
            object: true,
            ..Params::default()
        };
        let mut folded = FoldedKeys::default();
        while let Some(Key(k)) = map.next_key()? {
            match &*k {
                "name" => out.name = Some(map.next_value_seed(NameSeed { dup: self.dup })?),
                "arguments" => {
                    out.arguments = Some(map.next_value_seed(Strict { dup: self.dup })?);
                }
                other => {
                    out.lenient_key |= matches!(&*fold(other), "name" | "arguments");
                    map.next_value_seed(Check { dup: self.dup })?;
                }
            }
            if !folded.insert(key_fold_cow(&k)) {
                out.duplicate = true;
            }
        }
        Ok(out)
    }
}

/// `params.name`: the string (borrowed unless escaped), or `None` for any
/// other value (checked like the rest).
struct NameSeed<'c> {
    dup: &'c Cell<bool>,
}

impl<'de> DeserializeSeed<'de> for NameSeed<'_> {
    type Value = Option<Cow<'de, str>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NameSeed<'_> {
    type Value = Option<Cow<'de, str>>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Some(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Some(Cow::Owned(v)))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        (Check { dup: self.dup }).visit_seq(seq).map(|()| None)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        (Check { dup: self.dup }).visit_map(map).map(|()| None)
    }
}

/// `params.requestId` of a `notifications/cancelled`.
fn cancelled_id<'a>(params: &[(&Cow<'a, str>, &'a RawValue)]) -> Option<&'a RawValue> {
    let [(k, raw)] = params else { return None };
    if *k != "params" {
        return None;
    }
    let mut list = MemberList::new();
    members(raw.get(), &mut list, None).ok()?;
    list.iter()
        .find(|(k, _)| k == "requestId")
        .map(|&(_, v)| v)
        .filter(|v| valid_id(v))
}

/// A JSON-RPC id we can echo: a number, a string or null.
fn valid_id(v: &RawValue) -> bool {
    matches!(
        v.get().as_bytes().first(),
        Some(b'"' | b'-' | b'0'..=b'9' | b'n')
    )
}

/// Case-folds and strips whitespace, control and invisible characters: two
/// names that fold the same could be read as one by a lenient peer.
fn fold(s: &str) -> Cow<'_, str> {
    // Printable ASCII without capitals folds to itself (the common case).
    if s.bytes()
        .all(|b| matches!(b, 0x21..=0x7e) && !b.is_ascii_uppercase())
    {
        return Cow::Borrowed(s);
    }
    Cow::Owned(key_fold(s.chars().filter(|&c| {
        !(c.is_whitespace()
            || c.is_control()
            || matches!(c, '\u{00AD}' | '\u{200B}'..='\u{200F}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}'))
    })))
}

/// [`key_fold`] of a string, without allocating when that is the string itself.
fn key_fold_str(s: &str) -> Cow<'_, str> {
    if s.bytes().all(|b| b.is_ascii() && !b.is_ascii_uppercase()) {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(key_fold(s.chars()))
    }
}

/// [`key_fold_str`] of a key that may own its text (borrowing from the
/// input, not from the key, when it can).
fn key_fold_cow<'a>(k: &Cow<'a, str>) -> Cow<'a, str> {
    match k {
        Cow::Borrowed(b) => key_fold_str(b),
        Cow::Owned(o) => Cow::Owned(key_fold_str(o).into_owned()),
    }
}

/// Case-folds an object key as a case-insensitive peer compares keys: Unicode
/// lower case, plus the long s (`ſ`), which Go's `EqualFold` takes for `s`
/// (the Kelvin sign already lower-cases to `k`).
fn key_fold(chars: impl IntoIterator<Item = char>) -> String {
    chars
        .into_iter()
        .flat_map(char::to_lowercase)
        .map(|c| if c == '\u{017F}' { 's' } else { c })
        .collect()
}

// ---------------------------------------------------------------------------
// Batches

fn batch(items: &[&RawValue]) -> ClientLine<'static> {
    let mut has_tool_call = false;
    let mut ids = Vec::new();
    scan_batch(items, &mut has_tool_call, &mut ids);
    if !has_tool_call {
        return ClientLine::Forward {
            request_id: None,
            cancels: None,
        };
    }
    let why = Cow::Borrowed("a JSON-RPC batch contained a tools/call");
    if ids.is_empty() {
        return ClientLine::Refuse {
            reply: None,
            id: None,
            why,
        };
    }
    let mut out = Vec::new();
    out.push(b'[');
    for (i, (id, is_call)) in ids.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let message = if *is_call {
            "a JSON-RPC batch may not contain tools/call"
        } else {
            "it was part of a JSON-RPC batch that contains a tools/call"
        };
        let mut line = error_line(
            id,
            INVALID_REQUEST,
            &format!(
                "Invalid Request: Kvlar refused this request: {message}; the batch was not forwarded"
            ),
        );
        line.pop();
        out.extend_from_slice(&line);
    }
    out.extend_from_slice(b"]\n");
    ClientLine::Refuse {
        reply: Some(out),
        id: None,
        why,
    }
}

/// Collects, over a batch and any nested arrays, whether a tools/call attempt
/// is in it and the ids of the requests to answer (with whether each is a tools/call).
fn scan_batch(items: &[&RawValue], has_tool_call: &mut bool, ids: &mut Vec<(String, bool)>) {
    for item in items {
        let text = item.get();
        if text.starts_with('{') {
            let mut list = MemberList::new();
            if members(text, &mut list, None).is_err() {
                continue;
            }
            match shape(&list, None) {
                Shape::ToolCall(r) => {
                    *has_tool_call = true;
                    match r {
                        Ok(call) => ids.push((call.id.get().to_owned(), true)),
                        Err(Rejection { id: Some(id), .. }) => ids.push((id.to_owned(), true)),
                        Err(Rejection { id: None, .. }) => {}
                    }
                }
                Shape::Request(id) => ids.push((id.get().to_owned(), false)),
                Shape::Cancel(_) | Shape::Other => {}
            }
        } else if text.starts_with('[') {
            if let Ok(inner) = serde_json::from_str::<Vec<&RawValue>>(text) {
                scan_batch(&inner, has_tool_call, ids);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Lines too long to read

/// Finds the raw text of the top-level `"id"` member in the first part of a
/// JSON object that was cut short, if that member is complete there. Used to
/// answer a request whose line exceeded the length limit.
pub fn scan_id(prefix: &[u8]) -> Option<&str> {
    let mut p = Scanner { s: prefix, i: 0 };
    p.ws();
    p.eat(b'{')?;
    loop {
        p.ws();
        let key_start = p.i;
        p.string()?;
        let key = serde_json::from_slice::<String>(&prefix[key_start..p.i]).ok()?;
        p.ws();
        p.eat(b':')?;
        p.ws();
        let value_start = p.i;
        p.value(0)?;
        if key == "id" {
            let raw = std::str::from_utf8(&prefix[value_start..p.i]).ok()?;
            // Only echo an id that is complete: a following delimiter must be in the prefix.
            p.ws();
            if !matches!(p.peek(), Some(b',' | b'}')) {
                return None;
            }
            let v: Value = serde_json::from_str(raw).ok()?;
            return matches!(v, Value::Number(_) | Value::String(_) | Value::Null).then_some(raw);
        }
        p.ws();
        match p.peek()? {
            b',' => p.i += 1,
            _ => return None,
        }
    }
}

struct Scanner<'a> {
    s: &'a [u8],
    i: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.i += 1;
        }
    }
    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }
    fn string(&mut self) -> Option<()> {
        self.eat(b'"')?;
        loop {
            match self.peek()? {
                b'\\' => self.i += 2,
                b'"' => {
                    self.i += 1;
                    return Some(());
                }
                _ => self.i += 1,
            }
        }
    }
    fn value(&mut self, depth: usize) -> Option<()> {
        if depth > 256 {
            return None;
        }
        match self.peek()? {
            b'"' => self.string(),
            open @ (b'{' | b'[') => {
                let close = if open == b'{' { b'}' } else { b']' };
                self.i += 1;
                loop {
                    self.ws();
                    match self.peek()? {
                        c if c == close => {
                            self.i += 1;
                            return Some(());
                        }
                        b',' | b':' => self.i += 1,
                        _ => self.value(depth + 1)?,
                    }
                }
            }
            _ => {
                let start = self.i;
                while matches!(self.peek(), Some(c) if !matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\r' | b'\n'))
                {
                    self.i += 1;
                }
                // The scalar must be followed by something in the prefix to be complete.
                (self.i > start && self.peek().is_some()).then_some(())
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Deserialization helpers

/// A top-level member of a JSON object: its key decoded, its value raw.
type Member<'a> = (Cow<'a, str>, &'a RawValue);

/// The top-level members of a JSON object, in order (a JSON-RPC message
/// has at most four: no allocation for them).
type MemberList<'a> = SmallVec<[Member<'a>; 4]>;

/// Splits `text`, one JSON object and nothing after it (JSON whitespace
/// aside), into its top-level members, appended to `out`; with `params`,
/// reads a `tools/call`'s params into it on the way (see `MembersSeed`).
///
/// The list is filled in place rather than returned: returned, the
/// 170-byte list was copied through each layer of the deserializer, which
/// was ~12% of classifying a `tools/call` line (BENCHMARKS.md, sixteenth
/// session).
fn members<'a>(
    text: &'a str,
    out: &mut MemberList<'a>,
    params: Option<&mut Option<Params<'a>>>,
) -> Result<(), serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    MembersSeed { out, params }.deserialize(&mut de)?;
    de.end()
}

/// Collects the members; with `params`, also reads the params of a
/// `tools/call` whose method member comes first (`"method":"tools/call"`
/// exactly, as clients write it): the first `params` member is then read
/// with [`ParamsAny`] in the same pass, as [`read_params`] would read its
/// text, and listed with a placeholder value. Read from the raw text
/// instead, the params were scanned twice: once to skip them, once to
/// read them.
struct MembersSeed<'o, 'a> {
    out: &'o mut MemberList<'a>,
    params: Option<&'o mut Option<Params<'a>>>,
}

impl<'de> DeserializeSeed<'de> for MembersSeed<'_, 'de> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for MembersSeed<'_, 'de> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let MembersSeed { out, mut params } = self;
        let (mut tools_call, mut seen_params) = (false, false);
        while let Some(Key(k)) = map.next_key()? {
            if k == "params" {
                if let (Some(slot), true, false) = (params.as_deref_mut(), tools_call, seen_params)
                {
                    *slot = Some(map.next_value_seed(ParamsAny)?);
                    out.push((k, RawValue::NULL));
                    seen_params = true;
                    continue;
                }
                seen_params = true;
            }
            let v: &'de RawValue = map.next_value()?;
            tools_call |= k == "method" && v.get() == "\"tools/call\"";
            out.push((k, v));
        }
        Ok(())
    }
}

/// What the proxy needs of a server message: its top-level `id` (the first,
/// raw) and whether it has a `method`. Every other value is validated and
/// skipped without being built or collected.
struct Envelope<'a> {
    id: Option<&'a RawValue>,
    has_method: bool,
}

impl<'de> Deserialize<'de> for Envelope<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Envelope<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Envelope {
                    id: None,
                    has_method: false,
                };
                while let Some(Key(k)) = map.next_key()? {
                    if k == "id" && out.id.is_none() {
                        out.id = Some(map.next_value::<&'de RawValue>()?);
                        continue;
                    }
                    if k == "method" {
                        out.has_method = true;
                    }
                    map.next_value::<IgnoredAny>()?;
                }
                Ok(out)
            }
        }
        d.deserialize_map(V)
    }
}

/// An object key, borrowed from the input unless it has escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// Builds a [`Value`] like serde_json does, and notes any object with a
/// repeated key, or two keys that differ only by case.
struct Strict<'c> {
    dup: &'c Cell<bool>,
}

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(Strict { dup: self.dup })? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        let mut folded = FoldedKeys::default();
        while let Some(Key(k)) = map.next_key()? {
            let v = map.next_value_seed(Strict { dup: self.dup })?;
            if !folded.insert(key_fold_cow(&k)) {
                self.dup.set(true);
            }
            out.insert(k.into_owned(), v);
        }
        Ok(Value::Object(out))
    }
}

/// Parses a value exactly as [`Strict`] does (same errors, same duplicate-key
/// check) without building it.
struct Check<'c> {
    dup: &'c Cell<bool>,
}

impl<'de> DeserializeSeed<'de> for Check<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Check<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Check { dup: self.dup })?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut folded = FoldedKeys::default();
        while let Some(Key(k)) = map.next_key()? {
            map.next_value_seed(Check { dup: self.dup })?;
            if !folded.insert(key_fold_cow(&k)) {
                self.dup.set(true);
            }
        }
        Ok(())
    }
}

/// A set of folded keys: a short list compared in turn (objects have few
/// keys; no hashing, and no allocation for up to 8 keys borrowed from the
/// input), spilling into a hash set when an object has many.
#[derive(Default)]
struct FoldedKeys<'a> {
    few: SmallVec<[Cow<'a, str>; 8]>,
    many: Option<HashSet<Cow<'a, str>>>,
}

impl<'a> FoldedKeys<'a> {
    const FEW: usize = 16;

    /// Adds a folded key; false if it was already there.
    fn insert(&mut self, key: Cow<'a, str>) -> bool {
        if let Some(many) = &mut self.many {
            return many.insert(key);
        }
        if self.few.contains(&key) {
            return false;
        }
        self.few.push(key);
        if self.few.len() > Self::FEW {
            self.many = Some(self.few.drain(..).collect());
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The params are read with the members only for a `tools/call` whose
    /// exact method member comes first, and only its first `params`.
    #[test]
    fn params_are_read_in_the_same_pass_only_after_the_method() {
        fn read(line: &str) -> Option<(Option<Option<String>>, Option<Value>)> {
            let (mut list, mut params) = (MemberList::new(), None);
            members(line, &mut list, Some(&mut params)).expect("valid JSON");
            params.map(|p| (p.name.map(|n| n.map(Cow::into_owned)), p.arguments))
        }
        let args = Some(serde_json::json!({"p": 1}));
        assert_eq!(
            read(r#"{"id":1,"method":"tools/call","params":{"name":"t","arguments":{"p":1}}}"#),
            Some((Some(Some("t".to_owned())), args))
        );
        for line in [
            r#"{"id":1,"params":{"name":"t"},"method":"tools/call"}"#,
            r#"{"id":1,"method":"tools/list","params":{"name":"t"}}"#,
            r#"{"id":1,"method":"Tools/Call","params":{"name":"t"}}"#,
            r#"{"id":1,"method":"tools\/call","params":{"name":"t"}}"#,
            r#"{"id":1,"params":{},"method":"tools/call","params":{"name":"t"}}"#,
        ] {
            assert_eq!(read(line), None, "{line}");
        }
    }

    /// Whether the params are read with the members or from their text
    /// afterwards, a line is classified the same: the same call, the same
    /// refusal with the same words, the same parse error (bad escapes and
    /// raw control characters included).
    #[test]
    fn reading_params_in_the_same_pass_changes_no_outcome() {
        let mut variants = 0;
        for params in [
            r#"{"name":"read","arguments":{"path":"/srv/a","n":[1,2.5,null,true]}}"#,
            r#"{"name":"r\u0065ad"}"#,
            r#"{"name":"x","arguments":{"a":1,"A":2}}"#,
            r#"{"name":"x","_meta":{"a":1,"A":2}}"#,
            r#"{"name":"x","_meta":[{"k":1},{"k":1,"k":2}]}"#,
            r#"{"name":{"a":1}}"#,
            r#"{"name":"x","name":"y"}"#,
            r#"{"name":"x","Arguments":{}}"#,
            r#"{"name":"x","arguments":[1]}"#,
            r#"[{"a":1,"a":2}]"#,
            r#"[{"name":"x"}]"#,
            r#""x""#,
            "null",
            r#"{"name":"x","_meta":{"n":1e400}}"#,
            r#"{"name":1e400}"#,
            r#"{"name":"x","arguments":{"big":1e400}}"#,
            r#"{"name":"x","arguments":{"a":"\ud800"}}"#,
            r#"{"name":"x","arguments":{"a":"\ud83d\ude00"}}"#,
            r#"{"name":"x","arguments":{"a":"\x"}}"#,
            "{\"name\":\"x\",\"arguments\":{\"a\":\"\u{1}\"}}",
        ] {
            let line = format!(r#"{{"id":7,"method":"tools/call","params":{params}}}"#);
            // The plain way: members as raw text, params read afterwards.
            let mut list = MemberList::new();
            let plain = match members(&line, &mut list, None) {
                Ok(()) => object(&list, None),
                Err(e) => parse_error(&e),
            };
            let got = client_line(line.as_bytes());
            assert_eq!(format!("{got:?}"), format!("{plain:?}"), "{params}");
            variants += 1;
        }
        assert_eq!(variants, 20);
        // A second `params` after the method: refused either way.
        let twice =
            br#"{"id":7,"method":"tools/call","params":{"name":"x"},"params":{"name":"y"}}"#;
        match client_line(twice) {
            ClientLine::Refuse { why, .. } => assert_eq!(why, "the message has duplicate keys"),
            other => panic!("{other:?}"),
        }
    }
}
