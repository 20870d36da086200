"""Drafting only while it pays (engine/drafting.Drafter): rounds of drafts checked against a
machine's costs, as llama-cpp-python's generate() calls its drafter: once a round, with the
conversation so far. The machine is a cost table and the clock moves by it, so each case is the
same on any computer: a machine where a batch check costs nearly as much as its tokens one at a
time (two CPU cores), one where it is cheap (a GPU, many cores), and text the drafts miss."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
from llama_cpp.llama_speculative import LlamaDraftModel

from localopen.engine.drafting import FIRST_PAUSE, Drafter

TEXT = list(range(1000, 1400))  # the tokens the model writes


class Oracle(LlamaDraftModel):
    """Drafts the model's own next tokens, except where `wrong(position)` says it guesses wrong
    (everything after a wrong guess is wrong too: it is cut there)."""

    def __init__(self, n_draft: int, wrong: Callable[[int], bool], machine: Machine, adapts: bool) -> None:
        self.n_draft = n_draft
        self.adapts_length = adapts  # as prompt lookup (True) or a draft model (False)
        self.wrong = wrong
        self.machine = machine
        self.calls = 0

    def __call__(self, input_ids: npt.NDArray[np.intc], /, **kwargs: object) -> npt.NDArray[np.intc]:
        self.calls += 1
        at = len(input_ids)
        out = [-1 if self.wrong(at + i) else TEXT[at + i] for i in range(self.n_draft) if at + i < len(TEXT)]
        self.machine.now += self.machine.draft_token * len(out)
        return np.array(out, dtype=np.intc)


class Machine:
    """A token's costs in seconds: the model's one plain token, its batch check of n tokens, the
    draft model's one token; `now` is the clock."""

    def __init__(self, plain: float, check: Callable[[int], float], draft_token: float) -> None:
        self.plain, self.check, self.draft_token = plain, check, draft_token
        self.now = 0.0

    def clock(self) -> float:
        return self.now


def generate(drafter: Drafter, machine: Machine, n_tokens: int, start: int = 0) -> float:
    """Decode n_tokens of TEXT after `start` as generate() does with a drafter; the seconds taken."""
    began = machine.now
    ids = TEXT[: start + 1]
    while len(ids) < start + 1 + n_tokens:
        drafts = drafter(np.array(ids, dtype=np.intc)).tolist()
        machine.now += machine.check(len(drafts) + 1) if drafts else machine.plain
        kept = 0
        for token in drafts:
            if token != TEXT[len(ids) + kept]:
                break
            kept += 1
        ids = TEXT[: len(ids) + kept + 1]  # the kept drafts and the model's own next token
    return machine.now - began


def two_cores() -> Machine:
    # Qwen2.5-Coder 1.5B and 0.5B on a 2-core EPYC (llama-bench): a plain token 33 ms, a batch of n
    # 33 + 18 (n - 1) ms, a draft token 20 ms.
    return Machine(0.033, lambda n: 0.033 + 0.018 * (n - 1), 0.020)


def cheap_checks() -> Machine:
    # Memory-bound decoding: a batch of 16 costs little more than one token.
    return Machine(0.033, lambda n: 0.033 + 0.002 * (n - 1), 0.008)


def test_drafting_that_cannot_pay_here_stops_and_says_why() -> None:
    machine = two_cores()
    oracle = Oracle(10, lambda _: False, machine, adapts=False)  # every draft right: still slower here
    drafter = Drafter(oracle, clock=machine.clock)
    drafter.reset()
    seconds = generate(drafter, machine, 300)
    assert drafter.stopped_why is not None and "on this machine" in drafter.stopped_why
    assert seconds < 300 * machine.plain * 1.1  # not much slower than plain decoding
    # Stopped for the load: the next answer drafts nothing.
    calls = oracle.calls
    drafter.reset()
    generate(drafter, machine, 50, start=300)
    assert oracle.calls == calls and drafter.proposed == 0


def test_drafting_that_pays_goes_on_with_longer_drafts() -> None:
    machine = cheap_checks()
    oracle = Oracle(4, lambda at: at % 40 == 0, machine, adapts=True)  # a miss now and then
    drafter = Drafter(oracle, clock=machine.clock)
    drafter.reset()
    seconds = generate(drafter, machine, 300)
    assert drafter.stopped_why is None
    assert seconds < 300 * machine.plain / 1.8  # much faster than plain decoding
    assert drafter.accepted / drafter.proposed > 0.8
    assert drafter.plain_tokens <= 3  # only the plain tokens it measures drafting against


def test_drafts_the_text_keeps_missing_are_paused_then_tried_again() -> None:
    machine = cheap_checks()
    misses = True
    oracle = Oracle(8, lambda _: misses, machine, adapts=True)  # new words: every draft wrong
    drafter = Drafter(oracle, clock=machine.clock)
    drafter.reset()
    generate(drafter, machine, 120)
    assert drafter.stopped_why is None  # it could pay: only this text does not
    assert drafter.plain_tokens > 60  # mostly decoded plainly, pauses growing
    assert oracle.n_draft < 8  # the draft length shrank with each miss
    # Quoting again: drafts are right, the pauses end and the length grows back.
    misses = False
    plain_before = drafter.plain_tokens
    generate(drafter, machine, 200, start=120)
    assert drafter.plain_tokens - plain_before < 64 + FIRST_PAUSE
    assert oracle.n_draft == 8
