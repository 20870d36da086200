"""Tool calls end to end: a scripted tiny model with Qwen2.5's real template calls a tool through real
llama.cpp; the real `openai` client gets `message.tool_calls` and streamed `delta.tool_calls`; a
required call and a JSON answer decode under a grammar, so they parse and satisfy their schema."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import openai
import pytest

from localopen.app.context import AppContext
from localopen.core.options import AnswerOptions, LoadOptions, SamplingParams
from localopen.core.store.library_db import import_file
from localopen.engine.client import Engine
from localopen.engine.errors import ToolsUnsupportedError
from test_server import Running

from tiny_gguf import write_scripted_llama, write_tiny_llama

pytest.importorskip("llama_cpp")
TEMPLATES = Path(__file__).parent / "data" / "chat_templates"
QWEN = (TEMPLATES / "Qwen-Qwen2.5-7B-Instruct.jinja").read_text()
SPECIAL = {"<|im_start|>": 3, "<|im_end|>": 3, "<tool_call>": 3, "</tool_call>": 3}
CALL_SCRIPT = [
    "Checking.",
    "<tool_call>",
    '\n{"name": "get_weather", ',
    '"arguments": {"location": "Paris"}}\n',
    "</tool_call>",
    "<|im_end|>",
]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string", "maxLength": 12},
                "unit": {"enum": ["celsius", "fahrenheit"]},
            },
            "required": ["location"],
            "additionalProperties": False,
        },
    },
}
# The same tool with every argument required: a grammar must produce both.
STRICT_WEATHER = {
    "type": "function",
    "function": {
        **WEATHER["function"],
        "parameters": {**WEATHER["function"]["parameters"], "required": ["location", "unit"]},
    },
}
ASK = [{"role": "user", "content": "Weather in Paris?"}]


def gemma_server(gemma_path: Path, template: str) -> Running:
    """The real Gemma 3 270M served (its file has no template: the one named is used)."""
    ctx = AppContext()
    import_file(ctx.db, gemma_path)
    r = Running(ctx, options=LoadOptions(n_ctx=1024))
    r.server.template = template
    return r


@pytest.fixture(scope="module")
def caller(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tools")
    # Its byte vocabulary spells the template's tool instructions byte by byte: a roomy context.
    return write_scripted_llama(folder / "caller.gguf", CALL_SCRIPT, SPECIAL, chat_template=QWEN, context_length=4096)


@pytest.fixture
def server(caller: Path, tmp_path: Path) -> Iterator[Running]:
    ctx = AppContext()
    import_file(ctx.db, caller)
    import_file(ctx.db, write_tiny_llama(tmp_path / "plain-chat.gguf"))  # its template renders no tools
    r = Running(ctx, options=LoadOptions(n_ctx=2048))
    yield r
    r.stop()


def test_the_api_returns_the_models_tool_call(server: Running) -> None:
    reply = server.client.chat.completions.create(model="caller", messages=ASK, tools=[WEATHER])  # type: ignore[list-item]
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls or []
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"location": "Paris"}
    assert choice.message.content == "Checking."  # the text before the call, never the call's markup


def test_a_streamed_tool_call_arrives_as_openai_streams_it(server: Running) -> None:
    stream = server.client.chat.completions.create(model="caller", messages=ASK, tools=[WEATHER], stream=True)  # type: ignore[list-item]
    text, names, arguments, ids, finish = "", {}, {}, {}, None
    for chunk in stream:
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        text += delta.content or ""
        for part in delta.tool_calls or []:
            if part.id:
                ids[part.index] = part.id
            if part.function and part.function.name:
                names[part.index] = part.function.name
            if part.function and part.function.arguments:
                arguments[part.index] = arguments.get(part.index, "") + part.function.arguments
        finish = chunk.choices[0].finish_reason or finish
    assert finish == "tool_calls" and text == "Checking." and "<tool_call>" not in text
    assert names == {0: "get_weather"} and json.loads(arguments[0]) == {"location": "Paris"}
    assert ids[0].startswith("call_")


def test_the_tool_result_goes_back_to_the_model(server: Running) -> None:
    """A conversation with the call and its result renders through the model's template."""
    history = [
        *ASK,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"location": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temperature": 22}'},
    ]
    reply = server.client.chat.completions.create(model="caller", messages=history, tools=[WEATHER], max_tokens=8)  # type: ignore[arg-type,list-item]
    assert reply.choices[0].finish_reason in ("tool_calls", "stop", "length")
    bad = httpx.post(
        server.config.base_url + "/chat/completions",
        json={"model": "caller", "messages": [*ASK, {"role": "tool", "content": "22"}], "tools": [WEATHER]},
    )
    assert bad.status_code == 400 and "tool_call_id" in bad.json()["error"]["message"]
    stray = [*history[:2], {"role": "tool", "tool_call_id": "call_9", "content": "22"}]
    unmatched = httpx.post(server.config.base_url + "/chat/completions", json={"model": "caller", "messages": stray})
    assert unmatched.status_code == 400
    assert "answers no tool call of the assistant message before it" in unmatched.json()["error"]["message"]


def test_tool_choice_none_answers_in_words_and_a_template_without_tools_is_refused(server: Running) -> None:
    reply = server.client.chat.completions.create(
        model="caller",
        messages=ASK,
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice="none",
    )
    assert not reply.choices[0].message.tool_calls
    with pytest.raises(openai.BadRequestError) as refused:
        server.client.chat.completions.create(model="plain-chat", messages=ASK, tools=[WEATHER])  # type: ignore[list-item]
    assert refused.value.code == "tools_not_supported" and "does not offer tools" in refused.value.message
    with pytest.raises(openai.BadRequestError, match="not among 'tools'"):
        server.client.chat.completions.create(
            model="caller",
            messages=ASK,
            tools=[WEATHER],  # type: ignore[list-item]
            tool_choice={"type": "function", "function": {"name": "launch_rocket"}},
        )


def test_a_required_call_is_well_formed_by_construction(caller: Path) -> None:
    """Under tool_choice 'required' the tiny model (whose weights know nothing of JSON) can only write
    a call in its format whose arguments satisfy the tool's schema."""
    engine = Engine()
    try:
        engine.load(str(caller), LoadOptions(n_ctx=2048))
        for seed in (1, 2, 3):
            pieces = []
            options = AnswerOptions(tools=[STRICT_WEATHER], tool_choice="get_weather")
            stats = engine.answer(ASK, SamplingParams(max_tokens=120, seed=seed), None, pieces.append, options)
            calls = [p.tool_call for p in pieces if p.tool_call is not None]
            assert stats.tool_calls == len(calls) == 1, (seed, pieces)
            args = json.loads(calls[0].arguments)
            assert calls[0].name == "get_weather" and set(args) == {"location", "unit"}
            # (Its bytes need not be valid UTF-8: the tiny vocabulary is bytes; maxLength ends the string.)
            assert isinstance(args["location"], str)
            assert args["unit"] in ("celsius", "fahrenheit")
    finally:
        engine.shutdown()


def test_tools_for_a_model_that_cannot_call_them_are_a_typed_error(tmp_path: Path) -> None:
    engine = Engine()
    try:
        engine.load(str(write_tiny_llama(tmp_path / "no-tools.gguf")), LoadOptions(n_ctx=256))
        with pytest.raises(ToolsUnsupportedError):
            engine.answer(ASK, SamplingParams(max_tokens=2), None, None, AnswerOptions(tools=[WEATHER]))
    finally:
        engine.shutdown()


def test_gemma_answers_json_that_satisfies_the_schema(gemma_path: Path) -> None:
    """response_format json_schema on the real Gemma 3 270M (a base model: the 'gemma' template)."""
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "population": {"type": "integer", "minimum": 0}},
        "required": ["city", "population"],
        "additionalProperties": False,
    }
    r = gemma_server(gemma_path, "gemma")
    try:
        reply = r.client.chat.completions.create(
            model=gemma_path.stem,
            messages=[{"role": "user", "content": "Give the largest city of France and its population."}],
            response_format={"type": "json_schema", "json_schema": {"name": "city", "schema": schema, "strict": True}},
            max_tokens=80,
            temperature=0,
        )
        value = json.loads(reply.choices[0].message.content or "")
        assert set(value) == {"city", "population"} and isinstance(value["population"], int)
        assert value["population"] >= 0 and isinstance(value["city"], str)
    finally:
        r.stop()


def test_localopen_template_prints_the_prompt_the_engine_feeds(
    caller: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from localopen.cli.main import run_cli
    from localopen.core.chat import template as ct

    messages, tools = tmp_path / "messages.json", tmp_path / "tools.json"
    messages.write_text(json.dumps({"messages": ASK}))
    tools.write_text(json.dumps([WEATHER]))
    assert (
        run_cli(
            [
                "template",
                str(TEMPLATES / "Qwen-Qwen2.5-7B-Instruct.jinja"),
                "--messages",
                str(messages),
                "--tools",
                str(tools),
            ]
        )
        == 0
    )
    from_file = capsys.readouterr().out
    assert from_file == ct.render(
        ct.TemplateChoice("model", QWEN), ASK, {"bos_token": "", "eos_token": ""}, True, {}, [WEATHER]
    )
    assert "get_weather" in from_file and from_file.endswith("<|im_start|>assistant\n")
    # Through the engine, with the model's own template and special tokens: the same text.
    assert (
        run_cli(
            ["template", str(caller), "--messages", str(messages), "--tools", str(tools), "--ctx", "2048", "--json"]
        )
        == 0
    )
    through_engine = json.loads(capsys.readouterr().out)
    assert through_engine["prompt"] == from_file and through_engine["tokens"] > 100
    assert run_cli(["template", str(caller), "--messages", str(tools)]) == 1
    assert "must be a JSON object with a 'role'" in capsys.readouterr().err


def test_a_plain_completion_can_be_constrained_to_json_too(server: Running) -> None:
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    reply = httpx.post(
        server.config.base_url + "/completions",
        json={
            "model": "caller",
            "prompt": "A city:",
            "max_tokens": 60,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "c", "schema": schema},
            },
        },
        timeout=60,
    )
    assert reply.status_code == 200, reply.text
    assert isinstance(json.loads(reply.json()["choices"][0]["text"])["ok"], bool)


def test_an_auto_call_is_finished_under_a_grammar_once_opened(tmp_path: Path) -> None:
    """tool_choice 'auto': the model decides to call (it writes the opening marker); what follows is
    decoded under the call's grammar, so even a model that then writes nonsense makes a valid call."""
    script = ["Let me look.", "<tool_call>", "nonsense, not JSON", "</tool_call>", "<|im_end|>"]
    sloppy = write_scripted_llama(tmp_path / "sloppy.gguf", script, SPECIAL, chat_template=QWEN, context_length=4096)
    engine = Engine()
    try:
        engine.load(str(sloppy), LoadOptions(n_ctx=2048))
        pieces: list = []
        options = AnswerOptions(tools=[STRICT_WEATHER])
        engine.answer(ASK, SamplingParams(max_tokens=400, seed=3), None, pieces.append, options)
    finally:
        engine.shutdown()
    calls = [p.tool_call for p in pieces if p.tool_call is not None]
    assert len(calls) >= 1 and calls[0].name == "get_weather", pieces
    args = json.loads(calls[0].arguments)
    assert set(args) == {"location", "unit"} and args["unit"] in ("celsius", "fahrenheit")
    assert "".join(p.text for p in pieces if not p.reasoning) == "Let me look."  # the free text stays the model's


def test_gemma_makes_a_call_that_satisfies_the_tools_schema_under_a_grammar(gemma_path: Path) -> None:
    """The real Gemma 3 270M (its file has no template): served with the chatml-tools template and
    tool_choice naming the tool, its call parses and satisfies the tool's schema."""
    r = gemma_server(gemma_path, "chatml-tools")
    try:
        reply = r.client.chat.completions.create(
            model=gemma_path.stem,
            messages=ASK,
            tools=[STRICT_WEATHER],  # type: ignore[list-item]
            tool_choice={"type": "function", "function": {"name": "get_weather"}},
            max_tokens=80,
            temperature=0,
        )
        [call] = reply.choices[0].message.tool_calls or []
        args = json.loads(call.function.arguments)
        assert call.function.name == "get_weather" and set(args) == {"location", "unit"}
        assert isinstance(args["location"], str) and args["unit"] in ("celsius", "fahrenheit")
        assert reply.choices[0].finish_reason == "tool_calls"
    finally:
        r.stop()
