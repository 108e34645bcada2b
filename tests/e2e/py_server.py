#!/usr/bin/env python3
"""An MCP server on the official Python SDK (stdio), for the bypass tests.

Its stdio transport reads with universal newlines, so a bare `\\r` ends a
line for it (unlike the TypeScript SDK). Tools: `echo` and `get-env`; each
execution is appended to the file named by the first argument, so a test can
tell exactly which tools ran.
"""
import sys

from mcp.server.mcpserver import MCPServer

ran = open(sys.argv[1], "a", buffering=1)
app = MCPServer("py-server")


@app.tool(name="echo")
def echo(message: str) -> str:
    ran.write(f"echo {message}\n")
    return "Echo: " + message


@app.tool(name="get-env")
def get_env() -> str:
    ran.write("get-env\n")
    return "SECRET=hunter2"


app.run("stdio")
