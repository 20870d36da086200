"""The load options' flags (chat, serve, bench, info, check-tools…), made from core/options.OPTIONS:
one row there is one flag here, its help the row's words, its value read back by the option's key."""

from __future__ import annotations

import argparse
from typing import Any

from localopen.core.options import BY_KEY, OPTIONS

# What a flag falls back to when it is not given, where that is not simply the setting.
_DEFAULT_WORDS = {
    "draft": "the model's preset, off",
}
_DRAFT_HELP = (
    "speculative decoding: lookup drafts tokens from the conversation's own text (faster when the answer "
    "repeats it: quoting, code edits), MODEL: a small model of the same family drafts (`localopen info` "
    "suggests one); at temperature 0 the same text but where two tokens nearly tie"
)


def option_flags(p: argparse.ArgumentParser, keys: list[str], defaults: dict[str, str] | None = None) -> None:
    """Add these load options' flags; `defaults`: what a flag falls back to, in words, where it is
    not the model's preset over the setting (a benchmark's KV cache: f16, as llama-bench)."""
    for key in keys:
        option = BY_KEY[key]
        fallback = (defaults or {}).get(key) or _DEFAULT_WORDS.get(key) or f"the model's preset, else the {key} setting"
        words = _DRAFT_HELP if key == "draft" else option.words
        kwargs: dict[str, Any] = {"dest": option.key, "help": f"{words} (default: {fallback})"}
        if option.choices:
            kwargs["choices"] = list(option.choices)
        elif isinstance(option.default, int) and not isinstance(option.default, bool):
            kwargs["type"] = int
        if key == "draft":
            kwargs["metavar"] = "lookup|MODEL|off"
        p.add_argument(*option.flags, **kwargs)


def given(args: argparse.Namespace) -> dict[str, Any]:
    """The load options given as flags, by key (None: not given); a yes/no option as a bool."""
    out = {}
    for option in OPTIONS:
        if option.flags and hasattr(args, option.key):
            value = getattr(args, option.key)
            out[option.key] = value == "on" if option.choices == ("on", "off") and value is not None else value
    return out
