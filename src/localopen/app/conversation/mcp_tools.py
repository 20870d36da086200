"""MCP servers as tools for a chat: configured as Claude Desktop, LM Studio and Jan configure them
(`{"mcpServers": {"name": {"command": …, "args": […], "env": {…}} | {"url": …}}}`), connected
with the official SDK (`mcp`) over stdio or Streamable HTTP, their tools offered to the model as
OpenAI function schemas, and each call answered with its result, its time, or a plain error.

The SDK is asynchronous; the chat is not. One event-loop thread holds every connection, each
server's session lives in one task of its own (the SDK's transports must be entered and left in
the same task), and calls cross over with a timeout: a server that crashes, hangs or fails says so
in words, and never leaves the chat waiting.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localopen.core.errors import LocalopenError

log = logging.getLogger("localopen.mcp")

CONNECT_TIMEOUT_S = 30.0
CALL_TIMEOUT_S = 60.0
MAX_RESULT_CHARS = 32_000  # what goes back to the model: a runaway result is cut, and says so


class McpError(LocalopenError):
    """An MCP server or one of its calls failed; the message says which and why."""


@dataclass(frozen=True)
class McpServerConfig:
    name: str
    command: str | None = None
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    url: str | None = None  # Streamable HTTP
    enabled: bool = True


def parse_config(data: Any, source: str = "the MCP configuration") -> list[McpServerConfig]:
    """Servers from the mcpServers JSON shape (a bare {name: server} mapping is accepted too)."""
    servers = data.get("mcpServers", data) if isinstance(data, dict) else None
    if not isinstance(servers, dict):
        raise McpError(f"{source} must be a JSON object with 'mcpServers'.")
    out = []
    for name, spec in servers.items():
        if not isinstance(spec, dict):
            raise McpError(f"{source}: server '{name}' must be an object with 'command' or 'url'.")
        command, url = spec.get("command"), spec.get("url") or spec.get("serverUrl")
        if not isinstance(command, str) and not isinstance(url, str):
            raise McpError(f"{source}: server '{name}' needs a 'command' (stdio) or a 'url' (Streamable HTTP).")
        args = spec.get("args", [])
        env = spec.get("env", {})
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            raise McpError(f"{source}: server '{name}': 'args' must be a list of strings.")
        if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
            raise McpError(f"{source}: server '{name}': 'env' must map names to strings.")
        disabled = spec.get("disabled") is True or spec.get("enabled") is False
        out.append(
            McpServerConfig(
                str(name),
                command if isinstance(command, str) else None,
                list(args),
                dict(env),
                url if isinstance(url, str) and not isinstance(command, str) else None,
                not disabled,
            )
        )
    return out


def read_config(path: Path) -> list[McpServerConfig]:
    try:
        data = json.loads(path.expanduser().read_text(encoding="utf-8"))
    except OSError as exc:
        raise McpError(f"Cannot read {path}: {exc.strerror or exc}.") from exc
    except ValueError as exc:
        raise McpError(f"{path} is not valid JSON ({exc}).") from exc
    return parse_config(data, str(path))


EXAMPLE_CONFIG = """{
  "mcpServers": {
    "example": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-everything"]}
  }
}
"""


def app_config_path(config_dir: Path) -> Path:
    """The app's MCP servers, in the same JSON as Claude Desktop's (paste an existing one)."""
    return config_dir / "mcp.json"


def load_app_config(config_dir: Path) -> str:
    """The app's MCP configuration as text (empty when none is set)."""
    try:
        return app_config_path(config_dir).read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""
    except OSError as exc:
        raise McpError(f"Cannot read the MCP configuration: {exc.strerror or exc}.") from exc


def save_app_config(config_dir: Path, text: str) -> list[McpServerConfig]:
    """Check and keep the app's MCP configuration (written whole: never half a file)."""
    try:
        data = json.loads(text) if text.strip() else {"mcpServers": {}}
    except ValueError as exc:
        raise McpError(f"The MCP configuration is not valid JSON ({exc}).") from exc
    servers = parse_config(data)
    path = app_config_path(config_dir)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        raise McpError(f"Cannot save the MCP configuration: {exc.strerror or exc}.") from exc
    return servers


@dataclass(frozen=True)
class McpTool:
    server: str
    name: str  # as offered to the model (the server's name for it, unless two servers share it)
    remote_name: str  # as the server knows it
    description: str
    parameters: dict[str, Any]

    def openai(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }


@dataclass(frozen=True)
class ToolResult:
    text: str
    is_error: bool
    ms: float


class _Server:
    """One server's session, living in one task of the loop; calls reach it through a queue."""

    def __init__(self, config: McpServerConfig) -> None:
        self.config = config
        self.requests: asyncio.Queue[tuple[str, dict[str, Any], concurrent.futures.Future[Any]] | None] | None = None
        self.tools: list[Any] = []
        self.stopped: str | None = None  # why it ended, once it has
        self.errlog: _ServerLog | None = None
        self.task: asyncio.Task[Any] | None = None

    async def run(self, ready: concurrent.futures.Future[None]) -> None:
        from mcp import ClientSession
        from mcp.types import CONNECTION_CLOSED

        self.requests = asyncio.Queue()
        self.task = asyncio.current_task()
        try:
            async with contextlib.AsyncExitStack() as stack:
                read, write = await stack.enter_async_context(self._transport())
                session = await stack.enter_async_context(ClientSession(read, write))
                await asyncio.wait_for(session.initialize(), CONNECT_TIMEOUT_S)
                self.tools = list((await asyncio.wait_for(session.list_tools(), CONNECT_TIMEOUT_S)).tools)
                ready.set_result(None)
                while (item := await self.requests.get()) is not None:
                    name, arguments, answer = item
                    try:
                        result = await asyncio.wait_for(session.call_tool(name, arguments), CALL_TIMEOUT_S)
                    except Exception as exc:  # noqa: BLE001 - handed to the caller, who says it in words
                        if not answer.done():
                            answer.set_exception(exc)
                        if getattr(exc, "code", None) == CONNECTION_CLOSED:
                            self.stopped = "its connection closed (the server ended)"
                            break
                    else:
                        if not answer.done():
                            answer.set_result(result)
        except BaseException as exc:  # the transport broke, the process died, or the loop is closing
            self.stopped = _reason(exc)
            log.info("MCP server %s stopped: %s", self.config.name, self.stopped, exc_info=True)
            if not ready.done():
                ready.set_exception(McpError(f"The MCP server '{self.config.name}' could not start: {self.stopped}."))
            if isinstance(exc, asyncio.CancelledError):
                raise
        else:
            self.stopped = self.stopped or "closed"
        finally:
            if self.errlog is not None:
                self.errlog.close()

    def _transport(self) -> contextlib.AbstractAsyncContextManager[Any]:
        if self.config.url:
            from mcp.client.streamable_http import streamable_http_client

            return streamable_http_client(self.config.url)
        from mcp.client.stdio import StdioServerParameters, stdio_client

        assert self.config.command is not None
        params = StdioServerParameters(
            command=self.config.command, args=self.config.args, env={**os.environ, **self.config.env}
        )
        self.errlog = _ServerLog(self.config.name)
        return stdio_client(params, errlog=self.errlog)  # type: ignore[arg-type]


class _ServerLog:
    """A stdio server's own stderr goes to localopen's log, never to the user's terminal."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._read, self._write = os.pipe()
        threading.Thread(target=self._drain, daemon=True, name=f"mcp-log-{name}").start()

    def fileno(self) -> int:
        return self._write

    def write(self, text: str) -> int:
        log.info("[%s] %s", self.name, text.rstrip())
        return len(text)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._write)

    def _drain(self) -> None:
        with os.fdopen(self._read, "r", errors="replace") as stream:
            for line in stream:
                log.info("[%s] %s", self.name, line.rstrip())


def _reason(exc: BaseException) -> str:
    group = getattr(exc, "exceptions", None)  # an exception group (anyio's task groups raise them)
    if isinstance(group, (list, tuple)) and group:
        return "; ".join(_reason(e) for e in group)
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return "it did not answer in time"
    if isinstance(exc, FileNotFoundError):
        return f"its command was not found ({exc.filename})"
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class McpConnections:
    """The configured servers, connected on one background event loop; use from any thread."""

    def __init__(self, configs: list[McpServerConfig]) -> None:
        self.configs = [c for c in configs if c.enabled]
        self.problems: dict[str, str] = {}  # server -> why it is not available
        self._servers: dict[str, _Server] = {}
        self._tools: dict[str, McpTool] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="mcp-loop")
        self._thread.start()
        self._tasks: list[concurrent.futures.Future[Any]] = []

    def connect(self) -> None:
        """Start every server; one that fails is noted in `problems`, the others still serve."""
        waits = []
        for config in self.configs:
            server = _Server(config)
            ready: concurrent.futures.Future[None] = concurrent.futures.Future()
            self._tasks.append(asyncio.run_coroutine_threadsafe(server.run(ready), self._loop))
            waits.append((server, ready))
        for server, ready in waits:
            try:
                ready.result(CONNECT_TIMEOUT_S + 5)
            except concurrent.futures.TimeoutError:
                self.problems[server.config.name] = "it did not answer in time"
                continue
            except McpError as exc:
                self.problems[server.config.name] = str(exc)
                continue
            self._servers[server.config.name] = server
        for server in self._servers.values():
            for tool in server.tools:
                name = tool.name if tool.name not in self._tools else f"{server.config.name}__{tool.name}"
                self._tools[name] = McpTool(
                    server.config.name, name, tool.name, tool.description or "", dict(tool.input_schema or {})
                )

    def tools(self) -> list[McpTool]:
        return list(self._tools.values())

    def call(self, name: str, arguments: Mapping[str, Any], timeout: float = CALL_TIMEOUT_S) -> ToolResult:
        """Call a tool; a failure comes back as an error result in words (the model reads it too)."""
        started = time.perf_counter()
        tool = self._tools.get(name)
        if tool is None:
            return ToolResult(f"No tool named '{name}' is available.", True, 0.0)
        server = self._servers[tool.server]

        def done(text: str, is_error: bool) -> ToolResult:
            return ToolResult(text, is_error, round((time.perf_counter() - started) * 1000, 1))

        if server.stopped is not None or server.requests is None:
            return done(f"The MCP server '{tool.server}' has stopped ({server.stopped or 'not started'}).", True)
        answer: concurrent.futures.Future[Any] = concurrent.futures.Future()
        queue = server.requests
        self._loop.call_soon_threadsafe(queue.put_nowait, (tool.remote_name, dict(arguments), answer))
        deadline = time.monotonic() + timeout
        while True:  # wait, but notice at once a server that died meanwhile
            try:
                result = answer.result(min(0.2, max(0.0, deadline - time.monotonic())))
                break
            except concurrent.futures.TimeoutError:
                if server.stopped is not None:
                    return done(f"The MCP server '{tool.server}' stopped during the call ({server.stopped}).", True)
                if time.monotonic() >= deadline:
                    return done(f"The tool '{name}' did not answer within {timeout:.0f} s.", True)
            except Exception as exc:  # noqa: BLE001 - the call failed: said in words
                log.info("MCP call %s failed", name, exc_info=True)
                return done(f"The tool '{name}' failed: {_reason(exc)}.", True)
        return done(_text(result), bool(getattr(result, "is_error", False)))

    def close(self) -> None:
        """End every session (its transport ends a stdio server's process) and the loop."""
        for server in self._servers.values():
            if server.requests is not None and server.stopped is None:
                self._loop.call_soon_threadsafe(server.requests.put_nowait, None)
        try:
            asyncio.run_coroutine_threadsafe(self._end_sessions(), self._loop).result(15)
        except (concurrent.futures.TimeoutError, RuntimeError):
            log.warning("MCP sessions did not all end in time", exc_info=True)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _end_sessions(self) -> None:
        """Sessions that ended on their own are left; a busy one (a call that hangs) is cancelled, and
        its transport's cleanup still runs in its own task before the loop stops."""
        tasks = [s.task for s in self._servers.values() if s.task is not None and not s.task.done()]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=2)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=10)


def _text(result: Any) -> str:
    """A call's content as text for the model: text parts joined, structured content as JSON."""
    parts = []
    for item in getattr(result, "content", None) or []:
        text = getattr(item, "text", None)
        parts.append(text if isinstance(text, str) else f"[{getattr(item, 'type', 'content')} omitted]")
    if not parts and getattr(result, "structured_content", None) is not None:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False))
    text = "\n".join(parts)
    if len(text) > MAX_RESULT_CHARS:
        text = text[:MAX_RESULT_CHARS] + f"\n[cut: the result had {len(text)} characters]"
    return text
