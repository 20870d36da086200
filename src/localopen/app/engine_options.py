"""The one place where the user's settings and a call's overrides become engine options.

Every face (Chat, Compare, the Local server view, `localopen chat`/`serve`/`bench`, the probe and
the calibration) asks here, so a context, thread count or GPU-layer count set in the app or with
`localopen settings` reaches all of them. An override of None means "the setting"; sampling
defaults live in `SamplingParams` alone.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from localopen.app.settings import Settings
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
) -> LoadOptions:
    """How a model is loaded for chat and serving: the settings, each overridable."""
    threads = settings.n_threads if n_threads is None else n_threads
    cache = kv_type(kv_cache_type) if kv_cache_type is not None else settings.kv_cache_type
    return LoadOptions(
        n_ctx=settings.n_ctx if n_ctx is None else n_ctx,
        n_threads=threads or None,  # 0: physical cores
        n_gpu_layers=settings.n_gpu_layers if n_gpu_layers is None else n_gpu_layers,
        flash_attn=settings.flash_attn if flash_attn is None else flash_attn,
        type_k=cache,
        type_v=cache,
    )


def bench_options(
    settings: Settings,
    params: BenchParams,
    *,
    n_threads: int | None = None,
    n_gpu_layers: int | None = None,
    kv_cache_type: str | None = None,
    flash_attn: bool | None = None,
) -> tuple[LoadOptions, BenchParams]:
    """How a benchmark loads and runs: the settings' threads and GPU layers, a benchmark's context."""
    # llama-bench's defaults (f16 cache, no flash attention) unless asked: results compare with its own.
    options = load_options(
        settings,
        n_ctx=BENCH_LOAD_CTX,
        n_threads=n_threads,
        n_gpu_layers=n_gpu_layers,
        kv_cache_type=kv_cache_type or "f16",
        flash_attn=bool(flash_attn),
    )
    return options, dataclasses.replace(params, n_threads=options.n_threads)


def sampling(**overrides: Any) -> SamplingParams:
    """SamplingParams' defaults with the given fields replaced (None leaves a default as it is)."""
    return dataclasses.replace(SamplingParams(), **{k: v for k, v in overrides.items() if v is not None})
