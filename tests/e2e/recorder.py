#!/usr/bin/env python3
"""A recording stdio JSON-RPC server for the raw-pipe tests.

It appends every line it receives, byte for byte, to the file named by its
first argument, so a test can check exactly what the proxy forwarded. It
answers each request with `{"method": ..., "size": <line length>}`, except
`hang` (never answered) and `crash` (exits with status 3 at once). It starts
by printing a banner that is not JSON, which the proxy must drop.
"""
import json
import os
import sys

log = open(sys.argv[1], "ab", buffering=0)
out = sys.stdout.buffer
out.write(b"recorder ready (this banner is not JSON)\n")
out.flush()
for line in sys.stdin.buffer:
    log.write(line)
    try:
        msg = json.loads(line)
    except ValueError:
        continue
    if not isinstance(msg, dict) or "method" not in msg or "id" not in msg:
        continue
    if msg["method"] == "crash":
        os._exit(3)
    if msg["method"] == "hang":
        continue
    reply = {"jsonrpc": "2.0", "id": msg["id"], "result": {"method": msg["method"], "size": len(line)}}
    out.write(json.dumps(reply, separators=(",", ":")).encode() + b"\n")
    out.flush()
