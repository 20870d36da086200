"""Chat templates: rendered only in jinja2's immutable sandbox, because they come from model files.

A model without a template never silently gets a wrong one: the caller must choose
plain completion or one of the known templates below.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jinja2 import TemplateError
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from localopen.core.errors import LocalopenError

COMPLETION = "completion"  # no chat formatting: the model continues the text

KNOWN_TEMPLATES: dict[str, tuple[str, list[str]]] = {
    # name: (template, extra stop strings)
    "chatml": (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}",
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

# A sensible suggestion per GGUF architecture when the file carries no template.
SUGGESTED = {
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


class TemplateRenderError(LocalopenError):
    """The chat template failed or tried something unsafe; nothing was executed."""


class NoTemplateError(LocalopenError):
    """The model has no chat template and the user has not chosen one."""


@dataclass(frozen=True)
class TemplateChoice:
    name: str  # "model", a KNOWN_TEMPLATES key, or COMPLETION
    source: str | None  # the jinja text (None for completion)
    stop: tuple[str, ...] = ()


def template_options() -> list[str]:
    return [COMPLETION, *KNOWN_TEMPLATES]


def suggest(architecture: str) -> str:
    return SUGGESTED.get(architecture, "chatml")


def choose(model_template: str | None, requested: str | None, architecture: str = "") -> TemplateChoice:
    """The template to use: the model's own unless the user picked another; never a silent guess."""
    if requested in (None, "model"):
        if model_template:
            return TemplateChoice("model", model_template)
        raise NoTemplateError(
            "This model has no chat template, so localopen will not guess one. Choose plain completion "
            f"or a known template ({', '.join(KNOWN_TEMPLATES)}); suggested for {architecture or 'this model'}: "
            f"{suggest(architecture)}."
        )
    if requested == COMPLETION:
        return TemplateChoice(COMPLETION, None)
    if requested in KNOWN_TEMPLATES:
        text, stop = KNOWN_TEMPLATES[requested]
        return TemplateChoice(requested, text, tuple(stop))
    raise LocalopenError(f"Unknown chat template '{requested}'. Choose one of: {', '.join(template_options())}.")


def _raise_exception(message: str) -> None:
    raise TemplateError(message)


_ENV = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
_ENV.globals.update(raise_exception=_raise_exception, strftime_now=lambda fmt: datetime.now().strftime(str(fmt)))


def render(
    choice: TemplateChoice,
    messages: list[dict[str, Any]],
    bos_token: str = "",
    eos_token: str = "",
    add_generation_prompt: bool = True,
) -> str:
    """Render messages to the prompt text (sandboxed; untrusted templates cannot reach Python)."""
    if choice.source is None:  # plain completion: system text, then the conversation's text as is
        parts = [m["content"] for m in messages if m.get("content")]
        return "\n\n".join(parts)
    try:
        template = _ENV.from_string(choice.source)
        return template.render(
            messages=messages, bos_token=bos_token, eos_token=eos_token, add_generation_prompt=add_generation_prompt
        )
    except SecurityError as exc:
        raise TemplateRenderError(
            f"The model's chat template tried to do something unsafe and was stopped ({exc}). "
            "Nothing was executed. Choose a known template instead."
        ) from exc
    except TemplateError as exc:
        raise TemplateRenderError(f"The chat template failed: {exc}. Choose a known template instead.") from exc
    except (TypeError, ValueError, AttributeError, RecursionError) as exc:
        raise TemplateRenderError(f"The chat template failed: {exc}. Choose a known template instead.") from exc
