"""Shared helpers: the kvlar binary, the real MCP servers, SDK sessions and raw pipes."""
import json
import os
import queue
import subprocess
import sys
import threading
import time
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

E2E = Path(__file__).resolve().parent
ROOT = E2E.parent.parent
KVLAR = os.environ.get("KVLAR_BIN", str(ROOT / "target" / "debug" / "kvlar"))
POLICIES = E2E / "policies"
BIN = E2E / "node_modules" / ".bin"
EVERYTHING = [str(BIN / "mcp-server-everything")]
RECORDER = [sys.executable, str(E2E / "recorder.py")]


def filesystem(directory):
    return [str(BIN / "mcp-server-filesystem"), str(directory)]


def proxy(policies, server, *flags):
    """The argv of `kvlar proxy` with the given policy files in front of `server`."""
    if isinstance(policies, (str, Path)):
        policies = [policies]
    argv = [KVLAR, "proxy", "--stdio"]
    for p in policies:
        argv += ["--policy", str(p)]
    return argv + list(flags) + ["--"] + list(server)


@pytest.fixture
def anyio_backend():
    return "asyncio"


@asynccontextmanager
async def session(argv, errlog=None, **callbacks):
    """An initialized official-SDK client session with the server started by `argv`."""
    params = StdioServerParameters(command=argv[0], args=argv[1:], cwd=str(E2E), env=dict(os.environ))
    log = errlog if errlog is not None else sys.stderr
    async with stdio_client(params, errlog=log) as (read, write):
        async with ClientSession(read, write, **callbacks) as s:
            await s.initialize()
            yield s


def dump(result):
    """A result as plain data, for exact comparisons."""
    return result.model_dump(by_alias=True, exclude_none=True, mode="json")


def wait_for(predicate, timeout=10.0, interval=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


class Raw:
    """`kvlar proxy` on raw pipes: bytes in, lines out, stderr collected."""

    def __init__(self, argv):
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=E2E)
        self.lines = queue.Queue()
        self.stashed = []
        self._err = []
        threading.Thread(target=self._read_out, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()

    def _read_out(self):
        for line in iter(self.proc.stdout.readline, b""):
            self.lines.put(line)
        self.lines.put(None)

    def _read_err(self):
        for line in iter(self.proc.stderr.readline, b""):
            self._err.append(line)

    @property
    def stderr(self):
        return b"".join(self._err).decode("utf-8", "replace")

    def send(self, data: bytes):
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def send_json(self, msg):
        self.send(json.dumps(msg, separators=(",", ":")).encode() + b"\n")

    def line(self, timeout=10.0):
        """The next raw line from the proxy's stdout (None at EOF)."""
        return self.lines.get(timeout=timeout)

    def response(self, id, timeout=10.0):
        """The next response with this id (other messages are stashed)."""
        deadline = time.monotonic() + timeout
        while True:
            line = self.line(timeout=max(0.01, deadline - time.monotonic()))
            if line is None:
                raise EOFError("proxy closed stdout")
            msg = json.loads(line)
            if isinstance(msg, dict) and msg.get("id") == id and "method" not in msg:
                return msg
            self.stashed.append(msg)

    def quiet(self, seconds=0.5):
        """Collects whatever arrives during `seconds`."""
        got = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.line(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break
            got.append(line)
        return got

    def initialize(self, id=0):
        self.send_json({"jsonrpc": "2.0", "id": id, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "raw-test", "version": "0"}}})
        init = self.response(id, timeout=30)
        self.send_json({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return init

    def child_pids(self):
        try:
            text = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        except OSError:
            return []
        return [int(p) for p in text.split()]

    def close(self, timeout=10.0):
        if self.proc.stdin and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except BrokenPipeError:
                pass
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise


@pytest.fixture
def raw():
    started = []

    def start(argv):
        r = Raw(argv)
        started.append(r)
        return r

    yield start
    for r in started:
        if r.proc.poll() is None:
            r.proc.kill()
            r.proc.wait()
