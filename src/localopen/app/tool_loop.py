"""An answer that may call tools: the model answers with the tools offered; each call it makes runs
only if the person allows it, its result goes back into the conversation, and the model answers
again, for a limited number of rounds. The CLI's chat (and any face) drives it the same way.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from localopen.app.chat import ChatSession
from localopen.app.mcp_tools import McpConnections, ToolResult
from localopen.core.records import AnswerPiece, AnswerStats, ToolCall
from localopen.engine.protocol import AnswerOptions, SamplingParams

MAX_ROUNDS = 5  # answers whose calls run in one turn; calls beyond them are answered "not run"


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
    """Answer, running the calls the person allows, until the model answers without calling."""
    tools = [t.openai() for t in connections.tools()]
    history = list(messages)
    added: list[dict[str, Any]] = []
    runs: list[ToolRun] = []
    for round_ in range(max_rounds + 1):
        got = _Collected(on_piece)
        choice = (tool_choice if round_ == 0 else "auto") if tools else "none"
        options = AnswerOptions(thinking=thinking, tools=tools or None, tool_choice=choice)
        stats = session.answer(history, sampling, template, got, options)
        answer: dict[str, Any] = {"role": "assistant", "content": "".join(got.text)}
        if got.reasoning:
            answer["reasoning_content"] = "".join(got.reasoning)
        if not got.calls:
            added.append(answer)
            return TurnOutcome("".join(got.text), "".join(got.reasoning), stats, runs, added)
        answer["tool_calls"] = [c.to_dict() for c in got.calls]
        added.append(answer)
        history.append(answer)
        spent = round_ == max_rounds  # the calls of this answer are over the limit: none runs
        for call in got.calls:
            if spent:
                result = ToolResult(
                    f"Not run: this answer reached its limit of {max_rounds} rounds of tool calls.", True, 0.0
                )
            elif allow(call):
                try:
                    arguments = json.loads(call.arguments)
                except ValueError:
                    arguments = None
                if isinstance(arguments, dict):
                    result = connections.call(call.name, arguments)
                else:
                    result = ToolResult("The call's arguments are not a JSON object.", True, 0.0)
            else:
                result = ToolResult("The user did not allow this call.", True, 0.0)
            run = ToolRun(call, result)
            runs.append(run)
            if on_run is not None:
                on_run(run)
            message = {"role": "tool", "tool_call_id": call.id, "name": call.name, "content": result.text}
            added.append(message)
            history.append(message)
        if spent:
            return TurnOutcome("".join(got.text), "".join(got.reasoning), stats, runs, added)
    raise AssertionError("unreachable: the last round returns")
