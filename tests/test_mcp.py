"""MCP servers as tools: real servers built with the official SDK (stdio and Streamable HTTP), one
that crashes and one that hangs; the tool loop with a scripted model through real llama.cpp; and
`localopen chat --mcp` as a user runs it."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from localopen.app.context import AppContext
from localopen.app.conversation.chat import ChatSession
from localopen.app.conversation.mcp_tools import McpConnections, McpError, parse_config, read_config
from localopen.app.conversation.tool_loop import answer_with_tools
from localopen.core.options import LoadOptions, SamplingParams
from test_tool_use import ASK, caller  # noqa: F401 - the scripted model that calls get_weather

pytest.importorskip("mcp")
SERVERS = Path(__file__).parent / "mcp_servers.py"


def stdio(mode: str) -> dict:
    return {"command": sys.executable, "args": [str(SERVERS), mode]}


@pytest.fixture
def weather() -> Iterator[McpConnections]:
    connections = McpConnections(parse_config({"mcpServers": {"weather": stdio("ok")}}))
    connections.connect()
    yield connections
    connections.close()


def test_a_stdio_server_offers_its_tools_and_answers_calls(weather: McpConnections) -> None:
    assert weather.problems == {}
    tools = {t.name: t for t in weather.tools()}
    assert set(tools) == {"get_weather", "fail"}
    schema = tools["get_weather"].openai()["function"]["parameters"]
    assert schema["properties"]["location"]["type"] == "string" and schema["required"] == ["location"]
    result = weather.call("get_weather", {"location": "Paris"})
    assert result.text == "22 °C and sunny in Paris" and not result.is_error and result.ms > 0
    failed = weather.call("fail", {"reason": "nope"})
    assert failed.is_error
    assert weather.call("launch_rocket", {}).is_error


def test_a_server_that_crashes_or_hangs_gives_a_clear_error_and_never_a_stuck_chat() -> None:
    connections = McpConnections(parse_config({"mcpServers": {"crash": stdio("crash"), "hang": stdio("hang")}}))
    connections.connect()
    try:
        # Both answer list_tools; their tools share names, so the second is prefixed by its server.
        names = {t.name for t in connections.tools()}
        assert "get_weather" in names and "hang__get_weather" in names
        started = time.monotonic()
        crashed = connections.call("get_weather", {"location": "Paris"})
        assert crashed.is_error and time.monotonic() - started < 10
        hung = connections.call("hang__get_weather", {"location": "Paris"}, timeout=2)
        assert hung.is_error and "did not answer within 2 s" in hung.text
        again = connections.call("get_weather", {"location": "Paris"})  # the crashed server stays gone
        assert again.is_error and "'crash' has stopped" in again.text
    finally:
        started = time.monotonic()
        connections.close()
        assert time.monotonic() - started < 10
    # No server process outlives its session (the hung one included).
    import psutil

    time.sleep(0.5)
    left = [p for p in psutil.Process().children(recursive=True) if "mcp_servers.py" in " ".join(p.cmdline())]
    assert left == []


def test_a_server_that_cannot_start_is_named_and_the_others_still_serve() -> None:
    config = {"mcpServers": {"weather": stdio("ok"), "missing": {"command": "/no/such/mcp-server"}}}
    connections = McpConnections(parse_config(config))
    connections.connect()
    try:
        assert "missing" in connections.problems and "not found" in connections.problems["missing"]
        assert connections.call("get_weather", {"location": "Oslo"}).text == "22 °C and sunny in Oslo"
    finally:
        connections.close()


def test_a_streamable_http_server() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen([sys.executable, str(SERVERS), "http", str(port)], stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        connections = McpConnections(parse_config({"mcpServers": {"web": {"url": f"http://127.0.0.1:{port}/mcp"}}}))
        connections.connect()
        try:
            assert connections.problems == {}
            assert connections.call("get_weather", {"location": "Rome"}).text == "22 °C and sunny in Rome"
        finally:
            connections.close()
    finally:
        process.terminate()
        process.wait(10)


def test_the_config_is_claude_desktops_shape_and_errors_are_words(tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    path.write_text(
        json.dumps(
            {"mcpServers": {"a": {"command": "x", "args": ["1"], "env": {"K": "v"}}, "b": {"url": "http://h/mcp"}}}
        )
    )
    a, b = read_config(path)
    assert (a.command, a.args, a.env, b.url) == ("x", ["1"], {"K": "v"}, "http://h/mcp")
    with pytest.raises(McpError, match="'command'"):
        parse_config({"mcpServers": {"c": {"args": []}}})
    path.write_text("{oops")
    with pytest.raises(McpError, match="not valid JSON"):
        read_config(path)


def test_the_tool_loop_runs_allowed_calls_and_gives_results_back(
    caller: Path,  # noqa: F811
    weather: McpConnections,
) -> None:
    session = ChatSession(AppContext())
    try:
        session.load(caller, LoadOptions(n_ctx=2048))
        asked: list = []
        denied = answer_with_tools(
            session,
            ASK,
            SamplingParams(max_tokens=40),
            None,
            weather,
            lambda call: asked.append(call) or False,
            max_rounds=1,
        )
        assert denied.runs[0].result.text == "The user did not allow this call."
        assert asked[0].name == "get_weather"
        outcome = answer_with_tools(
            session, ASK, SamplingParams(max_tokens=40), None, weather, lambda call: True, max_rounds=1
        )
        run = outcome.runs[0]
        assert run.call.name == "get_weather" and run.result.text == "22 °C and sunny in Paris"
        # After the one round allowed, the model answers with tools off: the loop ends in words.
        roles = [m["role"] for m in outcome.messages]
        assert roles == ["assistant", "tool", "assistant"]
        assert "tool_calls" not in outcome.messages[2] and len(outcome.runs) == 1
        assert outcome.note == "After 1 round of tool calls the model was asked to answer in words."
        assert outcome.messages[0]["tool_calls"][0]["function"]["name"] == "get_weather"
        assert outcome.messages[1]["tool_call_id"] == run.call.id
        # The scripted model repeats its call: not run again, it answers from the result it has.
        again = answer_with_tools(session, ASK, SamplingParams(max_tokens=40), None, weather, lambda call: True)
        assert len(again.runs) == 1 and [m["role"] for m in again.messages] == ["assistant", "tool", "assistant"]
        assert "same arguments" in again.note
    finally:
        session.shutdown()


def test_localopen_chat_with_mcp_as_a_user_runs_it(caller: Path, tmp_path: Path) -> None:  # noqa: F811
    from cli_helpers import run

    config = tmp_path / "mcp.json"
    config.write_text(json.dumps({"mcpServers": {"weather": stdio("ok")}}))
    args = ["chat", str(caller), "-p", "Weather in Paris?", "--mcp", str(config), "--ctx", "2048"]
    out = run(*args, "--allow-tools", "--max-tool-rounds", "1", "--json")
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout)
    assert answer["tool_calls"][0]["name"] == "get_weather"
    assert answer["tool_calls"][0]["arguments"] == {"location": "Paris"}
    assert answer["tool_calls"][0]["result"] == "22 °C and sunny in Paris"
    assert "Tools from MCP: get_weather, fail" in out.stderr
    # Without --allow-tools and no terminal to ask: the call is not run, and it says so.
    refused = run(*args, "--max-tool-rounds", "1", "--json")
    assert refused.returncode == 0 and "pass --allow-tools" in refused.stderr
    assert json.loads(refused.stdout)["tool_calls"][0]["result"] == "The user did not allow this call."
