"""Usable as an agent here, measured: five short canned tasks an agent's model must get right, run on
the installed file through its own template and call format, scored N/5 and saved with the file's
sha256, this machine and the llama.cpp build (like a benchmark result).

The tasks: one call with typed arguments; the right call among three tools; two calls at once; an
answer that uses a tool's result; no call when none is needed. Each runs at temperature 0 with a
fixed seed, so a score is repeatable on one build.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localopen.app.context import AppContext
from localopen.app.conversation.chat import ChatSession
from localopen.core.chat.template import traits
from localopen.core.gguf.header import read_header
from localopen.core.options import AnswerOptions, LoadOptions, SamplingParams
from localopen.core.records import AnswerPiece, ToolCall
from localopen.core.store import tool_checks
from localopen.core.store.hashing import cached_sha256
from localopen.core.store.tool_checks import TaskOutcome, ToolCheck
from localopen.engine.errors import ToolsUnsupportedError


def function_tool(name: str, description: str, properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {"type": "object", "properties": properties, "required": required},
        },
    }


WEATHER = function_tool(
    "get_weather",
    "Get the weather forecast for a city for a number of days.",
    {"city": {"type": "string", "description": "City name"}, "days": {"type": "integer", "description": "1 to 7"}},
    ["city", "days"],
)
TIME = function_tool("get_time", "Get the current local time in a city.", {"city": {"type": "string"}}, ["city"])
CURRENCY = function_tool(
    "convert_currency",
    "Convert an amount of money from one currency to another.",
    {"amount": {"type": "number"}, "from": {"type": "string"}, "to": {"type": "string"}},
    ["amount", "from", "to"],
)
USER = "user"


@dataclass(frozen=True)
class Task:
    name: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]]
    judge: Callable[[str, list[ToolCall]], tuple[bool, str]]


def _args(call: ToolCall) -> dict[str, Any]:
    try:
        value = json.loads(call.arguments)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _said(text: str, calls: list[ToolCall], why: str = "") -> str:
    shown = "; ".join(f"{c.name}({c.arguments})" for c in calls) or "no call"
    return f"{why + ': ' if why else ''}{shown}; text: {text.strip()[:120]!r}"


def _why(calls: list[ToolCall], tool: str, args_ok: Callable[[dict[str, Any]], bool], n: int = 1) -> str:
    """Why calls are not the one expected, in words: none, how many, the wrong tool, bad arguments."""
    if not calls:
        return "no call"
    if len(calls) != n:
        return f"{len(calls)} calls where {n} {'was' if n == 1 else 'were'} needed"
    wrong = [c.name for c in calls if c.name != tool]
    if wrong:
        return f"wrong tool ({', '.join(wrong)} instead of {tool})"
    if not all(args_ok(_args(c)) for c in calls):
        return "right tool, bad arguments"
    return ""


def _one_typed_call(text: str, calls: list[ToolCall]) -> tuple[bool, str]:
    def args_ok(a: dict[str, Any]) -> bool:
        days = a.get("days")
        return "paris" in str(a.get("city", "")).lower() and days == 3 and isinstance(days, int)

    why = _why(calls, "get_weather", args_ok)
    return not why, _said(text, calls, why)


def _chosen_call(text: str, calls: list[ToolCall]) -> tuple[bool, str]:
    why = _why(calls, "get_time", lambda a: "tokyo" in str(a.get("city", "")).lower())
    return not why, _said(text, calls, why)


def _two_calls(text: str, calls: list[ToolCall]) -> tuple[bool, str]:
    why = _why(calls, "get_time", lambda a: isinstance(a.get("city"), str), n=2)
    if not why:
        cities = {str(_args(c).get("city", "")).lower() for c in calls}
        if not (any("paris" in c for c in cities) and any("tokyo" in c for c in cities)):
            why = "two calls, but not one for Paris and one for Tokyo"
    return not why, _said(text, calls, why)


def _uses_result(text: str, calls: list[ToolCall]) -> tuple[bool, str]:
    if calls:
        return False, _said(text, calls, "called again instead of answering from the result")
    ok = "18" in text
    return ok, _said(text, calls, "" if ok else "the answer does not use the result (18 °C)")


def _no_call(text: str, calls: list[ToolCall]) -> tuple[bool, str]:
    if calls:
        return False, _said(text, calls, "called a tool that was not needed")
    ok = "4" in text
    return ok, _said(text, calls, "" if ok else "wrong answer")


_PAST_CALL = {
    "id": "call_check_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": json.dumps({"city": "Oslo", "days": 1})},
}
TASKS = [
    Task(
        "one call with typed arguments",
        [{"role": USER, "content": "What will the weather be in Paris over the next 3 days?"}],
        [WEATHER],
        _one_typed_call,
    ),
    Task(
        "the right call among three tools",
        [{"role": USER, "content": "What time is it in Tokyo right now?"}],
        [WEATHER, TIME, CURRENCY],
        _chosen_call,
    ),
    Task(
        "two calls at once",
        [{"role": USER, "content": "What time is it in Paris and in Tokyo? Look up both."}],
        [TIME, WEATHER],
        _two_calls,
    ),
    Task(
        "an answer from a tool's result",
        [
            {"role": USER, "content": "What's the weather in Oslo today?"},
            {"role": "assistant", "content": "", "tool_calls": [_PAST_CALL]},
            {"role": "tool", "tool_call_id": "call_check_1", "name": "get_weather", "content": "18 °C, light rain"},
        ],
        [WEATHER],
        _uses_result,
    ),
    Task(
        "no call when none is needed",
        [{"role": USER, "content": "What is 2 + 2? Answer with the number only."}],
        [WEATHER, TIME],
        _no_call,
    ),
]
SAMPLING = SamplingParams(temperature=0.0, seed=42, max_tokens=256)


def tool_format_of(path: Path) -> str | None:
    """The call format a file's own template uses (None: its template offers no tools)."""
    return traits(read_header(path).chat_template).tool_format


def check(
    ctx: AppContext,
    path: Path,
    load: LoadOptions,
    on_progress: Callable[[str], None] | None = None,
    session: ChatSession | None = None,
) -> ToolCheck:
    """Run the five tasks on an installed file and save the score. Raises ToolsUnsupportedError for a
    model whose template offers no tools (nothing to measure)."""
    fmt = tool_format_of(path)
    if fmt is None:
        raise ToolsUnsupportedError(f"{path.name}'s chat template offers no tools: it cannot be used as an agent.")
    own = session is None
    session = session or ChatSession(ctx)
    outcomes = []
    try:
        info = session.load(path, load)
        for n, task in enumerate(TASKS, 1):
            if on_progress is not None:
                on_progress(f"{n}/{len(TASKS)}: {task.name}")
            text: list[str] = []
            calls: list[ToolCall] = []

            def collect(piece: AnswerPiece, text: list[str] = text, calls: list[ToolCall] = calls) -> None:
                if piece.tool_call is not None:
                    calls.append(piece.tool_call)
                elif not piece.reasoning:
                    text.append(piece.text)

            stats = session.answer(task.messages, SAMPLING, None, collect, AnswerOptions(tools=task.tools))
            passed, detail = task.judge("".join(text), calls)
            if stats.loose_tool_calls:
                # Read as calls (as the API reads them), but a client reading only the format would not.
                detail += f" (written outside the template's {fmt} format: {stats.loose_tool_calls} of the calls)"
            outcomes.append(TaskOutcome(task.name, passed, detail))
    finally:
        if own:
            session.shutdown()
    result = ToolCheck(
        str(path),
        cached_sha256(ctx.db, path),
        ctx.machine_id(),
        info.llama_cpp_version,
        fmt,
        outcomes,
    )
    return tool_checks.save(ctx.db, result)


def latest(ctx: AppContext, path: Path) -> ToolCheck | None:
    """The newest check of this file on this machine (by its path: no file is read)."""
    return tool_checks.latest(ctx.db, ctx.machine_id(), path=str(path))
