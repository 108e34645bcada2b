"""The audit log (`--audit`, `--audit-redact`) and the `--config proxy.yaml` file."""
import json
import re
import subprocess

import pytest

from conftest import BIN, EVERYTHING, KVLAR, POLICIES, RECORDER, Raw, proxy, session, wait_for

pytestmark = pytest.mark.anyio

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def audit_lines(path, count):
    assert wait_for(lambda: path.exists() and len(path.read_text().splitlines()) >= count, timeout=5)
    return [json.loads(line) for line in path.read_text().splitlines()]


def check_common(entry, policy_hash):
    assert TIMESTAMP.match(entry.pop("timestamp"))
    assert isinstance(entry.pop("eval_ns"), int)
    assert entry.pop("policy_hash") == policy_hash


def loaded_hash(errlog):
    return re.search(r"policy hash ([0-9a-f]+)", errlog.read_text()).group(1)


async def test_audit_log_records_every_decision(tmp_path):
    audit = tmp_path / "audit.jsonl"
    err = tmp_path / "stderr.txt"
    with open(err, "w") as errlog:
        async with session(proxy(POLICIES / "everything.yaml", EVERYTHING, "--audit", str(audit)), errlog=errlog) as s:
            await s.list_tools()
            await s.call_tool("echo", {"message": "audited"})
            await s.call_tool("get-env", {})
    entries = audit_lines(audit, 2)
    assert len(entries) == 2
    h = loaded_hash(err)
    for e in entries:
        check_common(e, h)
    assert entries[0] == {
        "request_id": entries[0]["request_id"], "tool": "echo", "arguments": {"message": "audited"},
        "agent_id": "mcp-agent", "decision": "allow", "rule": "_default_allow", "reason": None,
    }
    assert entries[1] == {
        "request_id": entries[0]["request_id"] + 1, "tool": "get-env", "arguments": {}, "agent_id": "mcp-agent",
        "decision": "deny", "rule": "deny-env", "reason": "environment variables may hold secrets",
    }


def test_refused_calls_are_audited_too(tmp_path):
    audit = tmp_path / "audit.jsonl"
    r = Raw(proxy(POLICIES / "everything.yaml", RECORDER + [str(tmp_path / "received")], "--audit", str(audit)))
    try:
        r.send(b'{"jsonrpc":"2.0","id":"dup","method":"tools/call","params":{"name":"echo","arguments":{"a":1,"a":2}}}\n')
        assert json.loads(r.line())["error"]["code"] == -32600
        r.send(b'[{"jsonrpc":"2.0","method":"tools/call","params":{"name":"get-env"}}]\n')
        r.send(b'{"jsonrpc":"2.0","id":1,"method":"ping"}\n')
        assert r.response(1)["result"]["method"] == "ping"
    finally:
        r.close()
    entries = audit_lines(audit, 2)
    for e in entries:
        assert TIMESTAMP.match(e.pop("timestamp"))
        e.pop("policy_hash")
    assert entries == [
        {"request_id": "dup", "tool": None, "agent_id": "mcp-agent", "decision": "invalid", "rule": None,
         "reason": "params contain duplicate keys (keys may not repeat, nor differ only by case)", "eval_ns": 0},
        {"request_id": None, "tool": None, "agent_id": "mcp-agent", "decision": "invalid", "rule": None,
         "reason": "a JSON-RPC batch contained a tools/call", "eval_ns": 0},
    ]


async def test_audit_redact_drops_argument_values(tmp_path):
    audit = tmp_path / "audit.jsonl"
    argv = proxy(POLICIES / "agents.yaml", EVERYTHING, "--audit", str(audit), "--audit-redact", "--agent-id", "untrusted-1")
    async with session(argv) as s:
        r = await s.call_tool("echo", {"message": "top secret"})
    assert r.content[0].text == "Kvlar denied the call to tool `echo`: untrusted agents may not echo (rule untrusted-no-echo)"
    [entry] = audit_lines(audit, 1)
    assert "top secret" not in audit.read_text()
    assert "arguments" not in entry
    assert entry["argument_keys"] == ["message"]
    assert (entry["agent_id"], entry["decision"], entry["rule"]) == ("untrusted-1", "deny", "untrusted-no-echo")


async def test_an_unwritable_audit_file_is_reported_once_and_the_proxy_goes_on(tmp_path):
    err = tmp_path / "stderr.txt"
    with open(err, "w") as errlog:
        async with session(proxy(POLICIES / "everything.yaml", EVERYTHING, "--audit", str(tmp_path)), errlog=errlog) as s:
            for i in range(3):
                r = await s.call_tool("echo", {"message": str(i)})
                assert r.content[0].text == f"Echo: {i}"
    assert err.read_text().count("[kvlar] audit: cannot") == 1


async def test_config_file_with_flags_over_it(tmp_path):
    config = tmp_path / "proxy.yaml"
    config.write_text(
        f"policy_paths: [{json.dumps(str(POLICIES / 'agents.yaml'))}]\n"
        "hot_reload: false\n"
        "transport: stdio\n"
        f"upstream_command: {json.dumps(str(BIN / 'mcp-server-everything'))}\n"
        "upstream_args: []\n"
        "audit_file: audit.jsonl\n"
        "agent_id: untrusted-7\n"
        "busy_poll_us: 0\n"
    )
    async with session([KVLAR, "proxy", "--config", str(config)]) as s:
        denied = await s.call_tool("echo", {"message": "x"})
    assert denied.is_error is True
    assert denied.meta["io.kvlar/decision"]["rule"] == "untrusted-no-echo"
    [entry] = audit_lines(tmp_path / "audit.jsonl", 1)
    assert entry["agent_id"] == "untrusted-7"
    async with session([KVLAR, "proxy", "--config", str(config), "--agent-id", "trusted"]) as s:
        allowed = await s.call_tool("echo", {"message": "x"})
    assert allowed.content[0].text == "Echo: x"


def test_config_file_errors_have_spans(tmp_path):
    config = tmp_path / "proxy.yaml"
    config.write_text("policy_paths: [p.yaml]\nupstream_comand: node\n")
    run = subprocess.run([KVLAR, "proxy", "--config", str(config)], capture_output=True, text=True, timeout=30)
    assert run.returncode == 2
    assert run.stdout == ""
    assert "unknown key `upstream_comand` in the proxy config" in run.stderr
    assert f"{config}:2:1" in run.stderr
    assert "did you mean `upstream_command`?" in run.stderr
    config.write_text("transport: http\n")
    run = subprocess.run([KVLAR, "proxy", "--config", str(config)], capture_output=True, text=True, timeout=30)
    assert run.returncode == 2
    assert "unsupported transport `http`" in run.stderr
    assert f"{config}:1:12" in run.stderr
    config.write_text("policy_paths: [p.yaml]\nbusy_poll_us: 2000000\n")
    run = subprocess.run([KVLAR, "proxy", "--config", str(config)], capture_output=True, text=True, timeout=30)
    assert run.returncode == 2
    assert "busy_poll_us 2000000 is too long" in run.stderr
    assert f"{config}:2:15" in run.stderr
    assert "at most 1000000 (one second)" in run.stderr


def test_busy_poll_flag_out_of_range_is_refused():
    run = subprocess.run(
        [KVLAR, "proxy", "--stdio", "--policy", str(POLICIES / "agents.yaml"), "--busy-poll", "1000001", "--", "true"],
        capture_output=True, text=True, timeout=30,
    )
    assert run.returncode == 2
    assert run.stdout == ""
    assert "invalid value '1000001' for '--busy-poll <MICROSECONDS>': 1000001 is not in 0..=1000000" in run.stderr


def test_a_policy_that_does_not_compile_stops_the_proxy_before_the_server_starts(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text('name: bad\ndescription: x\nversion: "1"\nrules:\n  - id: r\n    description: x\n    effect: maybe\n')
    marker = tmp_path / "started"
    run = subprocess.run(proxy(bad, ["sh", "-c", f"touch {marker}"]), capture_output=True, text=True, timeout=30)
    assert run.returncode == 1
    assert run.stdout == ""
    assert "[kvlar] cannot compile the policy:" in run.stderr
    assert f"{bad}:7:" in run.stderr
    assert not marker.exists()
