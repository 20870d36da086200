"""Which engines are working right now, for work that must not share the CPU with them.

The calibration measures this machine's speed: a chat answer, an API request or a benchmark
running at the same time would slow both and teach it a wrong speed. Answers and benchmarks mark
themselves busy here; the calibration waits until nothing is, and measures again what an
engine's work overlapped.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class EngineActivity:
    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._busy = 0
        self._started = 0  # how many busy spells have begun, ever: an overlap shows as a change
        self._listeners: list[Callable[[], None]] = []

    @contextmanager
    def busy(self) -> Iterator[None]:
        """Mark one engine busy for the length of the block (a load, an answer, a benchmark)."""
        with self._changed:
            self._busy += 1
            self._started += 1
            listeners = list(self._listeners)
        for listener in listeners:
            listener()
        try:
            yield
        finally:
            with self._changed:
                self._busy -= 1
                self._changed.notify_all()

    def on_busy(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call `listener` whenever an engine becomes busy (on that engine's thread); returns the
        function that stops listening. The calibration yields to a person's chat this way."""
        with self._changed:
            self._listeners.append(listener)

        def stop_listening() -> None:
            with self._changed:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return stop_listening

    @property
    def is_busy(self) -> bool:
        with self._changed:
            return self._busy > 0

    def mark(self) -> int:
        """A token to pass to overlapped(): taken when a measurement starts."""
        with self._changed:
            return self._started

    def overlapped(self, mark: int) -> bool:
        """Whether an engine was or became busy since `mark`."""
        with self._changed:
            return self._busy > 0 or self._started != mark

    def wait_idle(self, stopped: Callable[[], bool] = lambda: False, poll: float = 0.5) -> None:
        """Block until no engine is busy (or `stopped()` turns true)."""
        with self._changed:
            while self._busy > 0 and not stopped():
                self._changed.wait(poll)
