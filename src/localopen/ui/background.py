"""Disk and network work off the UI thread: run a function in a thread, get its result (or its
error) back on the UI thread. Views use this for scans, header reads, hashing and Hub calls."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import shiboken6
from PySide6.QtCore import QObject, Signal, Slot

from localopen.core.errors import LocalopenError

log = logging.getLogger("localopen.ui")


class _Relay(QObject):
    """Lives on the UI thread: signals emitted by the worker are queued to it."""

    done = Signal(object)
    failed = Signal(object)

    def __init__(
        self,
        on_done: Callable[[Any], None],
        on_failed: Callable[[LocalopenError], None] | None,
        owner: QObject | None,
    ) -> None:
        super().__init__()
        self._on_done, self._on_failed, self._owner = on_done, on_failed, owner
        self.done.connect(self._deliver_done)
        self.failed.connect(self._deliver_failed)

    def _owner_gone(self) -> bool:
        """The widget that asked was closed and deleted meanwhile: its answer goes nowhere."""
        return self._owner is not None and not shiboken6.isValid(self._owner)

    @Slot(object)
    def _deliver_done(self, value: Any) -> None:
        _pending.discard(self)
        if not self._owner_gone():
            self._on_done(value)

    @Slot(object)
    def _deliver_failed(self, error: LocalopenError) -> None:
        _pending.discard(self)
        if self._on_failed is not None and not self._owner_gone():
            self._on_failed(error)


_pending: set[_Relay] = set()  # relays waiting for their result (kept alive until it arrives)


def run_in_background(
    work: Callable[[], Any],
    on_done: Callable[[Any], None],
    on_failed: Callable[[LocalopenError], None] | None = None,
    name: str = "background",
    owner: QObject | None = None,
) -> None:
    """Call work() in a thread; on_done(result) or on_failed(error) then run on the UI thread,
    unless `owner` (the asking widget) was deleted meanwhile. An unexpected exception is logged
    with its traceback and reported as a plain error."""
    relay = _Relay(on_done, on_failed, owner)
    _pending.add(relay)

    def deliver(signal: str, value: Any) -> None:
        try:
            getattr(relay, signal).emit(value)
        except RuntimeError:  # the relay was deleted: the application quit while this ran
            _pending.discard(relay)
            log.info("%s finished after the application closed; its result is dropped", name)

    def run() -> None:
        try:
            result = work()
        except LocalopenError as exc:
            log.info("%s failed: %s", name, exc)
            deliver("failed", exc)
        except Exception as exc:  # noqa: BLE001 - a worker thread must never die silently
            log.exception("%s failed unexpectedly", name)
            deliver("failed", LocalopenError(f"Unexpected error ({type(exc).__name__}: {exc}); see the log."))
        else:
            deliver("done", result)

    threading.Thread(target=run, daemon=True, name=name).start()
