"""Each call format's grammar, checked by llama.cpp's own grammar sampler over a real tokenizer
(Qwen2.5-Coder's): the call as its family writes it passes token by token and ends the grammar,
the format's parser reads that text back as the same call, and a call the tool's schema refuses
(or a tool nobody offered) does not pass."""

from __future__ import annotations

import ctypes
import json
import math
from pathlib import Path
from typing import Any

import pytest

from localopen.core.chat.tool_calls import FORMATS, ToolCallStream
from localopen.engine import grammar
from localopen.engine.errors import BadRequestError, ToolsUnsupportedError

llama_cpp = pytest.importorskip("llama_cpp")

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {
                    "location": {"type": "string"},
                    "unit": {"type": "string", "enum": ["c", "f"]},
                    "days": {"type": "integer"},
                },
                "required": ["location"],
            },
        },
    },
    {
        "type": "function",
        "function": {  # Pydantic's way: a nested model as a definition
            "name": "send",
            "parameters": {
                "$defs": {
                    "Address": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
                },
                "type": "object",
                "properties": {"to": {"$ref": "#/$defs/Address"}, "urgent": {"type": "boolean"}},
                "required": ["to"],
            },
        },
    },
]
PARIS = {"location": "Paris <3 </param>", "days": 2}
TOKYO = {"to": {"city": "Tokyo"}, "urgent": True}

# format: (the text of one call of get_weather with PARIS, of two calls: PARIS then TOKYO, a refused call)
WRITTEN: dict[str, tuple[str, str | None, str]] = {
    "qwen3_coder": (
        "<tool_call>\n<function=get_weather>\n<parameter=location>\nParis <3 </param>\n</parameter>\n"
        "<parameter=days>\n2\n</parameter>\n</function>\n</tool_call>",
        "<tool_call>\n<function=get_weather>\n<parameter=location>\nParis <3 </param>\n</parameter>\n"
        "<parameter=days>\n2\n</parameter>\n</function>\n</tool_call>\n<tool_call>\n<function=send>\n"
        '<parameter=to>\n{"city": "Tokyo"}\n</parameter>\n<parameter=urgent>\ntrue\n</parameter>\n</function>\n'
        "</tool_call>",
        "<tool_call>\n<function=get_weather>\n<parameter=days>\ntwo\n</parameter>\n</function>\n</tool_call>",
    ),
    "glm": (
        "<tool_call>get_weather\n<arg_key>location</arg_key>\n<arg_value>Paris <3 </param></arg_value>\n"
        "<arg_key>days</arg_key>\n<arg_value>2</arg_value>\n</tool_call>",
        None,
        "<tool_call>get_weather\n<arg_key>city</arg_key>\n<arg_value>Paris</arg_value>\n</tool_call>",
    ),
    "minimax": (
        '<minimax:tool_call>\n<invoke name="get_weather">\n<parameter name="location">Paris <3 </param></parameter>\n'
        '<parameter name="days">2</parameter>\n</invoke>\n</minimax:tool_call>',
        '<minimax:tool_call>\n<invoke name="get_weather">\n<parameter name="location">Paris <3 </param></parameter>\n'
        '<parameter name="days">2</parameter>\n</invoke>\n<invoke name="send">\n<parameter name="to">'
        '{"city": "Tokyo"}</parameter>\n<parameter name="urgent">true</parameter>\n</invoke>\n</minimax:tool_call>',
        '<minimax:tool_call>\n<invoke name="get_time">\n</invoke>\n</minimax:tool_call>',
    ),
    "deepseek": (
        "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n"
        '{"location": "Paris <3 </param>", "days": 2}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>',
        None,
        "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n"
        '{"days": 2}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>',
    ),
    "kimi": (
        "<|tool_calls_section_begin|><|tool_call_begin|>functions.get_weather:0<|tool_call_argument_begin|>"
        '{"location": "Paris <3 </param>", "days": 2}<|tool_call_end|><|tool_calls_section_end|>',
        "<|tool_calls_section_begin|><|tool_call_begin|>functions.get_weather:0<|tool_call_argument_begin|>"
        '{"location": "Paris <3 </param>", "days": 2}<|tool_call_end|><|tool_call_begin|>functions.send:1'
        '<|tool_call_argument_begin|>{"to": {"city": "Tokyo"}, "urgent": true}<|tool_call_end|>'
        "<|tool_calls_section_end|>",
        "<|tool_calls_section_begin|><|tool_call_begin|>functions.get_weather:0<|tool_call_argument_begin|>"
        '{"location": 5}<|tool_call_end|><|tool_calls_section_end|>',
    ),
    "lfm2": (
        '<|tool_call_start|>[get_weather(location="Paris <3 </param>", days=2)]<|tool_call_end|>',
        '<|tool_call_start|>[get_weather(location="Paris <3 </param>", days=2), '
        'send(to={"city": "Tokyo"}, urgent=true)]<|tool_call_end|>',
        "<|tool_call_start|>[get_weather(days=2)]<|tool_call_end|>",
    ),
    "deepseek_v31": (
        "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>"
        '{"location": "Paris <3 </param>", "days": 2}<｜tool▁call▁end｜><｜tool▁calls▁end｜>',
        "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>"
        '{"location": "Paris <3 </param>", "days": 2}<｜tool▁call▁end｜><｜tool▁call▁begin｜>send<｜tool▁sep｜>'
        '{"to": {"city": "Tokyo"}, "urgent": true}<｜tool▁call▁end｜><｜tool▁calls▁end｜>',
        "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>{}<｜tool▁call▁end｜><｜tool▁calls▁end｜>",
    ),
    "deepseek_v32": (
        '<｜DSML｜function_calls>\n<｜DSML｜invoke name="get_weather">\n'
        '<｜DSML｜parameter name="location" string="true">Paris <3 </param></｜DSML｜parameter>\n'
        '<｜DSML｜parameter name="days" string="false">2</｜DSML｜parameter>\n</｜DSML｜invoke>\n'
        "</｜DSML｜function_calls>",
        '<｜DSML｜function_calls>\n<｜DSML｜invoke name="get_weather">\n'
        '<｜DSML｜parameter name="location" string="true">Paris <3 </param></｜DSML｜parameter>\n'
        '<｜DSML｜parameter name="days" string="false">2</｜DSML｜parameter>\n</｜DSML｜invoke>\n'
        '<｜DSML｜invoke name="send">\n'
        '<｜DSML｜parameter name="to" string="false">{"city": "Tokyo"}</｜DSML｜parameter>\n'
        '<｜DSML｜parameter name="urgent" string="false">true</｜DSML｜parameter>\n</｜DSML｜invoke>\n'
        "</｜DSML｜function_calls>",
        '<｜DSML｜function_calls>\n<｜DSML｜invoke name="get_weather">\n'
        '<｜DSML｜parameter name="days" string="false">2</｜DSML｜parameter>\n</｜DSML｜invoke>\n'
        "</｜DSML｜function_calls>",
    ),
    "deepseek_v4": (
        '<｜DSML｜tool_calls>\n<｜DSML｜invoke name="get_weather">\n'
        '<｜DSML｜parameter name="location" string="true">Paris <3 </param></｜DSML｜parameter>\n'
        '<｜DSML｜parameter name="days" string="false">2</｜DSML｜parameter>\n</｜DSML｜invoke>\n'
        "</｜DSML｜tool_calls>",
        None,
        '<｜DSML｜tool_calls>\n<｜DSML｜invoke name="get_weather">\n'
        '<｜DSML｜parameter name="location" string="false">5</｜DSML｜parameter>\n</｜DSML｜invoke>\n'
        "</｜DSML｜tool_calls>",
    ),
    "hy3": (
        "<tool_calls:opensource>\n<tool_call:opensource>get_weather<tool_sep:opensource>\n"
        "<arg_key:opensource>location</arg_key:opensource>\n<arg_value:opensource>Paris <3 </param>"
        "</arg_value:opensource>\n<arg_key:opensource>days</arg_key:opensource>\n<arg_value:opensource>2"
        "</arg_value:opensource>\n</tool_call:opensource>\n</tool_calls:opensource>",
        None,
        "<tool_calls:opensource>\n<tool_call:opensource>get_weather<tool_sep:opensource>\n"
        "</tool_call:opensource>\n</tool_calls:opensource>",
    ),
    "minicpm5": (
        '<function name="get_weather"><param name="location"><![CDATA[Paris <3 </param>]]></param>'
        '<param name="days">2</param>'
        "</function>",
        '<function name="get_weather"><param name="location"><![CDATA[Paris <3 </param>]]></param>'
        '<param name="days">2</param>'
        '</function>\n<function name="send"><param name="to">{"city": "Tokyo"}</param>'
        '<param name="urgent">true</param></function>',
        '<function name="get_weather"><param name="days">2</param></function>',
    ),
    "solar": (
        "<|tool_calls|><|tool_call:begin|>call_0<|tool_call:name|>get_weather<|tool_call:args|>"
        '{"location": "Paris <3 </param>", "days": 2}<|tool_call:end|>',
        "<|tool_calls|><|tool_call:begin|>call_0<|tool_call:name|>get_weather<|tool_call:args|>"
        '{"location": "Paris <3 </param>", "days": 2}<|tool_call:end|><|tool_call:begin|>call_1'
        '<|tool_call:name|>send<|tool_call:args|>{"to": {"city": "Tokyo"}, "urgent": true}<|tool_call:end|>',
        "<|tool_calls|><|tool_call:begin|>call_0<|tool_call:name|>get_weather<|tool_call:args|>"
        '{"location": ["Paris"]}<|tool_call:end|>',
    ),
    "apertus": (
        '<|tools_prefix|>[{"get_weather": {"location": "Paris <3 </param>", "days": 2}}]<|tools_suffix|>',
        '<|tools_prefix|>[{"get_weather": {"location": "Paris <3 </param>", "days": 2}}, '
        '{"send": {"to": {"city": "Tokyo"}, "urgent": true}}]<|tools_suffix|>',
        '<|tools_prefix|>[{"get_time": {}}]<|tools_suffix|>',
    ),
    "minimax_m3": (
        ']<]minimax[>[<tool_call>\n]<]minimax[>[<invoke name="get_weather">]<]minimax[>[<location>Paris <3 </param>'
        "]<]minimax[>[</location>]<]minimax[>[<days>2]<]minimax[>[</days>]<]minimax[>[</invoke>\n"
        "]<]minimax[>[</tool_call>",
        None,
        ']<]minimax[>[<tool_call>\n]<]minimax[>[<invoke name="get_weather">]<]minimax[>[<days>two'
        "]<]minimax[>[</days>]<]minimax[>[</invoke>\n]<]minimax[>[</tool_call>",
    ),
    "functionary": (
        '<function=get_weather>{"location": "Paris <3 </param>", "days": 2}</function>',
        None,
        '<function=get_weather>{"location": "Paris", "unit": "kelvin"}</function>',
    ),
    "command_r_plus": (
        'Action:\n```json\n[{"tool_name": "get_weather", "parameters": {"location": "Paris <3 </param>", "days": 2}}]'
        "\n```",
        'Action:\n```json\n[{"tool_name": "get_weather", "parameters": {"location": "Paris <3 </param>", "days": 2}}, '
        '{"tool_name": "send", "parameters": {"to": {"city": "Tokyo"}, "urgent": true}}]\n```',
        'Action:\n```json\n[{"tool_name": "get_weather", "parameters": {}}]\n```',
    ),
}


@pytest.fixture(scope="module")
def vocab_model(qwen_coder_05b: Path) -> Any:
    return llama_cpp.Llama(str(qwen_coder_05b), vocab_only=True, verbose=False)


def accepts(model: Any, gbnf: str, text: str) -> bool:
    """llama.cpp's grammar sampler lets `text` through token by token and is then complete (an
    end-of-generation token is allowed)."""
    vocab = model._model.vocab
    grammar.check(vocab, gbnf)
    sampler = llama_cpp.llama_sampler_init_grammar(vocab, gbnf.encode("utf-8"), b"root")

    def allowed(token: int) -> bool:
        data = (llama_cpp.llama_token_data * 1)(llama_cpp.llama_token_data(token, 0.0, 0.0))
        candidates = llama_cpp.llama_token_data_array(data, 1, -1, False)
        llama_cpp.llama_sampler_apply(sampler, ctypes.byref(candidates))
        return not math.isinf(data[0].logit)

    try:
        for token in model.tokenize(text.encode("utf-8"), add_bos=False, special=False):
            if not allowed(token):
                return False
            llama_cpp.llama_sampler_accept(sampler, token)
        return allowed(llama_cpp.llama_vocab_eos(vocab))
    finally:
        llama_cpp.llama_sampler_free(sampler)


def read_back(fmt: str, text: str) -> list[tuple[str, Any]]:
    stream = ToolCallStream(FORMATS[fmt], TOOLS)
    pieces = stream.feed(text) + stream.finish()
    assert "".join(p.text for p in pieces).strip() == "", pieces
    return [(p.tool_call.name, json.loads(p.tool_call.arguments)) for p in pieces if p.tool_call is not None]


@pytest.mark.parametrize("fmt", sorted(WRITTEN))
def test_a_forced_call_is_written_as_the_family_writes_it(fmt: str, vocab_model: Any) -> None:
    one, two, refused = WRITTEN[fmt]
    required = grammar.tool_call_gbnf(fmt, TOOLS, "required", parallel=False)
    assert accepts(vocab_model, required, one)
    assert read_back(fmt, one) == [("get_weather", PARIS)]
    assert not accepts(vocab_model, required, refused)
    named = grammar.tool_call_gbnf(fmt, TOOLS, "send", parallel=True)
    assert not accepts(vocab_model, named, one)  # the named tool only
    if two is not None:
        assert not accepts(vocab_model, required, two)  # parallel calls not allowed: one
        assert accepts(vocab_model, grammar.tool_call_gbnf(fmt, TOOLS, "required", parallel=True), two)
        assert read_back(fmt, two) == [("get_weather", PARIS), ("send", TOKYO)]


@pytest.mark.parametrize("fmt", sorted(set(WRITTEN) - {"command_r_plus", "solar"}))
def test_a_call_the_model_opened_itself_is_finished_under_the_grammar(fmt: str, vocab_model: Any) -> None:
    marker = FORMATS[fmt].start[0]
    one, _two, refused = WRITTEN[fmt]
    lazy = grammar.lazy_tool_call_gbnf(fmt, marker, TOOLS)
    assert lazy is not None
    assert one.startswith(marker) and accepts(vocab_model, lazy, one[len(marker) :])
    assert not accepts(vocab_model, lazy, refused[len(marker) :])


def test_gemma_4_calls_in_its_own_syntax(vocab_model: Any) -> None:
    weather = [TOOLS[0]]
    forced = grammar.tool_call_gbnf("gemma4", weather, "required", parallel=True)
    one = '<|tool_call>call:get_weather{days:2,location:<|"|>Paris <3 </param><|"|>}<tool_call|>'
    assert accepts(vocab_model, forced, one)
    assert accepts(vocab_model, forced, one + one.replace("days:2,", ""))
    assert read_back("gemma4", one) == [("get_weather", PARIS)]
    assert not accepts(vocab_model, forced, one.replace("days:2", "days:two"))
    # Objects are written in Gemma's own syntax: forcing them is refused in words, reading them works.
    with pytest.raises(ToolsUnsupportedError, match="parameter 'to'"):
        grammar.tool_call_gbnf("gemma4", TOOLS, "required")
    assert grammar.lazy_tool_call_gbnf("gemma4", "<|tool_call>", TOOLS) is None
    nested = '<|tool_call>call:send{to:{<|"|>city<|"|>:<|"|>Tokyo<|"|>},urgent:true}<tool_call|>'
    assert read_back("gemma4", nested) == [("send", TOKYO)]


def test_gpt_oss_is_forced_after_its_analysis_or_without_one(vocab_model: Any) -> None:
    forced = grammar.tool_call_gbnf("harmony", TOOLS, "required")
    call = '<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"location": "Paris"}'
    assert accepts(vocab_model, forced, call)
    assert accepts(vocab_model, forced, "<|channel|>analysis<|message|>Need weather.<|end|><|start|>assistant" + call)
    assert not accepts(vocab_model, forced, call.replace("get_weather", "get_time"))


def test_reasoning_the_prompt_opened_comes_before_the_forced_call(vocab_model: Any) -> None:
    forced = grammar.after_reasoning(grammar.tool_call_gbnf("hermes", TOOLS, "required"), "</think>")
    call = '<tool_call>\n{"name": "get_weather", "arguments": {"location": "Paris"}}\n</tool_call>'
    assert accepts(vocab_model, forced, "The user wants Paris.\n</think>\n\n" + call)
    assert not accepts(vocab_model, forced, call)  # the reasoning must be closed first


@pytest.mark.parametrize(
    ("written", "fenced", "rest"),
    [
        ('{"name": "get_', False, 'weather", "arguments": {"location": "Paris <3 </param>", "days": 2}}'),
        ('{{"name":"', False, 'get_weather","arguments":{"location":"Paris <3 </param>","days":2}}}'),
        ('{"name": "', True, 'get_weather", "arguments": {"location": "Paris <3 </param>", "days": 2}}\n```'),
    ],
)
def test_a_call_written_as_bare_json_is_finished_under_the_grammar(
    written: str, fenced: bool, rest: str, vocab_model: Any
) -> None:
    lazy = grammar.loose_call_gbnf(written, fenced, TOOLS)
    assert lazy is not None
    assert accepts(vocab_model, lazy, rest)
    assert not accepts(vocab_model, lazy, rest.replace('"days": 2', '"days": "two"').replace('"days":2', '"days":"2"'))
    two = (
        rest.replace("\n```", "")
        + '\n{"name": "send", "arguments": {"to": {"city": "Tokyo"}}}'
        + ("\n```" if fenced else "")
    )
    assert accepts(vocab_model, lazy, two)
    # Laid out over lines, as Qwen2.5-Coder writes calls in a fence (llama.cpp's JSON whitespace).
    laid_out = json.dumps({"name": "send", "arguments": {"to": {"city": "Tokyo"}}}, indent=2)
    assert accepts(vocab_model, lazy, rest.replace("\n```", "") + "\n" + laid_out + ("\n```" if fenced else ""))


def test_json_that_names_no_offered_tool_gets_no_grammar() -> None:
    assert grammar.loose_call_gbnf('{"name": "get_t', False, TOOLS) is None
    assert grammar.loose_call_gbnf('{"answer": "', False, TOOLS) is None
    assert grammar.loose_call_gbnf('{"name": "get_weather"', False, TOOLS) is None  # past the name: too late


def test_a_tool_schema_no_grammar_can_express_is_a_bad_request() -> None:
    bad = [{"type": "function", "function": {"name": "f", "parameters": {"$ref": "https://example.com/s.json"}}}]
    for fmt in ("qwen3_coder", "lfm2", "kimi"):
        with pytest.raises(BadRequestError):
            grammar.tool_call_gbnf(fmt, bad, "required")
