"""A model's output, token text by token text, turned into what the user reads: the answer and,
apart from it, the reasoning; the end of the turn recognised; no control text ever shown.

Formats: reasoning in tags (<think>…</think> and the variants real templates use) at the start of
the answer, or already opened by the template's generation prompt (DeepSeek-R1, QwQ); gpt-oss's
harmony channels (<|channel|>analysis<|message|>…<|end|>, then the final channel). Pieces of text
may split a tag or a stop string anywhere: what could still become one is held back until the
next piece decides.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Sequence

from localopen.core.records import AnswerPiece as Piece
from localopen.core.records import ToolCall, new_tool_call_id

# (open, close) reasoning tags, as models write them.
REASONING_TAGS = (
    ("<think>", "</think>"),
    ("<seed:think>", "</seed:think>"),
    ("<|START_THINKING|>", "<|END_THINKING|>"),
    ("[THINK]", "[/THINK]"),
    ("<|channel>thought", "<channel|>"),  # Gemma 4
)

HARMONY_CHANNEL, HARMONY_MESSAGE, HARMONY_END, HARMONY_START = "<|channel|>", "<|message|>", "<|end|>", "<|start|>"
HARMONY_CALL = "<|call|>"


def held_suffix(text: str, markers: Sequence[str]) -> int:
    """Length of the longest end of `text` that is the start of a marker (it may still become one)."""
    longest = 0
    for marker in markers:
        for n in range(min(len(marker) - 1, len(text)), longest, -1):
            if text.endswith(marker[:n]):
                longest = n
                break
    return longest


def _first(text: str, markers: Sequence[str]) -> tuple[int, str] | None:
    found = [(i, m) for m in markers if (i := text.find(m)) >= 0]
    return min(found, key=lambda f: (f[0], -len(f[1]))) if found else None


class _StopStrings:
    """Cuts the stream at the first stop string; holds back what could still become one."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = [s for s in stops if s]
        self.held = ""
        self.stopped = False

    def feed(self, text: str) -> str:
        if self.stopped:
            return ""
        text = self.held + text
        hit = _first(text, self.stops)
        if hit is not None:
            self.stopped, self.held = True, ""
            return text[: hit[0]]
        keep = held_suffix(text, self.stops)
        self.held = text[len(text) - keep :] if keep else ""
        return text[: len(text) - keep]

    def flush(self) -> str:
        text, self.held = self.held, ""
        return text


class _TagReasoning:
    """Reasoning in tags at the start of the answer (or opened by the prompt)."""

    def __init__(self, opened_by_prompt: tuple[str, str] | None) -> None:
        self.pair = opened_by_prompt
        self.state = "reasoning" if opened_by_prompt else "start"  # start | reasoning | after | content
        self.buf = ""
        self.begun = False  # reasoning text has started
        self.opens = [o for o, _ in REASONING_TAGS]

    @property
    def in_reasoning(self) -> bool:
        return self.state == "reasoning"

    def feed(self, text: str) -> list[Piece]:
        self.buf += text
        out: list[Piece] = []
        while self.buf:
            if self.state == "start":
                stripped = self.buf.lstrip()
                pair = next((p for p in REASONING_TAGS if stripped.startswith(p[0])), None)
                if pair is not None:
                    self.pair, self.state = pair, "reasoning"
                    self.buf = stripped[len(pair[0]) :]
                    continue
                if not stripped or any(o.startswith(stripped) for o in self.opens):
                    return out  # still undecided
                self.state = "content"
                continue
            if self.state == "reasoning":
                assert self.pair is not None
                if not self.begun:  # the line break after the open tag is no reasoning
                    self.buf = self.buf.lstrip("\n")
                    if not self.buf:
                        return out
                    self.begun = True
                close = self.pair[1]
                i = self.buf.find(close)
                if i >= 0:
                    if i:
                        out.append(Piece(self.buf[:i], True))
                    self.buf, self.state = self.buf[i + len(close) :], "after"
                    continue
                keep = held_suffix(self.buf, [close])
                if len(self.buf) > keep:
                    out.append(Piece(self.buf[: len(self.buf) - keep], True))
                self.buf = self.buf[len(self.buf) - keep :]
                return out
            if self.state == "after":  # the blank lines between reasoning and answer are no answer
                self.buf = self.buf.lstrip()
                if not self.buf:
                    return out
                self.state = "content"
                continue
            out.append(Piece(self.buf))
            self.buf = ""
        return out

    def flush(self) -> list[Piece]:
        text, self.buf = self.buf, ""
        if not text or self.state == "after":
            return []
        return [Piece(text.strip() if self.state == "start" else text, self.state == "reasoning")]


def reasoning_opened_by(prompt: str) -> tuple[str, str] | None:
    """The reasoning tags a template's generation prompt leaves open (DeepSeek-R1's '<think>\\n'):
    the answer starts inside them."""
    tail = prompt.rstrip()
    return next((pair for pair in REASONING_TAGS if tail.endswith(pair[0])), None)


class _Harmony:
    """gpt-oss: messages of the form <|channel|>NAME<|message|>TEXT<|end|>, then <|start|>assistant
    for the next. The final channel is the answer; analysis (and any other) is reasoning. A message
    addressed to a tool (`to=functions.NAME` in its header) is a tool call: its text is the
    arguments, ended by <|call|>."""

    def __init__(self) -> None:
        self.state = "header"  # header | body | content (text outside the format: the answer)
        self.channel = ""
        self.recipient: str | None = None  # the tool a message is addressed to
        self.buf = ""

    @property
    def in_reasoning(self) -> bool:
        return self.state == "body" and self.channel != "final"

    def feed(self, text: str) -> list[Piece]:
        self.buf += text
        out: list[Piece] = []
        while self.buf:
            if self.state == "header":
                stripped = self.buf.lstrip()
                if not stripped.startswith((HARMONY_CHANNEL, HARMONY_START)):
                    if not stripped or any(m.startswith(stripped) for m in (HARMONY_CHANNEL, HARMONY_START)):
                        return out
                    self.state = "content"  # not the format after all
                    continue
                i = stripped.find(HARMONY_MESSAGE)
                if i < 0:
                    return out
                header = stripped[:i]
                name = header.rsplit(HARMONY_CHANNEL, 1)[-1] if HARMONY_CHANNEL in header else ""
                self.channel = name.split()[0] if name.split() else ""
                to = re.search(r"to=functions\.([^\s<]+)", header)
                self.recipient = to.group(1) if to else None
                self.buf, self.state = stripped[i + len(HARMONY_MESSAGE) :], "body"
                continue
            if self.state == "body" and self.recipient is not None:
                j = self.buf.find(HARMONY_CALL)
                if j < 0:
                    return out
                out += self._call(self.buf[:j])
                self.buf, self.state = self.buf[j + len(HARMONY_CALL) :], "header"
                continue
            if self.state == "body":
                markers = (HARMONY_END, HARMONY_START, HARMONY_CHANNEL)
                hit = _first(self.buf, markers)
                end = hit[0] if hit else len(self.buf) - held_suffix(self.buf, markers)
                if end:
                    out.append(Piece(self.buf[:end], self.channel != "final"))
                if hit is None:
                    self.buf = self.buf[end:]
                    return out
                # <|end|> closes the message; a new header may follow without it.
                self.buf = self.buf[end + (len(HARMONY_END) if hit[1] == HARMONY_END else 0) :]
                self.state = "header"
                continue
            out.append(Piece(self.buf))
            self.buf = ""
        return out

    def flush(self) -> list[Piece]:
        text, self.buf = self.buf, ""
        if self.state == "body" and self.recipient is not None:
            return self._call(text)  # <|call|> ends generation: the arguments end with the stream
        if self.state == "body" and text:
            return [Piece(text, self.channel != "final")]
        return [Piece(text)] if self.state == "content" and text else []

    def _call(self, arguments: str) -> list[Piece]:
        name, self.recipient = self.recipient or "", None
        text = arguments.strip() or "{}"
        try:
            arguments_value = json.loads(text, strict=False)
            valid = isinstance(arguments_value, dict)
        except ValueError:
            valid = False
        if not valid:  # not a call after all: shown as what the model wrote
            return [Piece(f"to=functions.{name} {arguments}")]
        return [
            Piece("", tool_call=ToolCall(new_tool_call_id(), name, json.dumps(arguments_value, ensure_ascii=False)))
        ]


class _Plain:
    """No reasoning split: the text as the model wrote it (plain completions)."""

    in_reasoning = False

    def feed(self, text: str) -> list[Piece]:
        return [Piece(text)] if text else []

    def flush(self) -> list[Piece]:
        return []


class AnswerStream:
    """feed() each token's text (control=True for the model's control tokens) and get the pieces
    to show; `stopped` turns true at the end of the turn; finish() gives what was held back."""

    def __init__(
        self,
        stops: Sequence[str] = (),
        prompt: str = "",
        harmony: bool = False,
        reasoning: bool = True,
        keep: Collection[str] = (),
    ) -> None:
        self._stops = _StopStrings(stops)
        self._parser: _TagReasoning | _Harmony | _Plain
        if not reasoning:
            self._parser = _Plain()
        elif harmony:
            self._parser = _Harmony()
        else:
            self._parser = _TagReasoning(reasoning_opened_by(prompt))
        self._tags = {t for pair in REASONING_TAGS for t in pair}
        self._structural = (
            {HARMONY_END, HARMONY_START, HARMONY_CHANNEL, HARMONY_MESSAGE, HARMONY_CALL} if harmony else set()
        )
        # Control tokens that carry meaning downstream (a tool-call format's markers): passed on as text.
        self._keep = set(keep)

    @property
    def stopped(self) -> bool:
        return self._stops.stopped

    @property
    def in_reasoning(self) -> bool:
        """Whether the text fed so far leaves the model inside its reasoning."""
        return self._parser.in_reasoning

    def feed(self, text: str, control: bool = False) -> list[Piece]:
        if self._stops.stopped:
            return []
        if not control:
            return self._parser.feed(self._stops.feed(text))
        # A control token is whole: it ends any partial stop string, and only a reasoning tag or a
        # harmony marker means anything; any other control text is never shown.
        pieces = self._parser.feed(self._stops.flush())
        if text in self._stops.stops:
            self._stops.stopped = True
            return pieces + self._parser.flush()
        if text in self._tags or text in self._structural or text in self._keep:
            pieces += self._parser.feed(text)
        return pieces

    def finish(self) -> list[Piece]:
        pieces = [] if self._stops.stopped else self._parser.feed(self._stops.flush())
        return pieces + self._parser.flush()
