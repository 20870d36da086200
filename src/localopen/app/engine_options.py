"""The one place where the user's settings and a call's overrides become engine options.

Every face (Chat, Compare, the Local server view, `localopen chat`/`serve`/`bench`, the probe and
the calibration) asks here, so a context, thread count or GPU-layer count set in the app or with
`localopen settings` reaches all of them. An override of None means "the setting"; sampling
defaults live in `SamplingParams` alone.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from localopen.app.settings import Settings
from localopen.core.errors import LocalopenError
from localopen.core.estimate.memory import kv_type
from localopen.core.options import BY_KEY, OPTIONS, BenchParams, LoadOptions, SamplingParams, from_values

# The context a benchmark loads with: just large enough for the load; llama-bench's protocol
# makes its own context per test. The chat's context setting does not apply to it.
BENCH_LOAD_CTX = 256


def load_options(settings: Settings, *, preset: dict[str, Any] | None = None, **overrides: Any) -> LoadOptions:
    """How a model is loaded for chat and serving, option by option (core/options.OPTIONS): the
    call's override (a command's flag; None: not given), else the model's preset, else the setting,
    else the option's default."""
    unknown = set(overrides) - set(BY_KEY)
    if unknown:
        raise TypeError(f"not load options: {', '.join(sorted(unknown))}")
    p = preset or {}
    values: dict[str, Any] = {}
    for option in OPTIONS:
        if overrides.get(option.key) is not None:
            values[option.key] = overrides[option.key]
        elif option.preset and option.key in p:
            values[option.key] = p[option.key]
        elif option.setting:
            values[option.key] = getattr(settings, option.key)
    values["draft"] = _draft(values.get("draft") or "off")
    return from_values(values)


def _draft(value: str) -> str | None:
    """'lookup' drafts from the prompt (speculative decoding), a path: that draft model (app/drafting
    resolves a library name to it); 'off' (or none) decodes plainly."""
    if value in ("off", "none", ""):
        return None
    if value == "lookup" or Path(value).is_file():
        return value
    if value.endswith(".gguf"):
        raise LocalopenError(
            f"The draft model {value} is not there (moved or deleted): name another, or turn drafting off."
        )
    raise LocalopenError(f"Unknown drafting '{value}': use lookup (prompt lookup), off, or a draft model.")


def bench_options(
    settings: Settings,
    params: BenchParams,
    *,
    n_threads: int | None = None,
    n_gpu_layers: int | None = None,
    kv_cache_type: str | None = None,
    flash_attn: bool | None = None,
    preset: dict[str, Any] | None = None,
) -> tuple[LoadOptions, BenchParams]:
    """How a benchmark loads and runs: the settings' threads and GPU layers (a preset's over them), a
    benchmark's context."""
    # The load's own context only loads (each test makes its context, as llama-bench does): plain f16.
    # The tests' cache is llama-bench's default (f16, flash attention auto) unless asked or preset.
    p = preset or {}
    options = load_options(
        settings,
        n_ctx=BENCH_LOAD_CTX,
        n_threads=n_threads,
        n_gpu_layers=n_gpu_layers,
        kv_cache_type="f16",
        flash_attn=False,
        preset=p,
    )
    cache = kv_type(kv_cache_type or p.get("kv_cache_type", "f16"))
    fa = flash_attn if flash_attn is not None else p.get("flash_attn")
    return options, dataclasses.replace(
        params,
        n_threads=options.n_threads,
        type_k=cache,
        type_v=cache,
        flash_attn=params.flash_attn if fa is None else ("on" if fa else "off"),
        n_batch=p.get("n_batch", params.n_batch),
        n_ubatch=p.get("n_ubatch", params.n_ubatch),
    )


def sampling(**overrides: Any) -> SamplingParams:
    """SamplingParams' defaults with the given fields replaced (None leaves a default as it is)."""
    return dataclasses.replace(SamplingParams(), **{k: v for k, v in overrides.items() if v is not None})
