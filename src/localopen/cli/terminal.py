"""What the terminal commands share when they run a model: Ctrl+C that stops, the load and the
progress lines, an answer's statistics."""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from localopen.core.estimate.memory import human_bytes
from localopen.core.records import AnswerStats, LoadInfo

if TYPE_CHECKING:  # the engine client and sessions load only for the commands that run a model
    pass


def print_load(info: LoadInfo) -> None:
    err = info.estimate_error
    print(
        f"Loaded {info.name} ({info.quantization}) in {info.load_time_ms:.0f} ms on {info.backend}; "
        f"memory {human_bytes(info.memory_actual.total)} (estimated {human_bytes(info.memory_estimate.total)}"
        f"{f', {err:+.1%}' if err is not None else ''}).",
        file=sys.stderr,
    )
    if info.gpu_warning:
        print(f"Warning: {info.gpu_warning}", file=sys.stderr)
    if info.vision is not None:
        v = info.vision
        print(
            f"Sees images: {Path(v['projector']).name} ({v['type']} projector, about {v['image_tokens'] or '?'} "
            "tokens an image)",
            file=sys.stderr,
        )


@contextlib.contextmanager
def ctrl_c_stops(stop: Callable[[], None]) -> Iterator[None]:
    """While the engine works, Ctrl+C asks it to stop (the stream then ends cleanly) instead of
    raising KeyboardInterrupt into the event stream."""
    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, lambda *_: stop())
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def print_progress(event: LoadInfo | str) -> None:
    if isinstance(event, LoadInfo):
        print(f"  loaded in {event.load_time_ms:.0f} ms on {event.backend}", file=sys.stderr)
    else:
        print(f"  {event}", file=sys.stderr)


def print_stats(stats: AnswerStats) -> None:
    print(f"[{', '.join(stats.describe())}]", file=sys.stderr)
