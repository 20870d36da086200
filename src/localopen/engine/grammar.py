"""Grammars that make an answer well-formed by construction (llama.cpp's GBNF, from JSON schemas):
a `response_format` JSON schema, and a tool call in the model's own format when a call is required
(tool_choice 'required' or a named tool): its arguments always parse and satisfy the tool's schema."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from localopen.core.chat import json_schema
from localopen.core.chat.tool_calls import CONSTRAINED, Tool, call_schema, lifted
from localopen.engine import call_grammars
from localopen.engine.errors import BadRequestError, ToolsUnsupportedError

_BODY = "tool-call-body"


def _literal(text: str) -> str:
    return json.dumps(text)  # a GBNF string literal: JSON's escapes are GBNF's


# An answer in words: it may not open with what a call written as text opens with.
WORDS_ONLY = "root ::= [^{[`<\\x00-\\x20] [^\\x00]*"


@contextlib.contextmanager
def _schema_errors() -> Iterator[None]:
    """A schema no grammar can be made from is a BadRequestError naming what is wrong (never an
    engine error): llama.cpp's converter says so with assertions and lookups that fail."""
    try:
        yield
    except json_schema.SchemaError as exc:
        raise BadRequestError(f"The JSON schema cannot be used: {exc}.") from exc
    except (AssertionError, KeyError, ValueError, TypeError, RecursionError, AttributeError, IndexError) as exc:
        raise BadRequestError(
            f"The JSON schema uses something a grammar cannot express here ({type(exc).__name__}: {exc}): "
            "simplify that part of the schema."
        ) from exc


# llama.cpp's own converter lets JSON be laid out over lines (as models write it); the Python port
# in llama-cpp-python allows one space only, which cut a model's second pretty-printed call short.
_SPACE = re.compile(r"^space ::= .*$", re.M)
SPACE_RULE = 'space ::= | " " | "\\n"{1,2} [ \\t]{0,20}'


def _laid_out(gbnf: str) -> str:
    return _SPACE.sub(lambda _m: SPACE_RULE, gbnf)


def schema_gbnf(schema: Mapping[str, Any]) -> str:
    """The GBNF of a JSON schema (its root rule: root)."""
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    with _schema_errors():
        return _laid_out(str(json_schema_to_gbnf(json.dumps(json_schema.whole(dict(schema))))))


def value_rules(values: Mapping[str, Any], defs: Mapping[str, Any]) -> str:
    """GBNF rules named as `values`' keys, each for JSON its schema accepts (their references point
    into `defs`), for grammars whose own root writes them where a format puts values."""
    from llama_cpp.llama_grammar import SchemaConverter

    with _schema_errors():
        whole = json.loads(json.dumps({"$defs": dict(defs), "anyOf": list(values.values())}))
        converter = SchemaConverter(prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False)
        whole = converter.resolve_refs(whole, "tools")
        aliases = []
        for name, schema in zip(values, whole["anyOf"], strict=True):
            made = converter.visit(schema, name)  # the converter may name (or share) the rule otherwise
            if made != name:
                aliases.append(f"{name} ::= {made}")
        return "\n".join([_laid_out(converter.format_grammar().strip()), *aliases])


def check(vocab: Any, gbnf: str) -> None:
    """llama.cpp's own parser on a grammar before any sampler uses it: one it rejects would crash
    the engine in llama-cpp-python (a null sampler), so it is a BadRequestError here."""
    import llama_cpp

    sampler = llama_cpp.llama_sampler_init_grammar(vocab, gbnf.encode("utf-8"), b"root")
    if not sampler:
        raise BadRequestError("This request's schema or tools make a grammar llama.cpp cannot read.")
    llama_cpp.llama_sampler_free(sampler)


def _lifted(tools: Sequence[Mapping[str, Any]], only: str | None) -> list[Tool]:
    """The tools a grammar may call (all, or the one tool_choice names), definitions lifted."""
    try:
        chosen = lifted(tools, only)
    except json_schema.SchemaError as exc:
        raise BadRequestError(f"A tool's parameters cannot be used: {exc}.") from exc
    if not chosen:
        raise ToolsUnsupportedError(f"tool_choice names a tool that is not among 'tools' ({only!r}).")
    return chosen


def _written_calls(fmt_name: str, tools: Sequence[Mapping[str, Any]], only: str | None, parallel: bool,
                   written: str = "") -> str:  # fmt: skip
    """A call in one of the formats whose body is not one JSON object (engine/call_grammars)."""
    try:
        return call_grammars.calls_gbnf(fmt_name, _lifted(tools, only), parallel, value_rules, written)
    except call_grammars.Unwritable as exc:
        raise ToolsUnsupportedError(f"{exc}: use tool_choice 'auto'.") from exc


def lazy_tool_call_gbnf(fmt_name: str, marker: str, tools: Sequence[Mapping[str, Any]]) -> str | None:
    """For tool_choice 'auto': once the model has written a call's opening marker (free text before
    it is the model's own), the rest of the call, and any further calls, decode under this grammar
    (llama.cpp's server does the same with its lazy grammars). None for a format without one."""
    writer = call_grammars.WRITERS.get(fmt_name)
    if writer is not None and marker and writer.open.startswith(marker):
        try:
            return _written_calls(fmt_name, tools, None, True, marker)
        except ToolsUnsupportedError:
            return None  # arguments its grammar cannot write: the call is read as the model writes it
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


# A call written outside the template's format, opened as far as its name's first letters:
# {"name": "get_w (or inside doubled braces, as some templates' examples show it).
_LOOSE_OPENING = re.compile(r'\{\s*(\{\s*)?"name"\s*:\s*"([a-zA-Z0-9_-]*)')


def loose_call_gbnf(written: str, fenced: bool, tools: Sequence[Mapping[str, Any]]) -> str | None:
    """For tool_choice 'auto': once an answer opens with a call written as bare JSON (or in a
    ```json fence) as far as the start of an offered tool's name, the rest of it decodes under
    this grammar: that tool's name, arguments its schema accepts, the closing braces and fence,
    and any further calls, one per line. None: the text is not such an opening (yet)."""
    m = _LOOSE_OPENING.fullmatch(written)
    if m is None:
        return None
    doubled, partial = m.group(1) is not None, m.group(2)
    chosen = [t for t in _lifted(tools, None) if t[1].startswith(partial)]
    if not chosen:
        return None
    defs: dict[str, Any] = {}
    values: dict[str, Any] = {}
    for i, _name, parameters, own in chosen:
        defs.update(own)
        values[f"t{i}-args"] = parameters
    one_call = call_schema(tools, CONSTRAINED["hermes"])  # a further call: any of the tools
    defs.update(one_call.pop("$defs", {}))
    values["one-call"] = one_call
    body = value_rules(values, defs)
    ws = "[ \\t\\n]*"
    closing = _literal("}}" if doubled else "}")
    arguments = f'{ws} "," {ws} "\\"arguments\\"" {ws} ":" {ws}'
    first = " | ".join(
        f"{_literal(name[len(partial) :] + chr(34))} {arguments} t{i}-args {ws} {closing}"
        for i, name, _parameters, _own in chosen
    )
    close = f' {ws} "```"' if fenced else ""
    return f'root ::= ({first}) ("\\n" {ws} one-call)*{close}\n{body}'


def _mistral_args_gbnf(tools: Sequence[Mapping[str, Any]], only: str | None, parallel: bool) -> str:
    """[TOOL_CALLS]NAME[ARGS]{json}, once or repeated: the name outside the JSON, so each tool's
    arguments are a rule of their own (lifted as a definition) and the call picks one by its name."""
    chosen = _lifted(tools, only)
    defs: dict[str, Any] = {}
    for _i, _name, _parameters, own in chosen:
        defs.update(own)
    body = value_rules({f"t{i}-args": parameters for i, _name, parameters, _own in chosen}, defs)
    alternatives = [f'{_literal(name)} "[ARGS]" t{i}-args' for i, name, _parameters, _own in chosen]
    one = f'"[TOOL_CALLS]" ({" | ".join(alternatives)})'
    return f"root ::= {one}{f' ({one})*' if parallel else ''}\n{body}"


def after_reasoning(gbnf: str, close: str) -> str:
    """A grammar for an answer that starts inside reasoning the prompt opened (DeepSeek-R1,
    MiniMax-M2): free reasoning up to its closing tag, then what `gbnf` allows."""
    body = re.sub(r"^root ::=", "answer-after-reasoning ::=", gbnf, flags=re.M)
    return f"root ::= reasoning-text {_literal(close)} [ \\t\\n]* answer-after-reasoning\n{body}\n" + (
        call_grammars.text_without(close, "reasoning-text")
    )


def tool_call_gbnf(fmt_name: str, tools: Sequence[Mapping[str, Any]], tool_choice: str, parallel: bool = True) -> str:
    """A call of the tools (any, or the one named by tool_choice), written as the format writes it;
    with parallel calls allowed, one or more ("Paris and Tokyo": two)."""
    only = None if tool_choice == "required" else tool_choice
    if fmt_name == "mistral_args":
        return _mistral_args_gbnf(tools, only, parallel and only is None)
    if fmt_name in call_grammars.WRITERS:
        return _written_calls(fmt_name, tools, only, parallel and only is None)
    fmt = CONSTRAINED.get(fmt_name)
    if fmt is None:
        raise ToolsUnsupportedError(
            f"This model's tool-call format ({fmt_name}) cannot be decoded under a grammar here, so "
            "tool_choice 'required' or a named tool is not available for it: use tool_choice 'auto'."
        )
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
