"""Tool calls in each format, parsed from the answer as it streams: the cases follow llama.cpp's
tests/test-chat.cpp (the same outputs, the same calls), each fed whole, split at every position,
and one character at a time — a call is never shown as text, and text around it is kept."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from localopen.core.chat import template as ct
from localopen.core.chat import tool_calls
from localopen.core.chat.answer_stream import AnswerStream
from localopen.core.chat.tool_calls import FORMATS, ToolCallStream
from localopen.core.records import AnswerPiece

TEMPLATES = Path(__file__).parent / "data" / "chat_templates"
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {"location": {"type": "string"}, "days": {"type": "integer"}},
                "required": ["location"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_time",
            "parameters": {"type": "object", "properties": {"timezone": {"type": "string"}}},
        },
    },
]
PARIS = ("get_weather", {"location": "Paris"})
TOKYO = ("get_time", {"timezone": "Asia/Tokyo"})

# (format, model output, the answer's text, the calls)
CASES: list[tuple[str, str, str, list[tuple[str, dict[str, Any]]]]] = [
    (
        "hermes",
        'Let me check.<tool_call>\n{"name": "get_weather", "arguments": {"location": "Paris"}}\n</tool_call>',
        "Let me check.",
        [PARIS],
    ),
    (
        "hermes",
        '<tool_call>\n{"name": "get_weather", "arguments": {"location": "Paris"}}\n</tool_call>\n'
        '<tool_call>\n{"name": "get_time", "arguments": {"timezone": "Asia/Tokyo"}}\n</tool_call>',
        "",
        [PARIS, TOKYO],
    ),
    ("hermes", "No tools needed: 2 + 2 = 4 < 5.", "No tools needed: 2 + 2 = 4 < 5.", []),
    (
        "qwen3_coder",
        "<tool_call>\n<function=get_weather>\n<parameter=location>\nParis\n</parameter>\n"
        "<parameter=days>\n3\n</parameter>\n</function>\n</tool_call>",
        "",
        [("get_weather", {"location": "Paris", "days": 3})],
    ),
    (
        "qwen3_coder",  # a string parameter stays a string even when it reads as a number
        "<tool_call>\n<function=get_weather>\n<parameter=location>\n1984\n</parameter>\n</function>\n</tool_call>",
        "",
        [("get_weather", {"location": "1984"})],
    ),
    (
        "glm",
        "I'll look.<tool_call>get_weather\n<arg_key>location</arg_key>\n<arg_value>Paris</arg_value>\n</tool_call>",
        "I'll look.",
        [PARIS],
    ),
    ("llama3_json", '{"name": "get_weather", "parameters": {"location": "Paris"}}', "", [PARIS]),
    (
        "llama3_json",
        '<|python_tag|>{"name": "get_weather", "parameters": {"location": "Paris"}}',
        "",
        [PARIS],
    ),
    ("llama3_json", "{not a call}, said the model", "{not a call}, said the model", []),
    ("llama3_json", "Hello {name}!", "Hello {name}!", []),
    (
        "mistral",
        '[TOOL_CALLS][{"name": "get_weather", "arguments": {"location": "Paris"}, "id": "abc123def"}]',
        "",
        [PARIS],
    ),
    (
        "mistral",
        '[TOOL_CALLS]get_weather[ARGS]{"location": "Paris"}[TOOL_CALLS]get_time[ARGS]{"timezone": "Asia/Tokyo"}',
        "",
        [PARIS, TOKYO],
    ),
    (
        "mistral_args",
        '[TOOL_CALLS]get_weather[ARGS]{"location": "Paris"}[TOOL_CALLS]get_time[ARGS]{"timezone": "Asia/Tokyo"}',
        "",
        [PARIS, TOKYO],
    ),
    ("granite", '<|tool_call|>[{"name": "get_weather", "arguments": {"location": "Paris"}}]', "", [PARIS]),
    (
        "command_r",
        '<|START_ACTION|>[{"tool_call_id": "0", "tool_name": "get_weather", "parameters": {"location": "Paris"}}]'
        "<|END_ACTION|>",
        "",
        [PARIS],
    ),
    (
        "command_r_plus",
        'Action:\n```json\n[{"tool_name": "get_weather", "parameters": {"location": "Paris"}}]\n```',
        "",
        [PARIS],
    ),
    (
        "deepseek",  # R1
        "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n"
        '{"location": "Paris"}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>',
        "",
        [PARIS],
    ),
    (
        "deepseek",  # V3.1
        "Sure.<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>"
        '{"location": "Paris"}<｜tool▁call▁end｜><｜tool▁call▁begin｜>get_time<｜tool▁sep｜>'
        '{"timezone": "Asia/Tokyo"}<｜tool▁call▁end｜><｜tool▁calls▁end｜>',
        "Sure.",
        [PARIS, TOKYO],
    ),
    (
        "kimi",
        "<|tool_calls_section_begin|><|tool_call_begin|>functions.get_weather:0<|tool_call_argument_begin|>"
        '{"location": "Paris"}<|tool_call_end|><|tool_calls_section_end|>',
        "",
        [PARIS],
    ),
    ("firefunction", ' functools[{"name": "get_weather", "arguments": {"location": "Paris"}}]', "", [PARIS]),
    ("lfm2", '<|tool_call_start|>[get_weather(location="Paris")]<|tool_call_end|>Checking.', "Checking.", [PARIS]),
    (
        "minimax",
        '<minimax:tool_call>\n<invoke name="get_weather">\n<parameter name="location">Paris</parameter>\n</invoke>\n'
        "</minimax:tool_call>",
        "",
        [PARIS],
    ),
    ("functionary", '<function=get_weather>{"location": "Paris"}</function>', "", [PARIS]),
    (
        "tool_calls_tags",
        '<tool_calls>\n{"name": "get_weather", "arguments": {"location": "Paris"}}\n'
        '{"name": "get_time", "arguments": {"timezone": "Asia/Tokyo"}}\n</tool_calls>',
        "",
        [PARIS, TOKYO],
    ),
    ("nemotron", '<TOOLCALL>[{"name": "get_weather", "arguments": {"location": "Paris"}}]</TOOLCALL>', "", [PARIS]),
    (
        "deepseek_v31",
        'Checking.<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>{"location": "Paris"}'
        '<｜tool▁call▁end｜><｜tool▁call▁begin｜>get_time<｜tool▁sep｜>{"timezone": "Asia/Tokyo"}'
        "<｜tool▁call▁end｜><｜tool▁calls▁end｜>",
        "Checking.",
        [PARIS, TOKYO],
    ),
    (
        "deepseek_v32",
        '\n\n<｜DSML｜function_calls>\n<｜DSML｜invoke name="get_weather">\n'
        '<｜DSML｜parameter name="location" string="true">Paris</｜DSML｜parameter>\n</｜DSML｜invoke>\n'
        '<｜DSML｜invoke name="get_time">\n<｜DSML｜parameter name="timezone" string="true">Asia/Tokyo'
        "</｜DSML｜parameter>\n</｜DSML｜invoke>\n</｜DSML｜function_calls>",
        "",
        [PARIS, TOKYO],
    ),
    (
        "deepseek_v4",
        '<｜DSML｜tool_calls>\n<｜DSML｜invoke name="get_weather">\n'
        '<｜DSML｜parameter name="location" string="true">Paris</｜DSML｜parameter>\n</｜DSML｜invoke>\n'
        "</｜DSML｜tool_calls>",
        "",
        [PARIS],
    ),
    (
        "hy3",
        "<tool_calls:opensource>\n<tool_call:opensource>get_weather<tool_sep:opensource>\n"
        "<arg_key:opensource>location</arg_key:opensource>\n<arg_value:opensource>Paris</arg_value:opensource>\n"
        "</tool_call:opensource>\n</tool_calls:opensource>",
        "",
        [PARIS],
    ),
    (
        "minicpm5",
        '<function name="get_weather"><param name="location">Paris</param></function>\n'
        '<function name="get_time"><param name="timezone"><![CDATA[Asia/Tokyo]]></param></function>',
        "",
        [PARIS, TOKYO],
    ),
    (
        "solar",
        "<|tool_calls|><|tool_call:begin|>call_0<|tool_call:name|>get_weather<|tool_call:args|>"
        '{"location": "Paris"}<|tool_call:end|><|calls|>',
        "",
        [PARIS],
    ),
    (
        "apertus",
        '<|tools_prefix|>[{"get_weather": {"location": "Paris"}}, {"get_time": {"timezone": "Asia/Tokyo"}}]'
        "<|tools_suffix|>",
        "",
        [PARIS, TOKYO],
    ),
    ("gigachat", 'function call<|role_sep|>\n{"name": "get_weather", "arguments": {"location": "Paris"}}', "", [PARIS]),
    (
        "minimax_m3",
        ']<]minimax[>[<tool_call>\n]<]minimax[>[<invoke name="get_weather">]<]minimax[>[<location>Paris'
        "]<]minimax[>[</location>]<]minimax[>[</invoke>\n]<]minimax[>[</tool_call>",
        "",
        [PARIS],
    ),
    (
        "gemma4",
        '<|tool_call>call:get_weather{location:<|"|>Paris<|"|>}<tool_call|>'
        '<|tool_call>call:get_time{timezone:<|"|>Asia/Tokyo<|"|>}<tool_call|>',
        "",
        [PARIS, TOKYO],
    ),
    (
        "hermes",  # malformed: given back as the model wrote it, never dropped
        'Try <tool_call>{"name": broken</tool_call> done',
        'Try <tool_call>{"name": broken</tool_call>done',
        [],
    ),
]


def run(fmt: str, chunks: list[str]) -> tuple[str, list[tuple[str, dict[str, Any]]]]:
    stream = ToolCallStream(FORMATS[fmt], TOOLS)
    pieces: list[AnswerPiece] = []
    for chunk in chunks:
        pieces += stream.feed(chunk)
    pieces += stream.finish()
    text = "".join(p.text for p in pieces)
    calls = [(p.tool_call.name, json.loads(p.tool_call.arguments)) for p in pieces if p.tool_call]
    assert all(p.tool_call.id.startswith("call_") for p in pieces if p.tool_call)
    return text, calls


@pytest.mark.parametrize(("fmt", "output", "text", "calls"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_each_format_parses_whole_and_split_anywhere(fmt: str, output: str, text: str, calls: list) -> None:
    assert run(fmt, [output]) == (text, calls)
    for i in range(1, len(output)):
        assert run(fmt, [output[:i], output[i:]]) == (text, calls), f"split at {i}: {output[:i]!r}"
    assert run(fmt, list(output)) == (text, calls)


def test_every_format_has_a_case() -> None:
    assert {c[0] for c in CASES} == set(FORMATS)


def test_gpt_oss_calls_come_from_its_harmony_channels() -> None:
    output = (
        "<|channel|>analysis<|message|>The user wants the weather.<|end|>"
        "<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json"
        '<|message|>{"location": "Paris"}<|call|>'
    )
    for i in range(len(output) + 1):
        stream = AnswerStream(harmony=True)
        pieces = stream.feed(output[:i]) + stream.feed(output[i:]) + stream.finish()
        reasoning = "".join(p.text for p in pieces if p.reasoning)
        calls = [(p.tool_call.name, json.loads(p.tool_call.arguments)) for p in pieces if p.tool_call]
        answer = "".join(p.text for p in pieces if not p.reasoning)
        assert (reasoning, calls, answer) == ("The user wants the weather.", [PARIS], ""), i


def test_markers_that_are_control_tokens_reach_the_parser() -> None:
    """Qwen's <tool_call> and Llama's <|python_tag|> are special tokens: the answer stream drops
    other control text, but passes on the markers of the template's tool format."""
    fmt = FORMATS["hermes"]
    stream = AnswerStream(["<|im_end|>"], keep=fmt.markers)
    calls = ToolCallStream(fmt, TOOLS)
    pieces = []
    for text, control in [
        ("<tool_call>", True),
        ('\n{"name": "get_weather", "arguments": {"location": "Paris"}}\n', False),
        ("</tool_call>", True),
        ("<|im_end|>", True),
    ]:
        for piece in stream.feed(text, control):
            pieces += calls.feed(piece.text)
    pieces += calls.finish()
    assert [(p.tool_call.name, p.text) for p in pieces if p.tool_call] == [("get_weather", "")]
    assert "".join(p.text for p in pieces) == ""


def test_the_format_comes_from_the_template() -> None:
    expected = {
        "Qwen-Qwen2.5-7B-Instruct": "hermes",
        "NousResearch-Hermes-3-Llama-3.1-8B-tool_use": "hermes",
        "Qwen3-Coder": "qwen3_coder",
        "Qwen3.5-4B": "qwen3_coder",
        "GLM-4.6": "glm",
        "meta-llama-Llama-3.1-8B-Instruct": "llama3_json",
        "meta-llama-Llama-3.2-3B-Instruct": "llama3_json",
        "mistralai-Mistral-Nemo-Instruct-2407": "mistral",
        "unsloth-mistral-Devstral-Small-2507": "mistral_args",
        "ibm-granite-granite-3.3-2B-Instruct": "granite",
        "CohereForAI-c4ai-command-r7b-12-2024-tool_use": "command_r",
        "llama-cpp-deepseek-r1": "deepseek",
        "moonshotai-Kimi-K2": "kimi",
        "MiniMax-M2": "minimax",
        "meetkai-functionary-medium-v3.1": "functionary",
        "openai-gpt-oss-120b": tool_calls.HARMONY,
        "google-gemma-2-2b-it": None,  # renders no tools
        "google-gemma-4-31B-it": "gemma4",
        "deepseek-ai-DeepSeek-V3.1": "deepseek_v31",  # reads no tools: localopen describes them
        "deepseek-ai-DeepSeek-V3.2": "deepseek_v32",
        "deepseek-ai-DeepSeek-V4": "deepseek_v4",
        "fireworks-ai-llama-3-firefunction-v2": "firefunction",  # its tools come as `functions`
        "tencent-Hy3": "hy3",
        "openbmb-MiniCPM5-1B": "minicpm5",
        "upstage-Solar-Open-100B": "solar",
        "Apertus-8B-Instruct": "apertus",
        "GigaChat3-10B-A1.8B": "gigachat",
        "MiniMax-M3": "minimax_m3",
        "Kimi-K3": tool_calls.UNSUPPORTED,  # renders tools in a format not read here
    }
    for name, fmt in expected.items():
        assert ct.traits((TEMPLATES / f"{name}.jinja").read_text()).tool_format == fmt, name


LOOSE = '{"name": "get_weather", "arguments": {"location": "Paris"}}'
# Calls as small tool-trained models write them outside their template's format (Qwen2.5-Coder:
# bare JSON, a ```json fence), and the text that must stay text.
LOOSE_CASES = [
    (LOOSE, "", [PARIS]),
    (f"  ```json\n{LOOSE}\n```", "", [PARIS]),
    (f"```\n{LOOSE}\n```\nDone.", "Done.", [PARIS]),
    (
        f'[{LOOSE}, {{"name": "get_time", "parameters": {{"timezone": "UTC"}}}}]',
        "",
        [PARIS, ("get_time", {"timezone": "UTC"})],
    ),
    (f"{LOOSE}\n{LOOSE}", "", [PARIS, PARIS]),
    # Two calls in one fence, laid out over lines (Qwen2.5-Coder 1.5B's "Paris and Tokyo"): the fence is no answer.
    (
        f"```json\n{json.dumps(json.loads(LOOSE), indent=2)}\n"
        '{"name": "get_time", "arguments": {"timezone": "UTC"}}\n```',
        "",
        [PARIS, ("get_time", {"timezone": "UTC"})],
    ),
    (f'{{"type": "function", "function": {LOOSE}}}', "", [PARIS]),
    # Inside the doubled braces of Qwen2.5-Coder's own example ({{"name": …}}), a stray brace after.
    (f"{{{LOOSE}}}", "", [PARIS]),
    (f"<tool_call>\n{{{LOOSE}}}\n</tool_call>", "", [PARIS]),
    (f"{{{LOOSE}}}}}", "", [PARIS]),
    (f"{{{LOOSE}", "", [PARIS]),  # closed one brace short as the answer ends: the call is whole
    ('{{"answer": 42}}', '{{"answer": 42}}', []),
    # Not a call: an unknown tool, arguments the schema refuses, JSON that is an answer, prose first.
    ('{"name": "get_stock", "arguments": {"s": "X"}}', '{"name": "get_stock", "arguments": {"s": "X"}}', []),
    ('{"name": "get_weather", "arguments": {"days": 3}}', '{"name": "get_weather", "arguments": {"days": 3}}', []),
    ('{"answer": 42}', '{"answer": 42}', []),
    (f"Sure: {LOOSE}", f"Sure: {LOOSE}", []),
    ("```python\nprint(1)\n```", "```python\nprint(1)\n```", []),
    ('{"name": "get_weather", "arguments": {"loc', '{"name": "get_weather", "arguments": {"loc', []),
]


@pytest.mark.parametrize(("output", "text", "calls"), LOOSE_CASES)
def test_a_call_written_outside_the_format_is_read_when_it_names_an_offered_tool_validly(
    output: str, text: str, calls: list
) -> None:
    assert run("hermes", [output]) == (text, calls)
    assert run("hermes", list(output)) == (text, calls)


def test_json_that_cannot_be_a_call_is_shown_at_once_not_held_to_its_end() -> None:
    stream = ToolCallStream(FORMATS["hermes"], TOOLS)
    shown = "".join(p.text for p in stream.feed('{"answer": "a long JSON answer'))
    assert shown == '{"answer": "a long JSON answer'
    held = ToolCallStream(FORMATS["hermes"], TOOLS)
    assert held.feed('{"name": "get_wea') == []  # may still become a call


def test_calls_written_outside_the_format_are_counted_apart() -> None:
    stream = ToolCallStream(FORMATS["hermes"], TOOLS)
    stream.feed(f"{LOOSE}\n<tool_call>\n{LOOSE}\n</tool_call>")
    stream.finish()
    assert (stream.calls, stream.loose_count) == (2, 1)
