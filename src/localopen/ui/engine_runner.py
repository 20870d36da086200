"""One worker thread per engine owner (the Chat's ChatSession, Compare's BenchmarkSession).

The owner's blocking calls run there in order, so the UI thread never waits on llama.cpp. Each
call is a RunnerTask with its own signals: a view sees the progress, result and failure of the requests
it made, and nothing of another view's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal, Slot

from localopen.core.errors import LocalopenError

log = logging.getLogger("localopen.ui.engine")

Work = Callable[[Callable[[Any], None]], Any]  # work(emit_progress) -> result


class RunnerTask(QObject):
    """One request. Lives on the UI thread; its callbacks run there."""

    progress = Signal(object)
    done = Signal(object)
    failed = Signal(object)  # a LocalopenError

    def __init__(
        self,
        on_progress: Callable[[Any], None] | None,
        on_done: Callable[[Any], None] | None,
        on_failed: Callable[[LocalopenError], None] | None,
    ) -> None:
        super().__init__()
        self.finished = False
        self._callbacks = (on_progress, on_done, on_failed)
        # Connected to this object's own slots: emitted from the worker thread, delivered queued here.
        self.progress.connect(self._deliver_progress)
        self.done.connect(self._deliver_done)
        self.failed.connect(self._deliver_failed)

    @Slot(object)
    def _deliver_progress(self, value: Any) -> None:
        if self._callbacks[0] is not None:
            self._callbacks[0](value)

    @Slot(object)
    def _deliver_done(self, value: Any) -> None:
        self.finished = True
        if self._callbacks[1] is not None:
            self._callbacks[1](value)

    @Slot(object)
    def _deliver_failed(self, error: LocalopenError) -> None:
        self.finished = True
        if self._callbacks[2] is not None:
            self._callbacks[2](error)


class _Worker(QObject):
    """Lives on the runner's thread and runs jobs there, one at a time."""

    run = Signal(object, object)

    def __init__(self) -> None:
        super().__init__()
        self.run.connect(self._run)

    @Slot(object, object)
    def _run(self, job: RunnerTask, work: Work) -> None:
        try:
            result = work(job.progress.emit)
        except LocalopenError as exc:
            job.failed.emit(exc)
        except Exception as exc:  # noqa: BLE001 - the engine thread must survive and say what happened
            log.exception("Unexpected error in an engine job")
            job.failed.emit(LocalopenError(f"Unexpected error ({type(exc).__name__}: {exc}); see the log."))
        else:
            job.done.emit(result)


class EngineRunner:
    def __init__(self, name: str) -> None:
        self.thread = QThread()
        self.thread.setObjectName(name)
        self._worker = _Worker()
        self._worker.moveToThread(self.thread)
        self._jobs: list[RunnerTask] = []  # kept alive until they finish
        self.thread.start()

    def submit(
        self,
        work: Work,
        on_progress: Callable[[Any], None] | None = None,
        on_done: Callable[[Any], None] | None = None,
        on_failed: Callable[[LocalopenError], None] | None = None,
    ) -> RunnerTask:
        """Queue work(emit_progress) on the runner's thread; the callbacks run on the UI thread."""
        job = RunnerTask(on_progress, on_done, on_failed)
        self._jobs = [j for j in self._jobs if not j.finished] + [job]
        self._worker.run.emit(job, work)
        return job

    def shutdown(
        self, stop: Callable[[], None], close: Callable[[], None], kill: Callable[[], None], timeout_ms: int = 10000
    ) -> None:
        """At quit: stop what runs, close the engine on its thread, and kill it if that takes too long."""

        def close_and_quit(_emit: Callable[[Any], None]) -> None:
            try:
                close()
            finally:  # quit from inside: the queued close runs first, whatever was queued before it
                QThread.currentThread().quit()

        stop()
        self._worker.run.emit(RunnerTask(None, None, None), close_and_quit)
        if not self.thread.wait(timeout_ms):
            log.warning("Engine thread %s did not end in time: killing its engine", self.thread.objectName())
            kill()
            self.thread.wait(2000)
