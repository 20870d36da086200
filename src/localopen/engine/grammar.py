"""Grammars that make an answer well-formed by construction (llama.cpp's GBNF, from JSON schemas):
a `response_format` JSON schema, and a tool call in the model's own format when a call is required
(tool_choice 'required' or a named tool): its arguments always parse and satisfy the tool's schema."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from localopen.core.chat import json_schema
from localopen.core.chat.tool_calls import CONSTRAINED, call_schema
from localopen.engine.errors import BadRequestError, ToolsUnsupportedError

_BODY = "tool-call-body"


def _literal(text: str) -> str:
    return json.dumps(text)  # a GBNF string literal: JSON's escapes are GBNF's


# An answer in words: it may not open with what a call written as text opens with.
WORDS_ONLY = "root ::= [^{[`<\\x00-\\x20] [^\\x00]*"


def schema_gbnf(schema: Mapping[str, Any]) -> str:
    """The GBNF of a JSON schema; a schema no grammar can be made from is a BadRequestError naming
    what is wrong (never an engine error)."""
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    try:
        return str(json_schema_to_gbnf(json.dumps(json_schema.whole(dict(schema)))))
    except json_schema.SchemaError as exc:
        raise BadRequestError(f"The JSON schema cannot be used: {exc}.") from exc
    except (AssertionError, KeyError, ValueError, TypeError, RecursionError, AttributeError, IndexError) as exc:
        raise BadRequestError(
            f"The JSON schema uses something a grammar cannot express here ({type(exc).__name__}: {exc}): "
            "simplify that part of the schema."
        ) from exc


def check(vocab: Any, gbnf: str) -> None:
    """llama.cpp's own parser on a grammar before any sampler uses it: one it rejects would crash
    the engine in llama-cpp-python (a null sampler), so it is a BadRequestError here."""
    import llama_cpp

    sampler = llama_cpp.llama_sampler_init_grammar(vocab, gbnf.encode("utf-8"), b"root")
    if not sampler:
        raise BadRequestError("This request's schema or tools make a grammar llama.cpp cannot read.")
    llama_cpp.llama_sampler_free(sampler)


def lazy_tool_call_gbnf(fmt_name: str, marker: str, tools: Sequence[Mapping[str, Any]]) -> str | None:
    """For tool_choice 'auto': once the model has written a call's opening marker (free text before
    it is the model's own), the rest of the call, and any further calls, decode under this grammar
    (llama.cpp's server does the same with its lazy grammars). None for a format without one."""
    fmt = CONSTRAINED.get(fmt_name)
    if fmt is None or not marker or not fmt.prefix.startswith(marker):
        return None
    try:
        schema = call_schema(tools, fmt)
    except json_schema.SchemaError as exc:
        raise BadRequestError(f"A tool's parameters cannot be used: {exc}.") from exc
    body = re.sub(r"^root ::=", f"{_BODY} ::=", schema_gbnf(schema), flags=re.M)
    rest = fmt.prefix[len(marker) :]
    one = " ".join(p for p in (_literal(rest) if rest else "", _BODY, _literal(fmt.suffix) if fmt.suffix else "") if p)
    more = "" if fmt.as_list else f' ("\\n" {_literal(fmt.prefix)} {_BODY} {_literal(fmt.suffix)})*'
    return f"root ::= {one}{more}\n{body}"


def _mistral_args_gbnf(tools: Sequence[Mapping[str, Any]], only: str | None, parallel: bool) -> str:
    """[TOOL_CALLS]NAME[ARGS]{json}, once or repeated: the name outside the JSON, so each tool's
    arguments are a rule of their own (lifted as a definition) and the call picks one by its name."""
    defs: dict[str, Any] = {}
    alternatives = []
    for i, tool in enumerate(tools):
        function = tool.get("function", tool)
        name = function.get("name")
        if only is not None and name != only:
            continue
        try:
            parameters, own = json_schema.lift(function.get("parameters") or {"type": "object"}, f"t{i}-")
        except json_schema.SchemaError as exc:
            raise BadRequestError(f"A tool's parameters cannot be used: {exc}.") from exc
        defs.update(own)
        defs[f"t{i}-args"] = parameters
        alternatives.append(f'{_literal(str(name))} "[ARGS]" t{i}-args')
    if not alternatives:
        raise ToolsUnsupportedError(f"tool_choice names a tool that is not among 'tools' ({only!r}).")
    schema = {"$defs": defs, "anyOf": [{"$ref": f"#/$defs/t{i}-args"} for i in range(len(tools))
                                        if f"t{i}-args" in defs]}  # fmt: skip
    body = re.sub(r"^root ::=", "tool-call-arguments ::=", schema_gbnf(schema), flags=re.M)
    one = f'"[TOOL_CALLS]" ({" | ".join(alternatives)})'
    return f"root ::= {one}{f' ({one})*' if parallel else ''}\n{body}"


def tool_call_gbnf(fmt_name: str, tools: Sequence[Mapping[str, Any]], tool_choice: str, parallel: bool = True) -> str:
    """A call of the tools (any, or the one named by tool_choice), written as the format writes it;
    with parallel calls allowed, one or more ("Paris and Tokyo": two)."""
    if fmt_name == "mistral_args":
        only = None if tool_choice == "required" else tool_choice
        return _mistral_args_gbnf(tools, only, parallel and only is None)
    fmt = CONSTRAINED.get(fmt_name)
    if fmt is None:
        raise ToolsUnsupportedError(
            f"This model's tool-call format ({fmt_name}) cannot be decoded under a grammar here, so "
            "tool_choice 'required' or a named tool is not available for it: use tool_choice 'auto'."
        )
    only = None if tool_choice == "required" else tool_choice
    parallel = parallel and only is None  # a named tool is one call of it, as OpenAI forces it
    try:
        schema = call_schema(tools, fmt, only)
    except json_schema.SchemaError as exc:
        raise BadRequestError(f"A tool's parameters cannot be used: {exc}.") from exc
    except ValueError as exc:
        raise ToolsUnsupportedError(f"tool_choice names a tool that is not among 'tools' ({exc}).") from exc
    if fmt.as_list and not parallel:
        schema = {**schema, "maxItems": 1}
    body = re.sub(r"^root ::=", f"{_BODY} ::=", schema_gbnf(schema), flags=re.M)
    parts = [p for p in (_literal(fmt.prefix) if fmt.prefix else "", _BODY, _literal(fmt.suffix) if fmt.suffix else "")]
    one = " ".join(p for p in parts if p)
    more = f' ("\\n" {one})*' if parallel and not fmt.as_list else ""
    return f"root ::= {one}{more}\n{body}"
