"""Whether one model could draft for another (speculative decoding), from their headers alone.

llama.cpp accepts a draft model whose tokenizer is the model's own (common/speculative.cpp): the
same kind, the same special tokens, vocabularies within 128 entries and the same text for each
token. A header gives all but the texts (its token list is skipped for speed); the engine checks
the texts at load, so this is the library's quick answer and the load's the final one.
"""

from __future__ import annotations

from localopen.core.gguf.header import GGUFHeader

VOCAB_MAX_DIFFERENCE = 128  # llama.cpp's SPEC_VOCAB_MAX_SIZE_DIFFERENCE
# A draft costs its own pass per drafted token: one worth running is a small fraction of the model.
MAX_DRAFT_SHARE = 0.25


def same_tokenizer(a: GGUFHeader, b: GGUFHeader) -> bool:
    """The same tokenizer kind and pre-tokenizer, special tokens and (nearly) the same size."""
    keys = ("tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id")
    if any(a.get(k) != b.get(k) for k in keys) or a.get("tokenizer.ggml.model") is None:
        return False
    size_a, size_b = a.vocab_size, b.vocab_size
    return size_a is not None and size_b is not None and abs(size_a - size_b) <= VOCAB_MAX_DIFFERENCE


def could_draft_for(draft: GGUFHeader, draft_bytes: int, model: GGUFHeader, model_bytes: int) -> bool:
    """`draft` has the model's tokenizer and is small enough beside it to be worth running."""
    return 0 < draft_bytes <= model_bytes * MAX_DRAFT_SHARE and same_tokenizer(draft, model)
