"""The streaming split of a model's output into reasoning and answer, fed at every possible boundary."""

from __future__ import annotations

from itertools import combinations

import pytest

from localopen.core.chat.answer_stream import AnswerStream
from localopen.core.records import AnswerPiece as Piece


def run(tokens: list[tuple[str, bool]], **kwargs: object) -> tuple[str, str, bool]:
    stream = AnswerStream(**kwargs)  # type: ignore[arg-type]
    pieces: list[Piece] = []
    for text, control in tokens:
        pieces += stream.feed(text, control)
    pieces += stream.finish()
    reasoning = "".join(p.text for p in pieces if p.reasoning)
    content = "".join(p.text for p in pieces if not p.reasoning)
    return reasoning, content, stream.stopped


def splits(text: str, max_cuts: int = 2) -> list[list[str]]:
    """The text cut into pieces at every position (up to max_cuts cuts), and one char at a time."""
    out = [[text], list(text)]
    for n in range(1, max_cuts + 1):
        for cuts in combinations(range(1, len(text)), n):
            bounds = [0, *cuts, len(text)]
            out.append([text[a:b] for a, b in zip(bounds, bounds[1:], strict=False)])
    return out


TEXT_CASES = [
    # (output, prompt, stops, reasoning, answer)
    ("<think>\nTwo and two.\n</think>\n\nFour.", "", (), "Two and two.\n", "Four."),
    ("  <think>x</think>Four.<|im_end|>junk", "", ("<|im_end|>",), "x", "Four."),
    ("Two and two.\n</think>\n\nFour.", "<｜Assistant｜><think>\n", (), "Two and two.\n", "Four."),
    ("<seed:think>hm</seed:think>ok", "", (), "hm", "ok"),
    ("<|START_THINKING|>plan<|END_THINKING|>done", "", (), "plan", "done"),
    ("[THINK]a[/THINK]b", "", (), "a", "b"),
    ("<|channel>thought\nwhy<channel|>because", "", (), "why", "because"),
    ("No thinking here, <think> stays text.", "", (), "", "No thinking here, <think> stays text."),
    ("<b>Bold</b> answer<end_of_turn>", "", ("<end_of_turn>",), "", "<b>Bold</b> answer"),
    ("[1] a list", "", (), "", "[1] a list"),
    ("<think>cut off mid-thought", "", (), "cut off mid-thought", ""),
    ("Answer\n\n<|eot_id|>", "", ("<|eot_id|>",), "", "Answer\n\n"),
]


@pytest.mark.parametrize(("output", "prompt", "stops", "reasoning", "answer"), TEXT_CASES)
def test_text_split_anywhere_gives_the_same_reasoning_and_answer(
    output: str, prompt: str, stops: tuple[str, ...], reasoning: str, answer: str
) -> None:
    for pieces in splits(output):
        got = run([(p, False) for p in pieces], stops=stops, prompt=prompt)
        assert got[:2] == (reasoning, answer), pieces
        assert got[2] == any(s in output for s in stops)


def test_qwen3_with_thinking_off_is_all_answer() -> None:
    prompt = "<|im_start|>assistant\n<think>\n\n</think>\n\n"
    assert run([("Four.", False)], prompt=prompt)[:2] == ("", "Four.")


def harmony_tokens(analysis: list[str], final: list[str]) -> list[tuple[str, bool]]:
    # llama.cpp renders <|channel|>, <|message|>, <|start|> as text; <|end|> is a control token.
    return [
        ("<|channel|>", False),
        ("analysis", False),
        ("<|message|>", False),
        *[(t, False) for t in analysis],
        ("<|end|>", True),
        ("<|start|>", False),
        ("assistant", False),
        ("<|channel|>", False),
        ("final", False),
        ("<|message|>", False),
        *[(t, False) for t in final],
    ]


def test_harmony_channels_split_into_reasoning_and_answer() -> None:
    reasoning, content, _ = run(harmony_tokens(["We need ", "2+2."], ["Four", "."]), harmony=True)
    assert (reasoning, content) == ("We need 2+2.", "Four.")


def test_harmony_as_one_text_split_anywhere() -> None:
    text = "<|channel|>analysis<|message|>Think.<|end|><|start|>assistant<|channel|>final<|message|>Done."
    for pieces in splits(text, max_cuts=1):
        assert run([(p, False) for p in pieces], harmony=True)[:2] == ("Think.", "Done.")


def test_harmony_without_the_format_is_the_answer() -> None:
    assert run([("Just text.", False)], harmony=True)[:2] == ("", "Just text.")


def test_control_tokens_never_reach_the_answer() -> None:
    tokens = [("Hi", False), ("<|im_start|>", True), (" there", False), ("<pad>", True)]
    assert run(tokens)[:2] == ("", "Hi there")


def test_a_control_end_marker_ends_the_turn_even_if_not_end_of_generation() -> None:
    tokens = [("Hi", False), ("<|im_", False), ("<|im_end|>", True), ("more", False)]
    reasoning, content, stopped = run(tokens, stops=("<|im_end|>",))
    assert (content, stopped) == ("Hi<|im_", True)  # the partial text was real text, the control token ended it


def test_control_reasoning_tags_are_recognised() -> None:
    tokens = [("<think>", True), ("hmm", False), ("</think>", True), ("Yes.", False)]
    assert run(tokens)[:2] == ("hmm", "Yes.")


def test_in_reasoning_follows_the_stream() -> None:
    stream = AnswerStream()
    stream.feed("<think>")
    assert stream.in_reasoning
    stream.feed("a</think>")
    assert not stream.in_reasoning
