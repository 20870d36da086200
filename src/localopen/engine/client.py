"""The app's side of the engine: start the process, send requests, read events, survive its death."""

from __future__ import annotations

import multiprocessing as mp
import signal
from collections.abc import Iterator
from typing import Any

from localopen.core.errors import LocalopenError
from localopen.engine.protocol import (
    Bench,
    BenchDone,
    BenchParams,
    BenchProgress,
    Chat,
    Done,
    Error,
    Load,
    Loaded,
    LoadOptions,
    SamplingParams,
    Shutdown,
    Token,
    Unload,
    Unloaded,
)


class EngineError(LocalopenError):
    """The engine reported a failure in plain words (kind says which: load, context, no_template…)."""

    def __init__(self, message: str, kind: str = "error", details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.details = details or {}


class EngineDied(EngineError):
    """The engine process ended without being asked to (crash, abort, out of memory, killed)."""


def describe_exit(code: int | None) -> str:
    if code is None:
        return "stopped answering"
    if code < 0:
        sig = -code
        names = {signal.SIGSEGV: "crashed (segmentation fault)", signal.SIGABRT: "aborted inside llama.cpp",
                 signal.SIGKILL: "was killed (out of memory, or by the system)", signal.SIGTERM: "was terminated"}
        if hasattr(signal, "SIGBUS"):
            names[signal.SIGBUS] = "crashed (bus error: the model file may have changed or be damaged)"
        return names.get(sig, f"ended by signal {sig}")
    return f"exited with code {code}"


class Engine:
    """One engine process. Not thread-safe: use it from one thread (the UI wraps it in a worker)."""

    def __init__(self) -> None:
        self._ctx = mp.get_context("spawn")
        self.process: mp.process.BaseProcess | None = None
        self.conn: Any = None
        self.stop_event: Any = None
        self.model_path: str | None = None
        self.info: dict[str, Any] = {}

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        from localopen.engine.child import main as child_main

        parent, child = self._ctx.Pipe()
        self.stop_event = self._ctx.Event()
        self.process = self._ctx.Process(target=child_main, args=(child, self.stop_event),
                                         name="localopen-engine", daemon=True)
        self.process.start()
        child.close()
        self.conn = parent
        self.model_path, self.info = None, {}

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.is_alive()

    def ensure_started(self) -> None:
        if not self.alive:
            self.start()

    def restart(self) -> None:
        self.kill()
        self.start()

    def shutdown(self, timeout: float = 5.0) -> None:
        if self.process is None:
            return
        if self.alive:
            try:
                self.stop_event.set()
                self.conn.send(Shutdown())
            except (OSError, BrokenPipeError):
                pass
            self.process.join(timeout)
        self.kill()

    def kill(self) -> None:
        if self.process is not None and self.process.is_alive():
            self.process.kill()
            self.process.join(5)
        if self.conn is not None:
            self.conn.close()
        self.process, self.conn = None, None

    def stop(self) -> None:
        """Ask the current answer or benchmark to stop (within one token)."""
        if self.stop_event is not None:
            self.stop_event.set()

    # -- requests --------------------------------------------------------------------------------
    def _send(self, request: Any, clear_stop: bool = False) -> None:
        self.ensure_started()
        if clear_stop:  # a new answer or run: an old stop request must not end it
            self.stop_event.clear()
        try:
            self.conn.send(request)
        except (OSError, BrokenPipeError) as exc:
            raise self._died() from exc

    def _died(self) -> EngineDied:
        assert self.process is not None
        self.process.join(1)
        what = describe_exit(self.process.exitcode)
        model = self.model_path or "no model"
        self.kill()
        return EngineDied(f"The engine running {model} {what}. What was received is kept; "
                          "the engine can be started again.", "died")

    def events(self, timeout: float | None = None) -> Iterator[Any]:
        """Events until a final one (Loaded, Done, BenchDone, Unloaded); Error raises EngineError."""
        import time

        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self.conn is None:
                raise EngineDied("The engine is not running.", "died")
            try:
                ready = self.conn.poll(0.05)
            except (OSError, EOFError) as exc:
                raise self._died() from exc
            if not ready:
                if not self.alive:
                    raise self._died()
                if deadline is not None and time.monotonic() > deadline:
                    raise EngineError("The engine did not answer in time.", "timeout")
                continue
            try:
                event = self.conn.recv()
            except (EOFError, OSError) as exc:
                raise self._died() from exc
            if isinstance(event, Error):
                raise EngineError(event.message, event.kind, event.details)
            yield event
            if isinstance(event, (Loaded, Done, BenchDone, Unloaded)):
                return

    def load(self, path: str, options: LoadOptions | None = None, timeout: float | None = 600) -> dict[str, Any]:
        self._send(Load(str(path), options or LoadOptions()))
        self.model_path = str(path)
        for event in self.events(timeout):
            if isinstance(event, Loaded):
                self.info = event.info
                return event.info
        raise EngineError("The engine ended the load without an answer.")

    def chat(self, messages: list[dict[str, str]], sampling: SamplingParams | None = None,
             template: str | None = None) -> Iterator[Token | Done]:
        self._send(Chat(messages, sampling or SamplingParams(), template), clear_stop=True)
        yield from self.events()

    def bench(self, params: BenchParams | None = None) -> Iterator[BenchProgress | BenchDone]:
        self._send(Bench(params or BenchParams()), clear_stop=True)
        yield from self.events()

    def unload(self) -> None:
        self._send(Unload())
        for _ in self.events(60):
            pass
        self.model_path, self.info = None, {}
