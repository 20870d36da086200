"""How agent loops end with small models: the calls a conversation already answered (a call that
repeats one of them is not run again) and the line that asks for an answer in words. Our own loop
(tool_loop.py) and a client's loop over the API (app/serving.py) both follow it."""

from __future__ import annotations

import json
from typing import Any

CLOSING = "Now answer my question in words, using the tool results above. Do not call a tool."


def call_key(name: str, arguments: Any) -> tuple[str, str]:
    """A call as the same call whatever its spacing or key order (its arguments as JSON text, or as
    the object some APIs send)."""
    if not isinstance(arguments, str):
        return name, json.dumps(arguments, sort_keys=True)
    try:
        return name, json.dumps(json.loads(arguments), sort_keys=True)
    except ValueError:
        return name, arguments


def answered_calls(messages: list[dict[str, Any]]) -> dict[tuple[str, str], str]:
    """The calls this conversation already made and the results they got."""
    calls: dict[str, tuple[str, str]] = {}
    out: dict[tuple[str, str], str] = {}
    for m in messages:
        for call in m.get("tool_calls") or []:
            function = call.get("function") or {}
            calls[str(call.get("id"))] = call_key(str(function.get("name")), function.get("arguments", ""))
        if m.get("role") == "tool" and str(m.get("tool_call_id")) in calls:
            out[calls[str(m.get("tool_call_id"))]] = str(m.get("content", ""))
    return out
