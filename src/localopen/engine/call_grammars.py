"""Grammars for the call formats whose body is not one JSON object: one writer per format, each
writing a call exactly as that family's template shows it (and as core/chat/tool_calls reads it
back), with every argument's value constrained by the tool's own schema.

A format is an opening marker, the calls, and a closing marker; `block` formats put all calls
between one pair of markers (DeepSeek, Kimi, MiniMax, LFM2), the others repeat the markers per call
(Qwen3-Coder, GLM, functionary). Written with the markers, a grammar forces a call (tool_choice
'required' or a named tool); written without its opening marker, it finishes a call the model
opened itself (tool_choice 'auto': the lazy grammar)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from localopen.core.chat.tool_calls import GEMMA_QUOTE, MINIMAX_SEP, Tool


def literal(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # a GBNF string literal: JSON's escapes are GBNF's


def text_without(end: str, name: str) -> str:
    """Rules `name` for any text that does not contain `end` (a value the end marker closes): the
    states of a matcher for `end`, one rule per prefix of it matched so far."""
    chars = sorted(set(end))

    def state(k: int) -> str:
        return f"{name}{k}" if k else name

    def after(k: int, ch: str) -> int:  # the longest prefix of `end` that the text now ends with
        text = end[:k] + ch
        return next(n for n in range(len(text), -1, -1) if end.startswith(text[len(text) - n :]))

    excluded = "".join(c if c.isalnum() or ord(c) > 127 else f"\\x{ord(c):02X}" for c in chars)
    rules = []
    for k in range(len(end)):
        options = [f"[^{excluded}] {name}"]
        options += [f"{literal(ch)} {state(after(k, ch))}" for ch in chars if after(k, ch) < len(end)]
        options.append('""')  # the text may end here
        rules.append(f"{state(k)} ::= {' | '.join(options)}")
    return "\n".join(rules)


def _string_kind(schema: Any) -> bool:
    return isinstance(schema, Mapping) and schema.get("type") == "string"


@dataclass(frozen=True)
class Writer:
    open: str
    close: str
    between: str  # between two calls
    block: bool  # all calls between one open and one close
    call: Callable[[Tool, Rules], str]  # one call of a tool, without open and close
    one_only: bool = False  # the template writes one call per message (gpt-oss): never parallel


class Rules:
    """The rules a grammar's calls use: each tool's JSON arguments and each parameter's JSON value
    (from llama.cpp's converter), and raw-text values ended by a marker (made here)."""

    def __init__(self) -> None:
        self.schemas: dict[str, Any] = {}
        self.extra: dict[str, str] = {}

    def json(self, name: str, schema: Any) -> str:
        self.schemas[name] = schema
        return name

    def text(self, end: str) -> str:
        slug = re.sub(r"[^a-zA-Z0-9]+", "-", end).strip("-").lower() or "quote"
        name = f"text-{slug}"
        self.extra.setdefault(name, text_without(end, name))
        return name

    def value(self, tool: Tool, j: int, schema: Any, end: str) -> str:
        """A parameter's value as the XML-style formats write it: a string as raw text (its enum's
        words where it has one), anything else as JSON."""
        if _string_kind(schema):
            options = schema.get("enum") or ([schema["const"]] if "const" in schema else None)
            if options and all(isinstance(o, str) for o in options):
                return "(" + " | ".join(literal(o) for o in options) + ")"
            return self.text(end)
        return self.json(f"t{tool[0]}-p{j}", schema)

    def arguments(self, tool: Tool) -> str:
        return self.json(f"t{tool[0]}-args", tool[2])


def ordered(tool: Tool, items: Sequence[tuple[str, bool]], sep: str, extra: dict[str, str]) -> str:
    """A rule for the parameters in their schema's order, each optional one optional, `sep`
    between two written ones (required ones always written)."""
    i = tool[0]

    def name(k: int, first: bool) -> str:
        return f"t{i}-seq{k}{'f' if first else ''}"

    for k in range(len(items), -1, -1):
        for first in (True, False):
            if k == len(items):
                body = '""'
            else:
                expr, required = items[k]
                item = expr if first or not sep else f"{literal(sep)} {expr}"
                body = f"{item} {name(k + 1, False)}"
                if not required:
                    body = f"({body}) | {name(k + 1, first)}"
            extra[name(k, first)] = f"{name(k, first)} ::= {body}"
    return name(0, True)


def _parameters(tool: Tool) -> list[tuple[int, str, Any, bool]]:
    properties = tool[2].get("properties")
    required = set(tool[2].get("required") or ())
    if not isinstance(properties, Mapping):
        return []
    return [(j, str(key), schema, key in required) for j, (key, schema) in enumerate(properties.items())]


def _qwen3_coder(tool: Tool, rules: Rules) -> str:
    items = [
        (f'"<parameter=" {literal(key)} ">\\n" {rules.value(tool, j, s, "</parameter>")} "\\n</parameter>\\n"', req)
        for j, key, s, req in _parameters(tool)
    ]
    params = ordered(tool, items, "", rules.extra)
    return f'"\\n<function=" {literal(tool[1])} ">\\n" {params} "</function>\\n"'


def _key_value_pairs(tool: Tool, rules: Rules, key_tag: str, value_tag: str) -> str:
    """<KEY_TAG>key</KEY_TAG>, a new line, <VALUE_TAG>value</VALUE_TAG>, a new line, per parameter (GLM, Hunyuan)."""
    items = [
        (
            f"{literal(f'<{key_tag}>')} {literal(key)} {literal(f'</{key_tag}>' + chr(10) + f'<{value_tag}>')} "
            f"{rules.value(tool, j, s, f'</{value_tag}>')} {literal(f'</{value_tag}>' + chr(10))}",
            req,
        )
        for j, key, s, req in _parameters(tool)
    ]
    return ordered(tool, items, "", rules.extra)


def _glm(tool: Tool, rules: Rules) -> str:
    return f'{literal(tool[1])} "\\n" {_key_value_pairs(tool, rules, "arg_key", "arg_value")}'


def _minimax(tool: Tool, rules: Rules) -> str:
    items = [
        (
            f'"<parameter name=\\"" {literal(key)} "\\">" {rules.value(tool, j, s, "</parameter>")} "</parameter>\\n"',
            req,
        )
        for j, key, s, req in _parameters(tool)
    ]
    return f'"<invoke name=\\"" {literal(tool[1])} "\\">\\n" {ordered(tool, items, "", rules.extra)} "</invoke>\\n"'


def _lfm2(tool: Tool, rules: Rules) -> str:
    """NAME(key=value, …): values as JSON, which the pythonic reader takes as literals."""
    items = [(f"{literal(key + '=')} {rules.json(f't{tool[0]}-p{j}', s)}", req) for j, key, s, req in _parameters(tool)]
    return f'{literal(tool[1])} "(" {ordered(tool, items, ", ", rules.extra)} ")"'


def _deepseek(tool: Tool, rules: Rules) -> str:
    return (
        f'"<｜tool▁call▁begin｜>function<｜tool▁sep｜>" {literal(tool[1])} "\\n```json\\n" {rules.arguments(tool)} '
        '"\\n```<｜tool▁call▁end｜>"'
    )


def _kimi(tool: Tool, rules: Rules) -> str:
    return (
        f'"<|tool_call_begin|>functions." {literal(tool[1])} ":" [0-9] [0-9]? "<|tool_call_argument_begin|>" '
        f'{rules.arguments(tool)} "<|tool_call_end|>"'
    )


def _deepseek_v31(tool: Tool, rules: Rules) -> str:
    return f'"<｜tool▁call▁begin｜>" {literal(tool[1])} "<｜tool▁sep｜>" {rules.arguments(tool)} "<｜tool▁call▁end｜>"'


def _dsml(tool: Tool, rules: Rules) -> str:
    """DeepSeek V3.2/V4: a string's value as text with string="true", anything else as JSON."""
    items = []
    for j, key, schema, required in _parameters(tool):
        string = _string_kind(schema)
        value = rules.value(tool, j, schema, "</｜DSML｜parameter>")
        head = f'<｜DSML｜parameter name="{key}" string="{"true" if string else "false"}">'
        items.append((f'{literal(head)} {value} "</｜DSML｜parameter>\\n"', required))
    params = ordered(tool, items, "", rules.extra)
    return f'"<｜DSML｜invoke name=\\"" {literal(tool[1])} "\\">\\n" {params} "</｜DSML｜invoke>\\n"'


def _hy3(tool: Tool, rules: Rules) -> str:
    """Hunyuan 3: GLM's pairs in tags of its own."""
    params = _key_value_pairs(tool, rules, "arg_key:opensource", "arg_value:opensource")
    return (
        f'"<tool_call:opensource>" {literal(tool[1])} "<tool_sep:opensource>\\n" {params} "</tool_call:opensource>\\n"'
    )


def _minicpm(tool: Tool, rules: Rules) -> str:
    """MiniCPM 5: a text value as it is, or inside <![CDATA[…]]> (which may hold anything)."""
    items = []
    for j, key, s, req in _parameters(tool):
        value = rules.value(tool, j, s, "</param>")
        if value.startswith("text-"):
            value = f'("<![CDATA[" {rules.text("]]>")} "]]>" | {value})'
        items.append((f'"<param name=\\"" {literal(key)} "\\">" {value} "</param>"', req))
    return f'{literal(tool[1])} "\\">" {ordered(tool, items, "", rules.extra)}'


def _solar(tool: Tool, rules: Rules) -> str:
    return (
        f'"<|tool_call:begin|>" [a-zA-Z0-9_-]+ "<|tool_call:name|>" {literal(tool[1])} "<|tool_call:args|>" '
        f'{rules.arguments(tool)} "<|tool_call:end|>"'
    )


def _apertus(tool: Tool, rules: Rules) -> str:
    return f'"{{" {literal(json.dumps(tool[1]) + ": ")} {rules.arguments(tool)} "}}"'


def _minimax_m3(tool: Tool, rules: Rules) -> str:
    sep = literal(MINIMAX_SEP)
    items = [
        (f"{sep} {literal(f'<{key}>')} {rules.value(tool, j, s, MINIMAX_SEP)} {sep} {literal(f'</{key}>')}", req)
        for j, key, s, req in _parameters(tool)
    ]
    params = ordered(tool, items, "", rules.extra)
    return f'{sep} "<invoke name=\\"" {literal(tool[1])} "\\">" {params} {sep} "</invoke>\\n"'


class Unwritable(ValueError):
    """A tool whose arguments a format's grammar cannot write (said in words)."""


def _gemma4(tool: Tool, rules: Rules) -> str:
    """Gemma 4: call:NAME{key:value,…}, keys in sorted order as its template writes them, strings
    between <|"|> marks; numbers and booleans as JSON writes them."""
    items = []
    for j, key, schema, required in sorted(_parameters(tool), key=lambda p: p[1]):
        kind = schema.get("type") if isinstance(schema, Mapping) else None
        if _string_kind(schema):
            quote = literal(GEMMA_QUOTE)
            value = f"{quote} {rules.value(tool, j, schema, GEMMA_QUOTE)} {quote}"
        elif kind in ("integer", "number", "boolean"):
            value = rules.json(f"t{tool[0]}-p{j}", schema)
        else:
            raise Unwritable(
                f"Gemma 4's calls write objects and lists in a syntax of their own, which no grammar here "
                f"writes: {tool[1]}'s parameter {key!r} cannot be forced"
            )
        items.append((f"{literal(key + ':')} {value}", required))
    return f'"call:" {literal(tool[1])} "{{" {ordered(tool, items, ",", rules.extra)} "}}"'


def _functionary(tool: Tool, rules: Rules) -> str:
    return f'{literal(tool[1])} ">" {rules.arguments(tool)}'


def _harmony(tool: Tool, rules: Rules) -> str:
    """gpt-oss: its analysis first if it wants one, then the message to the tool, as the model
    writes it after <|start|>assistant (the answer stream reads to=functions.NAME in its header)."""
    analysis = f'("<|channel|>analysis<|message|>" {rules.text("<|end|>")} "<|end|><|start|>assistant")?'
    return (
        f'{analysis} "<|channel|>commentary to=functions." {literal(tool[1])} " <|constrain|>json<|message|>" '
        f"{rules.arguments(tool)}"
    )


WRITERS: dict[str, Writer] = {
    "qwen3_coder": Writer("<tool_call>", "</tool_call>", "\n", False, _qwen3_coder),
    "glm": Writer("<tool_call>", "</tool_call>", "\n", False, _glm),
    "functionary": Writer("<function=", "</function>", "\n", False, _functionary),
    "minimax": Writer("<minimax:tool_call>\n", "</minimax:tool_call>", "", True, _minimax),
    "deepseek_v31": Writer("<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>", "", True, _deepseek_v31),
    "deepseek_v32": Writer("<｜DSML｜function_calls>\n", "</｜DSML｜function_calls>", "", True, _dsml),
    "deepseek_v4": Writer("<｜DSML｜tool_calls>\n", "</｜DSML｜tool_calls>", "", True, _dsml),
    "hy3": Writer("<tool_calls:opensource>\n", "</tool_calls:opensource>", "", True, _hy3),
    "minicpm5": Writer('<function name="', "</function>", "\n", False, _minicpm),
    # Solar's <|calls|> may end the turn (an end-of-generation token): the grammar ends before it.
    "solar": Writer("<|tool_calls|>", "", "", True, _solar),
    "apertus": Writer("<|tools_prefix|>[", "]<|tools_suffix|>", ", ", True, _apertus),
    "minimax_m3": Writer(MINIMAX_SEP + "<tool_call>\n", MINIMAX_SEP + "</tool_call>", "", True, _minimax_m3),
    "gemma4": Writer("<|tool_call>", "<tool_call|>", "", False, _gemma4),
    "deepseek": Writer("<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>", "", True, _deepseek),
    "kimi": Writer("<|tool_calls_section_begin|>", "<|tool_calls_section_end|>", "", True, _kimi),
    "lfm2": Writer("<|tool_call_start|>[", "]<|tool_call_end|>", ", ", True, _lfm2),
    # The call ends with <|call|>, an end-of-generation token: the grammar ends before it.
    "harmony": Writer("", "", "", False, _harmony, one_only=True),
}


def calls_gbnf(
    fmt: str,
    tools: Sequence[Tool],
    parallel: bool,
    to_rules: Callable[[dict[str, Any], dict[str, Any]], str],
    written: str = "",
) -> str:
    """The grammar of one call (or one or more with `parallel`) of these tools in format `fmt`;
    `written`: the opening marker the model has already written (the grammar starts after it).
    `to_rules` makes a GBNF rule of each named JSON schema (llama.cpp's converter)."""
    writer = WRITERS[fmt]
    parallel = parallel and not writer.one_only
    rules = Rules()
    one = " | ".join(f"({writer.call(tool, rules)})" for tool in tools)
    one = f"({one})"
    if not writer.open.startswith(written):
        raise ValueError(f"{written!r} does not open a call in {fmt}")

    def seq(*parts: str) -> str:  # texts as literals and rule expressions, the empty ones left out
        return " ".join(p for p in parts if p)

    def lit(text: str) -> str:
        return literal(text) if text else ""

    rest = writer.open[len(written) :]
    # Forced from the answer's start: the blank lines some templates write before a call first.
    lead = '"\\n"? "\\n"?' if not written and writer.open.strip() else ""
    if writer.block:
        more = f"({seq(lit(writer.between), one)})*" if parallel else ""
        first = seq(lead, lit(rest), one, more, lit(writer.close))
    else:
        more = f"({seq(lit(writer.between), lit(writer.open), one, lit(writer.close))})*" if parallel else ""
        first = seq(lead, lit(rest), one, lit(writer.close), more)
    lines = [f"root ::= {first}"]
    if rules.schemas:
        defs: dict[str, Any] = {}
        for tool in tools:
            defs.update(tool[3])
        lines.append(to_rules(rules.schemas, defs))
    lines += rules.extra.values()
    return "\n".join(lines)
