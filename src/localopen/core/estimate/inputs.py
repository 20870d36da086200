"""Fit verdicts and speed-prediction features for catalog entries and local files: shapes from the
catalog or a GGUF header."""

from __future__ import annotations

from typing import Any

from localopen.core.defaults import DEFAULT_CTX
from localopen.core.estimate.budget import Budget, fit_verdict
from localopen.core.estimate.memory import FitVerdict, ModelShape
from localopen.core.estimate.speed import Features
from localopen.core.gguf.header import GGUFHeader
from localopen.core.gguf.quant import estimate_file_bytes
from localopen.core.machine.hardware import HardwareProfile
from localopen.core.openness.catalog import CatalogModel, Quant

# Used only for entries without architecture data: errs on the large side (big vocabulary).
_FALLBACK_ARCH = {"n_layers": 32, "n_embd": 4096, "n_head": 32, "n_head_kv": 8, "head_dim": 128, "n_vocab": 262144}


def catalog_shape(model: CatalogModel, quant: Quant) -> ModelShape:
    weight_bytes = quant.size_bytes or 0
    return ModelShape.from_catalog(model.arch or _FALLBACK_ARCH, weight_bytes, model.active_fraction)


def catalog_fit(
    model: CatalogModel,
    hw: HardwareProfile,
    quant: Quant | None = None,
    n_ctx: int | None = None,
    cache: dict[str, Any] | None = None,
    budget: Budget | None = None,
) -> FitVerdict:
    """`cache`: the KV cache's type and flash attention (memory.cache_args); None: f16, no flash
    attention. `budget`: the share of memory models may take (None: the default)."""
    quant = quant or model.recommended
    ctx = min(n_ctx or DEFAULT_CTX, model.context_length)
    return fit_verdict(catalog_shape(model, quant), hw, ctx, budget, **(cache or {}))


def file_fit(
    header: GGUFHeader,
    hw: HardwareProfile,
    n_ctx: int | None = None,
    total_bytes: int | None = None,
    cache: dict[str, Any] | None = None,
    budget: Budget | None = None,
) -> FitVerdict:
    ctx = min(n_ctx or DEFAULT_CTX, header.context_length or DEFAULT_CTX)
    return fit_verdict(ModelShape.from_header(header, total_bytes), hw, ctx, budget, **(cache or {}))


def _attention_dim(arch: dict[str, Any]) -> int:
    """Every layer's query heads (a hybrid's recurrent layers counted too: an upper bound)."""
    return arch["n_layers"] * arch["n_head"] * arch["head_dim"]


def catalog_features(model: CatalogModel, quant: Quant | None = None) -> Features:
    """What the speed prediction needs, from the catalog (no download, no fetch)."""
    quant = quant or model.recommended
    arch = model.arch or _FALLBACK_ARCH
    return Features.of(
        weight_bytes=quant.size_bytes or 0,
        n_params=int(model.params_b * 1e9),
        n_layers=arch["n_layers"],
        n_vocab=arch["n_vocab"],
        n_embd=arch["n_embd"],
        quantization=quant.type,
        attention_dim=_attention_dim(arch),
        active_fraction=model.active_fraction,
    )


def file_features(header: GGUFHeader, total_bytes: int | None = None) -> Features:
    """The same from a GGUF header (a local file, or a Hub file's fetched header)."""
    return Features.of_tensors(
        weight_bytes=total_bytes if total_bytes is not None else header.tensor_bytes,
        params_by_type=header.matrix_params,
        n_layers=header.block_count or 1,
        attention_dim=header.attention_dim,
        bytes_by_type=header.type_bytes,
        active_fraction=header.active_fraction,
    )


def params_fit(
    n_params: int, quantization: str, hw: HardwareProfile, n_ctx: int | None = None, budget: Budget | None = None
) -> FitVerdict | None:
    """A Hub file known only by its parameter count (the Hub's gguf.total) and quantization: the
    size from bits per weight and a typical 7-8B model's attention, which errs on the large side."""
    weight_bytes = estimate_file_bytes(n_params, quantization)
    if not weight_bytes:
        return None
    return fit_verdict(ModelShape.from_catalog(_FALLBACK_ARCH, weight_bytes), hw, n_ctx or DEFAULT_CTX, budget)


def params_features(n_params: int, quantization: str) -> Features:
    """The speed prediction's input for the same file: every weight read per token and multiplied
    per prompt token (no embedding table is subtracted, since its size is not known)."""
    return Features.of(
        weight_bytes=estimate_file_bytes(n_params, quantization) or 0,
        n_params=n_params,
        n_layers=_FALLBACK_ARCH["n_layers"],
        n_vocab=0,
        n_embd=_FALLBACK_ARCH["n_embd"],
        quantization=quantization,
        attention_dim=_attention_dim(_FALLBACK_ARCH),
    )
