"""Chat templates: rendered as transformers renders them, in jinja2's immutable sandbox.

Model makers test their templates with transformers' chat-template renderer, so the environment
here is that one (loop controls, the {% generation %} tag, transformers' tojson, raise_exception,
strftime_now, a safe dict and namespace) and the variables are the ones it passes (messages, tools,
documents, add_generation_prompt, the special tokens, and template switches such as
enable_thinking). Templates come from model files: the sandbox lets them call no Python.

A model without a template never silently gets a wrong one: the caller must choose plain
completion or one of the known templates below; `suggest` names the likeliest from the file's
metadata.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any

import jinja2
import jinja2.compiler
import jinja2.ext
import jinja2.meta
import jinja2.nodes
import jinja2.parser
import jinja2.utils
from jinja2 import TemplateError
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from localopen.core.chat import tool_calls, tool_preambles
from localopen.core.errors import LocalopenError

COMPLETION = "completion"  # no chat formatting: the model continues the text

KNOWN_TEMPLATES: dict[str, tuple[str, list[str]]] = {
    # name: (template, extra stop strings)
    "chatml": (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}",
        ["<|im_end|>"],
    ),
    # ChatML with tools as Hermes and Qwen write them (<tools> in the system turn, <tool_call> answers,
    # <tool_response> results): for a file without a template whose model should call tools.
    "chatml-tools": (
        "{%- if tools %}<|im_start|>system\n{% if messages[0]['role'] == 'system' %}{{ messages[0]['content'] }}\n\n"
        "{% endif %}# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
        "You are provided with function signatures within <tools></tools> XML tags:\n<tools>"
        "{% for t in tools %}\n{{ t | tojson }}{% endfor %}\n</tools>\n\nFor each function call, return a json "
        "object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n"
        '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n'
        "{% elif messages[0]['role'] == 'system' %}<|im_start|>system\n{{ messages[0]['content'] }}<|im_end|>\n"
        "{% endif %}{% for m in messages %}{% if m['role'] == 'system' and loop.first %}"
        "{% elif m['role'] == 'tool' %}<|im_start|>user\n<tool_response>\n{{ m['content'] }}\n</tool_response>"
        "<|im_end|>\n{% elif m['role'] == 'assistant' %}<|im_start|>assistant\n{{ m['content'] or '' }}"
        "{% for c in m['tool_calls'] or [] %}\n<tool_call>\n"
        "{{ {'name': c['function']['name'], 'arguments': c['function']['arguments']} | tojson }}\n</tool_call>"
        "{% endfor %}<|im_end|>\n{% else %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endif %}"
        "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}",
        ["<|im_end|>"],
    ),
    "gemma": (
        "{{ bos_token }}{% set system = namespace(text='') %}"
        "{% for m in messages %}{% if m['role'] == 'system' %}{% set system.text = m['content'] + '\n\n' %}"
        "{% else %}<start_of_turn>{{ 'model' if m['role'] == 'assistant' else 'user' }}\n"
        "{% if loop.index0 <= 1 and m['role'] == 'user' %}{{ system.text }}{% endif %}"
        "{{ m['content'] }}<end_of_turn>\n{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}",
        ["<end_of_turn>"],
    ),
    "llama3": (
        "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
        "{{ m['content'] }}<|eot_id|>{% endfor %}"
        "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}",
        ["<|eot_id|>"],
    ),
    "mistral": (
        "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}[INST] {{ m['content'] }} [/INST]"
        "{% elif m['role'] == 'assistant' %}{{ m['content'] }}{{ eos_token }}{% else %}{{ m['content'] }}\n\n"
        "{% endif %}{% endfor %}",
        [],
    ),
    "phi3": (
        "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>\n{% endif %}",
        ["<|end|>"],
    ),
}

# Texts that end a turn in the formats models use. One that the template itself writes is a stop
# string: a model whose file does not mark it as end-of-generation still stops there, and the
# marker never reaches the answer. (gpt-oss's <|end|> only ends a channel: see `traits`.)
END_MARKERS = (
    "<|im_end|>",
    "<end_of_turn>",
    "<|eot_id|>",
    "<|end|>",
    "<|return|>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<|END_OF_TURN_TOKEN|>",
    "<｜end▁of▁sentence｜>",
    "<|im_end_of_turn|>",
    "<turn|>",
)

# When the file has no template: token names that identify a format, most specific first.
_FORMAT_TOKENS = (
    ("<|start_header_id|>", "llama3"),
    ("<start_of_turn>", "gemma"),
    ("<|im_start|>", "chatml"),
    ("<|assistant|>", "phi3"),
    ("[INST]", "mistral"),
)
# And the architecture's usual format when no token says more.
_ARCHITECTURE_FORMATS = {
    "gemma": "gemma",
    "gemma2": "gemma",
    "gemma3": "gemma",
    "llama": "llama3",
    "qwen2": "chatml",
    "qwen3": "chatml",
    "phi3": "phi3",
    "mistral": "mistral",
    "olmo2": "chatml",
    "gptneox": COMPLETION,
}
_TOKENIZER_FORMATS = {"llama3": "llama3", "llama-bpe": "llama3", "qwen2": "chatml", "smollm": "chatml"}


class TemplateRenderError(LocalopenError):
    """The chat template failed or tried something unsafe; nothing was executed."""


class TemplateNotChosenError(LocalopenError):
    """The model has no chat template and the user has not chosen one."""


@dataclass(frozen=True)
class TemplateChoice:
    name: str  # "model", a KNOWN_TEMPLATES key, or COMPLETION
    source: str | None  # the jinja text (None for completion)
    stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class Suggestion:
    name: str
    reason: str  # in plain words: which metadata points to it


@dataclass(frozen=True)
class TemplateTraits:
    """What a template reads and writes, found in its source."""

    thinking_switch: str | None  # the variable that turns thinking on or off: enable_thinking | thinking
    harmony: bool  # gpt-oss's channel format (<|channel|>analysis … <|end|>)
    end_markers: tuple[str, ...]  # end-of-turn texts the template writes (stop strings)
    tool_format: str | None = None  # the format its model calls tools in (core/chat/tool_calls); None: no tools


def template_options() -> list[str]:
    return [COMPLETION, *KNOWN_TEMPLATES]


def suggest(architecture: str, tokenizer_pre: str = "", has_token: Callable[[str], bool] | None = None) -> Suggestion:
    """The likeliest known format for a file without a template, from its metadata: tokens
    that only one format uses first, then the tokenizer's pre-type, then the architecture."""
    if has_token is not None:
        for token, name in _FORMAT_TOKENS:
            if has_token(token):
                return Suggestion(name, f"its vocabulary has the {token} token")
    if tokenizer_pre in _TOKENIZER_FORMATS:
        return Suggestion(_TOKENIZER_FORMATS[tokenizer_pre], f"its tokenizer is {tokenizer_pre}")
    if architecture in _ARCHITECTURE_FORMATS:
        return Suggestion(_ARCHITECTURE_FORMATS[architecture], f"its architecture is {architecture}")
    return Suggestion("chatml", "the most common format (nothing in the file says more)")


def choose(model_template: str | None, requested: str | None, suggestion: Suggestion | None = None) -> TemplateChoice:
    """The template to use: the model's own unless the user picked another; never a silent guess."""
    if requested in (None, "model"):
        if model_template:
            return TemplateChoice("model", model_template)
        hint = f" Suggested: {suggestion.name}, because {suggestion.reason}." if suggestion else ""
        raise TemplateNotChosenError(
            "This model has no chat template, so localopen will not guess one. Choose plain completion "
            f"or a known template ({', '.join(KNOWN_TEMPLATES)}).{hint}"
        )
    if requested == COMPLETION:
        return TemplateChoice(COMPLETION, None)
    if requested in KNOWN_TEMPLATES:
        text, stop = KNOWN_TEMPLATES[requested]
        return TemplateChoice(requested, text, tuple(stop))
    raise LocalopenError(f"Unknown chat template '{requested}'. Choose one of: {', '.join(template_options())}.")


_THINKING_SWITCHES = ("enable_thinking", "thinking")


def traits(source: str | None) -> TemplateTraits:
    """Read what a template supports from its text (a variable it reads, a marker it writes)."""
    if not source:
        return TemplateTraits(None, False, ())
    reads = _reads(source)
    switch = next((name for name in _THINKING_SWITCHES if name in reads), None)
    harmony = "<|channel|>" in source
    markers = tuple(m for m in END_MARKERS if m in source and not (harmony and m == "<|end|>"))
    # FireFunction v2's template reads its tools as `functions`, a JSON text.
    return TemplateTraits(switch, harmony, markers, tool_calls.detect(source, bool({"tools", "functions"} & reads)))


@lru_cache(maxsize=32)
def _reads(source: str) -> frozenset[str]:
    """The variables a template reads from its context (not message fields, not strings)."""
    try:
        return frozenset(jinja2.meta.find_undeclared_variables(_ENV.parse(source)))
    except (TemplateError, RecursionError):  # rendering it says what is wrong, in words
        return frozenset()


def _with_tools(
    source: str, messages: list[dict[str, Any]], tools: list[Any]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The messages and variables that give a template its tools: as `tools`, as FireFunction's
    `functions` text, or, for a template that writes calls but never describes the tools
    (DeepSeek V3.1), described in the system message as the model's makers describe them."""
    reads = _reads(source)
    if "tools" in reads:
        return messages, {"tools": tools}
    if "functions" in reads:  # FireFunction v2, given as llama.cpp gives it (with today's date)
        now = datetime.now(timezone.utc).strftime("%b %d %Y %H:%M:%S GMT")
        return messages, {"functions": json.dumps(tools, indent=2, ensure_ascii=False), "datetime": now}
    text = tool_preambles.describe(tool_calls.detect(source, False), tools)
    if text is None:
        return messages, {}
    if messages and messages[0].get("role") == "system":
        first = {**messages[0], "content": f"{messages[0].get('content') or ''}\n\n{text}".lstrip()}
        return [first, *messages[1:]], {}
    return [{"role": "system", "content": text}, *messages], {}


# -- the environment ---------------------------------------------------------------------------
class _GenerationTag(jinja2.ext.Extension):
    """{% generation %}…{% endgeneration %}: transformers marks the assistant's tokens with it for
    training; rendering keeps the body as is."""

    tags = {"generation"}

    def parse(self, parser: jinja2.parser.Parser) -> list[jinja2.nodes.Node]:
        next(parser.stream)
        return list(parser.parse_statements(("name:endgeneration",), drop_needle=True))


class _TemplateDict:
    """`dict` for templates, without the type's attributes (as transformers restricts it)."""

    def __call__(self, *args: Any, **kwargs: Any) -> dict[Any, Any]:
        return dict(*args, **kwargs)

    def fromkeys(self, *args: Any, **kwargs: Any) -> dict[Any, Any]:
        return dict.fromkeys(*args, **kwargs)


class _TemplateNamespace(jinja2.utils.Namespace):
    """A namespace that refuses underscore names, which lead to Python internals."""

    def __init__(*args: Any, **kwargs: Any) -> None:  # noqa: N805 - jinja's own signature trick
        self, rest = args[0], args[1:]
        attrs = dict(*rest, **kwargs)
        for name in attrs:
            _TemplateNamespace._check(name)
        jinja2.utils.Namespace.__init__(self, attrs)

    def __setitem__(self, name: str, value: Any) -> None:
        _TemplateNamespace._check(name)
        jinja2.utils.Namespace.__setitem__(self, name, value)

    @staticmethod
    def _check(name: Any) -> None:
        if isinstance(name, str) and name.startswith("_"):
            raise SecurityError(f"a template may not set the underscore attribute {name!r} on a namespace")


def _raise_exception(message: str) -> None:
    raise TemplateError(message)


def _tojson(
    value: Any, ensure_ascii: bool = False, indent: int | None = None, separators: Any = None, sort_keys: bool = False
) -> str:
    # transformers' tojson: no HTML escaping, and indent/separators honoured (jinja's escapes <>&').
    # A filter's lazy result (`tools | map(attribute='function')`) is written as the list it yields.
    return json.dumps(
        value,
        ensure_ascii=ensure_ascii,
        indent=indent,
        separators=separators,
        sort_keys=sort_keys,
        default=_as_list,
    )


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, Iterator):
        return list(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(str(fmt))


# What one rendering may build: a prompt is at most a few MB of text (far beyond any context), and
# no real template raises a number to a large power. Templates come from model files: a hostile one
# must be stopped in words, never hang or exhaust the engine.
MAX_TEXT = 8_000_000  # characters (or items) one operation may produce
MAX_EXPONENT = 256
RENDER_SECONDS = 10.0  # the engine stops a rendering that runs longer (engine/worker.py)


class _LimitedCodeGenerator(jinja2.compiler.CodeGenerator):
    """`a ~ b` joins through the environment, so its length is checked like `+`'s."""

    def visit_Concat(self, node: jinja2.nodes.Concat, frame: jinja2.compiler.Frame) -> None:
        self.write("environment.limited_join((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class _LimitedSandbox(ImmutableSandboxedEnvironment):
    """transformers' sandbox, with sizes checked where a template could build something huge: `*` and
    `+` on text and lists, and `**`. Intercepted operators are also never folded at compile time
    (jinja2 would compute `7 ** 100000000` while compiling)."""

    intercepted_binops = frozenset({"*", "**", "+"})
    code_generator_class = _LimitedCodeGenerator

    def limited_join(self, parts: Sequence[Any]) -> str:
        texts = [str(p) for p in parts]
        if sum(len(t) for t in texts) > MAX_TEXT:
            raise SecurityError("a text longer than a template may build")
        return "".join(texts)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            if isinstance(right, (int, float)) and abs(right) > MAX_EXPONENT:
                raise SecurityError(f"a power of {right} is beyond what a chat template may compute")
        elif operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(n, int) and len(seq) * n > MAX_TEXT:
                    raise SecurityError(f"a text or list of {len(seq) * n} items is beyond what a template may build")
        elif operator == "+" and _sized(left) and _sized(right) and len(left) + len(right) > MAX_TEXT:
            raise SecurityError("a text longer than a template may build")
        return super().call_binop(context, operator, left, right)


def _sized(value: Any) -> bool:
    return isinstance(value, (str, list, tuple))


def _environment() -> ImmutableSandboxedEnvironment:
    env = _LimitedSandbox(trim_blocks=True, lstrip_blocks=True, extensions=[_GenerationTag, jinja2.ext.loopcontrols])
    env.filters["tojson"] = _tojson
    env.globals.update(
        raise_exception=_raise_exception, strftime_now=_strftime_now, dict=_TemplateDict(), namespace=_TemplateNamespace
    )
    return env


_ENV = _environment()


@lru_cache(maxsize=16)
def _compile(source: str) -> jinja2.Template:
    return _ENV.from_string(source)


# A message's reasoning goes to a template under each name templates read it by (as transformers
# does): Qwen3, DeepSeek and most read reasoning_content, gpt-oss reads thinking.
_REASONING_FIELDS = ("reasoning_content", "thinking", "reasoning")


def _plain(value: Any) -> Any:
    """Only JSON types reach a template: nothing with methods the sandbox does not know."""
    if value is None or type(value) in (str, int, float, bool):
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)


def _object_arguments(calls: Any) -> Any:
    """Tool calls as templates read them: `function.arguments` a dict (transformers' convention),
    where OpenAI's wire format sends a JSON string. Text that is no JSON object stays as it is."""
    if not isinstance(calls, list):
        return calls
    out = []
    for call in calls:
        function = call.get("function") if isinstance(call, dict) else None
        arguments = function.get("arguments") if isinstance(function, dict) else None
        if isinstance(function, dict) and isinstance(arguments, str):
            try:
                parsed = json.loads(arguments)
            except ValueError:
                parsed = None
            if isinstance(parsed, dict):
                call = {**call, "function": {**function, "arguments": parsed}}
        out.append(call)
    return out


def _as_template_reads(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for message in messages:
        m = _plain(message)
        if "tool_calls" in m:
            m["tool_calls"] = _object_arguments(m["tool_calls"])
        reasoning = next((m[k] for k in _REASONING_FIELDS if m.get(k)), None)
        if reasoning is not None:
            m = {"thinking": reasoning, **m, "reasoning_content": reasoning}
        else:
            for key in _REASONING_FIELDS:
                m.pop(key, None)  # an empty reasoning is no reasoning
        out.append(m)
    return out


def render(
    choice: TemplateChoice,
    messages: Sequence[Mapping[str, Any]],
    special_tokens: Mapping[str, str] | None = None,
    add_generation_prompt: bool = True,
    switches: Mapping[str, Any] | None = None,
    tools: Sequence[Mapping[str, Any]] | None = None,
) -> str:
    """Render messages to the prompt text as transformers would (sandboxed: untrusted templates
    cannot reach Python). `special_tokens`: bos_token, eos_token… as the file defines them;
    `switches`: variables such as enable_thinking; `tools`: OpenAI function schemas, passed as
    they are (messages may carry `tool_calls` and `tool` results)."""
    if choice.source is None:  # plain completion: system text, then the conversation's text as is
        parts = [str(m["content"]) for m in messages if m.get("content")]
        return "\n\n".join(parts)
    try:
        template = _compile(choice.source)
        read, given = _as_template_reads(messages), dict[str, Any]()
        if tools:
            read, given = _with_tools(choice.source, read, _plain(list(tools)))
        text = template.render(
            messages=read,
            **{"tools": None, **given},
            documents=None,
            add_generation_prompt=add_generation_prompt,
            **_plain(dict(special_tokens or {})),
            **_plain(dict(switches or {})),
        )
        if len(text) > MAX_TEXT:
            raise TemplateRenderError(f"The chat template wrote {len(text)} characters: more than a prompt can be.")
        return text
    except SecurityError as exc:
        raise TemplateRenderError(
            f"The model's chat template tried to do something unsafe and was stopped ({exc}). "
            "Nothing was executed. Choose a known template instead."
        ) from exc
    except TemplateError as exc:
        raise TemplateRenderError(f"The chat template failed: {exc}. Choose a known template instead.") from exc
    except RecursionError as exc:
        raise TemplateRenderError(
            "The chat template nests expressions or calls too deeply to be read. Choose a known template instead."
        ) from exc
    except (TypeError, ValueError, AttributeError, KeyError, IndexError, OverflowError) as exc:
        raise TemplateRenderError(f"The chat template failed: {exc}. Choose a known template instead.") from exc
    except MemoryError as exc:
        raise TemplateRenderError("The chat template tried to build more text than memory holds.") from exc
