"""Tool calls in each model family's own format, split from the answer text as it streams.

The format comes from the chat template (the markers it writes when it renders a call), never from
a guess per request. One parser per format, as llama.cpp's common/chat.cpp has them: Hermes and
Qwen (`<tool_call>{json}</tool_call>`), Qwen3-Coder and Qwen3.5 (`<function=…><parameter=…>`), GLM
(`<arg_key>`/`<arg_value>`), Llama 3.x (a bare JSON object, or after `<|python_tag|>`), Mistral
(`[TOOL_CALLS]` with a JSON list, or `name[ARGS]{json}`), Granite (`<|tool_call|>[…]`), Command R
(`<|START_ACTION|>…<|END_ACTION|>`), DeepSeek R1/V3 (`<｜tool▁calls▁begin｜>…`), Kimi K2
(`<|tool_calls_section_begin|>…`), FireFunction (`functools[…]`), LFM2 (`<|tool_call_start|>[f(x=1)]`),
MiniMax (`<minimax:tool_call><invoke …>`) and functionary v3.1 (`<function=NAME>{json}</function>`).
gpt-oss's harmony calls (`to=functions.NAME`) are read by the answer stream's harmony parser.

Streaming-safe: text that could still become a call's opening marker is held back until the next
piece decides, so a call is never shown as answer text, whatever the token boundaries.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from localopen.core.chat import json_schema
from localopen.core.chat.answer_stream import held_suffix
from localopen.core.records import AnswerPiece, ToolCall, new_tool_call_id

Parsed = list[tuple[str, Any]]  # (tool name, arguments: an object, or JSON text)


def _loads(text: str) -> Any:
    """JSON as models write it: control characters inside strings are accepted (a grammar's string
    rule allows them); they are escaped again when the arguments are written out."""
    return json.loads(text, strict=False)


def _loads_call(text: str) -> Any:
    """A call's JSON as small models write it: also inside the doubled braces some templates show as
    their example (Qwen2.5-Coder's: {{"name": <function-name>, "arguments": <args-json-object>}}),
    with the stray closing braces that come with them."""
    try:
        return _loads(text)
    except ValueError:
        inner = text.strip()
        while _doubled(inner):
            inner = inner[1:].lstrip()  # one opening brace too many
            end = json_end(inner)
            if end is not None and end > 0 and set(inner[end:].strip()) <= {"}"}:
                return _loads(inner[:end])
        raise


def _doubled(text: str) -> bool:
    """The text opens with doubled braces, as a template's example shows a call ({{"name": …}})."""
    return text.startswith("{") and text[1:].lstrip().startswith("{")


def _json_calls(body: str, name_key: str = "name", args_keys: Sequence[str] = ("arguments", "parameters")) -> Parsed:
    """A JSON object or list of objects with a name and arguments (several formats share this)."""
    value = _loads_call(body)
    items = value if isinstance(value, list) else [value]
    out: Parsed = []
    for item in items:
        if not isinstance(item, dict):
            raise ValueError("a tool call is a JSON object")
        if item.get("type") == "function" and isinstance(item.get("function"), dict):
            item = item["function"]
        name = item.get(name_key)
        if not isinstance(name, str) or not name:
            raise ValueError("a tool call needs a name")
        args: Any = next((item[k] for k in args_keys if k in item), {})
        out.append((name, args))
    return out


def _hermes(body: str) -> Parsed:
    return _json_calls(body.strip())


def _llama3(body: str) -> Parsed:
    """One JSON object, or several separated by ';' (Llama 3.1's built-in format)."""
    body = body.strip()
    try:
        return _json_calls(body)
    except ValueError:
        parts = [p for p in body.split(";") if p.strip()]
        if len(parts) < 2:
            raise
        return [call for part in parts for call in _json_calls(part.strip())]


def _mistral(body: str) -> Parsed:
    """[TOOL_CALLS][{...}, …] (Nemo), or NAME[ARGS]{json}, one per [TOOL_CALLS] (Small 3.2, Devstral)."""
    out: Parsed = []
    for part in (p.strip() for p in body.split("[TOOL_CALLS]")):
        if not part:
            continue
        if part.startswith("["):
            out += _json_calls(part)
            continue
        name, sep, args = part.partition("[ARGS]")
        if not sep:
            name, sep, args = part.partition("[CALL_ID]")
            if sep:  # NAME[CALL_ID]id[ARGS]{json}
                args = args.partition("[ARGS]")[2]
        if not args:
            raise ValueError("a Mistral tool call needs [ARGS]")
        out.append((name.strip(), _loads(args)))
    return out


def _command_r(body: str) -> Parsed:
    return _json_calls(body.strip(), "tool_name", ("parameters", "arguments"))


def _json_lines(body: str) -> Parsed:
    """A JSON list of calls, or one JSON object per line (MiniMax-M1, Apriel)."""
    body = body.strip()
    try:
        return _json_calls(body)
    except ValueError:
        lines = [line for line in body.splitlines() if line.strip()]
        if len(lines) < 2:
            raise
        return [call for line in lines for call in _json_calls(line)]


_DEEPSEEK_CALL = re.compile(r"<｜tool▁call▁begin｜>(.*?)<｜tool▁call▁end｜>", re.S)


def _deepseek(body: str) -> Parsed:
    out: Parsed = []
    for call in _DEEPSEEK_CALL.findall(body):
        head, _, args = call.partition("<｜tool▁sep｜>")
        if head.strip() == "function":  # R1: function<｜tool▁sep｜>NAME\n```json\n{…}\n```
            name, _, rest = args.partition("\n")
            m = re.search(r"```(?:json)?\s*(.*?)\s*```", rest, re.S)
            out.append((name.strip(), _loads(m.group(1) if m else rest)))
        else:  # V3.1 and later: NAME<｜tool▁sep｜>{…}
            out.append((head.strip(), _loads(args)))
    if not out:
        raise ValueError("no DeepSeek tool call")
    return out


_KIMI_CALL = re.compile(
    r"<\|tool_call_begin\|>\s*(?:functions\.)?([^\s<]+?)(?::\d+)?\s*<\|tool_call_argument_begin\|>(.*?)<\|tool_call_end\|>",
    re.S,
)


def _kimi(body: str) -> Parsed:
    out: Parsed = [(name, _loads(args)) for name, args in _KIMI_CALL.findall(body)]
    if not out:
        raise ValueError("no Kimi tool call")
    return out


def _value(text: str, kind: str | None) -> Any:
    """A parameter written as text: kept as text for a string parameter, else read as JSON if it is."""
    if kind == "string":
        return text
    try:
        return _loads(text)
    except ValueError:
        return text


_QWEN_FUNCTION = re.compile(r"<function=([^>\s]+)>(.*?)(?:</function>|$)", re.S)
_QWEN_PARAMETER = re.compile(r"<parameter=([^>\s]+)>\n?(.*?)\n?</parameter>", re.S)


def _qwen3_coder(body: str, types: Callable[[str, str], str | None]) -> Parsed:
    out: Parsed = []
    for name, params in _QWEN_FUNCTION.findall(body):
        args = {k: _value(v, types(name, k)) for k, v in _QWEN_PARAMETER.findall(params)}
        out.append((name, args))
    if not out:
        raise ValueError("no <function=…> in the tool call")
    return out


_GLM_ARG = re.compile(r"<arg_key>(.*?)</arg_key>\s*<arg_value>(.*?)</arg_value>", re.S)


def _glm(body: str, types: Callable[[str, str], str | None]) -> Parsed:
    name = body.strip().split("<arg_key>", 1)[0].strip()
    if not name:
        raise ValueError("a GLM tool call needs a name")
    return [(name, {k.strip(): _value(v, types(name, k.strip())) for k, v in _GLM_ARG.findall(body)})]


_MINIMAX_INVOKE = re.compile(r"<invoke name=\"([^\"]+)\">(.*?)</invoke>", re.S)
_MINIMAX_PARAMETER = re.compile(r"<parameter name=\"([^\"]+)\">(.*?)</parameter>", re.S)


def _minimax(body: str, types: Callable[[str, str], str | None]) -> Parsed:
    out: Parsed = []
    for name, params in _MINIMAX_INVOKE.findall(body):
        out.append((name, {k: _value(v.strip(), types(name, k)) for k, v in _MINIMAX_PARAMETER.findall(params)}))
    if not out:
        raise ValueError("no <invoke> in the tool call")
    return out


_DSML_INVOKE = re.compile(r'<｜DSML｜invoke name="([^"]+)">(.*?)</｜DSML｜invoke>', re.S)
_DSML_PARAMETER = re.compile(
    r'<｜DSML｜parameter name="([^"]+)"(?: string="(true|false)")?>(.*?)</｜DSML｜parameter>', re.S
)


def _dsml(body: str, types: Callable[[str, str], str | None]) -> Parsed:
    """DeepSeek V3.2 and V4: <｜DSML｜invoke name=…> with one <｜DSML｜parameter> per argument, its
    string="true" saying the value is text as is (anything else is JSON)."""
    out: Parsed = []
    for name, params in _DSML_INVOKE.findall(body):
        args = {}
        for key, string, value in _DSML_PARAMETER.findall(params):
            args[key] = value if string == "true" else _value(value.strip(), types(name, key))
        out.append((name, args))
    if not out:
        raise ValueError("no <｜DSML｜invoke> in the tool call")
    return out


_HY3_CALL = re.compile(r"<tool_call:opensource>(.*?)<tool_sep:opensource>(.*?)(?:</tool_call:opensource>|$)", re.S)
_HY3_ARG = re.compile(
    r"<arg_key:opensource>(.*?)</arg_key:opensource>\s*<arg_value:opensource>(.*?)</arg_value:opensource>", re.S
)


def _hy3(body: str, types: Callable[[str, str], str | None]) -> Parsed:
    """Hunyuan 3: GLM's keys and values, in tags of its own (<arg_key:opensource>…)."""
    out: Parsed = []
    for name, params in _HY3_CALL.findall(body):
        name = name.strip()
        out.append((name, {k.strip(): _value(v, types(name, k.strip())) for k, v in _HY3_ARG.findall(params)}))
    if not out:
        raise ValueError("no <tool_call:opensource> in the tool call")
    return out


_MINICPM_PARAM = re.compile(r'<param name="([^"]+)">(<!\[CDATA\[.*?\]\]>|.*?)</param>', re.S)


def _minicpm(body: str, types: Callable[[str, str], str | None]) -> Parsed:
    """MiniCPM 5: <function name="NAME"><param name="KEY">VALUE</param>…</function>, a value over
    several lines inside <![CDATA[…]]> (the opening marker is cut: NAME">…)."""
    name, sep, params = body.partition('">')
    if not sep or not name.strip():
        raise ValueError("a MiniCPM tool call needs a name")
    args = {}
    for key, value in _MINICPM_PARAM.findall(params):
        if value.startswith("<![CDATA[") and value.endswith("]]>"):
            value = value[len("<![CDATA[") : -len("]]>")]
        args[key] = _value(value, types(name.strip(), key))
    return [(name.strip(), args)]


_SOLAR_CALL = re.compile(r"<\|tool_call:name\|>(.*?)<\|tool_call:args\|>(.*?)<\|tool_call:end\|>", re.S)


def _solar(body: str) -> Parsed:
    """Solar Open: <|tool_call:begin|>ID<|tool_call:name|>NAME<|tool_call:args|>{json}<|tool_call:end|>."""
    out: Parsed = [(name.strip(), _loads(args)) for name, args in _SOLAR_CALL.findall(body)]
    if not out:
        raise ValueError("no Solar tool call")
    return out


def _apertus(body: str) -> Parsed:
    """Apertus: a JSON list of {"NAME": {arguments}} objects."""
    value = _loads(body.strip())
    items = value if isinstance(value, list) else [value]
    out: Parsed = []
    for item in items:
        if not isinstance(item, dict) or len(item) != 1:
            raise ValueError("an Apertus tool call is {NAME: arguments}")
        ((name, args),) = item.items()
        out.append((name, args))
    return out


MINIMAX_SEP = "]<]minimax[>["  # MiniMax-M3's separator before each of its call's tags
_M3_INVOKE = re.compile(r'<invoke name="([^"]+)">(.*?)</invoke>', re.S)
_M3_PARAMETER = re.compile(r"<([^\s<>/]+)>(.*?)</\1>", re.S)


def _minimax_m3(body: str, types: Callable[[str, str], str | None]) -> Parsed:
    text = body.replace(MINIMAX_SEP, "")
    out: Parsed = []
    for name, params in _M3_INVOKE.findall(text):
        out.append((name, {k: _value(v, types(name, k)) for k, v in _M3_PARAMETER.findall(params)}))
    if not out:
        raise ValueError("no <invoke> in the tool call")
    return out


GEMMA_QUOTE = '<|"|>'
_GEMMA4_CALL = re.compile(r"\s*call:([A-Za-z0-9_.-]+)\s*(\{.*\})\s*$", re.S)


def _gemma4(body: str) -> Parsed:
    """Gemma 4: call:NAME{key:value,…}, its strings between <|"|> marks and its keys bare (the
    template's own syntax), read by turning it into JSON."""
    m = _GEMMA4_CALL.match(body)
    if m is None:
        raise ValueError("a Gemma 4 tool call is call:NAME{…}")
    out, i, text = [], 0, m.group(2)
    while i < len(text):
        if text.startswith(GEMMA_QUOTE, i):
            end = text.find(GEMMA_QUOTE, i + len(GEMMA_QUOTE))
            if end < 0:
                raise ValueError("an unclosed string in a Gemma 4 tool call")
            out.append(json.dumps(text[i + len(GEMMA_QUOTE) : end]))
            i = end + len(GEMMA_QUOTE)
            continue
        key = re.match(r"([A-Za-z_][A-Za-z0-9_.-]*)\s*:", text[i:])
        if key and out and out[-1].rstrip()[-1:] in ("{", ","):
            out.append(json.dumps(key.group(1)) + ":")
            i += key.end()
            continue
        out.append(text[i])
        i += 1
    args = _loads("".join(out))
    if not isinstance(args, dict):
        raise ValueError("a Gemma 4 tool call's arguments are an object")
    return [(m.group(1), args)]


def _pythonic(body: str) -> Parsed:
    """[get_weather(location="Paris"), …] (LFM2): keyword arguments with literal values only."""
    tree = ast.parse(body.strip(), mode="eval").body
    calls = tree.elts if isinstance(tree, (ast.List, ast.Tuple)) else [tree]
    out: Parsed = []
    for call in calls:
        if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Name) or call.args:
            raise ValueError("a pythonic tool call is NAME(key=value, …)")
        out.append((call.func.id, {kw.arg: ast.literal_eval(_json_names(kw.value)) for kw in call.keywords if kw.arg}))
    return out


_JSON_NAMES = {"true": True, "false": False, "null": None}


def _json_names(node: ast.expr) -> ast.expr:
    """JSON's true/false/null read as Python's constants (a value written as JSON, as a grammar writes it)."""

    class Names(ast.NodeTransformer):
        def visit_Name(self, name: ast.Name) -> ast.AST:  # noqa: N802 - ast's visitor naming
            return ast.copy_location(ast.Constant(_JSON_NAMES[name.id]), name) if name.id in _JSON_NAMES else name

    return Names().visit(node)


def _functionary(body: str) -> Parsed:
    """functionary v3.1: <function=NAME>{json}</function> (the opening marker is cut: NAME>{json})."""
    name, _, args = body.partition(">")
    return [(name.strip(), _loads(args) if args.strip() else {})]


# Calls written outside the template's format, as small models write them (Qwen2.5-Coder: a bare
# {"name": …, "arguments": …} or one in a ```json fence instead of <tool_call> tags): at the very
# start of an answer, a JSON object (or list of them) naming an offered tool with arguments its
# schema accepts is a call. Anything else stays the text it was.
_CALL_KEYS = ("name", "type", "function", "tool_name")  # a written call's first key
_FENCE = re.compile(r"```(?:json|JSON)?[ \t]*\n")
_FIRST_KEY = re.compile(r'\s*\[?\s*(?:\{\s*)?\{\s*"((?:[^"\\]|\\.)*)"')  # {{"name" too: see _loads_call


def json_end(text: str) -> int | None:
    """Where the JSON object or list that `text` opens with ends (None: not yet; -1: it is not one)."""
    depth, in_string, escaped = 0, False, False
    for i, ch in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
            if depth == 0:
                return i + 1
            if depth < 0:
                return -1
        elif depth == 0 and not ch.isspace():
            return -1
    return None


def could_be_call(text: str) -> bool:
    """Whether a JSON opening may still become a call: its first key, once written, is a call's."""
    m = _FIRST_KEY.match(text)
    if m is None:
        # Not yet a first key: '{', '[{', blank space, or a key still being written.
        return bool(re.fullmatch(r'\s*\[?\s*(\{\s*(\{\s*)?("(?:[^"\\]|\\.)*)?)?', text))
    return m.group(1) in _CALL_KEYS


def _valid(schema: Any, arguments: Any) -> bool:
    """The arguments satisfy the tool's parameter schema (a schema that is itself broken checks nothing)."""
    from jsonschema import exceptions, validators
    from referencing.exceptions import Unresolvable

    if not isinstance(schema, dict):
        return True
    try:
        cls = validators.validator_for(schema)
        cls.check_schema(schema)
        return bool(cls(schema).is_valid(arguments))
    except (exceptions.SchemaError, Unresolvable, RecursionError):
        return True


def offered_calls(text: str, schemas: Mapping[str, Any]) -> Parsed | None:
    """The calls a JSON text writes when each names an offered tool with arguments its schema
    accepts; None when it is anything else (then it is text)."""
    try:
        parsed = _json_calls(text)
    except (ValueError, TypeError, RecursionError):
        return None
    out: Parsed = []
    for name, args in parsed:
        if isinstance(args, str):
            try:
                args = _loads(args)
            except ValueError:
                return None
        if name not in schemas or not isinstance(args, dict) or not _valid(schemas[name], args):
            return None
        out.append((name, args))
    return out or None


@dataclass(frozen=True)
class ToolFormat:
    name: str
    start: tuple[str, ...]  # texts that open a call (or a block of calls)
    end: str | None  # text that closes it; None: the calls run to the end of the answer
    parse: Callable[[str, Callable[[str, str], str | None]], Parsed]
    bare_json: bool = False  # a JSON object at the very start of the answer is a call too (Llama 3.x)
    keep_start: bool = False  # the opening marker belongs to the body (Mistral's repeated [TOOL_CALLS])
    inner: tuple[str, ...] = ()  # markers inside a call, special tokens in the family's vocabulary

    @property
    def markers(self) -> tuple[str, ...]:
        """Texts of this format the answer stream must pass on, even where they are control tokens."""
        return (*self.start, *((self.end,) if self.end else ()), *self.inner)


def _typed(parse: Callable[[str], Parsed]) -> Callable[[str, Callable[[str, str], str | None]], Parsed]:
    return lambda body, _types: parse(body)


GLM_ARGS = ("<arg_key>", "</arg_key>", "<arg_value>", "</arg_value>")
MISTRAL_ARGS = ("[ARGS]", "[CALL_ID]")
FORMATS: dict[str, ToolFormat] = {
    f.name: f
    for f in (
        ToolFormat("hermes", ("<tool_call>",), "</tool_call>", _typed(_hermes)),
        ToolFormat("qwen3_coder", ("<tool_call>",), "</tool_call>", _qwen3_coder),
        ToolFormat(
            "glm",
            ("<tool_call>",),
            "</tool_call>",
            _glm,
            inner=("<arg_key>", "</arg_key>", "<arg_value>", "</arg_value>"),
        ),
        ToolFormat("llama3_json", ("<|python_tag|>",), None, _typed(_llama3), bare_json=True),
        ToolFormat(
            "mistral", ("[TOOL_CALLS]",), None, _typed(_mistral), keep_start=True, inner=("[ARGS]", "[CALL_ID]")
        ),
        # The same calls as Small 3.2, Devstral and Ministral 3 write them: NAME[ARGS]{json} (one
        # parser reads both; the name says which a grammar writes).
        ToolFormat(
            "mistral_args", ("[TOOL_CALLS]",), None, _typed(_mistral), keep_start=True, inner=("[ARGS]", "[CALL_ID]")
        ),
        ToolFormat("granite", ("<|tool_call|>",), None, _typed(_hermes)),
        ToolFormat("command_r", ("<|START_ACTION|>",), "<|END_ACTION|>", _typed(_command_r)),
        ToolFormat("command_r_plus", ("Action:\n```json",), "```", _typed(_command_r)),
        ToolFormat("tool_calls_tags", ("<tool_calls>",), "</tool_calls>", _typed(_json_lines)),
        ToolFormat("nemotron", ("<TOOLCALL>",), "</TOOLCALL>", _typed(_json_lines)),
        ToolFormat(
            "deepseek",
            ("<｜tool▁calls▁begin｜>",),
            "<｜tool▁calls▁end｜>",
            _typed(_deepseek),
            inner=("<｜tool▁call▁begin｜>", "<｜tool▁sep｜>", "<｜tool▁call▁end｜>"),
        ),
        ToolFormat(
            "kimi",
            ("<|tool_calls_section_begin|>",),
            "<|tool_calls_section_end|>",
            _typed(_kimi),
            inner=("<|tool_call_begin|>", "<|tool_call_argument_begin|>", "<|tool_call_end|>"),
        ),
        ToolFormat("firefunction", ("functools",), None, _typed(_hermes)),
        ToolFormat("lfm2", ("<|tool_call_start|>",), "<|tool_call_end|>", _typed(_pythonic)),
        ToolFormat("minimax", ("<minimax:tool_call>",), "</minimax:tool_call>", _minimax),
        # DeepSeek V3.1: NAME<｜tool▁sep｜>{json} (R1 wrote function<｜tool▁sep｜>NAME and a fence).
        ToolFormat(
            "deepseek_v31",
            ("<｜tool▁calls▁begin｜>",),
            "<｜tool▁calls▁end｜>",
            _typed(_deepseek),
            inner=("<｜tool▁call▁begin｜>", "<｜tool▁sep｜>", "<｜tool▁call▁end｜>"),
        ),
        ToolFormat("deepseek_v32", ("<｜DSML｜function_calls>",), "</｜DSML｜function_calls>", _dsml),
        ToolFormat("deepseek_v4", ("<｜DSML｜tool_calls>",), "</｜DSML｜tool_calls>", _dsml),
        ToolFormat("gemma4", ("<|tool_call>",), "<tool_call|>", _typed(_gemma4), inner=(GEMMA_QUOTE,)),
        ToolFormat("hy3", ("<tool_calls:opensource>",), "</tool_calls:opensource>", _hy3),
        ToolFormat("minicpm5", ('<function name="',), "</function>", _minicpm),
        ToolFormat("solar", ("<|tool_calls|>",), "<|calls|>", _typed(_solar)),
        ToolFormat("apertus", ("<|tools_prefix|>",), "<|tools_suffix|>", _typed(_apertus)),
        # GigaChat 3: the call is a message of its own role, `function call`, holding one JSON call.
        ToolFormat("gigachat", ("function call<|role_sep|>",), None, _typed(_hermes)),
        ToolFormat(
            "minimax_m3",
            (MINIMAX_SEP + "<tool_call>", "<tool_call>"),
            MINIMAX_SEP + "</tool_call>",
            _minimax_m3,
            inner=(MINIMAX_SEP,),
        ),
        ToolFormat("functionary", ("<function=",), "</function>", _typed(_functionary)),
    )
}
HARMONY = "harmony"  # gpt-oss: parsed in the answer stream's harmony channels (to=functions.NAME)
# A template that renders tools in a format no parser here reads: its tools are refused in words,
# never answered with a call shown as text.
UNSUPPORTED = "unsupported"


@dataclass(frozen=True)
class Constrained:
    """How a call is written in a format whose body is JSON, for decoding under a grammar (tool_choice
    'required' or a named tool): the text around one call, and the call object's keys."""

    prefix: str
    suffix: str
    name_key: str = "name"
    arguments_key: str = "arguments"
    as_list: bool = False  # the format writes a JSON list of calls
    leading: tuple[str, ...] = ()  # string keys the format writes before the name (Command R's tool_call_id)
    call_id: bool = False  # each call ends with a 9-character "id" (Mistral Nemo's)


CONSTRAINED: dict[str, Constrained] = {
    "hermes": Constrained("<tool_call>\n", "\n</tool_call>"),
    "llama3_json": Constrained("", "", arguments_key="parameters"),
    "granite": Constrained("<|tool_call|>", "", as_list=True),
    "nemotron": Constrained("<TOOLCALL>", "</TOOLCALL>", as_list=True),
    "tool_calls_tags": Constrained("<tool_calls>\n", "\n</tool_calls>"),
    "command_r": Constrained(
        "<|START_ACTION|>", "<|END_ACTION|>", "tool_name", "parameters", as_list=True, leading=("tool_call_id",)
    ),
    "firefunction": Constrained(" functools", "", as_list=True),
    "gigachat": Constrained("<|message_sep|>\n\nfunction call<|role_sep|>\n", ""),
    "command_r_plus": Constrained("Action:\n```json\n", "\n```", "tool_name", "parameters", as_list=True),
    # Nemo: [TOOL_CALLS][{"name": …, "arguments": …, "id": "abc123def"}]
    "mistral": Constrained("[TOOL_CALLS]", "", as_list=True, call_id=True),
}


# A tool a grammar may call: its index among the tools, its name, its parameter schema (references
# lifted), the definitions they refer to (under the tool's own prefix, t{index}-).
Tool = tuple[int, str, dict[str, Any], dict[str, Any]]


def lifted(tools: Sequence[Mapping[str, Any]], only: str | None = None) -> list[Tool]:
    """The tools a grammar may call (all, or the named one), each one's definitions lifted under a
    prefix of its own, so that several tools' schemas share one grammar."""
    out: list[Tool] = []
    for i, tool in enumerate(tools):
        function = tool.get("function", tool)
        name = function.get("name")
        if only is not None and name != only:
            continue
        parameters, own = json_schema.lift(function.get("parameters") or {"type": "object"}, f"t{i}-")
        out.append((i, str(name), parameters, own))
    return out


def call_schema(tools: Sequence[Mapping[str, Any]], fmt: Constrained, only: str | None = None) -> dict[str, Any]:
    """The JSON schema of one call of one of the tools (or of the named one), in the format's keys:
    the arguments must satisfy that tool's own parameter schema (its definitions lifted to the
    call schema's root, so its references still resolve)."""
    options = []
    defs: dict[str, Any] = {}
    for _i, name, parameters, own in lifted(tools, only):
        defs.update(own)
        options.append(
            {
                "type": "object",
                "properties": {
                    **{key: {"type": "string"} for key in fmt.leading},
                    fmt.name_key: {"const": name},
                    fmt.arguments_key: parameters,
                    **({"id": {"type": "string", "pattern": "^[a-zA-Z0-9]{9}$"}} if fmt.call_id else {}),
                },
                "required": [*fmt.leading, fmt.name_key, fmt.arguments_key, *(["id"] if fmt.call_id else [])],
            }
        )
    if not options:
        raise ValueError(f"no tool named {only!r}" if only else "no tools")
    one = options[0] if len(options) == 1 else {"anyOf": options}
    out = {"type": "array", "items": one, "minItems": 1} if fmt.as_list else one
    return {**out, "$defs": defs} if defs else out


# OpenAI's rule for a tool's name; a name outside it is refused before any grammar is made.
TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")


def name_problem(tools: Sequence[Mapping[str, Any]] | None) -> str | None:
    """Why these tools' names cannot be offered (None: they can), in OpenAI's words."""
    seen: set[str] = set()
    for tool in tools or ():
        function = tool.get("function", tool)
        name = function.get("name") if isinstance(function, Mapping) else None
        if not isinstance(name, str) or not TOOL_NAME.fullmatch(name):
            return (
                f"Invalid tool name {name!r}: a tool's name must match ^[a-zA-Z0-9_-]{{1,64}}$ "
                "(letters, digits, underscores and dashes, at most 64)."
            )
        if name in seen:
            return f"Two tools are named {name!r}: each tool needs its own name."
        seen.add(name)
    return None


# DeepSeek V3.1's template writes a call as NAME<｜tool▁sep｜>ARGUMENTS (R1's wrote the type first).
_DEEPSEEK_V31 = re.compile(r"tool▁call▁begin｜>'\s*\+\s*tool\['function'\]\['name'\]\s*\+\s*'<｜tool▁sep｜>")


def detect(source: str, reads_tools: bool) -> str | None:
    """The format a template's model calls tools in, from the markers the template writes; None for a
    template that does not render tools (its model was not trained to call them)."""
    if _DEEPSEEK_V31.search(source):
        return "deepseek_v31"  # its template does not describe the tools: localopen does (template.py)
    if not reads_tools:
        return None
    checks = (
        ("<|call|>", HARMONY),
        ("｜DSML｜function_calls", "deepseek_v32"),
        ("dsml_token + 'function_calls>", "deepseek_v32"),
        ("｜DSML｜tool_calls", "deepseek_v4"),
        ("dsml_token + 'tool_calls>", "deepseek_v4"),
        ("<|tool_call>call:", "gemma4"),
        (MINIMAX_SEP, "minimax_m3"),
        ("<tool_calls{}>", "hy3"),
        ("<tool_calls:opensource>", "hy3"),
        ("<|tool_call:begin|>", "solar"),
        ("<|tools_prefix|>", "apertus"),
        ("'function call'", "gigachat"),
        ("<|tool_calls_section_begin|>", "kimi"),
        ("tool▁calls▁begin", "deepseek"),
        ("<arg_key>", "glm"),
        ("<minimax:tool_call>", "minimax"),
        ("<parameter=", "qwen3_coder"),
        ("<tool_call>", "hermes"),
        ("[ARGS]", "mistral_args"),
        ("[TOOL_CALLS]", "mistral"),
        ("<|tool_call|>", "granite"),
        ("<TOOLCALL>", "nemotron"),
        ("<tool_calls>", "tool_calls_tags"),
        ("<|START_ACTION|>", "command_r"),
        ("Action:\\n```json", "command_r_plus"),
        ("functools[", "firefunction"),
        ("<|tool_call_start|>", "lfm2"),
        ("<|tool_list_start|>", "lfm2"),
        ("<function=", "functionary"),
        ('<function name="', "minicpm5"),
        ("<|python_tag|>", "llama3_json"),
        ('{"name": function name', "llama3_json"),  # Llama 3.2: a bare JSON object, no python tag
    )
    return next((name for marker, name in checks if marker in source), UNSUPPORTED)


def parameter_types(tools: Iterable[Mapping[str, Any]] | None) -> Callable[[str, str], str | None]:
    """(tool, parameter) -> its JSON-schema type, for formats that write values as bare text."""
    table: dict[tuple[str, str], str | None] = {}
    for tool in tools or ():
        function = tool.get("function", tool)
        properties = (function.get("parameters") or {}).get("properties") or {}
        for key, schema in properties.items():
            kind = schema.get("type") if isinstance(schema, dict) else None
            table[(function.get("name", ""), key)] = kind if isinstance(kind, str) else None
    return lambda name, key: table.get((name, key))


def to_calls(parsed: Parsed) -> list[ToolCall]:
    return [
        ToolCall(new_tool_call_id(), name, args if isinstance(args, str) else json.dumps(args, ensure_ascii=False))
        for name, args in parsed
    ]


class ToolCallStream:
    """feed() the answer's text (reasoning never comes here) and get text pieces and whole tool
    calls; finish() at the end of the answer gives what was held back. A call that does not parse is
    given back as the text it was (the model wrote it), never dropped."""

    def __init__(self, fmt: ToolFormat, tools: Iterable[Mapping[str, Any]] | None = None) -> None:
        self.fmt = fmt
        tools = list(tools or ())
        self.types = parameter_types(tools)
        self.schemas: dict[str, Any] = {
            str(f.get("name")): f.get("parameters") or {"type": "object"}
            for f in (t.get("function", t) for t in tools)
            if isinstance(f, Mapping) and isinstance(f.get("name"), str)
        }
        # start (nothing shown yet) | text | call | after (a call ended: blank space is no answer)
        # | bare (a JSON object at the very start, which may be a call)
        # | loose (a JSON object or ```json fence at the very start: a call written outside the format?)
        self.state = "start"
        self.buf = ""
        self.opened = ""  # the marker that opened the call in progress
        self.calls = 0
        self.loose_calls = False  # calls were written outside the format (JSON at the start)
        self.loose_count = 0  # how many
        self.doubled = False  # the last of them was inside doubled braces: its stray closing braces are dropped
        self.in_fence = False  # a ```json fence holds more than one call: its closing fence is no answer

    def feed(self, text: str) -> list[AnswerPiece]:
        self.buf += text
        out: list[AnswerPiece] = []
        while self.buf:
            if self.state == "start":
                stripped = self.buf.lstrip()
                if not stripped:
                    return out
                if self.fmt.bare_json and stripped.startswith("{"):
                    self.state, self.buf = "bare", stripped
                    return out
                loose = self.schemas and stripped.startswith(("{", "[", "`"))
                self.state, self.buf = "loose" if loose else "text", stripped  # blank space before is none
                continue
            if self.state == "loose":
                decided = self._loose(final=False)
                if decided is None:
                    return out
                out += decided
                continue
            if self.state == "text":
                hit = min(
                    ((i, m) for m in self.fmt.start if (i := self.buf.find(m)) >= 0), default=None, key=lambda h: h[0]
                )
                if hit is None:
                    keep = held_suffix(self.buf, self.fmt.start)
                    if len(self.buf) > keep:
                        out.append(AnswerPiece(self.buf[: len(self.buf) - keep]))
                    self.buf = self.buf[len(self.buf) - keep :]
                    return out
                i, marker = hit
                if i:
                    out.append(AnswerPiece(self.buf[:i]))
                self.opened = marker
                self.buf = self.buf[i:] if self.fmt.keep_start else self.buf[i + len(marker) :]
                self.state = "call"
                continue
            if self.state == "call" and self.fmt.end is not None:
                j = self.buf.find(self.fmt.end)
                if j < 0:
                    return out
                body, self.buf = self.buf[:j], self.buf[j + len(self.fmt.end) :]
                out += self._calls(body, self.opened + body + self.fmt.end)
                self.state = "after"
                continue
            if self.state == "after":
                self.buf = self.buf.lstrip()
                if self.doubled:  # the closing braces of a call written inside doubled braces
                    self.buf = self.buf.lstrip("}").lstrip()
                if self.in_fence and self.buf.startswith("```"):  # the fence around several calls closes
                    self.buf, self.in_fence = self.buf[3:].lstrip(), False
                if self.in_fence and self.buf and "```".startswith(self.buf):
                    return out  # may still be that closing fence
                if self.buf:
                    self.doubled = False
                    # Calls written as text come one after another, as JSON lines or fences.
                    again = self.loose_calls and self.buf.startswith(("{", "[", "`"))
                    self.state = "loose" if again else "text"
                continue
            return out  # a call that runs to the end of the answer, or a bare JSON object: wait
        return out

    def loose_opening(self) -> tuple[str, bool] | None:
        """While the answer opens with JSON that may be a call written outside the format: that JSON
        so far, and whether it is inside a ```json fence."""
        if self.state != "loose":
            return None
        fence = _FENCE.match(self.buf)
        if fence is not None:
            return self.buf[fence.end() :].lstrip(), True
        return None if self.buf.startswith("`") else (self.buf, False)

    def finish(self) -> list[AnswerPiece]:
        out: list[AnswerPiece] = []
        if self.state == "loose":
            out = self._loose(final=True) or []
            return out + self.finish() if self.state != "loose" else out
        text, self.buf = self.buf, ""
        if self.state == "call":
            return self._calls(text, ("" if self.fmt.keep_start else self.opened) + text)
        if self.state == "bare":
            return self._calls(text, text)
        return [AnswerPiece(text)] if text and self.state == "text" else []

    def _loose(self, final: bool) -> list[AnswerPiece] | None:
        """The answer opens with JSON or a fence: the calls it writes (state 'after'), or back to text
        once it cannot be one; None: undecided yet (held back)."""
        text = self.buf
        start = 0
        fenced = text.startswith("`")
        if fenced:
            fence = _FENCE.match(text)
            if fence is None:
                if not final and re.fullmatch(r"`{1,3}(?:j(?:s(?:o(?:n)?)?)?|J(?:S(?:O(?:N)?)?)?)?[ \t]*", text):
                    return None
                self.state = "text"
                return []
            start = fence.end()
        body = text[start:]
        lead = len(body) - len(body.lstrip())
        if not body.strip():
            if final:
                self.state = "text"
                return []
            return None
        if not body.lstrip().startswith(("{", "[")) or not could_be_call(body):
            self.state = "text"
            return []
        end = json_end(body[lead:])
        if end is None and not final:
            return None
        if end is None and final and _doubled(body[lead:]):
            # Doubled braces closed one short at the end of the answer ({{"name": …}}: the call
            # itself is whole): read with the missing brace.
            text = body = body + "}"
            start, end = 0, json_end(body[lead:])
            fenced = False
        if end is None or end < 0:
            self.state = "text"
            return []
        value_end = start + lead + end
        rest = text[value_end:]
        if fenced:
            closing = rest.lstrip()
            if not final and "```".startswith(closing) and len(closing) < 3:
                return None  # the fence may still close
            if closing.startswith("```"):
                rest = closing[3:]
            else:
                self.in_fence = True
        parsed = offered_calls(text[start + lead : value_end], self.schemas)
        if parsed is None:
            self.state = "text"
            return []
        self.calls += len(parsed)
        self.loose_count += len(parsed)
        self.loose_calls = True
        self.doubled = _doubled(body[lead:])
        self.buf, self.state = rest, "after"
        return [AnswerPiece("", tool_call=call) for call in to_calls(parsed)]

    def _calls(self, body: str, as_written: str) -> list[AnswerPiece]:
        try:
            parsed = self.fmt.parse(body, self.types)
        except (ValueError, SyntaxError, TypeError, AttributeError, RecursionError, MemoryError):
            parsed = []
        if not parsed:
            return [AnswerPiece(as_written)] if as_written else []
        self.calls += len(parsed)
        return [AnswerPiece("", tool_call=call) for call in to_calls(parsed)]
