"""Tools described for models whose chat template writes tool calls but never describes the tools
(DeepSeek V3.1): the description goes into the system message in the words the model was trained
on, as its makers' reference prompt (and Ollama's DeepSeek renderer) write it."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any


def _deepseek_v31(tools: Sequence[Mapping[str, Any]]) -> str:
    lines = ["## Tools", "You have access to the following tools:"]
    for tool in tools:
        function = tool.get("function", tool)
        lines += [
            "",
            f"### {function.get('name', '')}",
            f"Description: {function.get('description', '')}",
            "",
            f"Parameters: {json.dumps(function.get('parameters') or {}, ensure_ascii=False)}",
        ]
    lines += [
        "",
        "IMPORTANT: ALWAYS adhere to this exact format for tool use:",
        "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>tool_call_name<｜tool▁sep｜>tool_call_arguments<｜tool▁call▁end｜>"
        "{{additional_tool_calls}}<｜tool▁calls▁end｜>",
        "",
        "Where:",
        "",
        "- `tool_call_name` must be an exact match to one of the available tools",
        "- `tool_call_arguments` must be valid JSON that strictly follows the tool's Parameters Schema",
        "- For multiple tool calls, chain them directly without separators or spaces",
    ]
    return "\n".join(lines)


_DESCRIBERS = {"deepseek_v31": _deepseek_v31}


def describe(tool_format: str | None, tools: Sequence[Mapping[str, Any]]) -> str | None:
    """The tools described for a model of this call format whose template does not describe them;
    None where no description is known (then the model is not told about the tools)."""
    describer = _DESCRIBERS.get(tool_format or "")
    return describer(tools) if describer is not None and tools else None
