"""The load options' flags (chat, serve, bench, info, check-tools…), made from core/options.OPTIONS:
one row there is one flag here, its help the row's words, its value read back by the option's key;
and the engine options a command's flags give, over the model's preset and the settings."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from localopen.app import engine_options
from localopen.core.options import BY_KEY, OPTIONS, BenchParams, LoadOptions, SamplingParams

if TYPE_CHECKING:
    from localopen.app.context import AppContext

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


def load_options_from(ctx: AppContext, args: argparse.Namespace, path: Path | str | None = None) -> LoadOptions:
    """The settings (app or `localopen settings`), the model's preset over them, the command's flags
    over both."""
    from localopen.app.presets import preset_for

    return engine_options.load_options(ctx.settings, preset=preset_for(ctx, path), **load_overrides(ctx, args))


def load_overrides(ctx: AppContext, args: argparse.Namespace) -> dict[str, Any]:
    """The load flags the person gave (None: not given), by option key; a draft model named by its
    library name is found."""
    from localopen.app.conversation import drafting

    flags = given(args)
    if "draft" in flags:
        flags["draft"] = drafting.resolve(ctx, flags["draft"])
    return flags


def bench_options_from(ctx: AppContext, args: argparse.Namespace, path: Path) -> tuple[LoadOptions, BenchParams]:
    from localopen.app.presets import preset_for

    flags = given(args)
    return engine_options.bench_options(
        ctx.settings,
        BenchParams(n_prompt=args.n_prompt, n_gen=args.n_gen, reps=args.reps),
        preset=preset_for(ctx, path),
        n_threads=flags["n_threads"],
        n_gpu_layers=flags["n_gpu_layers"],
        kv_cache_type=flags["kv_cache_type"],
        flash_attn=flags["flash_attn"],
    )


def sampling_from(args: argparse.Namespace) -> SamplingParams:
    return engine_options.sampling(
        temperature=args.temperature,
        top_p=args.top_p,
        top_k=args.top_k,
        min_p=args.min_p,
        repeat_penalty=args.repeat_penalty,
        seed=args.seed,
        max_tokens=args.max_tokens,
        stop=args.stop or None,
    )


def output_flags(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument("--json", action="store_true", help="llama-bench JSON field names, plus localopen's")
    group.add_argument("--csv", action="store_true")
    group.add_argument("--md", action="store_true", help="markdown table (the default)")
    group.add_argument("--table", action="store_true", help="plain aligned columns")


def engine_flags(p: argparse.ArgumentParser, ctx: bool = True) -> None:
    """Load flags; each defaults to the model's preset, else the setting (`localopen settings`)."""
    keys = ["n_ctx"] if ctx else []
    bench = {} if ctx else {"kv_cache_type": "f16, as llama-bench", "flash_attn": "auto, as llama-bench"}
    option_flags(p, [*keys, "n_threads", "n_gpu_layers", "kv_cache_type", "flash_attn"], bench)
