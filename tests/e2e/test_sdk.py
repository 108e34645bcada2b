"""The official Python MCP SDK client ↔ `kvlar proxy` ↔ real npm MCP servers."""
import re
import time

import anyio
import pytest
from mcp import types
from mcp.client._probe import negotiate_auto

from conftest import EVERYTHING, POLICIES, dump, filesystem, proxy, session

pytestmark = pytest.mark.anyio

EVERYTHING_POLICY = POLICIES / "everything.yaml"
HASH = re.compile(r"\[kvlar\] loaded \d+ policies \(\d+ rules\), policy hash ([0-9a-f]+)")


def policy_hash(errlog):
    errlog.flush()
    errlog.seek(0)
    m = HASH.search(errlog.read())
    assert m, "the proxy did not report its policy hash"
    return m.group(1)


async def sampling(context, params):
    return types.CreateMessageResult(
        role="assistant",
        content=types.TextContent(type="text", text="sampled!"),
        model="test-model",
        stop_reason="endTurn",
    )


async def elicitation(context, params):
    assert params.message == "Please provide inputs for the following fields:"
    return types.ElicitResult(action="accept", content={"color": "red"})


async def roots(context):
    return types.ListRootsResult(roots=[])


async def test_allowed_call_passes_unchanged():
    async with session(proxy(EVERYTHING_POLICY, EVERYTHING)) as s:
        result = await s.call_tool("echo", {"message": "hello through kvlar"})
        assert dump(result) == {
            "content": [{"type": "text", "text": "Echo: hello through kvlar"}],
            "isError": False,
            "resultType": "complete",
        }
        result = await s.call_tool("get-sum", {"a": 2, "b": 3})
        assert result.content[0].text == "The sum of 2 and 3 is 5."


async def test_denied_call_is_answered_by_the_proxy(tmp_path):
    with open(tmp_path / "stderr.txt", "w+") as errlog:
        async with session(proxy(EVERYTHING_POLICY, EVERYTHING), errlog=errlog) as s:
            result = await s.call_tool("get-env", {})
            expected_hash = policy_hash(errlog)
    assert result.is_error is True
    assert dump(result) == {
        "_meta": {
            "io.kvlar/decision": {
                "decision": "deny",
                "rule": "deny-env",
                "reason": "environment variables may hold secrets",
                "policy_hash": expected_hash,
                "tool": "get-env",
            }
        },
        "content": [{
            "type": "text",
            "text": "Kvlar denied the call to tool `get-env`: environment variables may hold secrets (rule deny-env)",
        }],
        "isError": True,
        "resultType": "complete",
    }


async def test_require_approval_without_a_channel_is_denied():
    async with session(proxy(EVERYTHING_POLICY, EVERYTHING)) as s:
        result = await s.call_tool("gzip-file-as-resource", {"name": "x.gz", "data": "data:text/plain,hi"})
    assert result.is_error is True
    assert result.content[0].text == (
        "Kvlar denied the call to tool `gzip-file-as-resource`: it requires approval "
        "(file compression needs a human's approval), and no approval channel is configured (rule ask-before-gzip)"
    )
    meta = result.meta["io.kvlar/decision"]
    assert (meta["decision"], meta["rule"]) == ("require_approval", "ask-before-gzip")


async def test_allow_all_is_identical_to_a_direct_connection():
    calls = [
        ("echo", {"message": "same"}),
        ("get-sum", {"a": 1.5, "b": -4}),
        ("get-tiny-image", {}),
        ("get-annotated-message", {"messageType": "error", "includeImage": True}),
        ("get-structured-content", {"location": "Chicago"}),
        ("get-resource-links", {"count": 2}),
    ]

    async def observe(argv):
        async with session(argv, sampling_callback=sampling, elicitation_callback=elicitation,
                           list_roots_callback=roots) as s:
            tools = dump(await s.list_tools())
            results = [dump(await s.call_tool(name, args)) for name, args in calls]
            return tools, results

    direct = await observe(EVERYTHING)
    proxied = await observe(proxy(POLICIES / "allow-all.yaml", EVERYTHING))
    assert len(direct[0]["tools"]) >= 15
    assert proxied == direct


async def test_progress_notifications_flow_through():
    progress = []

    async def on_progress(value, total, message):
        progress.append((value, total, message))

    async with session(proxy(EVERYTHING_POLICY, EVERYTHING)) as s:
        result = await s.call_tool("trigger-long-running-operation", {"duration": 1, "steps": 3},
                                   progress_callback=on_progress)
    assert progress == [(1.0, 3.0, None), (2.0, 3.0, None), (3.0, 3.0, None)]
    assert result.content[0].text == "Long running operation completed. Duration: 1 seconds, Steps: 3."


async def test_sampling_and_elicitation_flow_through():
    async with session(proxy(EVERYTHING_POLICY, EVERYTHING), sampling_callback=sampling,
                       elicitation_callback=elicitation, list_roots_callback=roots) as s:
        sampled = await s.call_tool("trigger-sampling-request", {"prompt": "Say hi", "maxTokens": 20})
        elicited = await s.call_tool("trigger-elicitation-request", {})
        rooted = await s.call_tool("get-roots-list", {})
    assert sampled.content[0].text == (
        'LLM sampling result: \n{\n  "model": "test-model",\n  "stopReason": "endTurn",\n'
        '  "role": "assistant",\n  "content": {\n    "type": "text",\n    "text": "sampled!"\n  }\n}'
    )
    assert [c.text for c in elicited.content] == [
        "✅ User provided the requested information!",
        "User inputs:\n- Favorite Color: red",
        '\nRaw result: {\n  "action": "accept",\n  "content": {\n    "color": "red"\n  }\n}',
    ]
    assert rooted.content[0].text.startswith("The client supports roots but no roots are currently configured.")


async def test_server_discover_probe_is_forwarded():
    """The SDK's auto mode probes `server/discover` first; the server's error must reach it at once."""
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    argv = proxy(EVERYTHING_POLICY, EVERYTHING)
    params = StdioServerParameters(command=argv[0], args=argv[1:])
    start = time.monotonic()
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as s:
            await negotiate_auto(s)
            assert s.protocol_version == "2025-11-25"
            result = await s.call_tool("echo", {"message": "after discover"})
    assert time.monotonic() - start < 8
    assert result.content[0].text == "Echo: after discover"


async def test_filesystem_server_reads_allowed_and_secrets_denied(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    (served / "notes.txt").write_text("line one\nline two\n")
    (served / "secret.txt").write_text("hunter2\n")
    async with session(proxy(POLICIES / "filesystem.yaml", filesystem(served))) as s:
        read = await s.call_tool("read_text_file", {"path": str(served / "notes.txt")})
        secret = await s.call_tool("read_text_file", {"path": str(served / "secret.txt")})
        write = await s.call_tool("write_file", {"path": str(served / "new.txt"), "content": "x"})
    assert dump(read)["content"] == [{"type": "text", "text": "line one\nline two\n"}]
    assert read.is_error is False
    assert secret.is_error is True
    assert secret.content[0].text == (
        "Kvlar denied the call to tool `read_text_file`: secret files are off limits (rule deny-secrets)"
    )
    assert write.is_error is True
    assert write.content[0].text == (
        "Kvlar denied the call to tool `write_file`: no matching policy rule — denied by default (fail-closed) "
        "(rule _default_deny)"
    )
    assert not (served / "new.txt").exists()
