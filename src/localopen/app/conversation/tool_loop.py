"""An answer that may call tools: the model answers with the tools offered; each call it makes runs
only if the person allows it, its result goes back into the conversation, and the model answers
again, for a limited number of rounds. The CLI's chat (and any face) drives it the same way.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from localopen.app.conversation.chat import ChatSession
from localopen.app.conversation.mcp_tools import McpConnections, ToolResult
from localopen.app.conversation.repeats import CLOSING, answered_calls, call_key
from localopen.core.errors import LocalopenError
from localopen.core.options import AnswerOptions, SamplingParams
from localopen.core.records import AnswerPiece, AnswerStats, ToolCall

log = logging.getLogger("localopen.tools")

MAX_ROUNDS = 5  # answers whose calls run in one turn; the answer after them has tools off


@dataclass(frozen=True)
class ToolRun:
    """One call as the transcript shows it and the conversation keeps it."""

    call: ToolCall
    result: ToolResult

    def to_dict(self) -> dict[str, Any]:
        try:
            arguments: Any = json.loads(self.call.arguments)
        except ValueError:
            arguments = self.call.arguments
        return {
            "name": self.call.name,
            "arguments": arguments,
            "result": self.result.text,
            "is_error": self.result.is_error,
            "ms": self.result.ms,
        }


@dataclass
class TurnOutcome:
    content: str
    reasoning: str
    stats: AnswerStats
    runs: list[ToolRun] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)  # what the turn added to the conversation
    note: str = ""  # how the loop ended when it had to end it (a repeated call, the round limit), in words


class _Collected:
    """One answer's text, reasoning and calls, as they stream (passed on to the face as well)."""

    def __init__(self, on_piece: Callable[[AnswerPiece], None] | None) -> None:
        self.on_piece = on_piece
        self.text: list[str] = []
        self.reasoning: list[str] = []
        self.calls: list[ToolCall] = []

    def __call__(self, piece: AnswerPiece) -> None:
        if piece.tool_call is not None:
            self.calls.append(piece.tool_call)
        else:
            (self.reasoning if piece.reasoning else self.text).append(piece.text)
        if self.on_piece is not None:
            self.on_piece(piece)


def answer_with_tools(
    session: ChatSession,
    messages: list[dict[str, Any]],
    sampling: SamplingParams,
    template: str | None,
    connections: McpConnections,
    allow: Callable[[ToolCall], bool],
    on_piece: Callable[[AnswerPiece], None] | None = None,
    on_run: Callable[[ToolRun], None] | None = None,
    tool_choice: str = "auto",
    thinking: bool | None = None,
    max_rounds: int = MAX_ROUNDS,
) -> TurnOutcome:
    """Answer, running the calls the person allows, until the model answers without calling. A loop
    always ends in words: a call that repeats one already answered is not run again (the model is
    asked to answer from the results it has, with tools off), and the last round has tools off."""
    tools = [t.openai() for t in connections.tools()]
    if tool_choice not in ("auto", "none") and not tools:
        raise LocalopenError(
            "A tool call was required, but no tool is available (no MCP server offers one): "
            "check the MCP servers, or let the model answer without tools."
        )
    history = list(messages)
    added: list[dict[str, Any]] = []
    runs: list[ToolRun] = []
    done = answered_calls(history)
    words_only = False  # the model repeated a call already answered: it answers from the results
    note = ""
    for round_ in range(max_rounds + 1):
        got = _Collected(on_piece)
        last = round_ == max_rounds
        if not tools or words_only or last:
            choice = "none"
            if last and tools and not words_only:
                rounds = f"{max_rounds} round{'s' if max_rounds != 1 else ''}"
                note = f"After {rounds} of tool calls the model was asked to answer in words."
        else:
            choice = tool_choice if round_ == 0 else "auto"
        # After tools ran, an answer with tools off is words: small models otherwise write one more
        # call as text. It is asked for in words too (only in the prompt, never kept).
        closing = choice == "none" and bool(runs)
        options = AnswerOptions(thinking=thinking, tools=tools or None, tool_choice=choice, words_only=closing)
        prompt = [*history, {"role": "user", "content": CLOSING}] if closing else history
        stats = session.answer(prompt, sampling, template, got, options)
        answer: dict[str, Any] = {"role": "assistant", "content": "".join(got.text)}
        if got.reasoning:
            answer["reasoning_content"] = "".join(got.reasoning)
        if not got.calls and runs and not closing and not "".join(got.text).strip():
            # Nothing said after tools ran (an empty turn): the model is asked once more, in words.
            words_only = True
            continue
        if not got.calls:
            added.append(answer)
            if note:  # said under the answer, in every face
                stats.notice = f"{stats.notice} {note}" if stats.notice else note
            return TurnOutcome("".join(got.text), "".join(got.reasoning), stats, runs, added, note)
        fresh, seen = [], set(done)  # a call written twice in one answer runs once
        for c in got.calls:
            if (key := call_key(c.name, c.arguments)) not in seen:
                seen.add(key)
                fresh.append(c)
        log.info("Round %d (tools %s): %d calls, %d new", round_, choice, len(got.calls), len(fresh))
        if len(fresh) < len(got.calls):
            # A call already answered: not run again; the model answers from the results next.
            log.info("The model repeated calls already answered: it answers from their results")
            words_only = True
            note = "The model called a tool again with the same arguments: it answered from the result it had."
            if not fresh:
                continue
        answer["tool_calls"] = [c.to_dict() for c in fresh]
        added.append(answer)
        history.append(answer)
        for call in fresh:
            key = call_key(call.name, call.arguments)
            ran = False
            if allow(call):
                try:
                    arguments = json.loads(call.arguments)
                except ValueError:
                    arguments = None
                if isinstance(arguments, dict):
                    result, ran = connections.call(call.name, arguments), True
                else:
                    result = ToolResult("The call's arguments are not a JSON object.", True, 0.0)
            else:
                result = ToolResult("The user did not allow this call.", True, 0.0)
            if ran:  # a call refused or malformed was not answered: asking again is no repeat
                done[key] = result.text
            run = ToolRun(call, result)
            runs.append(run)
            if on_run is not None:
                on_run(run)
            message = {"role": "tool", "tool_call_id": call.id, "name": call.name, "content": result.text}
            added.append(message)
            history.append(message)
    raise AssertionError("unreachable: the last round has tools off and returns")
