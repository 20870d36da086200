"""Write tiny random-weight llama GGUF models with the gguf package (for fast, real tests).

A 2-layer llama with a 259-token byte vocabulary (~0.2 MB): llama.cpp loads it in
milliseconds and streams tokens. Assert on structure and counts, never on the text.
"""

from __future__ import annotations

from pathlib import Path

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
    w.add_context_length(N_CTX_TRAIN)
    w.add_embedding_length(n_embd)
    w.add_feed_forward_length(n_ff)
    w.add_block_count(n_layer)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head_kv)
    w.add_rope_dimension_count(n_embd // n_head)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(0 if dtype == np.float32 else 1)  # all F32, or F16 matrices
    w.add_tokenizer_model("llama")
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
