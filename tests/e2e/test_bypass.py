"""The bypass suite at the wire: calls a policy would deny, dressed up so the
proxy might forward them anyway. Each test asserts exactly what the server
received (the recorder logs every byte) and what the client was answered.

Covered elsewhere, not repeated here:
- invalid UTF-8 and garbage lines, answered while the session goes on:
  test_raw.py::test_garbage_and_invalid_utf8_get_parse_errors_and_the_session_goes_on
- a tools/call notification (never forwarded, never answered, so no reply
  with id null), plain duplicate argument keys, `Tools/Call`, `tools/call `,
  a missing name, string arguments:
  test_raw.py::test_malformed_and_sneaky_tools_calls_are_refused
- flat batches and a batch holding only a tools/call notification:
  test_raw.py::test_batches_containing_tools_call_are_never_forwarded
- a tools/call before (without) initialize, evaluated like any other:
  test_raw.py::test_stateless_revision_calls_are_evaluated_like_any_other
- a line over 64 MiB: test_raw.py::test_a_line_over_64_mib_is_refused_and_dropped
- Rust-level tricks (names, paths, URLs, nesting): tests/tests/bypass.rs
"""
import json
import subprocess
import sys
import time
from pathlib import Path

from conftest import E2E, KVLAR, POLICIES, RECORDER, Raw, proxy, wait_for

POLICY = POLICIES / "everything.yaml"  # denies get-env, default allow
PY_SERVER = [sys.executable, str(E2E / "py_server.py")]
INIT = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
    "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bypass", "version": "0"}}}


def recorder(raw, tmp_path, *flags, log=None):
    log = log or tmp_path / "received.jsonl"
    return raw(proxy(POLICY, RECORDER + [str(log)], *flags)), log


def received(log):
    return log.read_bytes().splitlines(keepends=True) if log.exists() else []


def refused(id, why):
    return ('{"jsonrpc":"2.0","id":%s,"error":{"code":-32600,"message":"Invalid Request: Kvlar refused this '
            'tools/call: %s; it was not forwarded"}}\n' % (id, why)).encode()


def assert_received(r, log, lines):
    """Sends a ping through the proxy (the session goes on), then checks that
    the server received exactly `lines` and the ping, byte for byte."""
    line = b'{"jsonrpc":"2.0","id":99,"method":"ping"}\n'
    r.send(line)
    assert r.response(99)["result"]["method"] == "ping"
    assert received(log) == list(lines) + [line]


def denial(line):
    msg = json.loads(line)
    assert msg["result"]["isError"] is True
    return msg["id"], msg["result"]["_meta"]["io.kvlar/decision"]["rule"]


# ---------------------------------------------------------------------------
# A carriage return: a line break for the Python SDK, whitespace for JSON.

SMUGGLED = (b'{"jsonrpc":"2.0","method":"notifications/progress","params":\r'
            b'{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"get-env","arguments":{}}}\r}\n')


def test_the_python_sdk_reads_a_carriage_return_as_a_line_break(tmp_path):
    """The premise of the next test: straight to the Python SDK server (no
    proxy), the "notification" runs get-env."""
    ran = tmp_path / "ran.txt"
    proc = subprocess.Popen(PY_SERVER + [str(ran)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    try:
        proc.stdin.write(json.dumps(INIT).encode() + b"\n")
        proc.stdin.flush()
        assert json.loads(proc.stdout.readline())["id"] == 0
        proc.stdin.write(b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n' + SMUGGLED)
        proc.stdin.flush()
        reply = json.loads(proc.stdout.readline())
        assert reply["id"] == 2
        assert reply["result"]["content"][0]["text"] == "SECRET=hunter2"
        assert ran.read_text() == "get-env\n"
    finally:
        proc.stdin.close()
        proc.wait(timeout=10)


def test_a_carriage_return_cannot_smuggle_a_call_past_the_proxy(raw, tmp_path):
    ran = tmp_path / "ran.txt"
    r = raw(proxy(POLICY, PY_SERVER + [str(ran)]))
    assert r.initialize()["result"]["serverInfo"]["name"] == "py-server"
    why = ("the line contains a carriage return (\\\\r) between its tokens, which some MCP servers read as a "
           "line break")
    # As a notification: not forwarded, not answered.
    r.send(SMUGGLED)
    assert r.quiet(0.5) == []
    # As a request, or as an allowed call whose params hide a denied one: refused with its id.
    r.send(b'{"jsonrpc":"2.0","id":3,"method":"tools/list","params":\r'
           b'{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"get-env"}}\r}\n')
    r.send(b'{"jsonrpc":"2.0","id":5,"method":"tools/call","params":\r{"jsonrpc":"2.0","id":6,'
           b'"method":"tools/call","params":{"name":"get-env"},"name":"echo","arguments":{"message":"x"}}\r}\n')
    for id in (3, 5):
        assert r.line() == ('{"jsonrpc":"2.0","id":%d,"error":{"code":-32600,"message":"Invalid Request: Kvlar '
                            'refused this message: %s; it was not forwarded"}}\n' % (id, why)).encode()
    # A CRLF line end is fine.
    r.send(b'{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"message":"crlf"}}}\r\n')
    assert r.response(7)["result"]["content"][0]["text"] == "Echo: crlf"
    r.send_json({"jsonrpc": "2.0", "id": 8, "method": "tools/call", "params": {"name": "get-env", "arguments": {}}})
    assert denial(r.line()) == (8, "deny-env")
    assert ran.read_text() == "echo crlf\n"


# ---------------------------------------------------------------------------
# Keys, escapes, types

def test_duplicate_keys_in_every_disguise_are_refused(raw, tmp_path):
    r, log = recorder(raw, tmp_path)
    dup = "params contain duplicate keys (keys may not repeat, nor differ only by case)"
    look_alike = ("params has a key that differs from `name` or `arguments` only by case, whitespace or "
                  "invisible characters")
    cases = [
        # An escape spells the same key.
        (b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":'
         b'{"message":"a","m\\u0065ssage":"b"}}}\n', refused(1, dup)),
        # Deep inside the arguments.
        (b'{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":'
         b'{"message":"a","o":[{"k":{"x":1,"x":2}}]}}}\n', refused(2, dup)),
        # The name, once plain and once escaped.
        (b'{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","n\\u0061me":"get-env"}}\n',
         refused(3, dup)),
        # Keys that a case-insensitive peer (Go's encoding/json, where \xc5\xbf is s) merges.
        (b'{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"echo","arguments":'
         b'{"mask":"a","ma\xc5\xbfk":"b"}}}\n', refused(4, dup)),
        (b'{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"echo","arguments":{"message":"a"},'
         b'"Arguments":{"message":"b"}}}\n', refused(5, dup)),
        (b'{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"echo","argument\xc5\xbf":'
         b'{"message":"b"}}}\n', refused(6, look_alike)),
        (b'{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"Name":"get-env"}}\n', refused(7, look_alike)),
        (b'{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"echo"},"param\xc5\xbf":'
         b'{"name":"get-env"}}\n', refused(8, "the message has duplicate keys")),
    ]
    for line, expected in cases:
        r.send(line)
        assert r.line() == expected, line
    assert_received(r, log, [])


def test_escaped_names_and_methods_are_decoded_before_the_decision(raw, tmp_path):
    r, log = recorder(raw, tmp_path)
    for id, line in [
        (1, b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get\\u002denv","arguments":{}}}\n'),
        (2, b'{"jsonrpc":"2.0","id":2,"method":"tools\\/call","params":{"name":"get-env"}}\n'),
        (3, b'{"jsonrpc":"2.0","id":3,"method":"tools\\u002fcall","params":{"name":"\\u0067\\u0065\\u0074-env"}}\n'),
        (4, b'{"jsonrpc":"2.0","i\\u0064":4,"m\\u0065thod":"tools/call","p\\u0061rams":{"name":"get-env"}}\n'),
    ]:
        r.send(line)
        assert denial(r.line()) == (id, "deny-env"), line
    # Arguments as a JSON document inside a string: not an object, refused.
    r.send(b'{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"echo","arguments":'
           b'"{\\"message\\":\\"x\\"}"}}\n')
    assert r.line() == refused(5, "params.arguments is not an object")
    # A JSON document inside an argument is just a string to the policy and
    # to the server: evaluated and forwarded as it is.
    inner = (b'{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"echo","arguments":'
             b'{"message":"{\\"jsonrpc\\":\\"2.0\\",\\"id\\":9,\\"method\\":\\"tools/call\\",\\"params\\":'
             b'{\\"name\\":\\"get-env\\"}}"}}}\n')
    r.send(inner)
    assert r.response(6)["result"] == {"method": "tools/call", "size": len(inner)}
    assert_received(r, log, [inner])


def test_name_and_arguments_of_the_wrong_type_are_refused(raw, tmp_path):
    r, log = recorder(raw, tmp_path)
    name = "params.name is missing or not a string"
    args = "params.arguments is not an object"
    cases = [
        ('{"name":null}', name), ('{"name":["get-env"]}', name), ('{"name":{"get-env":1}}', name),
        ('{"name":true}', name), ('{"name":7}', name), ('{"arguments":{"message":"x"}}', name),
        ('{"name":"echo","arguments":[]}', args), ('{"name":"echo","arguments":null}', args),
        ('{"name":"echo","arguments":1}', args), ('{"name":"echo","arguments":true}', args),
    ]
    for i, (params, why) in enumerate(cases):
        r.send(('{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":%s}\n' % (i, params)).encode())
        assert r.line() == refused(i, why), params
    # params itself missing, null or an array.
    for i, rest in [(20, ""), (21, ',"params":null'), (22, ',"params":["get-env"]')]:
        r.send(('{"jsonrpc":"2.0","id":%d,"method":"tools/call"%s}\n' % (i, rest)).encode())
        assert r.line() == refused(i, "params are missing" if i == 20 else "params is not an object")
    assert_received(r, log, [])


# ---------------------------------------------------------------------------
# Methods, batches, ids

def test_look_alike_methods_are_refused(raw, tmp_path):
    r, log = recorder(raw, tmp_path)
    why = ("the method differs from `tools/call` only by case, whitespace or invisible characters, "
           "or is given more than once")
    for i, members in enumerate([
        '"method":"tools/\\u200bcall"',
        '"method":"tools/call\\u0000"',
        '"method":"\\ttools/call"',
        '"method":"TOOLS/CALL"',
        '"METHOD":"tools/call"',
        '"method ":"tools/call"',
        '"method":"ping","Method":"tools/call"',
        '"method":"tools/call","method":"ping"',
        '"method":"ping","method":"tools/call"',
    ]):
        r.send(('{"jsonrpc":"2.0","id":%d,%s,"params":{"name":"get-env"}}\n' % (i, members)).encode())
        assert r.line() == refused(i, why), members
    # Look-alike notifications: dropped without a word (no reply with id null).
    r.send(b'{"jsonrpc":"2.0","method":"Tools/Call","params":{"name":"get-env"}}\n')
    r.send(b'{"jsonrpc":"2.0","method":"tools/call","params":{"name":"get-env"},"method":"ping"}\n')
    assert r.quiet(0.3) == []
    assert_received(r, log, [])


def test_nested_and_disguised_batches_are_never_forwarded(raw, tmp_path):
    r, log = recorder(raw, tmp_path)
    r.send(b'[[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get-env"}}]]\n')
    assert r.line() == (b'[{"jsonrpc":"2.0","id":1,"error":{"code":-32600,"message":"Invalid Request: Kvlar '
                        b'refused this request: a JSON-RPC batch may not contain tools/call; the batch was not '
                        b'forwarded"}}]\n')
    r.send(b'[{"jsonrpc":"2.0","id":"x","method":"Tools/Call","params":{"name":"get-env"}}]\n')
    assert json.loads(r.line()) == [{"jsonrpc": "2.0", "id": "x", "error": {"code": -32600, "message":
                                     "Invalid Request: Kvlar refused this request: a JSON-RPC batch may not "
                                     "contain tools/call; the batch was not forwarded"}}]
    # An allowed call in a batch is refused too: the batch is never split.
    r.send(b'[{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"message":"m"}}}]\n')
    assert json.loads(r.line())[0]["id"] == 2
    # Only notifications, nested: nothing forwarded, nothing answered.
    r.send(b'[[{"jsonrpc":"2.0","method":"tools/call","params":{"name":"get-env"}}],'
           b'{"jsonrpc":"2.0","method":"notifications/x"}]\n')
    assert r.quiet(0.3) == []
    assert_received(r, log, [])


def test_reused_ids_are_decided_call_by_call(raw, tmp_path):
    r, log = recorder(raw, tmp_path)
    allowed = b'{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"message":"a"}}}\n'
    denied = b'{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"get-env","arguments":{}}}\n'
    r.send(allowed)
    assert r.response(7)["result"]["method"] == "tools/call"
    r.send(denied)
    assert denial(r.line()) == (7, "deny-env")
    # The same id, spelt differently, and the same id in flight twice.
    r.send(b'{"jsonrpc":"2.0","id":7.0,"method":"tools/call","params":{"name":"get-env"}}\n')
    assert denial(r.line()) == (7, "deny-env")
    r.send(b'{"jsonrpc":"2.0","id":"7","method":"tools/call","params":{"name":"get-env"}}\n')
    assert denial(r.line()) == ("7", "deny-env")
    r.send(allowed + denied + allowed)
    got = [json.loads(r.line()) for _ in range(3)]
    assert sorted("isError" in m["result"] for m in got) == [False, False, True]
    # A null id is no valid MCP request (nor a notification): refused with
    # -32600 and id null, not decided, not forwarded, even for an allowed tool.
    for name in (b"get-env", b"echo"):
        r.send(b'{"jsonrpc":"2.0","id":null,"method":"tools/call","params":{"name":"' + name + b'"}}\n')
        assert r.line() == (
            b'{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Invalid Request: Kvlar refused '
            b'this tools/call: its id is null (MCP request ids are strings or integers); it was not forwarded"}}\n'
        )
    assert_received(r, log, [allowed, allowed, allowed])


# ---------------------------------------------------------------------------
# Policies that extend themselves

HEAD = 'name: {name}\ndescription: d\nversion: "1"\ndefault_outcome: allow\nextends: [{base}]\nrules:\n'
DENY_ENV = ('  - id: deny-env\n    tools: [get-env]\n    effect: deny\n    reason: "no environment"\n')


def test_a_policy_extending_itself_does_not_compile(tmp_path):
    me = tmp_path / "me.yaml"
    me.write_text(HEAD.format(name="me", base="me.yaml") + DENY_ENV)
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(HEAD.format(name="a", base="b.yaml") + DENY_ENV)
    b.write_text(HEAD.format(name="b", base="./a.yaml") + "  - id: b\n    effect: allow\n")
    marker = tmp_path / "started"
    for policy, chain in [(me, f"{me} → {me}"), (a, f"{a} → {b} → {a}")]:
        run = subprocess.run(proxy(policy, ["sh", "-c", f"touch {marker}"]), capture_output=True, text=True,
                             timeout=30)
        assert run.returncode == 1
        assert run.stdout == ""
        assert "[kvlar] cannot compile the policy:" in run.stderr
        assert "`extends` cycle:" in run.stderr
        assert "this entry closes the cycle" in run.stderr
        assert chain.replace(" ", "") in run.stderr.replace(" ", "").replace("\n", "").replace("│", "")
        assert not marker.exists()


def test_hot_reload_to_a_self_extending_policy_keeps_the_previous_program(tmp_path):
    policy = tmp_path / "live.yaml"
    other = tmp_path / "other.yaml"
    policy.write_text('name: live\ndescription: d\nversion: "1"\ndefault_outcome: allow\nrules:\n' + DENY_ENV)
    log = tmp_path / "received.jsonl"
    r = Raw(proxy(policy, RECORDER + [str(log)], "--watch"))
    try:
        assert wait_for(lambda: "[kvlar] watching 1 policy file(s) for changes" in r.stderr)
        call = b'{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"get-env"}}\n'
        r.send(call % 1)
        assert denial(r.line()) == (1, "deny-env")
        # Directly, then through another file.
        policy.write_text(HEAD.format(name="live", base="live.yaml") + DENY_ENV)
        assert wait_for(lambda: r.stderr.count("reload failed, keeping previous policy") == 1)
        assert "`extends` cycle:" in r.stderr
        r.send(call % 2)
        assert denial(r.line()) == (2, "deny-env")
        other.write_text(HEAD.format(name="other", base="live.yaml") + "  - id: o\n    effect: allow\n")
        policy.write_text(HEAD.format(name="live", base="other.yaml") + DENY_ENV.replace("deny-env", "deny-env-2"))
        assert wait_for(lambda: r.stderr.count("reload failed, keeping previous policy") >= 2)
        time.sleep(0.5)
        r.send(call % 3)
        assert denial(r.line()) == (3, "deny-env")
        assert r.proc.poll() is None
        assert_received(r, log, [])
    finally:
        r.proc.kill()
        r.proc.wait()


# ---------------------------------------------------------------------------
# Memory

def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_memory_stays_flat_over_10000_calls_of_1_mib(raw, tmp_path):
    """10,000 calls with 1 MiB of arguments each (nine in ten denied, one in
    ten allowed and forwarded), every decision audited: the proxy's RSS after
    the first thousand calls does not grow."""
    audit = tmp_path / "audit.jsonl"
    r, _ = recorder(raw, tmp_path, "--audit", str(audit), "--audit-redact", log=Path("/dev/null"))
    body = b"x" * (1 << 20)
    lines = [b'{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"%s","arguments":{"message":"'
             % (n, tool) + body + b'"}}}\n' for n, tool in [(1, b"echo"), (2, b"get-env")]]
    samples = []
    answered = 0
    for i in range(10_000):
        r.proc.stdin.write(lines[0] if i % 10 == 0 else lines[1])
        if i % 100 == 99:
            # Keep the pipes drained and the answers in step with the calls.
            r.proc.stdin.flush()
            while answered <= i - 50:
                json.loads(r.line(timeout=30))
                answered += 1
        if i % 1000 == 999:
            samples.append(rss_kib(r.proc.pid))
    r.proc.stdin.flush()
    while answered < 10_000:
        json.loads(r.line(timeout=30))
        answered += 1
    samples.append(rss_kib(r.proc.pid))
    print(f"proxy RSS (KiB) after each 1000 calls, and at the end: {samples}")
    baseline = samples[0]
    assert max(samples) - baseline < 8 * 1024, f"RSS grew (KiB, every 1000 calls): {samples}"
    assert max(samples) < 64 * 1024, f"RSS (KiB): {samples}"
    assert wait_for(lambda: audit.exists() and audit.read_bytes().count(b"\n") == 10_000, timeout=30)
