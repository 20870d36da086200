"""Sampling's first cut in llama.cpp's graph: used only where the host would choose the very same
tokens, and the same text with it as without it, on a real model."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from localopen.core.options import AnswerOptions, LoadOptions, SamplingParams
from localopen.engine.backend_sampling import candidates_needed
from localopen.engine.client import Engine

pytest.importorskip("llama_cpp")

WINDOW = 64  # llama-cpp-python's penalty window


@pytest.mark.parametrize(
    ("sampling", "needed"),
    [
        (SamplingParams(temperature=0, repeat_penalty=1.0), None),  # greedy: one pass either way
        (SamplingParams(temperature=0.8, top_k=40, repeat_penalty=1.0), 40),
        (SamplingParams(temperature=0.8, top_k=40, repeat_penalty=1.1), 40 + WINDOW),  # lowers at most the window
        (SamplingParams(temperature=0.8, top_k=40, repeat_penalty=1.1, presence_penalty=0.5), 40 + WINDOW),
        (SamplingParams(temperature=0.8, top_k=0), None),  # top-k off: the whole vocabulary
        (SamplingParams(temperature=0.8, repeat_penalty=0.9), None),  # a penalty that raises tokens
        (SamplingParams(temperature=0.8, frequency_penalty=-0.5), None),
        (SamplingParams(temperature=0.8, logit_bias={5: 2.0}), None),
        (SamplingParams(temperature=0.8, logprobs=2), None),
    ],
)
def test_the_cut_keeps_every_token_the_host_could_choose(sampling: SamplingParams, needed: int | None) -> None:
    assert candidates_needed(sampling, WINDOW) == needed


def test_the_same_text_with_the_cut_as_from_the_whole_vocabulary(gemma_path: Path) -> None:
    """Top-k sampling with a seed, with and without a repeat penalty: the engine's answer with the cut
    in the graph is token for token the one sampled from the whole vocabulary (a logit bias of 0
    changes no logit but makes the engine use the whole vocabulary)."""
    messages = [{"role": "user", "content": "Write a short story about a lighthouse keeper."}]
    engine = Engine()
    try:
        engine.load(str(gemma_path), LoadOptions(n_ctx=1024))
        for sampling in (
            SamplingParams(temperature=0.9, top_k=40, repeat_penalty=1.0, seed=7, max_tokens=64),
            SamplingParams(temperature=0.9, top_k=40, repeat_penalty=1.1, seed=11, max_tokens=64),
        ):
            texts = []
            for bias in ({}, {0: 0.0}):
                pieces: list[str] = []
                stats = engine.answer(
                    messages,
                    dataclasses.replace(sampling, logit_bias=bias),
                    "gemma",
                    lambda piece, pieces=pieces: pieces.append(piece.text),
                    AnswerOptions(),
                )
                assert stats.completion_tokens > 20
                texts.append("".join(pieces))
            assert texts[0] == texts[1], sampling
    finally:
        engine.shutdown()


def test_the_chain_is_attached_in_the_graph_and_samples_what_the_host_would(gemma_path: Path) -> None:
    """In this process, on a real context: llama.cpp takes the chain (no silent fallback), and seeded
    top-k sampling with a repeat penalty gives the same tokens with it as without it."""
    import llama_cpp

    from localopen.engine.backend_sampling import BackendSampler

    llm = llama_cpp.Llama(model_path=str(gemma_path), n_ctx=512, n_threads=2, verbose=False)
    prompt = llm.tokenize(b"Once upon a time, in a small village by the sea,")
    sampler = BackendSampler()
    runs = []
    try:
        for cut in (None, 40 + llm.last_n_tokens_size):
            sampler.use(llm.ctx, cut)
            assert sampler.candidates == cut
            llm.set_seed(3)
            llm.reset()  # the prompt evaluated whole each time: a split evaluation rounds differently
            tokens = []
            for token in llm.generate(prompt, temp=0.9, top_k=40, repeat_penalty=1.1, reset=True):
                tokens.append(token)
                if len(tokens) == 48:
                    break
            runs.append(tokens)
        assert runs[0] == runs[1]
    finally:
        sampler.use(llm.ctx, None)
        sampler.forget()
        llm.close()
