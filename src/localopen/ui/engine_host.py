"""The engine, driven from a Qt worker thread: the UI thread never waits on llama.cpp.

EngineHost lives in its own QThread and owns one Engine (itself a separate process). Requests
arrive as queued signals; events leave as signals. Stop is safe from any thread.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, QThread, Signal, Slot

from localopen.core.errors import LocalopenError
from localopen.engine.client import Engine, EngineError
from localopen.engine.protocol import (
    BenchDone,
    BenchParams,
    BenchProgress,
    Done,
    LoadOptions,
    SamplingParams,
    Token,
)


class EngineHost(QObject):
    # requests (connected with queued connections into the worker thread)
    load_requested = Signal(str, object)
    chat_requested = Signal(list, object, object)
    bench_requested = Signal(str, object, object)
    shutdown_requested = Signal()
    # events
    loading = Signal(str)
    loaded = Signal(dict)
    token = Signal(str)
    done = Signal(dict)
    bench_loaded = Signal(dict)
    bench_progress = Signal(str)
    bench_done = Signal(str, list, bool)
    failed = Signal(str, str, dict)  # message, kind, details
    load_failed = Signal(str, str)  # path, message: the model could not be loaded here
    stopped = Signal()

    def __init__(self) -> None:
        super().__init__()
        self.engine = Engine()
        self.load_requested.connect(self._load)
        self.chat_requested.connect(self._chat)
        self.bench_requested.connect(self._bench)
        self.shutdown_requested.connect(self._shutdown)

    # -- any thread ---------------------------------------------------------------------------------
    def stop(self) -> None:
        self.engine.stop()

    @property
    def model_path(self) -> str | None:
        return self.engine.model_path

    # -- worker thread ------------------------------------------------------------------------------
    def _fail(self, exc: Exception) -> None:
        if isinstance(exc, EngineError):
            self.failed.emit(str(exc), exc.kind, exc.details)
        else:
            self.failed.emit(str(exc), "error", {})

    @Slot(str, object)
    def _load(self, path: str, options: LoadOptions) -> None:
        self.loading.emit(path)
        try:
            self.engine.ensure_started()
            self.loaded.emit(self.engine.load(path, options))
        except LocalopenError as exc:
            if isinstance(exc, EngineError) and exc.kind == "died":
                self.engine.kill()
            self._fail(exc)
            self._note_load_failure(path, exc)

    @Slot(list, object, object)
    def _chat(self, messages: list[dict[str, str]], sampling: SamplingParams, template: str | None) -> None:
        try:
            for event in self.engine.chat(messages, sampling, template):
                if isinstance(event, Token):
                    self.token.emit(event.text)
                elif isinstance(event, Done):
                    self.done.emit(event.stats)
        except LocalopenError as exc:
            self._fail(exc)

    @Slot(str, object, object)
    def _bench(self, path: str, options: LoadOptions, params: BenchParams) -> None:
        """A fresh engine process per benchmarked model: clean peak-memory figures."""
        self.engine.shutdown()
        try:
            self.engine.start()
            try:
                self.bench_loaded.emit(self.engine.load(path, options))
            except LocalopenError as exc:
                self._note_load_failure(path, exc)
                raise
            for event in self.engine.bench(params):
                if isinstance(event, BenchProgress):
                    self.bench_progress.emit(event.message)
                elif isinstance(event, BenchDone):
                    self.bench_done.emit(path, event.results, event.aborted)
        except LocalopenError as exc:
            self._fail(exc)
        finally:
            self.engine.shutdown()

    def _note_load_failure(self, path: str, exc: LocalopenError) -> None:
        """Failures that say the model cannot run here (not a cancelled or timed-out call)."""
        if not isinstance(exc, EngineError) or exc.kind in ("load", "context", "died"):
            self.load_failed.emit(path, str(exc))

    @Slot()
    def _shutdown(self) -> None:
        self.engine.shutdown()
        self.stopped.emit()


class EngineThread:
    """An EngineHost in its own QThread, with a clean stop for application exit."""

    def __init__(self) -> None:
        self.thread = QThread()
        self.thread.setObjectName("engine-host")
        self.host = EngineHost()
        self.host.moveToThread(self.thread)
        self.thread.start()

    def shutdown(self, timeout_ms: int = 10000) -> None:
        self.host.stop()
        # The worker thread may be inside a long call; stop asks the engine to end it quickly.
        self.host.shutdown_requested.emit()
        self.thread.quit()
        if not self.thread.wait(timeout_ms):
            self.host.engine.kill()
            self.thread.wait(2000)

    def kill_engine_process(self) -> Any:
        """For tests and the 'engine died' path: the child process, as the OS would end it."""
        return self.host.engine.process
