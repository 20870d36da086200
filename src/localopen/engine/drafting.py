"""Speculative decoding's drafters, inside the engine: prompt lookup (drafts from the conversation's
own text) or a small model with the same vocabulary drafting greedily for a large one.

llama-cpp-python's generate() asks its `draft_model` for tokens after each accepted token and checks
them all in one batch with the large model; a drafted token the large model would not have chosen
is dropped with everything after it, so the text is the large model's own.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from llama_cpp.llama_speculative import LlamaDraftModel, LlamaPromptLookupDecoding

from localopen.engine.errors import ModelLoadError

log = logging.getLogger("localopen.engine.drafting")

# llama.cpp's own rule for a compatible draft (common/speculative.cpp): the same tokenizer type
# and special tokens, vocabularies within 128 entries, the same text for every shared id from 5.
VOCAB_MAX_DIFFERENCE = 128
VOCAB_CHECK_FROM = 5
# llama.cpp's server stops drafting when the draft model is less sure than this of its next token
# (a doubtful draft costs a batch slot and is likely rejected).
DRAFT_P_MIN = 0.75


class ModelDraft(LlamaDraftModel):
    """A small model drafting greedily; its cache follows the conversation (the common prefix is
    kept, the rest evaluated), so each call evaluates only what changed since the last."""

    def __init__(self, llm: Any, n_draft: int) -> None:
        self.llm = llm
        self.n_draft = n_draft
        self._n_vocab = llm.n_vocab()
        self._end = {t for t in (llm.token_eos(), llm._model.token_eot()) if t >= 0}

    def close(self) -> None:
        self.llm.close()

    def __call__(self, input_ids: npt.NDArray[np.intc], /, **kwargs: Any) -> npt.NDArray[np.intc]:
        llm = self.llm
        ids = input_ids.tolist()
        if not ids or len(ids) + self.n_draft >= llm.n_ctx():
            return np.array([], dtype=np.intc)
        cached = llm.input_ids[: llm.n_tokens].tolist()
        common = 0
        for a, b in zip(cached, ids, strict=False):
            if a != b:
                break
            common += 1
        common = min(common, len(ids) - 1)  # the last token is evaluated again for its logits
        if common < llm.n_tokens:
            if not llm._ctx.kv_cache_seq_rm(-1, common, -1):
                llm.reset()  # this cache cannot drop a suffix: evaluate from the start
                llm._ctx.kv_cache_clear()
                common = 0
            llm.n_tokens = common
        llm.eval(ids[common:])
        drafted: list[int] = []
        for _ in range(self.n_draft):
            logits = np.ctypeslib.as_array(llm._ctx.get_logits_ith(-1), shape=(self._n_vocab,))
            token = int(np.argmax(logits))
            # The chosen token's probability: 1 / sum(exp(l - max)).
            if 1.0 / float(np.exp(logits - logits[token]).sum()) < DRAFT_P_MIN:
                break
            drafted.append(token)
            if token in self._end or len(drafted) == self.n_draft:
                break
            llm.eval([token])
        return np.array(drafted, dtype=np.intc)


class CountingDrafter(LlamaDraftModel):
    """A drafter that counts how many of its drafts the model accepted in the current answer.

    generate() asks again right after it checked the last drafts: the tokens that then follow the
    last call's input say how many of them were kept (up to the first the model rejected)."""

    def __init__(self, inner: LlamaDraftModel) -> None:
        self.inner = inner
        self.proposed = 0
        self.accepted = 0
        self._pending: tuple[int, list[int]] | None = None  # (where they go, the drafts)

    def reset(self) -> None:
        """A new answer: no drafts outstanding."""
        self.proposed = self.accepted = 0
        self._pending = None

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()

    def __call__(self, input_ids: npt.NDArray[np.intc], /, **kwargs: Any) -> npt.NDArray[np.intc]:
        if self._pending is not None:
            at, drafts = self._pending
            kept = 0
            for drafted, taken in zip(drafts, input_ids[at : at + len(drafts)].tolist(), strict=False):
                if drafted != taken:
                    break
                kept += 1
            self.proposed += len(drafts)
            self.accepted += kept
        out = self.inner(input_ids, **kwargs)
        self._pending = (len(input_ids), out.tolist()) if len(out) else None
        return out


def check_drafts(llm: Any, rows: int) -> None:
    """Let the model check drafts: each evaluation also computes the logits of its last `rows`
    tokens (a token and the drafts after it), which generate() samples at each drafted position.
    llama-cpp-python's logits_all would compute and copy a full-vocabulary row for every prompt
    token and hold an n_ctx x vocabulary array: gigabytes for a 262k vocabulary."""
    llama_batch = llm._batch
    set_batch = llama_batch.set_batch

    def set_batch_with_rows(batch: Any, n_past: int, logits_all: bool) -> None:
        set_batch(batch=batch, n_past=n_past, logits_all=logits_all)
        n = len(batch)
        for i in range(max(0, n - rows), n):
            llama_batch.batch.logits[i] = True

    llama_batch.set_batch = set_batch_with_rows


def make_drafter(draft: str | None, n_draft: int, main: Any, load: Any) -> CountingDrafter | None:
    """The drafter `draft` names: None, "lookup", or a draft model's path (loaded by `load(path)`,
    checked against the main model's vocabulary)."""
    if draft is None:
        return None
    if draft == "lookup":
        return CountingDrafter(LlamaPromptLookupDecoding(num_pred_tokens=max(1, n_draft)))
    path = Path(draft)
    if not path.is_file():
        raise ModelLoadError(f"The draft model {path} is not there (moved or deleted?).", settings=True)
    llm = load(path)
    try:
        check_same_vocabulary(main, llm, Path(main.model_path).name, path.name)
    except ModelLoadError:
        llm.close()
        raise
    return CountingDrafter(ModelDraft(llm, max(1, n_draft)))


def check_same_vocabulary(main: Any, draft: Any, main_name: str, draft_name: str) -> None:
    """llama.cpp's compatibility rule for a draft model; ModelLoadError in words when it fails (a
    draft with another vocabulary would propose token ids that mean other words)."""
    m, d = main._model, draft._model
    why = None
    if m.vocab_type() != d.vocab_type():
        why = "their tokenizers are of different kinds"
    elif (m.token_bos(), m.token_eos(), m.add_bos_token()) != (d.token_bos(), d.token_eos(), d.add_bos_token()):
        why = "their special tokens differ"
    elif abs(m.n_vocab() - d.n_vocab()) > VOCAB_MAX_DIFFERENCE:
        why = f"their vocabularies have {m.n_vocab()} and {d.n_vocab()} tokens"
    else:
        for i in range(VOCAB_CHECK_FROM, min(m.n_vocab(), d.n_vocab())):
            if m.token_get_text(i) != d.token_get_text(i):
                why = f"token {i} is {m.token_get_text(i)!r} in one and {d.token_get_text(i)!r} in the other"
                break
    if why is not None:
        raise ModelLoadError(
            f"{draft_name} cannot draft for {main_name}: {why}. A draft model must share the model's "
            "vocabulary: a smaller model of the same family (the same tokenizer).",
            settings=True,
        )
