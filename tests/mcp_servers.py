"""MCP servers the tests start with the official SDK: `python mcp_servers.py MODE [PORT]`.

MODE: ok (stdio), crash (the process dies during a call), hang (a call never answers),
http (Streamable HTTP on 127.0.0.1:PORT)."""

from __future__ import annotations

import os
import sys
import time

from mcp.server.mcpserver import MCPServer

MODE = sys.argv[1] if len(sys.argv) > 1 else "ok"
server = MCPServer("weather")


@server.tool()
def get_weather(location: str) -> str:
    """The current weather in a city."""
    if MODE == "crash":
        os._exit(3)
    if MODE == "hang":
        time.sleep(3600)
    return f"22 °C and sunny in {location}"


@server.tool()
def fail(reason: str) -> str:
    """Always fails, with the reason given."""
    raise ValueError(reason)


if __name__ == "__main__":
    if MODE == "http":
        import anyio

        anyio.run(lambda: server.run_streamable_http_async(host="127.0.0.1", port=int(sys.argv[2])))
    else:
        server.run("stdio")
