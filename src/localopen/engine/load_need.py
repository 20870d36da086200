"""What a load will hold, and the check before it, by the one memory rule (core/estimate/budget.py):
the model at its context (capped at its training context, as the engine loads it), its draft
model and its vision projector. The engine's client checks before every load and the model store
before it makes room, so both name the context the fit verdicts name."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from localopen.core.errors import LocalopenError
from localopen.core.estimate.budget import Budget
from localopen.core.estimate.memory import ModelShape, estimate_memory, human_bytes
from localopen.core.machine.devices import Device
from localopen.core.options import LoadOptions
from localopen.core.store.library_db import read_part_headers
from localopen.engine.errors import ContextTooLongError, ModelLoadError


@dataclass(frozen=True)
class LoadNeed:
    shape: ModelShape
    options: LoadOptions  # as the engine loads it (the context capped at the training context)
    model: int  # bytes the model holds at that context
    beside: int  # bytes its draft model and projector hold

    @property
    def total(self) -> int:
        return self.model + self.beside

    def largest_context(self, room: float) -> int | None:
        """The largest context this load fits in `room` with (its draft and projector beside it)."""
        opts = self.options
        return Budget.largest_context(self.shape, room - self.beside, opts.n_ctx, **opts.memory_args())


def _shape(path: Path) -> tuple[ModelShape, int | None]:
    headers = read_part_headers(path)
    return ModelShape.from_header(headers[0], sum(h.tensor_bytes for h in headers)), headers[0].context_length


def load_need(path: str | Path, options: LoadOptions) -> LoadNeed:
    """Raises the header's own error in words for a file that is not a readable GGUF."""
    shape, trained = _shape(Path(path).expanduser())
    if trained and options.n_ctx > trained:  # beyond its training context the engine caps it
        options = dataclasses.replace(options, n_ctx=trained)
    model = estimate_memory(shape, options.n_ctx, **options.memory_args()).total
    beside = 0
    if options.draft_model and Path(options.draft_model).is_file():  # a missing draft is said at its load
        try:
            draft, _ = _shape(Path(options.draft_model))
        except LocalopenError as exc:  # the draft's fault, never the model's
            raise ModelLoadError(f"The draft model: {exc}", settings=True) from exc
        beside += estimate_memory(draft, options.n_ctx, **options.draft_options().memory_args()).total
    if options.mmproj and Path(options.mmproj).is_file():
        beside += Path(options.mmproj).stat().st_size
    return LoadNeed(shape, options, model, beside)


def check_room(path: str | Path, need: LoadNeed, budget: Budget, ram: Device) -> None:
    """Refuse a load on the CPU that the budget has no room for, naming the context that fits."""
    room = budget.room(ram)
    if need.total <= room:
        return
    fitting = need.largest_context(room)
    hint = f" A context of {fitting} tokens would fit." if fitting else ""
    draft = need.options.draft_model
    with_draft = f" with its draft model {Path(draft).name}" if draft and need.beside else ""
    raise ContextTooLongError(
        f"A context of {need.options.n_ctx} tokens needs about {human_bytes(need.total)} for "
        f"{Path(path).name}{with_draft}; there is {budget.in_words(ram)}.{hint}",
        n_ctx=need.options.n_ctx,
        needed=need.total,
        available=ram.free,
        fitting_ctx=fitting,
    )
