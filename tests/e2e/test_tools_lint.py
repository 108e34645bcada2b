"""`kvlar tools` against the real servers, and `kvlar lint --tools` with what they return."""
import json
import subprocess

import pytest

from conftest import EVERYTHING, KVLAR, ROOT, dump, filesystem, session

pytestmark = pytest.mark.anyio


def kvlar_tools(tmp_path, server, name):
    out = tmp_path / name
    p = subprocess.run([KVLAR, "tools", "-o", str(out), "--", *server], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout == ""
    return out, json.loads(out.read_text())["tools"]


async def test_tools_equal_what_the_sdk_client_lists(tmp_path):
    path, tools = kvlar_tools(tmp_path, filesystem(tmp_path), "fs.json")
    async with session(filesystem(tmp_path)) as s:
        listed = dump(await s.list_tools())["tools"]
    assert [t["name"] for t in tools] == [t["name"] for t in listed]
    assert [t["inputSchema"] for t in tools] == [t["inputSchema"] for t in listed]
    assert {"read_file", "read_multiple_files", "edit_file", "move_file"} <= {t["name"] for t in tools}


def test_everything_lists_the_capability_gated_tools(tmp_path):
    # server-everything registers these only for clients that declare
    # sampling / elicitation / roots, which `kvlar tools` does.
    _, tools = kvlar_tools(tmp_path, EVERYTHING, "everything.json")
    names = {t["name"] for t in tools}
    assert {"echo", "trigger-sampling-request", "trigger-elicitation-request", "get-roots-list"} <= names


def test_curated_filesystem_policies_lint_clean_against_the_real_server(tmp_path):
    path, _ = kvlar_tools(tmp_path, filesystem(tmp_path), "fs.json")
    for policy in ["filesystem.yaml", "filesystem-native.yaml"]:
        p = subprocess.run(
            [KVLAR, "lint", "--deny-warnings", "--tools", str(path), str(ROOT / "policies" / policy)],
            capture_output=True, text=True, timeout=60,
        )
        assert (p.returncode, p.stdout) == (0, "0 warnings\n"), p.stderr


def test_typos_against_the_real_server_are_reported_with_spans(tmp_path):
    path, _ = kvlar_tools(tmp_path, filesystem(tmp_path), "fs.json")
    policy = tmp_path / "typos.yaml"
    policy.write_text(
        "name: p\ndescription: d\nversion: \"1\"\nrules:\n"
        "  - id: deny-etc\n    tools: [read_multiple_fils, edit_file]\n"
        "    when: 'any(p in args.path: p under \"/etc\") || any(e in args.edits: e.newtext contains \"sudo\")'\n"
        "    effect: deny\n    reason: no\n"
    )
    p = subprocess.run(
        [KVLAR, "lint", "--deny-warnings", "--tools", str(path), str(policy)],
        capture_output=True, text=True, timeout=60, env={"NO_COLOR": "1"},
    )
    assert (p.returncode, p.stdout) == (1, "2 warnings\n"), p.stderr
    assert "kvlar::lint::unknown_tool" in p.stderr
    assert "typos.yaml:6:13]" in p.stderr
    assert "did you mean `read_multiple_files`?" in p.stderr
    # `args.path` is edit_file's, so only `newtext` is unknown.
    assert "kvlar::lint::unknown_argument" in p.stderr
    assert "reads `args.edits[*].newtext`" in p.stderr
    assert "typos.yaml:7:72]" in p.stderr
    assert "did you mean `newText`?" in p.stderr
