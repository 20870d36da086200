"""Tool calls with a real tool-trained model (Qwen2.5-Coder 0.5B Instruct, from ../shared/models),
through the local server and the real `openai` client, temperature 0: its calls come back as
`tool_calls` whether it writes them in its template's <tool_call> tags, bare or in a ```json fence;
requests that need no tool get none."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from localopen.app.context import AppContext
from localopen.core.options import LoadOptions
from localopen.core.store.library_db import import_file
from test_server import Running

from real_tool_prompts import NEEDS_NO_TOOL, NEEDS_TOOL, TOOLS, right_call

pytest.importorskip("llama_cpp")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def qwen_server(qwen_coder_05b: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Running, str]]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LOCALOPEN_HOME", str(tmp_path_factory.mktemp("home")))  # one home for the module's server
        ctx = AppContext()
        served = import_file(ctx.db, qwen_coder_05b)
        running = Running(ctx, options=LoadOptions(n_ctx=4096))
        yield running, served.name
        running.stop()


def test_qwen_05b_calls_tools_in_auto_and_answers_plainly_without_need(qwen_server: tuple[Running, str]) -> None:
    running, model = qwen_server
    right, outcomes = 0, []
    for request, tool, expect in NEEDS_TOOL:
        reply = running.client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": request}],
            tools=TOOLS,  # type: ignore[arg-type]
            tool_choice="auto",
            temperature=0,
            max_tokens=128,
        )
        calls = reply.choices[0].message.tool_calls or []
        said = [(c.function.name, json.loads(c.function.arguments)) for c in calls]  # type: ignore[union-attr]
        ok = len(said) >= 1 and right_call(*said[0], tool, expect)
        right += ok
        outcomes.append((request, said or reply.choices[0].message.content, ok))
        if calls:
            assert reply.choices[0].finish_reason == "tool_calls"
    print("\n".join(f"{'OK ' if ok else 'BAD'} {request} -> {said}" for request, said, ok in outcomes))
    assert right >= 8, outcomes
    for request in NEEDS_NO_TOOL:
        reply = running.client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": request}],
            tools=TOOLS,
            temperature=0,
            max_tokens=96,  # type: ignore[arg-type]
        )
        assert not reply.choices[0].message.tool_calls, (request, reply.choices[0].message)
        assert reply.choices[0].message.content


def test_a_streamed_call_written_as_bare_json_arrives_as_a_tool_call(qwen_server: tuple[Running, str]) -> None:
    running, model = qwen_server
    stream = running.client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": NEEDS_TOOL[0][0]}],
        tools=TOOLS,  # type: ignore[arg-type]
        temperature=0,
        max_tokens=128,
        stream=True,
    )
    names, text, finish = [], "", None
    for chunk in stream:
        delta = chunk.choices[0].delta if chunk.choices else None
        if delta is not None:
            text += delta.content or ""
            names += [c.function.name for c in delta.tool_calls or [] if c.function and c.function.name]
        if chunk.choices and chunk.choices[0].finish_reason:
            finish = chunk.choices[0].finish_reason
    assert names == ["get_weather"] and finish == "tool_calls"
    assert "{" not in text  # the call never leaked as answer text


def test_an_agent_loop_with_a_real_mcp_server_ends_in_a_grounded_answer(qwen_coder_05b: Path, tmp_path: Path) -> None:
    """`localopen chat --mcp` with the time server from the package index, as a user runs it: the
    loop ends in words that carry the tool's result (the repeated call is not run again)."""
    import sys

    from cli_helpers import run

    pytest.importorskip("mcp_server_time")
    config = tmp_path / "mcp.json"
    server = {"command": sys.executable, "args": ["-m", "mcp_server_time", "--local-timezone", "Europe/Paris"]}
    config.write_text(json.dumps({"mcpServers": {"time": server}}))
    args = ["chat", str(qwen_coder_05b), "-p", "What time is it in Tokyo right now?", "--mcp", str(config)]
    out = run(*args, "--allow-tools", "--temperature", "0", "--json", timeout=600)
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout)
    results = [json.loads(c["result"]) for c in answer["tool_calls"] if c["name"] == "get_current_time"]
    assert results and results[0]["timezone"] == "Asia/Tokyo"
    hour, minute = int(results[0]["datetime"][11:13]), results[0]["datetime"][14:16]
    # Grounded: the result's time as a person writes it (17:05, 5:05 or 05:05).
    written = {f"{hour:02d}:{minute}", f"{hour}:{minute}", f"{hour % 12 or 12}:{minute}"}
    assert any(t in answer["content"] for t in written), (written, answer["content"])
    assert not answer["content"].lstrip().startswith("{")


def test_a_required_call_may_be_several_when_parallel_calls_are_allowed(qwen_server: tuple[Running, str]) -> None:
    """tool_choice required with parallel_tool_calls (OpenAI's default): 'Paris and Tokyo' is two
    calls, each well-formed by the grammar; with parallel_tool_calls false, exactly one."""
    running, model = qwen_server
    ask = [{"role": "user", "content": "What is the weather in Paris and in Tokyo? Look up both cities."}]
    weather = [TOOLS[0]]
    both = running.client.chat.completions.create(
        model=model,
        messages=ask,
        tools=weather,
        tool_choice="required",
        temperature=0,
        max_tokens=160,  # type: ignore[arg-type]
    )
    cities = {json.loads(c.function.arguments)["city"].lower() for c in both.choices[0].message.tool_calls or []}  # type: ignore[union-attr]
    assert cities == {"paris", "tokyo"}, both.choices[0].message
    one = running.client.chat.completions.create(
        model=model,
        messages=ask,
        tools=weather,  # type: ignore[arg-type]
        tool_choice="required",
        parallel_tool_calls=False,
        temperature=0,
        max_tokens=160,
    )
    assert len(one.choices[0].message.tool_calls or []) == 1


WEATHER = {
    "type": "function",
    "function": {
        "name": "weather",
        "description": "The current weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


@pytest.mark.parametrize("stream", [False, True])
def test_an_api_agent_loop_ends_in_words_from_the_result_when_the_model_repeats_its_call(
    qwen_server: tuple[Running, str], stream: bool
) -> None:
    """A client's agent loop, as LangChain's and the Agents SDK's run: the call, its result sent back.
    Qwen2.5-Coder then writes the same call again (run forever, the loop never ends); localopen does
    not return it, and the model answers in words from the result it has."""
    running, model = qwen_server
    ask = [{"role": "user", "content": "What is the weather in Paris right now? Use the tool."}]
    first = running.client.chat.completions.create(
        model=model,
        messages=ask,  # type: ignore[arg-type]
        tools=[WEATHER],  # type: ignore[list-item]
        temperature=0,
        max_tokens=128,
    )
    [call] = first.choices[0].message.tool_calls or []
    assert call.function.name == "weather" and json.loads(call.function.arguments) == {"city": "Paris"}  # type: ignore[union-attr]
    result = "Paris: 18 degrees Celsius, light rain"
    history = [
        *ask,
        {"role": "assistant", "content": "", "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": result},
    ]
    request = {"model": model, "messages": history, "tools": [WEATHER], "temperature": 0, "max_tokens": 128}
    if stream:
        text, calls, finish = "", 0, None
        for chunk in running.client.chat.completions.create(**request, stream=True):  # type: ignore[call-overload]
            delta = chunk.choices[0].delta if chunk.choices else None
            text += (delta.content or "") if delta else ""
            calls += len(delta.tool_calls or []) if delta else 0
            finish = chunk.choices[0].finish_reason if chunk.choices else finish
    else:
        reply = running.client.chat.completions.create(**request)  # type: ignore[call-overload]
        text, calls, finish = (
            reply.choices[0].message.content or "",
            len(reply.choices[0].message.tool_calls or []),
            reply.choices[0].finish_reason,
        )
    assert calls == 0 and finish == "stop"
    assert "18" in text, text


def test_check_tools_scores_what_a_real_models_calls_deserve_and_says_how_they_were_written(
    qwen_coder_05b: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from localopen.app.conversation import agent_check

    monkeypatch.setenv("LOCALOPEN_HOME", str(tmp_path))
    result = agent_check.check(AppContext(), qwen_coder_05b, LoadOptions(n_ctx=4096))
    by_name = {o.task: o for o in result.outcomes}
    # It writes its calls as bare JSON, not in <tool_call> tags: read as calls, and said so.
    assert by_name["one call with typed arguments"].passed, by_name
    assert "written outside the template's hermes format" in by_name["one call with typed arguments"].detail
    assert by_name["no call when none is needed"].passed
    assert sum(o.passed for o in result.outcomes) >= 3
