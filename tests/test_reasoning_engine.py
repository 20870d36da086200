"""Reasoning, ends of turn and control tokens through the real engine, with scripted tiny models
(each always says the same tokens, so the assertions can name the text)."""

from __future__ import annotations

from pathlib import Path

import pytest

from localopen.core.options import AnswerOptions, LoadOptions, SamplingParams
from localopen.core.records import AnswerPiece, AnswerStats
from localopen.engine.client import Engine

from tiny_gguf import CHATML, REASONING_SCRIPT, REASONING_SPECIAL, write_scripted_llama

pytest.importorskip("llama_cpp")
USER = [{"role": "user", "content": "What is 2 + 2?"}]
CONTROL_TEXTS = ("<|im_end|>", "<|im_start|>", "<|end|>", "<|return|>", "<|channel|>", "<|message|>", "</s>")
GPT_OSS = (Path(__file__).parent / "data" / "chat_templates" / "openai-gpt-oss-120b.jinja").read_text()


def answer(path: Path, sampling: SamplingParams | None = None, **kwargs: object) -> tuple[str, str, AnswerStats]:
    engine = Engine()
    try:
        engine.load(str(path), LoadOptions(n_ctx=512))
        pieces: list[AnswerPiece] = []
        stats = engine.answer(USER, sampling or SamplingParams(max_tokens=40), on_piece=pieces.append, **kwargs)
    finally:
        engine.shutdown()
    reasoning = "".join(p.text for p in pieces if p.reasoning)
    content = "".join(p.text for p in pieces if not p.reasoning)
    assert not any(c in content or c in reasoning for c in CONTROL_TEXTS), (reasoning, content)
    return reasoning, content, stats


@pytest.fixture(scope="module")
def reasoning_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_scripted_llama(tmp_path_factory.mktemp("m") / "thinker.gguf", REASONING_SCRIPT, REASONING_SPECIAL)


def test_reasoning_is_streamed_apart_from_the_answer(reasoning_gguf: Path) -> None:
    reasoning, content, stats = answer(reasoning_gguf)
    assert (reasoning, content) == ("Adding two and two", "The answer is four.")
    assert stats.finish_reason == "stop" and stats.ending == "complete"
    assert stats.completion_tokens == 6 and stats.reasoning_tokens == 3 and stats.answer_tokens == 3
    assert stats.ttft_ms is not None and stats.answer_ttft_ms is not None and stats.answer_ttft_ms >= stats.ttft_ms
    assert stats.reasoning_ms is not None and stats.answer_tps and stats.gen_tps


def test_the_thinking_switch_reaches_the_template(reasoning_gguf: Path) -> None:
    engine = Engine()
    try:
        info = engine.load(str(reasoning_gguf), LoadOptions(n_ctx=512))
        assert info.thinking_switch == "enable_thinking"
        on = engine.answer(USER, SamplingParams(max_tokens=40), options=AnswerOptions(thinking=True))
        off = engine.answer(USER, SamplingParams(max_tokens=40), options=AnswerOptions(thinking=False))
    finally:
        engine.shutdown()
    # Off, the template closes an empty <think> block in the prompt (as Qwen3's does).
    assert off.prompt_tokens > on.prompt_tokens


def test_max_tokens_says_the_answer_was_cut(reasoning_gguf: Path) -> None:
    reasoning, content, stats = answer(reasoning_gguf, SamplingParams(max_tokens=2))
    assert reasoning == "Adding" and content == ""
    assert stats.finish_reason == "length" and "not by the model" in stats.ending and "2-token" in stats.ending


def test_reasoning_opened_by_the_prompt(tmp_path: Path) -> None:
    # DeepSeek-R1's template ends its generation prompt with <think>: the model starts inside it.
    template = CHATML.replace("assistant\n{% endif %}", "assistant\n<think>\n{% endif %}")
    script = ["Adding", " two and two", "</think>", "Four.", "<|im_end|>"]
    path = write_scripted_llama(tmp_path / "r1.gguf", script, REASONING_SPECIAL, template)
    reasoning, content, _ = answer(path)
    assert (reasoning, content) == ("Adding two and two", "Four.")


def test_gpt_oss_harmony_channels(tmp_path: Path) -> None:
    # llama.cpp renders <|channel|>, <|message|>, <|start|> as text and keeps <|end|> a control
    # token; with <|return|> and <|call|> in the vocabulary <|end|> does not end generation.
    # The prompt ends with "<|start|>assistant": its last token is the byte "t" (0x74).
    special = {"<|end|>": 3, "<|return|>": 3, "<|call|>": 3, "<|start|>": 4}
    script = [
        "<|channel|>analysis<|message|>",
        "User asks 2+2.",
        "<|end|>",
        "<|start|>assistant<|channel|>final<|message|>",
        "It is four.",
        "<|return|>",
    ]
    path = write_scripted_llama(tmp_path / "oss.gguf", script, special, GPT_OSS, start="<0x74>", eos="<|return|>")
    reasoning, content, stats = answer(path)
    assert (reasoning, content) == ("User asks 2+2.", "It is four.")
    assert stats.finish_reason == "stop"


def test_an_end_marker_the_file_does_not_flag_still_ends_the_turn(tmp_path: Path) -> None:
    # A broken conversion: <|im_end|> is ordinary text and the end token is </s>. The template
    # writes <|im_end|>, so it is a stop string: the answer ends there and never shows it.
    script = ["Four", ".", "<|im_end|>", "<|im_start|>", "user"]
    path = write_scripted_llama(tmp_path / "broken.gguf", script, {"<|im_start|>": 4, "<|im_end|>": 4}, eos="</s>")
    reasoning, content, stats = answer(path)
    assert (reasoning, content) == ("", "Four.")
    assert stats.finish_reason == "stop"


def test_control_tokens_inside_an_answer_are_not_shown(tmp_path: Path) -> None:
    script = ["Four", "<|image_pad|>", " it is", ".", "<|im_end|>"]
    special = {"<|im_start|>": 3, "<|im_end|>": 3, "<|image_pad|>": 3}
    path = write_scripted_llama(tmp_path / "ctl.gguf", script, special)
    _, content, _ = answer(path)
    assert content == "Four it is."
