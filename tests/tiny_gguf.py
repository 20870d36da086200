"""Write tiny random-weight llama GGUF models with the gguf package (for fast, real tests).

A 2-layer llama with a 259-token byte vocabulary (~0.2 MB): llama.cpp loads it in
milliseconds and streams tokens. Assert on structure and counts, never on the text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

N_VOCAB = 259
N_EMBD = 64
N_HEAD = 4
N_HEAD_KV = 2
N_FF = 128
N_LAYER = 2
N_CTX_TRAIN = 512

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _add_llama_shape(
    w: Any, context_length: int, n_embd: int, n_ff: int, n_layer: int, n_head: int, n_head_kv: int
) -> None:
    """The llama hyperparameters and the SentencePiece tokenizer model, as both writers need them."""
    w.add_context_length(context_length)
    w.add_embedding_length(n_embd)
    w.add_feed_forward_length(n_ff)
    w.add_block_count(n_layer)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head_kv)
    w.add_rope_dimension_count(n_embd // n_head)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_tokenizer_model("llama")


def write_tiny_llama(
    path: Path,
    chat_template: str | None = CHATML,
    license: str | None = "apache-2.0",
    architecture: str = "llama",
    seed: int = 0,
    extra: dict | None = None,
    n_embd: int = N_EMBD,
    n_layer: int = N_LAYER,
    n_ff: int = N_FF,
    n_head: int = N_HEAD,
    n_head_kv: int = N_HEAD_KV,
    dtype: type = np.float32,
    split_max_tensors: int = 0,
) -> Path:
    """Write a random llama; the defaults give the tiny test model, larger sizes a synthetic one
    for speed checks (byte vocabulary either way)."""
    import gguf

    rng = np.random.default_rng(seed)
    w = gguf.GGUFWriter(str(path), architecture, split_max_tensors=split_max_tensors)
    w.add_name("tiny-test-llama")
    if license:
        w.add_license(license)
    _add_llama_shape(w, N_CTX_TRAIN, n_embd, n_ff, n_layer, n_head, n_head_kv)
    w.add_file_type(0 if dtype == np.float32 else 1)  # all F32, or F16 matrices
    tokens = [b"<unk>", b"<s>", b"</s>"] + [f"<0x{i:02X}>".encode() for i in range(256)]
    w.add_token_list(tokens)
    w.add_token_scores([0.0] * N_VOCAB)
    w.add_token_types([2, 3, 3] + [6] * 256)  # unknown, control, control, byte
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    if chat_template is not None:
        w.add_chat_template(chat_template)
    for key, value in (extra or {}).items():
        if isinstance(value, int):
            w.add_uint32(key, value)
        else:
            w.add_string(key, value)

    def t(name: str, *shape: int) -> None:
        if len(shape) > 1:
            data = (rng.standard_normal(shape, dtype=np.float32) * 0.2).astype(dtype)
        else:
            data = np.ones(shape, np.float32)
        w.add_tensor(name, data)

    head_dim = n_embd // n_head
    t("token_embd.weight", N_VOCAB, n_embd)
    t("output_norm.weight", n_embd)
    t("output.weight", N_VOCAB, n_embd)
    for i in range(n_layer):
        t(f"blk.{i}.attn_norm.weight", n_embd)
        t(f"blk.{i}.attn_q.weight", n_embd, n_embd)
        t(f"blk.{i}.attn_k.weight", n_head_kv * head_dim, n_embd)
        t(f"blk.{i}.attn_v.weight", n_head_kv * head_dim, n_embd)
        t(f"blk.{i}.attn_output.weight", n_embd, n_embd)
        t(f"blk.{i}.ffn_norm.weight", n_embd)
        t(f"blk.{i}.ffn_gate.weight", n_ff, n_embd)
        t(f"blk.{i}.ffn_up.weight", n_ff, n_embd)
        t(f"blk.{i}.ffn_down.weight", n_embd, n_ff)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def expected_params() -> int:
    head_dim = N_EMBD // N_HEAD
    per_layer = 2 * N_EMBD + N_EMBD * N_EMBD * 2 + 2 * N_HEAD_KV * head_dim * N_EMBD + 3 * N_FF * N_EMBD
    return 2 * N_VOCAB * N_EMBD + N_EMBD + N_LAYER * per_layer


# A reasoning template as Qwen3 writes it (trimmed): thinking switch, reasoning kept for the turn.
THINKING_CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['role'] == 'assistant' and m.reasoning_content and loop.last %}"
    "<think>\n{{ m.reasoning_content }}\n</think>\n\n{% endif %}{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n{% endif %}{% endif %}"
)


def write_scripted_llama(
    path: Path,
    script: list[str],
    special: dict[str, int],
    chat_template: str = THINKING_CHATML,
    start: str = "<0x0A>",
    eos: str = "<|im_end|>",
    loop: bool = False,
    context_length: int = N_CTX_TRAIN,
) -> Path:
    """A tiny llama that always says `script`, token by token, after the token `start`.

    Its blocks add nothing (zero attention output and feed-forward down projections), so the
    next token depends on the current one alone: each token of the chain has a one-hot embedding
    and the output row of its successor points at it. Extra tokens (the script's words,
    `special`'s names with their GGUF token types: 3 control, 4 user-defined) follow the byte
    vocabulary. Sampling at any usual temperature still follows the script. With `loop`, the
    last token leads back to the first: the model never ends its turn (for long answers).
    """
    import gguf

    base = ["<unk>", "<s>", "</s>"]
    extra = [t for t in dict.fromkeys([*special, *script]) if t not in base]  # "</s>" may end a script
    tokens = base + [f"<0x{i:02X}>" for i in range(256)] + extra
    types = [2, 3, 3] + [6] * 256 + [special.get(t, 4) for t in extra]
    index = {t: i for i, t in enumerate(tokens)}
    chain = [start, *script]
    assert len(set(chain)) == len(chain), "each token of the chain must be distinct"
    n_vocab, n_embd = len(tokens), N_EMBD
    assert len(chain) + 1 < n_embd // 2
    rng = np.random.default_rng(0)
    embd = np.zeros((n_vocab, n_embd), np.float32)
    embd[:, n_embd // 2 :] = rng.standard_normal((n_vocab, n_embd - n_embd // 2)) * 0.1
    output = np.zeros((n_vocab, n_embd), np.float32)
    output[:, n_embd // 2 :] = rng.standard_normal((n_vocab, n_embd - n_embd // 2)) * 0.01
    pairs = list(zip(chain, chain[1:], strict=False)) + ([(script[-1], script[0])] if loop else [])
    for slot, (current, following) in enumerate(pairs):
        embd[index[current]] = 0.0
        embd[index[current], slot] = 1.0
        output[index[following], slot] = 10.0

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("tiny-scripted-llama")
    w.add_license("apache-2.0")
    _add_llama_shape(w, context_length, n_embd, N_FF, N_LAYER, N_HEAD, N_HEAD_KV)
    w.add_file_type(0)
    w.add_token_list([t.encode() for t in tokens])
    w.add_token_scores([0.0] * n_vocab)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(index[eos])
    w.add_unk_token_id(0)
    w.add_chat_template(chat_template)
    head_dim = n_embd // N_HEAD
    w.add_tensor("token_embd.weight", embd)
    w.add_tensor("output_norm.weight", np.ones(n_embd, np.float32))
    w.add_tensor("output.weight", output)
    for i in range(N_LAYER):
        w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(n_embd, np.float32))
        w.add_tensor(f"blk.{i}.attn_q.weight", rng.standard_normal((n_embd, n_embd)).astype(np.float32) * 0.1)
        w.add_tensor(f"blk.{i}.attn_k.weight", rng.standard_normal((N_HEAD_KV * head_dim, n_embd)).astype(np.float32))
        w.add_tensor(f"blk.{i}.attn_v.weight", rng.standard_normal((N_HEAD_KV * head_dim, n_embd)).astype(np.float32))
        w.add_tensor(f"blk.{i}.attn_output.weight", np.zeros((n_embd, n_embd), np.float32))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(n_embd, np.float32))
        w.add_tensor(f"blk.{i}.ffn_gate.weight", rng.standard_normal((N_FF, n_embd)).astype(np.float32) * 0.1)
        w.add_tensor(f"blk.{i}.ffn_up.weight", rng.standard_normal((N_FF, n_embd)).astype(np.float32) * 0.1)
        w.add_tensor(f"blk.{i}.ffn_down.weight", np.zeros((n_embd, N_FF), np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


# The reasoning model of the end-to-end tests: it thinks, then answers, then ends its turn.
REASONING_SPECIAL = {"<|im_start|>": 3, "<|im_end|>": 3, "<think>": 4, "</think>": 4}
REASONING_SCRIPT = ["<think>", "Adding", " two and two", "</think>", "The answer", " is four.", "<|im_end|>"]


def write_tiny_projector(
    path: Path,
    projection_dim: int,
    kind: str = "gemma3",
    n_embd: int = 32,
    n_ff: int = 64,
    image_size: int = 32,
    patch: int = 8,
    merge: int = 2,
) -> Path:
    """A random-weight vision projector (an mmproj file) that llama.cpp's libmtmd loads: a one-layer
    ViT of image_size/patch patches per side, pooled merge x merge, projected to projection_dim
    (the text model's width). Gemma 3's layout (clip.cpp's siglip graph); assert on structure,
    counts and timings, never on what a model says about an image."""
    import gguf

    rng = np.random.default_rng(0)
    w = gguf.GGUFWriter(str(path), "clip")
    w.add_name("tiny-test-projector")
    w.add_clip_has_vision_encoder(True)
    w.add_clip_projector_type(kind)
    w.add_vision_projection_dim(projection_dim)
    w.add_vision_patch_size(patch)
    w.add_vision_image_size(image_size)
    w.add_vision_embedding_length(n_embd)
    w.add_vision_feed_forward_length(n_ff)
    w.add_vision_block_count(1)
    w.add_vision_head_count(2)
    w.add_vision_attention_layernorm_eps(1e-6)
    w.add_vision_image_mean([0.5, 0.5, 0.5])
    w.add_vision_image_std([0.5, 0.5, 0.5])
    w.add_uint32("clip.vision.projector.scale_factor", merge)
    w.add_bool("clip.use_gelu", True)

    def t(name: str, *shape: int, ones: bool = False) -> None:
        data = np.ones(shape, np.float32) if ones else (rng.standard_normal(shape) * 0.05).astype(np.float32)
        w.add_tensor(name, data)

    t("v.patch_embd.weight", n_embd, 3, patch, patch)
    t("v.patch_embd.bias", n_embd)
    t("v.position_embd.weight", (image_size // patch) ** 2, n_embd)
    for name in ("attn_q", "attn_k", "attn_v", "attn_out"):
        t(f"v.blk.0.{name}.weight", n_embd, n_embd)
        t(f"v.blk.0.{name}.bias", n_embd)
    for norm in ("ln1", "ln2"):
        t(f"v.blk.0.{norm}.weight", n_embd, ones=True)
        t(f"v.blk.0.{norm}.bias", n_embd)
    t("v.blk.0.ffn_up.weight", n_ff, n_embd)
    t("v.blk.0.ffn_up.bias", n_ff)
    t("v.blk.0.ffn_down.weight", n_embd, n_ff)
    t("v.blk.0.ffn_down.bias", n_embd)
    t("v.post_ln.weight", n_embd, ones=True)
    t("v.post_ln.bias", n_embd)
    t("mm.soft_emb_norm.weight", n_embd, ones=True)
    t("mm.input_projection.weight", n_embd, projection_dim)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def tiny_png(width: int = 64, height: int = 48, seed: int = 1) -> bytes:
    """A small RGB PNG (a colour ramp), written by hand: no imaging library needed."""
    import struct
    import zlib

    rows = b"".join(
        b"\x00" + bytes((x * 4 + y * 3 + seed + c * 50) % 256 for x in range(width) for c in range(3))
        for y in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def rot(path: Path) -> None:
    """Flip one byte in the middle of a file, its size and modification time kept: bit rot, which
    no size or time check notices."""
    import os

    before = path.stat()
    with path.open("r+b") as fh:
        fh.seek(before.st_size // 2)
        byte = fh.read(1)
        fh.seek(before.st_size // 2)
        fh.write(bytes([byte[0] ^ 0xFF]))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
