"""`kvlar proxy` on raw pipes (no SDK): exact bytes, fail-closed paths, lifecycle."""
import hashlib
import json
import os
import signal
import time

import pytest

from conftest import EVERYTHING, POLICIES, RECORDER, proxy, wait_for

POLICY = POLICIES / "everything.yaml"


def recorder(raw, tmp_path, *flags):
    log = tmp_path / "received.jsonl"
    r = raw(proxy(POLICY, RECORDER + [str(log)], *flags))
    return r, log


def received(log):
    return log.read_bytes().splitlines(keepends=True) if log.exists() else []


def invalid_request(id, why):
    return (
        '{"jsonrpc":"2.0","id":%s,"error":{"code":-32600,"message":"Invalid Request: Kvlar refused this tools/call: '
        '%s; it was not forwarded"}}\n' % (id, why)
    ).encode()


# Busy-polling (on by default) changes how the proxy waits, never what it forwards:
# off, and with the longest budget (it polls up to a second whenever a request is out).
@pytest.mark.parametrize("flags", [[], ["--busy-poll", "0"], ["--busy-poll", "1000000"]], ids=["default", "off", "1s"])
def test_everything_else_is_forwarded_byte_for_byte(raw, tmp_path, flags):
    r, log = recorder(raw, tmp_path, *flags)
    lines = [
        b'{"jsonrpc":"2.0","id":0,"method":"server/discover","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}\n',
        b'{ "jsonrpc" : "2.0", "id" : "s-1", "method" : "initialize", "params" : {} }\r\n',
        b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n',
        b'{"jsonrpc":"2.0","id":12345678901234567890123,"method":"ping"}\n',
        b'{"jsonrpc":"2.0","id":0,"result":{"roots":[]}}\n',
        b'{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":3,"reason":"\\u00e9"}}\n',
        b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"caf\xc3\xa9"}}}\n',
        b'[{"jsonrpc":"2.0","id":2,"method":"ping"}]\n',
    ]
    for line in lines:
        r.send(line)
    assert r.response(0) == {"jsonrpc": "2.0", "id": 0, "result": {"method": "server/discover", "size": len(lines[0])}}
    assert r.response("s-1")["result"]["method"] == "initialize"
    big = r.response(12345678901234567890123)
    assert big["result"]["method"] == "ping"
    assert r.response(1)["result"] == {"method": "tools/call", "size": len(lines[6])}
    assert wait_for(lambda: len(received(log)) == len(lines))
    assert received(log) == lines
    # The recorder's non-JSON banner never reached the client.
    assert all(b"banner" not in json.dumps(m).encode() for m in r.stashed)
    # stderr is read by its own thread: wait for it rather than race it.
    assert wait_for(lambda: "[kvlar] dropped a non-JSON line from the server's stdout" in r.stderr)
    assert wait_for(lambda: "recorder ready (this banner is not JSON)" in r.stderr)


def test_batches_containing_tools_call_are_never_forwarded(raw, tmp_path):
    r, log = recorder(raw, tmp_path)
    r.send(b'[{"jsonrpc":"2.0","id":10,"method":"tools/call","params":{"name":"echo","arguments":{}}},'
           b'{"jsonrpc":"2.0","id":"p","method":"ping"},{"jsonrpc":"2.0","method":"notifications/x"}]\n')
    assert r.line() == (
        b'[{"jsonrpc":"2.0","id":10,"error":{"code":-32600,"message":"Invalid Request: Kvlar refused this request: '
        b'a JSON-RPC batch may not contain tools/call; the batch was not forwarded"}},'
        b'{"jsonrpc":"2.0","id":"p","error":{"code":-32600,"message":"Invalid Request: Kvlar refused this request: '
        b'it was part of a JSON-RPC batch that contains a tools/call; the batch was not forwarded"}}]\n'
    )
    # A batch with only a tools/call notification: nothing forwarded, nothing answered.
    r.send(b'[{"jsonrpc":"2.0","method":"tools/call","params":{"name":"get-env"}}]\n')
    # A batch without tools/call passes.
    batch = b'[{"jsonrpc":"2.0","method":"notifications/y"}]\n'
    r.send(batch)
    r.send(b'{"jsonrpc":"2.0","id":11,"method":"ping"}\n')
    assert r.response(11)["result"]["method"] == "ping"
    assert received(log) == [batch, b'{"jsonrpc":"2.0","id":11,"method":"ping"}\n']


def test_garbage_and_invalid_utf8_get_parse_errors_and_the_session_goes_on(raw, tmp_path):
    r, log = recorder(raw, tmp_path)
    r.send(b"hello, not json\n")
    assert r.line() == (
        b'{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error: the line is not valid JSON '
        b'(expected value at line 1 column 1); Kvlar did not forward it"}}\n'
    )
    r.send(b'{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"echo\xff\xfe"}}\n')
    assert r.line() == (
        b'{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error: the line is not valid UTF-8; '
        b'Kvlar did not forward it"}}\n'
    )
    r.send(b'{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"echo"}\n')
    assert json.loads(r.line())["error"]["code"] == -32700
    r.send(b'{"jsonrpc":"2.0","id":7,"method":"ping"}\n')
    assert r.response(7)["result"]["method"] == "ping"
    assert received(log) == [b'{"jsonrpc":"2.0","id":7,"method":"ping"}\n']


def test_malformed_and_sneaky_tools_calls_are_refused(raw, tmp_path):
    r, log = recorder(raw, tmp_path)
    cases = [
        (b'{"jsonrpc":"2.0","id":20,"method":"tools/call","params":{"name":"echo","arguments":{"message":"a","message":"b"}}}\n',
         invalid_request(20, "params contain duplicate keys (keys may not repeat, nor differ only by case)")),
        (b'{"jsonrpc":"2.0","id":21,"method":"tools/call","params":{"arguments":{}}}\n',
         invalid_request(21, "params.name is missing or not a string")),
        (b'{"jsonrpc":"2.0","id":22,"method":"tools/call","params":{"name":"echo","arguments":"x"}}\n',
         invalid_request(22, "params.arguments is not an object")),
        (b'{"jsonrpc":"2.0","id":23,"method":"Tools/Call","params":{"name":"get-env"}}\n',
         invalid_request(23, "the method differs from `tools/call` only by case, whitespace or invisible characters, "
                             "or is given more than once")),
        (b'{"jsonrpc":"2.0","id":24,"method":"tools/call ","params":{"name":"get-env"}}\n',
         invalid_request(24, "the method differs from `tools/call` only by case, whitespace or invisible characters, "
                             "or is given more than once")),
    ]
    for line, expected in cases:
        r.send(line)
        assert r.line() == expected
    # A tools/call notification: never forwarded, never answered.
    r.send(b'{"jsonrpc":"2.0","method":"tools/call","params":{"name":"echo","arguments":{"message":"n"}}}\n')
    assert r.quiet(0.3) == []
    r.send(b'{"jsonrpc":"2.0","id":25,"method":"ping"}\n')
    assert r.response(25)["result"]["method"] == "ping"
    assert received(log) == [b'{"jsonrpc":"2.0","id":25,"method":"ping"}\n']


def test_denial_bytes_on_the_wire(raw, tmp_path):
    r, log = recorder(raw, tmp_path)
    r.send(b'{"jsonrpc":"2.0","id":"d-1","method":"tools/call","params":{"name":"get-env","arguments":{}}}\n')
    line = r.line()
    h = json.loads(line)["result"]["_meta"]["io.kvlar/decision"]["policy_hash"]
    assert line == (
        b'{"jsonrpc":"2.0","id":"d-1","result":{"content":[{"type":"text","text":"Kvlar denied the call to tool '
        b'`get-env`: environment variables may hold secrets (rule deny-env)"}],"isError":true,"_meta":'
        b'{"io.kvlar/decision":{"decision":"deny","rule":"deny-env","reason":"environment variables may hold secrets",'
        b'"policy_hash":"' + h.encode() + b'","tool":"get-env"}}}}\n'
    )
    # The startup line names the same hash (stderr has its own reader
    # thread, which may not have caught up with stdout yet).
    assert wait_for(lambda: f"policy hash {h}" in r.stderr), r.stderr
    assert received(log) == []


def test_a_10_mib_line_round_trips_through_a_real_server(raw):
    """A line of exactly 10 MiB (the TypeScript SDK's own limit) goes through and its 10 MiB answer comes back."""
    r = raw(proxy(POLICY, EVERYTHING))
    r.initialize()
    prefix = b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"'
    suffix = b'"}}}\n'
    message = "x" * (10 * 1024 * 1024 - len(prefix) - len(suffix))
    line = prefix + message.encode() + suffix
    assert len(line) == 10 * 1024 * 1024
    r.send(line)
    resp = r.response(1, timeout=60)
    text = resp["result"]["content"][0]["text"]
    assert len(text) == len("Echo: ") + len(message)
    assert hashlib.sha256(text.encode()).hexdigest() == hashlib.sha256(("Echo: " + message).encode()).hexdigest()


def test_a_line_over_64_mib_is_refused_and_dropped(raw, tmp_path):
    r, log = recorder(raw, tmp_path)
    head = b'{"jsonrpc":"2.0","id":31,"method":"tools/call","params":{"name":"echo","arguments":{"message":"'
    r.send(head + b"y" * (64 * 1024 * 1024) + b'"}}}\n')
    assert r.line(timeout=60) == (
        b'{"jsonrpc":"2.0","id":31,"error":{"code":-32600,"message":"Invalid Request: the message is longer than '
        b'Kvlar\'s limit of 64 MiB; it was not forwarded"}}\n'
    )
    r.send(b'{"jsonrpc":"2.0","id":32,"method":"ping"}\n')
    assert r.response(32)["result"]["method"] == "ping"
    assert received(log) == [b'{"jsonrpc":"2.0","id":32,"method":"ping"}\n']


def test_server_crash_mid_call_answers_pending_requests(raw):
    r = raw(proxy(POLICY, EVERYTHING))
    r.initialize()
    [child] = wait_for(r.child_pids)
    r.send_json({"jsonrpc": "2.0", "id": 40, "method": "tools/call",
                 "params": {"name": "trigger-long-running-operation", "arguments": {"duration": 30, "steps": 30}}})
    r.send_json({"jsonrpc": "2.0", "id": "forty-one", "method": "tools/list"})
    assert r.response("forty-one")["result"]["tools"]
    time.sleep(0.3)
    os.kill(child, signal.SIGKILL)
    assert r.response(40) == {"jsonrpc": "2.0", "id": 40, "error": {"code": -32000, "message":
                              "Kvlar: the upstream MCP server exited (killed by signal 9) before answering this request"}}
    assert r.proc.wait(timeout=10) == 128 + 9


def test_server_exit_status_is_the_proxy_exit_status(raw, tmp_path):
    r, log = recorder(raw, tmp_path)
    r.send(b'{"jsonrpc":"2.0","id":50,"method":"hang"}\n')
    r.send(b'{"jsonrpc":"2.0","id":51,"method":"crash"}\n')
    got = {json.loads(r.line())["id"]: None for _ in range(2)}
    assert set(got) == {50, 51}
    assert r.proc.wait(timeout=10) == 3


def test_client_closing_stdin_stops_the_proxy_and_the_server(raw):
    r = raw(proxy(POLICY, EVERYTHING))
    r.initialize()
    [child] = wait_for(r.child_pids)
    start = time.monotonic()
    r.proc.stdin.close()
    code = r.proc.wait(timeout=10)
    assert time.monotonic() - start < 5
    assert code in (0, 128 + signal.SIGTERM)
    assert not os.path.exists(f"/proc/{child}")
    while (line := r.line()) is not None:
        json.loads(line)  # what the server still said, then EOF


def test_sigterm_stops_the_proxy_and_the_server(raw):
    r = raw(proxy(POLICY, EVERYTHING))
    r.initialize()
    [child] = wait_for(r.child_pids)
    r.proc.send_signal(signal.SIGTERM)
    r.proc.wait(timeout=10)
    assert wait_for(lambda: not os.path.exists(f"/proc/{child}"), timeout=5)


def test_stateless_revision_calls_are_evaluated_like_any_other(raw, tmp_path):
    r, log = recorder(raw, tmp_path)
    meta = ('"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28",'
            '"io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":{"name":"c","version":"1"}}')
    retry = ('{"jsonrpc":"2.0","id":0,"method":"tools/call","params":{"name":"get-env","arguments":{},'
             '"inputResponses":{"confirm":{"action":"accept","content":{}}},"requestState":"opaque-state",' + meta + '}}\n')
    r.send(retry.encode())
    denied = json.loads(r.line())
    assert denied["id"] == 0
    assert denied["result"]["isError"] is True
    assert denied["result"]["_meta"]["io.kvlar/decision"]["rule"] == "deny-env"
    allowed = ('{"jsonrpc":"2.0","id":"r2","method":"tools/call","params":{"name":"echo","arguments":{"message":"m"},'
               '"inputResponses":{},"requestState":"s2",' + meta + '}}\n').encode()
    r.send(allowed)
    assert r.response("r2")["result"] == {"method": "tools/call", "size": len(allowed)}
    assert received(log) == [allowed]


def cpu_seconds(pid):
    """User + system CPU time of a process so far (from /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_an_idle_proxy_does_not_spin_while_a_request_is_owed(raw, tmp_path):
    # Busy-polling runs only while the server owes an answer, and only for its
    # budget after each message: a request the server never answers must not
    # keep the proxy polling.
    r, log = recorder(raw, tmp_path)
    r.send(b'{"jsonrpc":"2.0","id":1,"method":"hang"}\n')
    r.send(b'{"jsonrpc":"2.0","id":2,"method":"ping"}\n')
    assert r.response(2)["result"]["method"] == "ping"
    time.sleep(0.2)
    before = cpu_seconds(r.proc.pid)
    time.sleep(2.0)
    spent = cpu_seconds(r.proc.pid) - before
    # A proxy that kept polling would spend about the whole 2 s.
    assert spent < 0.2, f"the idle proxy used {spent:.2f} s of CPU in 2 s"
    assert r.proc.poll() is None
