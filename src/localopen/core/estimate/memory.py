"""Will this model file fit here, and how fast could it decode? Estimated before any download.

Memory model (docs/DESIGN.md, checked against llama.cpp's own buffer report in tests):
  weights (≈ tensor bytes, mmapped) + KV cache + compute buffer + output buffer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from localopen.core.gguf.header import GGUFHeader

MiB = 2**20
GiB = 2**30
CTX_PAD = 256  # llama.cpp pads the KV cache to a multiple of 256 cells


@dataclass(frozen=True)
class ModelShape:
    """What the estimate needs to know about a model: from a GGUF header or the catalog."""

    weight_bytes: int
    n_layers: int
    n_head: int
    n_head_kv: int | list[int]
    key_length: int
    value_length: int
    n_vocab: int
    n_embd: int
    sliding_window: int | None = None
    n_swa_layers: int = 0
    n_attention_layers: int | None = None  # only the first this many layers keep a KV cache (hybrid, shared KV)
    key_length_swa: int | None = None  # Gemma 4: sliding-window layers have narrower heads
    value_length_swa: int | None = None
    active_fraction: float = 1.0  # MoE: share of weights read per token

    @classmethod
    def from_header(cls, h: GGUFHeader, total_bytes: int | None = None) -> ModelShape:
        n_layers = h.block_count or 1
        head_count = h.head_count
        n_head = max(head_count) if isinstance(head_count, list) else (head_count or 1)
        kv = h.head_count_kv if h.head_count_kv is not None else n_head
        swa = h.sliding_window
        # Gemma 4 (shared_kv_layers) and Gemma 3n (20, fixed in llama.cpp): the last layers reuse
        # earlier layers' KV (llama.cpp's n_layer_kv_from_start), so only the first ones hold a cache.
        shared = h.shared_kv_layers
        kv_layers = n_layers - shared if 0 < shared < n_layers else None
        if h.architecture == "gemma3n" and n_layers > 20:
            kv_layers = 20
        n_swa = 0
        if swa:
            pattern = h.arch_key("attention.sliding_window_pattern")
            if isinstance(pattern, list):
                n_swa = sum(1 for v in pattern[: kv_layers or n_layers] if v)
            elif h.architecture.startswith("gemma3"):
                n_swa = n_layers - n_layers // 6  # every 6th layer is global
            elif h.architecture == "gemma2":
                n_swa = n_layers // 2
        return cls(
            weight_bytes=total_bytes if total_bytes is not None else h.tensor_bytes,
            n_layers=n_layers,
            n_head=n_head,
            n_head_kv=kv,
            key_length=h.key_length or 128,
            value_length=h.value_length or 128,
            n_vocab=h.vocab_size or 32000,
            n_embd=h.embedding_length or 4096,
            sliding_window=swa,
            n_swa_layers=n_swa,
            n_attention_layers=kv_layers,
            key_length_swa=h.key_length_swa,
            value_length_swa=h.value_length_swa,
            active_fraction=h.active_fraction,
        )

    @classmethod
    def from_catalog(cls, arch: dict[str, Any], weight_bytes: int, active_fraction: float = 1.0) -> ModelShape:
        return cls(
            weight_bytes=weight_bytes,
            n_layers=arch["n_layers"],
            n_head=arch["n_head"],
            n_head_kv=arch["n_head_kv"],
            key_length=arch["head_dim"],
            value_length=arch["head_dim"],
            n_vocab=arch["n_vocab"],
            n_embd=arch["n_embd"],
            sliding_window=arch.get("sliding_window"),
            n_swa_layers=arch.get("n_swa_layers", 0),
            n_attention_layers=arch.get("n_attention_layers"),
            key_length_swa=arch.get("head_dim_swa"),
            value_length_swa=arch.get("head_dim_swa"),
            active_fraction=active_fraction,
        )


@dataclass(frozen=True)
class MemoryEstimate:
    n_ctx: int
    weights: int
    kv_cache: int
    compute: int
    output: int
    projector: int = 0  # a vision model's projector (its weights) loaded beside it

    @property
    def total(self) -> int:
        return self.weights + self.kv_cache + self.compute + self.output + self.projector

    def to_dict(self) -> dict[str, int]:
        return {
            "n_ctx": self.n_ctx,
            "weights": self.weights,
            "kv_cache": self.kv_cache,
            "compute": self.compute,
            "output": self.output,
            "projector": self.projector,
            "total": self.total,
        }


def _pad(n: int, to: int = CTX_PAD) -> int:
    return (n + to - 1) // to * to


# Bytes per cached element of each KV-cache type llama.cpp offers, from ggml's block sizes
# (q8_0: 32 values in 34 bytes, ≈0.53x f16; q4_0: 32 in 18 bytes, ≈0.28x).
KV_TYPES = {
    "f32": 4.0,
    "f16": 2.0,
    "bf16": 2.0,
    "q8_0": 34 / 32,
    "q5_1": 24 / 32,
    "q5_0": 22 / 32,
    "q4_1": 20 / 32,
    "q4_0": 18 / 32,
}


def kv_type(name: str) -> str:
    """A KV-cache type by name (f16, q8_0, q4_0…), or an error in words."""
    key = name.strip().lower()
    if key not in KV_TYPES:
        raise ValueError(f"Unknown KV-cache type '{name}': choose one of {', '.join(KV_TYPES)}.")
    return key


def estimate_memory(
    shape: ModelShape,
    n_ctx: int,
    n_ubatch: int = 512,
    flash_attn: bool = False,
    swa_full: bool = False,
    type_k: str = "f16",
    type_v: str = "f16",
    output_rows: int = 1,
    projector_bytes: int = 0,
) -> MemoryEstimate:
    """Bytes llama.cpp will allocate for this model at this context (f16 KV cache by default).
    `output_rows`: logits kept per evaluation (speculative decoding checks a token and its drafts
    in one batch): the output buffer grows to that at the first decode (not in the load's report)."""
    n_ctx = _pad(max(1, n_ctx))
    ubatch = min(n_ubatch, n_ctx)
    layers = shape.n_attention_layers if shape.n_attention_layers is not None else shape.n_layers
    kv_heads = shape.n_head_kv
    per_layer_heads = kv_heads[:layers] if isinstance(kv_heads, list) else [kv_heads] * layers
    n_swa = min(shape.n_swa_layers, layers) if shape.sliding_window else 0
    swa_cells = n_ctx
    if n_swa and shape.sliding_window and not swa_full:
        swa_cells = min(n_ctx, _pad(shape.sliding_window + ubatch))
    k_bytes, v_bytes = KV_TYPES[type_k], KV_TYPES[type_v]
    full_width = shape.key_length * k_bytes + shape.value_length * v_bytes
    swa_width = (shape.key_length_swa or shape.key_length) * k_bytes + (
        shape.value_length_swa or shape.value_length
    ) * v_bytes
    kv = 0.0
    for index, heads in enumerate(per_layer_heads):
        # Which layers are SWA only matters through their count; put them first.
        cells, width = (swa_cells, swa_width) if index < n_swa else (n_ctx, full_width)
        kv += cells * heads * width
    # The compute buffer's peak is the larger of the logits of one micro-batch and, without
    # flash attention, the attention scores of one layer (f32).
    logits = shape.n_vocab * ubatch * 4
    attention = 0 if flash_attn else n_ctx * ubatch * shape.n_head * 4
    hidden = 4 * shape.n_embd * ubatch * 4
    compute = int(max(logits, attention + hidden) * 1.005)
    output = shape.n_vocab * 4 * max(1, min(output_rows, n_ctx))
    return MemoryEstimate(
        n_ctx=n_ctx,
        weights=shape.weight_bytes,
        kv_cache=int(kv),
        compute=compute,
        output=output,
        projector=projector_bytes,
    )


@dataclass(frozen=True)
class FitVerdict:
    code: str  # fits_gpu | fits_ram | tight | no_fit
    label: str
    detail: str
    memory: MemoryEstimate
    decode_bound_tps: float | None  # tokens/s upper bound from memory bandwidth

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.code,
            "label": self.label,
            "detail": self.detail,
            "memory": self.memory.to_dict(),
            "decode_bound_tps": self.decode_bound_tps,
        }


def human_bytes(n: float | None) -> str:
    if n is None:
        return "?"
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


def decode_bound(shape: ModelShape, bandwidth_gbs: float | None) -> float | None:
    """tokens/s ≤ bandwidth ÷ bytes read per token (≈ the weights a dense model touches)."""
    if not bandwidth_gbs:
        return None
    per_token = shape.weight_bytes * shape.active_fraction
    return round(bandwidth_gbs * 1e9 / per_token, 1) if per_token else None


def cache_args(kv_cache_type: str = "f16", flash_attn: bool = False) -> dict[str, Any]:
    """The KV cache's part of an estimate: one type for K and V, as the settings and flags give it."""
    return {"type_k": kv_cache_type, "type_v": kv_cache_type, "flash_attn": flash_attn}
