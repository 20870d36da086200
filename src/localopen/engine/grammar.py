"""Grammars that make an answer well-formed by construction (llama.cpp's GBNF, from JSON schemas):
a `response_format` JSON schema, and a tool call in the model's own format when a call is required
(tool_choice 'required' or a named tool): its arguments always parse and satisfy the tool's schema."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from localopen.core.chat.tool_calls import CONSTRAINED, call_schema
from localopen.engine.errors import ToolsUnsupportedError

_BODY = "tool-call-body"


def _literal(text: str) -> str:
    return json.dumps(text)  # a GBNF string literal: JSON's escapes are GBNF's


def schema_gbnf(schema: Mapping[str, Any]) -> str:
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    return str(json_schema_to_gbnf(json.dumps(schema)))


def lazy_tool_call_gbnf(fmt_name: str, marker: str, tools: Sequence[Mapping[str, Any]]) -> str | None:
    """For tool_choice 'auto': once the model has written a call's opening marker (free text before
    it is the model's own), the rest of the call, and any further calls, decode under this grammar
    (llama.cpp's server does the same with its lazy grammars). None for a format without one."""
    fmt = CONSTRAINED.get(fmt_name)
    if fmt is None or not marker or not fmt.prefix.startswith(marker):
        return None
    body = re.sub(r"^root ::=", f"{_BODY} ::=", schema_gbnf(call_schema(tools, fmt)), flags=re.M)
    rest = fmt.prefix[len(marker) :]
    one = " ".join(p for p in (_literal(rest) if rest else "", _BODY, _literal(fmt.suffix) if fmt.suffix else "") if p)
    more = "" if fmt.as_list else f' ("\\n" {_literal(fmt.prefix)} {_BODY} {_literal(fmt.suffix)})*'
    return f"root ::= {one}{more}\n{body}"


def tool_call_gbnf(fmt_name: str, tools: Sequence[Mapping[str, Any]], tool_choice: str) -> str:
    """One call of the tools (any, or the one named by tool_choice), written as the format writes it."""
    fmt = CONSTRAINED.get(fmt_name)
    if fmt is None:
        raise ToolsUnsupportedError(
            f"This model's tool-call format ({fmt_name}) cannot be decoded under a grammar here, so "
            "tool_choice 'required' or a named tool is not available for it: use tool_choice 'auto'."
        )
    only = None if tool_choice == "required" else tool_choice
    try:
        schema = call_schema(tools, fmt, only)
    except ValueError as exc:
        raise ToolsUnsupportedError(f"tool_choice names a tool that is not among 'tools' ({exc}).") from exc
    body = re.sub(r"^root ::=", f"{_BODY} ::=", schema_gbnf(schema), flags=re.M)
    parts = [p for p in (_literal(fmt.prefix) if fmt.prefix else "", _BODY, _literal(fmt.suffix) if fmt.suffix else "")]
    return f"root ::= {' '.join(p for p in parts if p)}\n{body}"
