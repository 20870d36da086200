"""Speculative decoding's drafters, inside the engine: prompt lookup (drafts from the conversation's
own text) or a small model with the same vocabulary drafting greedily for a large one.

llama-cpp-python's generate() asks its `draft_model` for tokens after each accepted token and checks
them all in one batch with the large model; a drafted token the large model would not have chosen
is dropped with everything after it, so the text is the large model's own.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
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
# A draft model stops drafting where it is less sure than this of its next token (a doubtful draft
# costs its place in the check and is likely rejected). llama.cpp's server now drafts its whole
# length by default (--draft-p-min 0); measured here on Qwen2.5-Coder 1.5B drafted by 0.5B (code
# edit, 10 or 16 drafts): half the drafts rejected and 0.4-0.6x plain speed, against 0.7-0.8x at 0.75.
DRAFT_P_MIN = 0.75
# Whether drafting pays is measured as it runs: plain tokens first (what a drafted token's cost is
# held against), then paused for 4, 8 … 64 plain tokens each time a drafted token costs more; it
# stops for the load after 2 long drafts whose cost, had every draft been kept, was still higher.
PLAIN_FIRST = 3
FIRST_LENGTH = 4  # an answer's first drafts: short, until the text shows it repeats (then +2 a round)
FIRST_PAUSE = 4
LONGEST_PAUSE = 64
ROUNDS_TO_STOP = 2
RATE_MEMORY = 0.7  # a round's weight in the next round's rate (the last few rounds count)


class ModelDraft(LlamaDraftModel):
    """A small model drafting greedily; its cache follows the conversation (the common prefix is
    kept, the rest evaluated), so each call evaluates only what changed since the last. It drafts
    up to its length each time and stops itself where it is unsure (DRAFT_P_MIN)."""

    adapts_length = False

    def __init__(self, llm: Any, n_draft: int) -> None:
        self.llm = llm
        self.n_draft = n_draft  # at most this many tokens a call
        self.catch_up_s = 0.0  # the last call's time spent reading more than its usual one or two tokens
        self._n_vocab = llm.n_vocab()
        self._end = {t for t in (llm.token_eos(), llm._model.token_eot()) if t >= 0}

    def close(self) -> None:
        self.llm.close()

    def __call__(self, input_ids: npt.NDArray[np.intc], /, **kwargs: Any) -> npt.NDArray[np.intc]:
        llm = self.llm
        ids = input_ids.tolist()
        self.catch_up_s = 0.0
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
        start = time.perf_counter()
        llm.eval(ids[common:])
        if len(ids) - common > 2:  # a new turn, or tokens decoded while drafting was paused
            self.catch_up_s = time.perf_counter() - start
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


class LookupDraft(LlamaPromptLookupDecoding):
    """Prompt lookup, whose draft length the drafter adapts to the acceptance seen: its drafts are
    free to make but never unsure, so a wrong one costs its place in the check."""

    adapts_length = True

    @property
    def n_draft(self) -> int:
        return int(self.num_pred_tokens)

    @n_draft.setter
    def n_draft(self, n: int) -> None:
        self.num_pred_tokens = n


@dataclasses.dataclass
class _Rate:
    """Seconds per token gained, the last rounds weighing most (what drafts gain changes with the
    text: a quoted passage, then new words)."""

    seconds: float = 0.0
    tokens: float = 0.0

    def add(self, seconds: float, tokens: int) -> None:
        self.seconds = self.seconds * RATE_MEMORY + seconds
        self.tokens = self.tokens * RATE_MEMORY + tokens

    @property
    def per_token(self) -> float | None:
        return self.seconds / self.tokens if self.tokens else None


class Drafter(LlamaDraftModel):
    """Drafts only while drafting pays, and counts what the model kept.

    generate() calls the drafter once a round: after the model's last check (or its one plain
    token), before the next. The time between two calls is what the round cost (the drafting, the
    check in one batch, the sampling, the engine's own work on the tokens), the tokens gained are
    the round's new tokens: so a drafted token's time is measured against a plain token's, as the
    engine really decodes them, on this machine. Drafting that costs more per token than plain
    decoding is paused (longer each time it fails again); drafting that could not pay even with
    every draft kept (a draft model nearly as slow as the model, a batch check that costs nearly as
    much as its tokens one at a time: two CPU cores) stops for the rest of the load. A lookup draft's
    length follows the acceptance seen (as Hugging Face's assisted generation: two more after a round
    all kept, fewer after a miss); a draft model drafts its whole length and stops where unsure."""

    def __init__(self, inner: Any, clock: Callable[[], float] = time.perf_counter) -> None:
        self.inner = inner
        self.longest = max(1, int(inner.n_draft))
        self.clock = clock
        self.proposed = self.accepted = 0
        self.plain_tokens = 0  # tokens of this answer decoded without drafts (the first ones, paused, stopped)
        self.stopped_why: str | None = None  # why drafting stopped for this load, in words
        self._drafted, self._ceiling, self._plain = _Rate(), _Rate(), _Rate()
        self._full_rounds = 0  # rounds measured with a long draft (the ceiling's basis)
        self._skip = 0  # plain rounds before drafting is tried again
        self._pause = FIRST_PAUSE
        self._round: tuple[float, int, int] | None = None  # (start, tokens then, tokens drafted)
        self._pending: tuple[int, list[int]] | None = None  # (where they go, the drafts)

    def reset(self) -> None:
        """A new answer: no drafts outstanding, counts from zero, a few plain tokens first when a
        plain token's cost is not known yet (what drafting is measured against)."""
        self.proposed = self.accepted = self.plain_tokens = 0
        self._pending = self._round = None
        self._drafted = _Rate()  # another text: what its drafts gain is measured anew
        if self.inner.adapts_length:
            self.inner.n_draft = min(self.longest, FIRST_LENGTH)
        self._skip = PLAIN_FIRST if self._plain.per_token is None else 0
        self._pause = FIRST_PAUSE

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()

    def __call__(self, input_ids: npt.NDArray[np.intc], /, **kwargs: Any) -> npt.NDArray[np.intc]:
        now = self.clock()
        n = len(input_ids)
        kept = self._count(input_ids)
        if self._round is not None:
            self._measure(now, n, kept)
        catch_up = 0.0
        if self.stopped_why is not None or self._skip > 0:
            self._skip = max(0, self._skip - 1)
            self.plain_tokens += 1
            out = np.array([], dtype=np.intc)
        else:
            out = self.inner(input_ids, **kwargs)
            catch_up = getattr(self.inner, "catch_up_s", 0.0)
        # A catch-up (a new turn, tokens decoded while paused) is paid once, not by each round.
        self._round = (now + catch_up, n, len(out))
        self._pending = (n, out.tolist()) if len(out) else None
        return out

    def _count(self, input_ids: npt.NDArray[np.intc]) -> int | None:
        """How many of the last call's drafts the model kept (None: there were none)."""
        if self._pending is None:
            return None
        at, drafts = self._pending
        kept = 0
        for drafted, taken in zip(drafts, input_ids[at : at + len(drafts)].tolist(), strict=False):
            if drafted != taken:
                break
            kept += 1
        self.proposed += len(drafts)
        self.accepted += kept
        return kept

    def _measure(self, now: float, n: int, kept: int | None) -> None:
        """The last round's cost per token gained; the draft length and whether to go on drafting."""
        assert self._round is not None
        start, before, drafted = self._round
        gained = n - before
        if not 0 < gained <= drafted + 1 or now <= start:
            return  # a new generation began (a grammar took over): not one round
        seconds = now - start
        if not drafted:
            self._plain.add(seconds, gained)
            return
        self._drafted.add(seconds, gained)
        if drafted >= max(2, self.longest // 2):
            # Had every draft been kept: measured on the longer drafts (a batch check costs less a
            # token the longer it is).
            self._ceiling.add(seconds, drafted + 1)
            self._full_rounds += 1
        if self.inner.adapts_length:
            n_draft = self.inner.n_draft
            # Two more after a round all kept; after a miss, no longer than what was kept and one
            # (a rejected draft token costs its place in the check: a large share of a token on a CPU).
            kept_all = kept == drafted
            self.inner.n_draft = (
                min(self.longest, n_draft + 2) if kept_all else max(1, min(n_draft - 1, (kept or 0) + 1))
            )
        plain, cost, ceiling = self._plain.per_token, self._drafted.per_token, self._ceiling.per_token
        if plain is None or cost is None:
            return
        if ceiling is not None and self._full_rounds >= ROUNDS_TO_STOP and ceiling > plain:
            self.stopped_why = (
                f"drafting stopped: even with every draft kept a token would cost {1000 * ceiling:.0f} ms "
                f"against {1000 * plain:.0f} ms plainly on this machine"
            )
            log.info("%s", self.stopped_why)
        elif cost > plain:
            self._skip, self._pause = self._pause, min(LONGEST_PAUSE, 2 * self._pause)
            self._drafted = _Rate()  # the next try is judged on its own rounds
        else:
            self._pause = FIRST_PAUSE


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


def make_drafter(draft: str | None, n_draft: int, main: Any, load: Any) -> Drafter | None:
    """The drafter `draft` names: None, "lookup", or a draft model's path (loaded by `load(path)`,
    checked against the main model's vocabulary)."""
    if draft is None:
        return None
    if draft == "lookup":
        return Drafter(LookupDraft(num_pred_tokens=max(1, n_draft)))
    path = Path(draft)
    if not path.is_file():
        raise ModelLoadError(f"The draft model {path} is not there (moved or deleted?).", settings=True)
    llm = load(path)
    try:
        check_same_vocabulary(main, llm, Path(main.model_path).name, path.name)
    except ModelLoadError:
        llm.close()
        raise
    return Drafter(ModelDraft(llm, max(1, n_draft)))


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
