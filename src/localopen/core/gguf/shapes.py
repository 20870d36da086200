"""Dense transformer shapes written as zero-data GGUF files with llama.cpp's real tensor names,
shapes and per-tensor quantization types (its Q4_K_M mixing rules included).

The calibration measures this machine on such files; the prediction benchmark writes real
catalog shapes with them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from localopen.core.gguf.writer import (
    ARRAY,
    F32,
    GGML_TYPES,
    I32,
    STRING,
    U32,
    TensorSpec,
    Value,
    write_zero_gguf,
)

QK_K = 256
FILE_TYPES = {"F16": 1, "Q8_0": 7, "Q5_0": 8, "Q4_K_M": 15}
# llama.cpp's fallback when a row length is not a multiple of 256 (k-quants need whole blocks)
_K_FALLBACK = {"Q4_K": "Q5_0", "Q6_K": "Q8_0"}


@dataclass(frozen=True)
class DenseShape:
    name: str
    n_layers: int
    n_embd: int
    n_ff: int
    n_head: int
    n_head_kv: int
    n_vocab: int
    head_dim: int = 0  # 0: n_embd / n_head
    arch: str = "llama"  # llama | qwen2 (q/k/v biases)
    tied_embeddings: bool = False
    context_length: int = 4096

    @property
    def hd(self) -> int:
        return self.head_dim or self.n_embd // self.n_head


def _use_more_bits(i: int, n: int) -> bool:
    """llama.cpp's Q4_K_M rule: attn_v and ffn_down of these layers get Q6_K."""
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def _type(ftype: str, row: int, role: str, layer: int = 0, n_layers: int = 1) -> int:
    if role == "norm":
        return GGML_TYPES["F32"]
    if ftype != "Q4_K_M":
        return GGML_TYPES[ftype]
    name = "Q4_K"
    if role == "output" or (role in ("attn_v", "ffn_down") and _use_more_bits(layer, n_layers)):
        name = "Q6_K"
    if row % QK_K:
        name = _K_FALLBACK[name]
    return GGML_TYPES[name]


def tensors(shape: DenseShape, ftype: str) -> list[TensorSpec]:
    s, e = shape, shape.n_embd
    q, kv = s.n_head * s.hd, s.n_head_kv * s.hd
    # Tied embeddings: llama.cpp's quantizer gives token_embd the output tensor's type (Q6_K).
    embd_role = "output" if s.tied_embeddings else "token_embd"
    out = [TensorSpec("token_embd.weight", (e, s.n_vocab), _type(ftype, e, embd_role))]
    out.append(TensorSpec("output_norm.weight", (e,), _type(ftype, e, "norm")))
    if not s.tied_embeddings:
        out.append(TensorSpec("output.weight", (e, s.n_vocab), _type(ftype, e, "output")))
    for i in range(s.n_layers):
        b, n = f"blk.{i}.", s.n_layers
        out += [
            TensorSpec(b + "attn_norm.weight", (e,), _type(ftype, e, "norm")),
            TensorSpec(b + "attn_q.weight", (e, q), _type(ftype, e, "attn_q", i, n)),
            TensorSpec(b + "attn_k.weight", (e, kv), _type(ftype, e, "attn_k", i, n)),
            TensorSpec(b + "attn_v.weight", (e, kv), _type(ftype, e, "attn_v", i, n)),
            TensorSpec(b + "attn_output.weight", (q, e), _type(ftype, q, "attn_output", i, n)),
            TensorSpec(b + "ffn_norm.weight", (e,), _type(ftype, e, "norm")),
            TensorSpec(b + "ffn_gate.weight", (e, s.n_ff), _type(ftype, e, "ffn_gate", i, n)),
            TensorSpec(b + "ffn_up.weight", (e, s.n_ff), _type(ftype, e, "ffn_up", i, n)),
            TensorSpec(b + "ffn_down.weight", (s.n_ff, e), _type(ftype, s.n_ff, "ffn_down", i, n)),
        ]
        if s.arch == "qwen2":
            for part, width in (("q", q), ("k", kv), ("v", kv)):
                out.append(TensorSpec(f"{b}attn_{part}.bias", (width,), GGML_TYPES["F32"]))
    return out


def metadata(shape: DenseShape, ftype: str) -> dict[str, Value]:
    s, a = shape, shape.arch
    # A SentencePiece-style vocabulary of the right size: the text of the tokens does not matter
    # to speed or memory; byte tokens keep llama.cpp's tokenizer set-up quiet.
    special = ["<unk>", "<s>", "</s>"]
    byte_tokens = [f"<0x{i:02X}>" for i in range(256)]
    tokens = special + byte_tokens + [f"t{i}" for i in range(s.n_vocab - len(special) - len(byte_tokens))]
    types = [2, 3, 3] + [6] * 256 + [1] * (s.n_vocab - 259)
    return {
        "general.architecture": Value(STRING, a),
        "general.name": Value(STRING, s.name),
        "general.file_type": Value(U32, FILE_TYPES[ftype]),
        f"{a}.context_length": Value(U32, s.context_length),
        f"{a}.embedding_length": Value(U32, s.n_embd),
        f"{a}.feed_forward_length": Value(U32, s.n_ff),
        f"{a}.block_count": Value(U32, s.n_layers),
        f"{a}.attention.head_count": Value(U32, s.n_head),
        f"{a}.attention.head_count_kv": Value(U32, s.n_head_kv),
        f"{a}.attention.key_length": Value(U32, s.hd),
        f"{a}.attention.value_length": Value(U32, s.hd),
        f"{a}.rope.dimension_count": Value(U32, s.hd),
        f"{a}.rope.freq_base": Value(F32, 10000.0),
        f"{a}.attention.layer_norm_rms_epsilon": Value(F32, 1e-5),
        "tokenizer.ggml.model": Value(STRING, "llama"),
        "tokenizer.ggml.tokens": Value(ARRAY, tokens, STRING),
        "tokenizer.ggml.scores": Value(ARRAY, [0.0] * s.n_vocab, F32),
        "tokenizer.ggml.token_type": Value(ARRAY, types, I32),
        "tokenizer.ggml.bos_token_id": Value(U32, 1),
        "tokenizer.ggml.eos_token_id": Value(U32, 2),
        "tokenizer.ggml.unknown_token_id": Value(U32, 0),
    }


def write_shape(path: Path, shape: DenseShape, ftype: str = "Q4_K_M") -> int:
    """A zero-data GGUF of this shape and file type; returns its size in bytes."""
    return write_zero_gguf(path, metadata(shape, ftype), tensors(shape, ftype))
