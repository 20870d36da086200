"""Sampling's first cut inside llama.cpp's graph, where it gives the very same tokens.

llama-cpp-python samples on the host: every token, llama.cpp's sampler copies the whole vocabulary's
logits into a candidate list (262,144 entries for Gemma 3) before penalties, top-k and the rest. With
a sampler chain attached to the context (llama.cpp's backend sampling), the graph picks the best
candidates itself and the host chain runs on those few. It is used only where the outcome cannot
change: top-k sampling gets the best top_k tokens, or top_k + the penalty window with repeat,
frequency or presence penalties (a penalty only lowers the tokens of that window, so the k best
after it are always among them). A grammar, a logit bias, log probabilities, a drafter, or top-k off
need the whole vocabulary: the graph samples nothing then.

Greedy decoding stays on the host: its one pass over the logits costs what the graph's argmax costs
(Gemma 3 270M on 2 cores: 0.98x and 0.89x with the graph's greedy), while top-k's partial sort of the
whole vocabulary is what the cut saves (1.04x).
"""

from __future__ import annotations

import logging
from typing import Any

from localopen.core.options import SamplingParams

log = logging.getLogger("localopen.engine")


def candidates_needed(sampling: SamplingParams, penalty_window: int) -> int | None:
    """How many of the best tokens the host sampler needs to choose as it would from the whole
    vocabulary, or None when it needs the whole vocabulary (or gains nothing from a cut: greedy)."""
    if sampling.logit_bias or sampling.logprobs is not None or sampling.temperature <= 0 or sampling.top_k <= 0:
        return None
    if sampling.repeat_penalty < 1 or sampling.frequency_penalty < 0 or sampling.presence_penalty < 0:
        return None  # a penalty that raises a token could lift one from beyond any cut
    penalised = sampling.repeat_penalty != 1 or sampling.frequency_penalty != 0 or sampling.presence_penalty != 0
    return sampling.top_k + (penalty_window if penalised else 0)


class BackendSampler:
    """The sampler chain attached to the loaded context: changed only when a request needs another
    cut (attaching one makes llama.cpp reserve its graph again)."""

    def __init__(self) -> None:
        self.candidates: int | None = None
        self._chain: Any = None
        self._ctx: Any = None

    def use(self, ctx: Any, candidates: int | None) -> None:
        """Attach a chain that keeps the best `candidates` tokens to `ctx`, or none (None)."""
        import llama_cpp

        if ctx is self._ctx and candidates == self.candidates:
            return
        old, self._chain = self._chain, None
        if old is not None and ctx is self._ctx:
            llama_cpp.llama_set_sampler(ctx, 0, None)
        if old is not None:
            llama_cpp.llama_sampler_free(old)
        self._ctx, self.candidates = ctx, None
        if candidates is None:
            return
        chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
        llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_top_k(candidates))
        if not llama_cpp.llama_set_sampler(ctx, 0, chain):
            log.info("llama.cpp cannot sample in this context's graph: every token is sampled on the host")
            llama_cpp.llama_sampler_free(chain)
            return
        self._chain, self.candidates = chain, candidates

    def forget(self) -> None:
        """The context is gone (the model unloaded): its chain is freed, nothing attached."""
        import llama_cpp

        if self._chain is not None:
            llama_cpp.llama_sampler_free(self._chain)
        self._chain, self._ctx, self.candidates = None, None, None
