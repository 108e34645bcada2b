"""Hot reload (`--watch`) with a client calling all along."""
import os
import re
import time

import anyio
import pytest

from conftest import EVERYTHING, proxy, session

pytestmark = pytest.mark.anyio

HEADER = """name: live
description: A policy edited while the proxy runs
version: "1.0"
default_outcome: allow
rules:
"""
ALLOW_ECHO = HEADER + """  - id: echo-switch
    description: echo is fine
    match_on:
      resources: ["echo"]
    effect:
      type: allow
  - id: deny-env
    description: no environment
    match_on:
      resources: ["get-env"]
    effect:
      type: deny
      reason: "no environment"
"""
DENY_ECHO = ALLOW_ECHO.replace(
    "      type: allow\n", '      type: deny\n      reason: "echo is switched off"\n'
)
# A misspelt key in line 10 (`efect:`): the compiler must refuse it with a span.
BROKEN = ALLOW_ECHO.replace("    effect:\n      type: allow", "    efect:\n      type: allow")
BROKEN_LINE = BROKEN.splitlines().index("    efect:") + 1
DENIED = "Kvlar denied the call to tool `echo`: echo is switched off (rule echo-switch)"


def read(path):
    return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""


async def wait_stderr(path, needle, timeout=10.0):
    deadline = time.monotonic() + timeout
    while needle not in read(path):
        if time.monotonic() > deadline:
            raise AssertionError(f"{needle!r} not on stderr:\n{read(path)}")
        await anyio.sleep(0.02)


async def test_reload_flips_a_decision_within_a_second_without_failed_calls(tmp_path):
    policy = tmp_path / "live.yaml"
    policy.write_text(ALLOW_ECHO)
    err_path = tmp_path / "stderr.txt"
    observed = []  # (time, worker, "allow" | "deny" | other)
    with open(err_path, "w") as errlog:
        async with session(proxy(policy, EVERYTHING, "--watch"), errlog=errlog) as s:
            await wait_stderr(err_path, "[kvlar] watching 1 policy file(s) for changes")
            running = True

            async def caller(worker):
                i = 0
                while running:
                    msg = f"w{worker}-{i}"
                    try:
                        r = await s.call_tool("echo", {"message": msg})
                        if not r.is_error and r.content[0].text == f"Echo: {msg}":
                            kind = "allow"
                        elif r.is_error and r.content[0].text == DENIED:
                            kind = "deny"
                        else:
                            kind = f"unexpected: {r}"
                    except Exception as e:  # a failed call
                        kind = f"failed: {e!r}"
                    observed.append((time.monotonic(), worker, kind))
                    i += 1
                    await anyio.sleep(0.005)

            async def first(kind, since):
                deadline = since + 5
                while time.monotonic() < deadline:
                    hits = [t for t, _, k in observed if k == kind and t > since]
                    if hits:
                        return min(hits)
                    await anyio.sleep(0.01)
                raise AssertionError(f"no {kind} after the edit")

            async with anyio.create_task_group() as tg:
                for w in range(3):
                    tg.start_soon(caller, w)
                await anyio.sleep(0.5)
                # In-place save.
                edited = time.monotonic()
                policy.write_text(DENY_ECHO)
                flipped = await first("deny", edited)
                await anyio.sleep(0.5)
                # Save by rename, like many editors.
                tmp = tmp_path / ".live.yaml.tmp"
                tmp.write_text(ALLOW_ECHO)
                renamed = time.monotonic()
                os.replace(tmp, policy)
                flipped_back = await first("allow", renamed)
                await anyio.sleep(0.3)
                running = False
    stderr = read(err_path)
    assert flipped - edited <= 1.0, f"deny took {flipped - edited:.3f}s"
    assert flipped_back - renamed <= 1.0, f"allow took {flipped_back - renamed:.3f}s"
    kinds = [k for _, _, k in observed]
    assert all(k in ("allow", "deny") for k in kinds), [k for k in kinds if k not in ("allow", "deny")]
    assert len(kinds) > 30
    # Each worker saw allow… deny… allow…, never flapping.
    for w in range(3):
        seq = [k for _, worker, k in observed if worker == w]
        runs = [k for i, k in enumerate(seq) if i == 0 or seq[i - 1] != k]
        assert runs == ["allow", "deny", "allow"], runs
    assert stderr.count("[kvlar] policy change detected, reloading...") >= 2
    assert stderr.count("[kvlar] ✓ reloaded 1 policies (2 rules)") >= 2
    assert "reload failed" not in stderr


async def test_broken_edit_keeps_the_previous_program(tmp_path):
    policy = tmp_path / "live.yaml"
    policy.write_text(DENY_ECHO)
    err_path = tmp_path / "stderr.txt"
    with open(err_path, "w") as errlog:
        async with session(proxy(policy, EVERYTHING, "--watch"), errlog=errlog) as s:
            await wait_stderr(err_path, "[kvlar] watching 1 policy file(s) for changes")
            assert (await s.call_tool("echo", {"message": "a"})).content[0].text == DENIED
            policy.write_text(BROKEN)
            await wait_stderr(err_path, "[kvlar] ✗ reload failed, keeping previous policy:")
            await anyio.sleep(0.2)
            # Still the old program.
            for i in range(5):
                r = await s.call_tool("echo", {"message": f"b{i}"})
                assert r.is_error and r.content[0].text == DENIED
            # A fixed file is picked up again.
            policy.write_text(ALLOW_ECHO)
            await wait_stderr(err_path, "[kvlar] ✓ reloaded 1 policies (2 rules)")
            r = await s.call_tool("echo", {"message": "c"})
            assert r.content[0].text == "Echo: c"
    stderr = read(err_path)
    failed_at = stderr.index("[kvlar] ✗ reload failed, keeping previous policy:")
    diagnostic = stderr[failed_at:]
    assert re.search(re.escape(str(policy)) + rf":{BROKEN_LINE}:\d+", diagnostic), diagnostic
    assert "efect" in diagnostic


async def test_reload_watches_extended_files(tmp_path):
    base = tmp_path / "base.yaml"
    base.write_text(
        'name: base\ndescription: shared rules\nversion: "1.0"\nrules:\n'
        "  - id: base-env\n    description: no environment\n    match_on:\n      resources: [\"get-env\"]\n"
        "    effect:\n      type: allow\n"
    )
    top = tmp_path / "top.yaml"
    top.write_text(
        'name: top\ndescription: extends base\nversion: "1.0"\nextends: [base.yaml]\ndefault_outcome: allow\n'
        "rules:\n  - id: top-echo\n    description: echo ok\n    match_on:\n      resources: [\"echo\"]\n"
        "    effect:\n      type: allow\n"
    )
    err_path = tmp_path / "stderr.txt"
    with open(err_path, "w") as errlog:
        async with session(proxy(top, EVERYTHING, "--watch"), errlog=errlog) as s:
            await wait_stderr(err_path, "[kvlar] watching 2 policy file(s) for changes")
            assert (await s.call_tool("get-env", {})).is_error is False
            base.write_text(base.read_text().replace("      type: allow\n", '      type: deny\n      reason: "env off"\n'))
            await wait_stderr(err_path, "[kvlar] ✓ reloaded")
            r = await s.call_tool("get-env", {})
    assert r.is_error is True
    assert r.content[0].text == "Kvlar denied the call to tool `get-env`: env off (rule base-env)"
