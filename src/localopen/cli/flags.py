"""Flags several commands share: the KV cache's type and flash attention (chat, serve, bench, info)."""

from __future__ import annotations

import argparse

from localopen.core.estimate.memory import KV_TYPES


def on_off(value: str | None) -> bool | None:
    return None if value is None else value == "on"


def cache_flags(p: argparse.ArgumentParser) -> None:
    """The KV cache's type and flash attention (the fit, chat, serve, bench)."""
    p.add_argument(
        "--kv-type",
        choices=list(KV_TYPES),
        help="KV-cache type for K and V: f16, q8_0 (about half the memory), q4_0… (default: the kv_cache_type "
        "setting; a benchmark: f16, as llama-bench)",
    )
    p.add_argument(
        "--flash-attn",
        choices=["on", "off"],
        help="flash attention (a quantized V cache needs it; default: the setting)",
    )


def draft_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--draft",
        metavar="lookup|MODEL|off",
        help="speculative decoding: lookup drafts tokens from the conversation's own text (faster when the "
        "answer repeats it: quoting, code edits), MODEL: a small model of the same family drafts (`localopen info` "
        "suggests one); at temperature 0 the same text but where two tokens nearly tie. "
        "Default: the model's preset, off",
    )
