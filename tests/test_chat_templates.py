"""Real chat templates render in localopen exactly as in transformers, the renderer model makers test with.

The templates are llama.cpp's collection of upstream models' templates, pinned in
tests/data/chat_templates (see its README for where they come from and their licences).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from localopen.core.chat import template as ct

TEMPLATES = sorted((Path(__file__).parent / "data" / "chat_templates").glob("*.jinja"))
SPECIAL = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"}

USER = {"role": "user", "content": "Hello! What is 2 + 2? Answer with <b>one</b> word & a 'quote'."}
SYSTEM = {"role": "system", "content": "You are a concise assistant. Réponds en français si on te parle français."}
ANSWER = {"role": "assistant", "content": "Four."}
THOUGHT = {"role": "assistant", "content": "Four.", "reasoning_content": "2 + 2 = 4, one word: four."}
FOLLOW_UP = {"role": "user", "content": "And 3 + 3? 日本語でも."}

# Tools as OpenAI sends them (function schemas), and a conversation that calls them: the call's
# arguments as a dict (transformers' convention), the results in `tool` messages with their ids.
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string", "description": "City name, e.g. Paris"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["location"],
        },
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "The local time in a timezone.",
        "parameters": {"type": "object", "properties": {"timezone": {"type": "string"}}, "required": ["timezone"]},
    },
}
TOOLS = [WEATHER, TIME]
ASK_WEATHER = {"role": "user", "content": "What is the weather in Paris, and the time in Tokyo?"}


def _call(ident: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"id": ident, "type": "function", "function": {"name": name, "arguments": arguments}}


ONE_CALL = {"role": "assistant", "content": "", "tool_calls": [_call("call_1", "get_weather", {"location": "Paris"})]}
TWO_CALLS = {
    "role": "assistant",
    "content": "",
    "tool_calls": [
        _call("call_1", "get_weather", {"location": "Paris", "unit": "celsius"}),
        _call("call_2", "get_time", {"timezone": "Asia/Tokyo"}),
    ],
}
RESULT_1 = {"role": "tool", "tool_call_id": "call_1", "name": "get_weather", "content": '{"temperature": 22}'}
RESULT_2 = {"role": "tool", "tool_call_id": "call_2", "name": "get_time", "content": "09:30"}

# (name, messages, add_generation_prompt, switches, tools)
Conversation = tuple[str, list[dict[str, Any]], bool, dict[str, Any], list[dict[str, Any]] | None]
CONVERSATIONS: list[Conversation] = [
    ("user", [USER], True, {}, None),
    ("system+user", [SYSTEM, USER], True, {}, None),
    ("multi-turn", [USER, ANSWER, FOLLOW_UP], True, {}, None),
    ("multi-turn with reasoning", [SYSTEM, USER, THOUGHT, FOLLOW_UP], True, {}, None),
    ("ends with the answer", [USER, ANSWER], False, {}, None),
    ("thinking off", [SYSTEM, USER], True, {"enable_thinking": False}, None),
    ("thinking on", [USER, ANSWER, FOLLOW_UP], True, {"enable_thinking": True}, None),
]
TOOL_CONVERSATIONS: list[Conversation] = [
    ("a tool list", [SYSTEM, ASK_WEATHER], True, {}, TOOLS),
    ("one call and its result", [ASK_WEATHER, ONE_CALL, RESULT_1], True, {}, TOOLS),
    ("two parallel calls and their results", [ASK_WEATHER, TWO_CALLS, RESULT_1, RESULT_2], True, {}, TOOLS),
]


def reference(
    source: str, messages: list[dict[str, Any]], add_generation_prompt: bool, switches: dict, tools: Any = None
) -> str:
    from transformers.utils.chat_template_utils import render_jinja_template

    logging.getLogger("transformers").setLevel(logging.ERROR)
    rendered = render_jinja_template(
        [messages],
        tools=tools,
        chat_template=source,
        add_generation_prompt=add_generation_prompt,
        **SPECIAL,
        **switches,
    )
    return rendered[0][0] if isinstance(rendered, tuple) else rendered[0]


def localopen(
    source: str, messages: list[dict[str, Any]], add_generation_prompt: bool, switches: dict, tools: Any = None
) -> str:
    return ct.render(ct.TemplateChoice("model", source), messages, SPECIAL, add_generation_prompt, switches, tools)


def renders_tools(source: str) -> bool:
    """A template that reads `tools` and writes a tool's name into the prompt (others ignore tools)."""
    try:
        with_tools = reference(source, [SYSTEM, ASK_WEATHER], True, {}, TOOLS)
    except Exception:  # noqa: BLE001 - transformers cannot render it: no tools either
        return False
    return "get_weather" in with_tools


def compare(path: Path, conversations: list[Conversation] = CONVERSATIONS) -> tuple[int, int, list[str]]:
    """(conversations transformers renders, of which identical in localopen, differences)."""
    source = path.read_text(encoding="utf-8")
    rendered = identical = 0
    problems = []
    for name, messages, gen, switches, tools in conversations:
        try:
            expected = reference(source, messages, gen, switches, tools)
        except Exception:  # noqa: BLE001 - transformers cannot render it either: nothing to compare
            continue
        rendered += 1
        try:
            actual = localopen(source, messages, gen, switches, tools)
        except ct.TemplateRenderError as exc:
            problems.append(f"{name}: localopen failed: {exc}")
            continue
        if actual == expected:
            identical += 1
        else:
            problems.append(f"{name}: differs\n--- transformers\n{expected!r}\n--- localopen\n{actual!r}")
    return rendered, identical, problems


def test_the_pinned_collection_is_there() -> None:
    assert len(TEMPLATES) >= 60


@pytest.mark.parametrize("path", TEMPLATES, ids=[p.stem for p in TEMPLATES])
def test_real_template_renders_as_transformers_does(path: Path) -> None:
    rendered, identical, problems = compare(path)
    assert not problems, "\n".join(problems)
    assert identical == rendered


def test_report_how_many_templates_render(capsys: pytest.CaptureFixture[str]) -> None:
    totals = [compare(p) for p in TEMPLATES]
    templates_rendered = sum(1 for r, _, _ in totals if r)
    templates_identical = sum(1 for r, i, _ in totals if r and i == r)
    conversations = sum(r for r, _, _ in totals)
    with capsys.disabled():
        print(
            f"\nchat templates: {templates_identical} of {templates_rendered} that transformers renders are identical "
            f"in localopen ({len(TEMPLATES)} in the collection; {conversations} conversations compared)"
        )
    # Nearly all real templates render some ordinary conversation; all of those must be identical.
    assert templates_rendered >= len(TEMPLATES) - 5
    assert templates_identical == templates_rendered


TOOL_TEMPLATES = [p for p in TEMPLATES if renders_tools(p.read_text(encoding="utf-8"))]


def test_the_collection_has_the_tool_formats_people_use() -> None:
    names = {p.stem for p in TOOL_TEMPLATES}
    for family in (
        "Hermes-3",
        "Qwen2.5",
        "Qwen3-0.6B",
        "Qwen3-Coder",
        "Llama-3.1",
        "Mistral-Nemo",
        "gpt-oss",
        "granite",
    ):
        assert any(family in n for n in names), family
    assert len(TOOL_TEMPLATES) >= 30


@pytest.mark.parametrize("path", TOOL_TEMPLATES, ids=[p.stem for p in TOOL_TEMPLATES])
def test_tool_conversations_render_as_transformers_does(path: Path) -> None:
    rendered, identical, problems = compare(path, TOOL_CONVERSATIONS)
    assert not problems, "\n".join(problems)
    assert rendered >= 1 and identical == rendered


def test_report_how_many_tool_templates_render(capsys: pytest.CaptureFixture[str]) -> None:
    totals = [compare(p, TOOL_CONVERSATIONS) for p in TOOL_TEMPLATES]
    identical = sum(1 for r, i, _ in totals if r and i == r)
    conversations = sum(r for r, _, _ in totals)
    with capsys.disabled():
        print(
            f"\nchat templates with tools: {identical} of {len(TOOL_TEMPLATES)} render tool conversations identically "
            f"to transformers ({conversations} conversations compared)"
        )
    assert identical == len(TOOL_TEMPLATES)


def test_openai_string_arguments_reach_the_template_as_a_dict() -> None:
    source = (
        "{% for m in messages %}{% for c in m.tool_calls or [] %}{{ c.function.arguments.location }}"
        "{% endfor %}{% endfor %}"
    )
    call = {"id": "c", "type": "function", "function": {"name": "get_weather", "arguments": '{"location": "Paris"}'}}
    assert localopen(source, [{"role": "assistant", "content": "", "tool_calls": [call]}], False, {}) == "Paris"


def test_loop_controls_and_generation_tag_render() -> None:
    source = (
        "{% for m in messages %}{% if m.role == 'system' %}{% continue %}{% endif %}"
        "{% generation %}[{{ m.content }}]{% endgeneration %}{% if loop.index > 2 %}{% break %}{% endif %}"
        "{% endfor %}"
    )
    messages = [SYSTEM, USER, ANSWER, FOLLOW_UP]
    out = localopen(source, messages, True, {})
    assert out == f"[{USER['content']}][{ANSWER['content']}]"


def test_tojson_keeps_unicode_and_honours_indent() -> None:
    source = "{{ messages[0] | tojson(indent=2) }}|{{ {'a': '<é>'} | tojson(separators=(',', ':')) }}"
    out = localopen(source, [{"role": "user", "content": "日本 <b>"}], False, {})
    assert out == '{\n  "role": "user",\n  "content": "日本 <b>"\n}|{"a":"<é>"}'


def test_raise_exception_is_a_clear_message() -> None:
    with pytest.raises(ct.TemplateRenderError, match="Conversation roles must alternate"):
        localopen("{{ raise_exception('Conversation roles must alternate') }}", [USER], True, {})


@pytest.mark.parametrize(
    "source",
    [
        "{% set ns = namespace(_x=1) %}",
        "{% set ns = namespace() %}{% set ns.__class__ = 1 %}",
        "{{ dict.__class__.__subclasses__() }}",
        "{{ (messages|first).__class__.__mro__ }}",
        "{{ strftime_now.__globals__ }}",
    ],
)
def test_the_sandbox_still_refuses_python_internals(source: str) -> None:
    with pytest.raises(ct.TemplateRenderError):
        out = localopen(source, [USER], True, {})
        # Jinja renders an undefined attribute as empty: that is refusal too, as long as nothing leaks.
        assert "class" not in out and "function" not in out and "module" not in out
        raise ct.TemplateRenderError("rendered nothing")


def test_traits_read_switches_and_markers() -> None:
    qwen3 = (TEMPLATES[0].parent / "Qwen-Qwen3-0.6B.jinja").read_text()
    gpt_oss = (TEMPLATES[0].parent / "openai-gpt-oss-120b.jinja").read_text()
    granite = (TEMPLATES[0].parent / "ibm-granite-granite-3.3-2B-Instruct.jinja").read_text()
    assert ct.traits(qwen3).thinking_switch == "enable_thinking" and "<|im_end|>" in ct.traits(qwen3).end_markers
    t = ct.traits(gpt_oss)
    assert t.harmony and "<|end|>" not in t.end_markers and "<|return|>" in t.end_markers
    assert t.thinking_switch is None  # gpt-oss reads message.thinking, but has no on/off switch
    assert ct.traits(granite).thinking_switch == "thinking"
    assert ct.traits(None) == ct.TemplateTraits(None, False, ())


def test_suggestion_comes_from_the_files_metadata() -> None:
    vocab = {"<|im_start|>", "<|im_end|>"}
    s = ct.suggest("llama", "", vocab.__contains__)
    assert s.name == "chatml" and "<|im_start|>" in s.reason  # a llama fine-tune in ChatML
    assert ct.suggest("llama", "llama-bpe", set().__contains__).name == "llama3"
    assert ct.suggest("gemma3").name == "gemma"
    assert ct.suggest("some-new-arch").name == "chatml"
    with pytest.raises(ct.TemplateNotChosenError, match="because its vocabulary"):
        ct.choose(None, None, s)


WEATHER = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city.",
            "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
        },
    }
]


def _rendered(name: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> str:
    source = (TEMPLATES[0].parent / f"{name}.jinja").read_text()
    return ct.render(ct.TemplateChoice(name, source, ()), messages, {"bos_token": "<s>"}, tools=tools)


def test_tools_a_template_never_describes_are_described_as_its_makers_do() -> None:
    # DeepSeek V3.1's template writes calls but never shows the tools: the system message does.
    asked = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Weather in Paris?"}]
    with_tools = _rendered("deepseek-ai-DeepSeek-V3.1", asked, WEATHER)
    assert "Be brief.\n\n## Tools\nYou have access to the following tools:\n\n### get_weather" in with_tools
    assert 'Parameters: {"type": "object"' in with_tools and "<｜tool▁sep｜>tool_call_arguments" in with_tools
    assert "## Tools" not in _rendered("deepseek-ai-DeepSeek-V3.1", asked, None)
    # FireFunction v2 reads them as `functions` (JSON text) with today's date, as llama.cpp passes them.
    fire = _rendered("fireworks-ai-llama-3-firefunction-v2", asked[1:], WEATHER)
    assert '"name": "get_weather"' in fire and "Today is " in fire and " GMT." in fire
