"""Each family's call format through real llama.cpp: a scripted tiny model with that family's real
chat template (tests/data/chat_templates) writes a call exactly as the family does, markers as
control tokens where the family's vocabulary has them; the engine turns it into one tool call."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from localopen.core.options import AnswerOptions, LoadOptions, SamplingParams
from localopen.engine.client import Engine

from tiny_gguf import write_scripted_llama

pytest.importorskip("llama_cpp")
TEMPLATES = Path(__file__).parent / "data" / "chat_templates"
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city.",
            "parameters": {
                "type": "object",
                "properties": {"location": {"type": "string", "description": "A city."}},
                "required": ["location"],
            },
        },
    }
]
CONTROL = 3
PARIS_JSON = '{"location": "Paris"}'

# template, the prompt's last token (where the script starts), the script, its control tokens, the end token
CASES = {
    "qwen3_coder": (
        "Qwen3-Coder",
        "<0x0A>",
        [
            "<tool_call>",
            "\n<function=get_weather>\n<parameter=location>\nParis\n</parameter>\n</function>\n",
            "</tool_call>",
            "<|im_end|>",
        ],
        ["<|im_start|>", "<|im_end|>", "<tool_call>", "</tool_call>"],
        "<|im_end|>",
    ),
    "llama3_json": (
        "meta-llama-Llama-3.1-8B-Instruct",
        "<0x0A>",
        ["<|python_tag|>", '{"name": "get_weather", "parameters": ' + PARIS_JSON + "}", "<|eom_id|>"],
        ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|python_tag|>", "<|eom_id|>"],
        "<|eom_id|>",
    ),
    "mistral": (
        "mistralai-Mistral-Nemo-Instruct-2407",
        "[/INST]",
        ["[TOOL_CALLS]", '[{"name": "get_weather", "arguments": ' + PARIS_JSON + ', "id": "abc123def"}]', "</s>"],
        ["[INST]", "[/INST]", "[TOOL_CALLS]", "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]"],
        "</s>",
    ),
    "granite": (
        "ibm-granite-granite-3.3-2B-Instruct",
        "<|end_of_role|>",
        ["<|tool_call|>", '[{"name": "get_weather", "arguments": ' + PARIS_JSON + "}]", "<|end_of_text|>"],
        ["<|start_of_role|>", "<|end_of_role|>", "<|end_of_text|>", "<|tool_call|>"],
        "<|end_of_text|>",
    ),
    "kimi": (
        "moonshotai-Kimi-K2",
        "<|im_middle|>",
        [
            "<|tool_calls_section_begin|>",
            "<|tool_call_begin|>",
            "functions.get_weather:0",
            "<|tool_call_argument_begin|>",
            PARIS_JSON,
            "<|tool_call_end|>",
            "<|tool_calls_section_end|>",
            "<|im_end|>",
        ],
        [
            "<|im_end|>",
            "<|im_user|>",
            "<|im_assistant|>",
            "<|im_system|>",
            "<|im_middle|>",
            "<|tool_calls_section_begin|>",
            "<|tool_call_begin|>",
            "<|tool_call_argument_begin|>",
            "<|tool_call_end|>",
            "<|tool_calls_section_end|>",
        ],
        "<|im_end|>",
    ),
    "glm": (
        "GLM-4.6",
        "<|assistant|>",
        [
            "<tool_call>",
            "get_weather\n<arg_key>location</arg_key>\n<arg_value>Paris</arg_value>\n",
            "</tool_call>",
            "<|observation|>",
        ],
        ["<|user|>", "<|assistant|>", "<|system|>", "<|observation|>", "<tool_call>", "</tool_call>"],
        "<|observation|>",
    ),
    "command_r": (
        "CohereForAI-c4ai-command-r7b-12-2024-tool_use",
        "<|END_THINKING|>",
        [
            "<|START_ACTION|>",
            '[{"tool_call_id": "0", "tool_name": "get_weather", "parameters": ' + PARIS_JSON + "}]",
            "<|END_ACTION|>",
            "<|END_OF_TURN_TOKEN|>",
        ],
        [
            "<|START_OF_TURN_TOKEN|>",
            "<|END_OF_TURN_TOKEN|>",
            "<|CHATBOT_TOKEN|>",
            "<|USER_TOKEN|>",
            "<|SYSTEM_TOKEN|>",
            "<|START_THINKING|>",
            "<|END_THINKING|>",
            "<|START_ACTION|>",
            "<|END_ACTION|>",
        ],
        "<|END_OF_TURN_TOKEN|>",
    ),
    "gemma4": (  # strings between <|"|> marks, keys bare
        "google-gemma-4-31B-it",
        "<channel|>",
        ["<|tool_call>", 'call:get_weather{location:<|"|>Paris<|"|>}', "<tool_call|>", "<turn|>"],
        ["<|turn>", "<turn|>", "<|channel>", "<channel|>", "<|tool_call>", "<tool_call|>"],
        "<turn|>",
    ),
}


def _answer(case: tuple, tmp_path: Path, options: AnswerOptions, max_tokens: int) -> tuple[list, Any]:
    """A scripted model with a family's real template answers 'Weather in Paris?': its pieces and stats."""
    template, start, script, control, eos = case
    source = (TEMPLATES / f"{template}.jinja").read_text()
    special = {token: CONTROL for token in control}
    path = write_scripted_llama(
        tmp_path / "scripted.gguf", script, special, chat_template=source, start=start, eos=eos, context_length=16384
    )
    engine = Engine()
    try:
        # The byte vocabulary spells the templates' long tool preambles byte by byte: a roomy context.
        engine.load(str(path), LoadOptions(n_ctx=16384))
        pieces: list = []
        messages = [{"role": "user", "content": "Weather in Paris?"}]
        stats = engine.answer(messages, SamplingParams(max_tokens=max_tokens, seed=1), None, pieces.append, options)
    finally:
        engine.shutdown()
    return pieces, stats


@pytest.mark.parametrize("fmt", sorted(CASES))
def test_the_engine_reads_each_familys_call(fmt: str, tmp_path: Path) -> None:
    pieces, stats = _answer(CASES[fmt], tmp_path, AnswerOptions(tools=TOOLS), 32)
    calls = [p.tool_call for p in pieces if p.tool_call is not None]
    text = "".join(p.text for p in pieces if not p.reasoning)
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [("get_weather", {"location": "Paris"})], pieces
    assert text.strip() == "" and stats.finish_reason == "tool_calls" and stats.tool_calls == 1


MISTRAL_CONTROL = ["[INST]", "[/INST]", "[TOOL_CALLS]", "[ARGS]", "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]"]
# Formats whose required and named calls decode under a grammar: the model's own call, as its
# family writes it, passes the grammar token by token and comes back as the call.
FORCED = {
    "mistral": (  # Nemo: a JSON list after [TOOL_CALLS]
        "mistralai-Mistral-Nemo-Instruct-2407",
        "[/INST]",
        ["[TOOL_CALLS]", '[{"name": "get_weather", "arguments": ' + PARIS_JSON + ', "id": "abc123def"}]', "</s>"],
        MISTRAL_CONTROL,
        "</s>",
    ),
    "mistral_args": (  # Small 3.2, Devstral, Ministral 3: NAME[ARGS]{json}
        "unsloth-mistral-Devstral-Small-2507",
        "[/INST]",
        ["[TOOL_CALLS]", "get_weather", "[ARGS]", PARIS_JSON, "</s>"],
        MISTRAL_CONTROL,
        "</s>",
    ),
    "granite": CASES["granite"],
    "qwen3_coder": CASES["qwen3_coder"],
    "glm": CASES["glm"],
    "kimi": CASES["kimi"],
    "command_r": CASES["command_r"],
    "deepseek": (  # R1: the prompt opens its reasoning, which comes before the call
        "llama-cpp-deepseek-r1",
        "<0x0A>",
        [
            "Paris needs the tool.",
            "</think>",
            "\n\n",
            "<｜tool▁calls▁begin｜>",
            "<｜tool▁call▁begin｜>",
            "function",
            "<｜tool▁sep｜>",
            "get_weather\n```json\n" + PARIS_JSON + "\n```",
            "<｜tool▁call▁end｜>",
            "<｜tool▁calls▁end｜>",
            "<｜end▁of▁sentence｜>",
        ],
        [
            "<｜begin▁of▁sentence｜>",
            "<｜User｜>",
            "<｜Assistant｜>",
            "<｜end▁of▁sentence｜>",
            "<｜tool▁calls▁begin｜>",
            "<｜tool▁call▁begin｜>",
            "<｜tool▁sep｜>",
            "<｜tool▁call▁end｜>",
            "<｜tool▁calls▁end｜>",
        ],
        "<｜end▁of▁sentence｜>",
    ),
    "minimax": (  # M2: reasoning opened by the prompt too
        "MiniMax-M2",
        "<0x0A>",
        [
            "Calling it.",
            "</think>",
            "\n\n",
            "<minimax:tool_call>",
            '\n<invoke name="get_weather">\n<parameter name="location">Paris</parameter>\n</invoke>\n',
            "</minimax:tool_call>",
            "[e~[",
        ],
        ["]~!b[", "]~b]", "[e~["],
        "[e~[",
    ),
    "lfm2": (
        "LFM2-8B-A1B",
        "<0x0A>",
        ["<|tool_call_start|>", '[get_weather(location="Paris")]', "<|tool_call_end|>", "<|im_end|>"],
        ["<|startoftext|>", "<|im_start|>", "<|im_end|>", "<|tool_call_start|>", "<|tool_call_end|>"],
        "<|im_end|>",
    ),
    "functionary": (
        "meetkai-functionary-medium-v3.1",
        "<0x0A>",
        ["<function=get_weather>" + PARIS_JSON + "</function>", "<|eot_id|>"],
        ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|eom_id|>"],
        "<|eot_id|>",
    ),
    "command_r_plus": (
        "CohereForAI-c4ai-command-r-plus-tool_use",
        "<|CHATBOT_TOKEN|>",
        [
            "Action:\n```json\n",
            '[{"tool_name": "get_weather", "parameters": ' + PARIS_JSON + "}]",
            "\n```",
            "<|END_OF_TURN_TOKEN|>",
        ],
        ["<|START_OF_TURN_TOKEN|>", "<|END_OF_TURN_TOKEN|>", "<|CHATBOT_TOKEN|>", "<|USER_TOKEN|>", "<|SYSTEM_TOKEN|>"],
        "<|END_OF_TURN_TOKEN|>",
    ),
    "deepseek_v32": (  # its template writes blank lines before the block
        "deepseek-ai-DeepSeek-V3.2",
        "<0x3E>",
        [
            "\n\n",
            "<｜DSML｜function_calls>",
            '\n<｜DSML｜invoke name="get_weather">\n<｜DSML｜parameter name="location" string="true">Paris'
            "</｜DSML｜parameter>\n</｜DSML｜invoke>\n",
            "</｜DSML｜function_calls>",
            "<｜end▁of▁sentence｜>",
        ],
        ["<｜begin▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>", "<｜end▁of▁sentence｜>"],
        "<｜end▁of▁sentence｜>",
    ),
    "gemma4": CASES["gemma4"],
    "harmony": (  # gpt-oss: the message to the tool after <|start|>assistant; <|call|> ends it
        "openai-gpt-oss-120b",
        "<0x74>",
        [
            "<|channel|>",
            "commentary to=functions.get_weather ",
            "<|constrain|>",
            "json",
            "<|message|>",
            PARIS_JSON,
            "<|call|>",
        ],  # fmt: skip
        ["<|start|>", "<|end|>", "<|channel|>", "<|message|>", "<|constrain|>", "<|call|>", "<|return|>"],
        "<|call|>",
    ),
}


@pytest.mark.parametrize("choice", ["required", "get_weather"])
@pytest.mark.parametrize("fmt", sorted(FORCED))
def test_a_required_call_decodes_under_the_familys_grammar(fmt: str, choice: str, tmp_path: Path) -> None:
    from localopen.core.chat.template import traits

    source = (TEMPLATES / f"{FORCED[fmt][0]}.jinja").read_text()
    assert traits(source).tool_format == fmt
    pieces, stats = _answer(FORCED[fmt], tmp_path, AnswerOptions(tools=TOOLS, tool_choice=choice), 48)
    calls = [(p.tool_call.name, json.loads(p.tool_call.arguments)) for p in pieces if p.tool_call is not None]
    assert calls == [("get_weather", {"location": "Paris"})], pieces
    assert stats.finish_reason == "tool_calls"
