"""Any schema or tool a client sends: Pydantic's $defs/$ref, recursion, a reference outside the
schema, a tool name with a quote — each answers or is refused in words (HTTP 400 naming what is
wrong), and the engine stays alive for the next request (real llama.cpp, real HTTP, real openai)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import openai
import pytest

from localopen.app.context import AppContext
from localopen.core.chat import json_schema
from localopen.core.chat.tool_calls import CONSTRAINED, call_schema, name_problem
from localopen.core.options import LoadOptions
from localopen.core.store.library_db import import_file
from test_server import Running
from test_tool_use import CALL_SCRIPT, QWEN, SPECIAL

from tiny_gguf import write_scripted_llama

pytest.importorskip("llama_cpp")
# What Pydantic writes for `class Args(BaseModel): where: Location; days: int | None = None`.
PYDANTIC = {
    "$defs": {
        "Unit": {"enum": ["celsius", "fahrenheit"], "title": "Unit", "type": "string"},
        "Location": {
            "properties": {"city": {"title": "City", "type": "string"}, "unit": {"$ref": "#/$defs/Unit"}},
            "required": ["city"],
            "title": "Location",
            "type": "object",
        },
    },
    "properties": {
        "where": {"$ref": "#/$defs/Location"},
        "days": {"anyOf": [{"type": "integer", "minimum": 1, "maximum": 14}, {"type": "null"}], "default": None},
    },
    "required": ["where"],
    "title": "Args",
    "type": "object",
}
TREE = {
    "$defs": {
        "Node": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}},
            },
            "required": ["name"],
        }
    },
    "$ref": "#/$defs/Node",
}
SELF = {"type": "object", "properties": {"name": {"type": "string"}, "next": {"$ref": "#"}}, "required": ["name"]}


def _tool(name: str, parameters: dict) -> dict:
    return {"type": "function", "function": {"name": name, "parameters": parameters}}


def test_definitions_are_lifted_and_references_follow_them() -> None:
    schema = call_schema([_tool("a", PYDANTIC), _tool("b", SELF)], CONSTRAINED["hermes"])
    assert set(schema["$defs"]) == {"t0-Unit", "t0-Location", "t1-Self"}
    text = json.dumps(schema)
    assert '"#/$defs/Location"' not in text and '"#/$defs/t0-Location"' in text and '"#/$defs/t1-Self"' in text
    whole = json_schema.whole(TREE)
    assert whole["type"] == "object" and whole["properties"]["children"]["items"] == {"$ref": "#/$defs/Node"}
    with pytest.raises(json_schema.SchemaError, match="points outside"):
        json_schema.whole({"properties": {"x": {"$ref": "https://example.com/s.json"}}})


def test_tool_names_are_checked_as_openai_checks_them() -> None:
    assert name_problem([_tool("get_weather", {}), _tool("x-1", {})]) is None
    assert "must match ^[a-zA-Z0-9_-]{1,64}$" in (name_problem([_tool('a"b', {})]) or "")
    assert "must match" in (name_problem([_tool("x" * 65, {})]) or "")
    assert "Two tools are named" in (name_problem([_tool("a", {}), _tool("a", {})]) or "")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    folder = tmp_path_factory.mktemp("schemas")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LOCALOPEN_HOME", str(folder / "home"))
        model = write_scripted_llama(
            folder / "caller.gguf", CALL_SCRIPT, SPECIAL, chat_template=QWEN, context_length=4096
        )
        ctx = AppContext()
        import_file(ctx.db, model)
        running = Running(ctx, options=LoadOptions(n_ctx=4096))
        yield running
        running.stop()


def _alive(running: Running) -> None:
    reply = running.client.chat.completions.create(model="caller", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message is not None


@pytest.mark.parametrize("choice", ["auto", "required"])
def test_pydantic_tool_parameters_are_served_in_auto_and_required(served: Running, choice: str) -> None:
    reply = served.client.chat.completions.create(
        model="caller",
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[_tool("get_weather", PYDANTIC)],  # type: ignore[list-item]
        tool_choice=choice,  # type: ignore[arg-type]
        max_tokens=64,
    )
    assert reply.choices[0].message is not None


def test_a_recursive_response_format_is_served(served: Running) -> None:
    for schema in (TREE, SELF):
        reply = served.client.chat.completions.create(
            model="caller",
            messages=[{"role": "user", "content": "A tree, please."}],
            response_format={"type": "json_schema", "json_schema": {"name": "t", "schema": schema}},  # type: ignore[typeddict-item]
            max_tokens=48,
        )
        assert reply.choices[0].message is not None


@pytest.mark.parametrize(
    ("tools", "response_format", "said"),
    [
        ([_tool('a"b', {"type": "object"})], None, "Invalid tool name"),
        ([_tool("a b", {"type": "object"})], None, "Invalid tool name"),
        ([_tool("ok", {"properties": {"x": {"$ref": "other.json#/X"}}})], None, "points outside"),
        (None, {"properties": {"x": {"$ref": "#/$defs/Missing"}}, "$ref": "#/$defs/Missing"}, "names no definition"),
    ],
)
def test_a_schema_or_name_no_grammar_can_take_is_a_400_and_the_engine_lives(
    served: Running, tools: list | None, response_format: dict | None, said: str
) -> None:
    kwargs: dict = {"tools": tools, "tool_choice": "required"} if tools else {}
    if response_format is not None:
        kwargs["response_format"] = {"type": "json_schema", "json_schema": {"name": "x", "schema": response_format}}
    with pytest.raises(openai.BadRequestError) as refused:
        served.client.chat.completions.create(
            model="caller", messages=[{"role": "user", "content": "Go."}], max_tokens=16, **kwargs
        )
    assert said in str(refused.value)
    _alive(served)
