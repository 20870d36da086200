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
from localopen.engine.protocol import BenchParams, LoadOptions, SamplingParams

# The context a benchmark loads with: just large enough for the load; llama-bench's protocol
# makes its own context per test. The chat's context setting does not apply to it.
BENCH_LOAD_CTX = 256


def load_options(
    settings: Settings,
    *,
    n_ctx: int | None = None,
    n_threads: int | None = None,
    n_gpu_layers: int | None = None,
    kv_cache_type: str | None = None,
    flash_attn: bool | None = None,
    preset: dict[str, Any] | None = None,
    draft: str | None = None,
) -> LoadOptions:
    """How a model is loaded for chat and serving: the settings, under the model's preset (app/
    presets), under the call's overrides (a command's flags)."""
    p = preset or {}

    def pick(override: Any, key: str, setting: Any) -> Any:
        return override if override is not None else p.get(key, setting)

    threads = pick(n_threads, "n_threads", settings.n_threads)
    cache = kv_type(pick(kv_cache_type, "kv_cache_type", settings.kv_cache_type))
    defaults = LoadOptions()
    return LoadOptions(
        n_ctx=pick(n_ctx, "n_ctx", settings.n_ctx),
        n_threads=threads or None,  # 0: physical cores
        n_gpu_layers=pick(n_gpu_layers, "n_gpu_layers", settings.n_gpu_layers),
        flash_attn=pick(flash_attn, "flash_attn", settings.flash_attn),
        type_k=cache,
        type_v=cache,
        n_batch=p.get("n_batch", defaults.n_batch),
        n_ubatch=p.get("n_ubatch", defaults.n_ubatch),
        use_mmap=p.get("use_mmap", defaults.use_mmap),
        draft=_draft(pick(draft, "draft", "off")),
        memory_percent=settings.models_memory_percent,
    )


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
