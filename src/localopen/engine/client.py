"""The app's side of the engine: start the process, send requests, read events, survive its death."""

from __future__ import annotations

import dataclasses
import itertools
import logging
import multiprocessing as mp
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from localopen.core.errors import LocalopenError
from localopen.core.estimate.budget import Budget
from localopen.core.machine.devices import ram_now
from localopen.core.options import AnswerOptions, BenchParams, LoadOptions, SamplingParams
from localopen.core.records import AnswerPiece, AnswerStats, LoadInfo
from localopen.engine.canary import kernel_choice, remember_crash
from localopen.engine.errors import EngineDied, EngineError, EngineTimeout, describe_exit, from_wire
from localopen.engine.load_need import LoadNeed, check_room, load_need
from localopen.engine.protocol import (
    FINAL_EVENTS,
    Bench,
    BenchDone,
    BenchProgress,
    Chat,
    Check,
    Checked,
    Done,
    Embed,
    Embedded,
    Error,
    Event,
    Load,
    Loaded,
    MemoryShort,
    PromptRead,
    Render,
    Rendered,
    Request,
    Shutdown,
    Token,
    event_from_bytes,
)

log = logging.getLogger("localopen.engine.client")

__all__ = ["Engine", "EngineDied", "EngineError"]


PROGRESS_GRACE_S = 5.0  # an engine whose last progress is older than this has stopped making any


class Engine:
    """One engine process, owned by one caller (a chat, a benchmark). Not thread-safe: use it from
    one thread; only stop() and kill() may be called from another."""

    def __init__(self, child: Callable[..., None] | None = None) -> None:
        # The process's entry point (engine/child.py's main); tests give one that fails on cue.
        self._child = child
        self._ctx = mp.get_context("spawn")
        self.process: mp.process.BaseProcess | None = None
        self.conn: Any = None
        self.stop_event: Any = None
        self.pulse: Any = None  # when the engine last showed progress (time.monotonic(), in shared memory)
        self.info: LoadInfo | None = None
        self._loaded: tuple[str, LoadOptions, float | None] | None = None  # the last load, to make again
        self._first_decode = False  # loaded with extra CPU kernels, nothing decoded yet
        self._ids = itertools.count(1)
        self._current = 0  # the request whose events are awaited
        self._memory_short: str | None = None  # llama.cpp's last word that an allocation failed
        # The answer in progress's prompt: tokens evaluated and in all, until its first token (None
        # when short or done). Set on the thread that streams, read by a face that shows the wait.
        self.prompt_read: tuple[int, int] | None = None

    @property
    def model_path(self) -> str | None:
        """The model loaded in this engine, if any."""
        return self.info.path if self.info else None

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        from localopen.engine.child import main as child_main

        parent, child = self._ctx.Pipe()
        self.stop_event = self._ctx.Event()
        self.pulse = self._ctx.Value("d", time.monotonic(), lock=False)
        self.process = self._ctx.Process(
            target=self._child or child_main,
            args=(child, self.stop_event, self.pulse),
            name="localopen-engine",
            daemon=True,
        )
        self.process.start()
        child.close()
        self.conn = parent
        self.info = None
        log.info("Engine process %s started", self.process.pid)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.is_alive()

    @property
    def silent_s(self) -> float:
        """Seconds since the engine last showed progress: a request taken, a batch of the prompt
        evaluated, a token generated (a stuck engine's grows without end)."""
        return time.monotonic() - self.pulse.value if self.pulse is not None else 0.0

    def ensure_started(self) -> None:
        if not self.alive:
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
        process, conn = self.process, self.conn
        self.process, self.conn, self.info = None, None, None
        # Let the stop event's semaphore go now, while the resource tracker still runs (held to
        # the interpreter's exit, it could be unlinked after the tracker counted it as leaked).
        self.stop_event, self.pulse = None, None
        if process is not None and process.is_alive():
            process.kill()
            process.join(5)
        if conn is not None:
            conn.close()

    def stop(self) -> None:
        """Ask the current answer or benchmark to stop (within one token)."""
        event = self.stop_event  # kill() on another thread may let it go meanwhile
        if event is not None:
            event.set()

    # -- requests --------------------------------------------------------------------------------
    def _send(self, request: Request, clear_stop: bool = False) -> None:
        self.ensure_started()
        if clear_stop:  # a new answer or run: an old stop request must not end it
            self.stop_event.clear()
        request.request_id = self._current = next(self._ids)
        try:
            self.conn.send(request)
        except (OSError, BrokenPipeError) as exc:
            raise self._died() from exc

    def _died(self) -> EngineDied:
        process = self.process
        model = self.model_path or "no model"
        if process is not None:
            process.join(1)
        code = process.exitcode if process is not None else None
        what = describe_exit(code)
        if self._memory_short and code is not None and code != 0:
            what = f"ran out of memory (llama.cpp: {self._memory_short}) and {what}"
        self._memory_short = None
        self.kill()
        log.warning("Engine running %s %s", model, what)
        died = EngineDied(
            f"The engine running {model} {what}. What was received is kept; the engine can be started again."
        )
        died.how, died.by_signal = what, code is not None and code < 0 and code != -signal.SIGKILL
        return died

    def events(self, timeout: float | None = None) -> Iterator[Event]:
        """Events of the current request until a final one (Loaded, Done, BenchDone);
        Error raises EngineError. Events of earlier requests (abandoned after a timeout) are dropped."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self.conn is None:
                raise EngineDied("The engine is not running.")
            # Without a deadline the read blocks: a dead engine ends it (end of file) and a streamed
            # answer costs no poll per token.
            if deadline is not None and not self._ready(deadline):
                continue
            try:
                event = event_from_bytes(self.conn.recv_bytes())
            except (EOFError, OSError) as exc:
                raise self._died() from exc
            if isinstance(event, MemoryShort):  # kept to say why, should the engine now abort
                self._memory_short = event.line
                log.warning("llama.cpp could not allocate memory: %s", event.line)
                continue
            if getattr(event, "request_id", None) != self._current:
                log.info("Dropped a late %s of request %s", type(event).__name__, getattr(event, "request_id", "?"))
                continue
            if isinstance(event, Error):
                raise from_wire(event.message, event.kind, event.details)
            yield event
            if isinstance(event, FINAL_EVENTS):
                return

    def _ready(self, deadline: float) -> bool:
        """Whether an event can be read now (waiting up to 50 ms); EngineTimeout past the deadline."""
        try:
            if self.conn.poll(0.05):
                return True
        except (OSError, EOFError) as exc:
            raise self._died() from exc
        if not self.alive:
            raise self._died()
        now = time.monotonic()
        # Past the deadline, an engine still showing progress (tokenising a long prompt) is waited for.
        if now > deadline and (self.pulse is None or now - self.pulse.value > PROGRESS_GRACE_S):
            raise EngineTimeout("The engine did not answer in time.")
        return False

    def load(self, path: str, options: LoadOptions | None = None, timeout: float | None = 600) -> LoadInfo:
        options = options or LoadOptions()
        if options.kernels is None or options.cpu_variant is None:
            choice = kernel_choice()  # this machine's kernel canary (it runs once, here if need be)
            if choice is not None:
                kernels = choice.for_file(str(Path(path).expanduser())) if options.kernels is None else options.kernels
                options = dataclasses.replace(
                    options, kernels=kernels, cpu_variant=options.cpu_variant or choice.variant or None
                )
        if options.n_gpu_layers == 0:  # layers offloaded to a GPU: llama.cpp places them
            try:
                need: LoadNeed | None = load_need(path, options)
            except LocalopenError:
                need = None  # the engine's load says what is wrong with the file, in its own words
            if need is not None:
                check_room(path, need, Budget(options.memory_percent), ram_now())
        self.info = None
        self._loaded = None
        self._send(Load(str(path), options))
        for event in self.events(timeout):
            if isinstance(event, Loaded):
                self.info = event.info
                self._loaded = (str(path), options, timeout)
                self._first_decode = bool(event.info.kernels)
                return event.info
        raise EngineError("The engine ended the load without an answer.")

    def _requested(self, request: Request, clear_stop: bool = False) -> Iterator[Event]:
        """The events of one request; when the engine crashes on the first decode after a load that
        used llama.cpp's extra CPU kernels (what the canary did not predict), it is started again
        once with them off, the model loaded again, the request sent again (the file is remembered
        for this build) and the load's notice says so."""
        self._send(request, clear_stop)
        try:
            for event in self.events():
                self._first_decode = False
                yield event
            return
        except EngineDied as crash:
            if not (self._first_decode and self._loaded is not None and crash.by_signal):
                raise
            path, options, timeout = self._loaded
            kernels = ", ".join(options.kernels or ())
            log.warning("The engine crashed on the first decode of %s with llama.cpp's %s kernels", path, kernels)
            remember_crash(str(Path(path).expanduser()), f"{crash.how} with llama.cpp's {kernels} kernels")
            info = self.load(path, dataclasses.replace(options, kernels=()), timeout)
            info.kernel_notice = (
                f"llama.cpp's {kernels} kernels crashed on this model's first answer ({crash.how}): it was loaded "
                "again with its plain CPU kernels, as it will be from now on with this llama.cpp build."
            )
        self._send(request, clear_stop)
        yield from self.events()

    def chat(
        self,
        messages: list[dict[str, Any]],
        sampling: SamplingParams | None = None,
        template: str | None = None,
        options: AnswerOptions | None = None,
    ) -> Iterator[Token | Done]:
        request = Chat(messages, sampling or SamplingParams(), template, options or AnswerOptions())
        self.prompt_read = None
        try:
            for event in self._requested(request, clear_stop=True):
                if isinstance(event, PromptRead):
                    self.prompt_read = (event.done, event.total)
                    continue
                self.prompt_read = None
                assert isinstance(event, (Token, Done))
                yield event
        finally:
            self.prompt_read = None

    def render(
        self,
        messages: list[dict[str, Any]],
        template: str | None = None,
        options: AnswerOptions | None = None,
        add_generation_prompt: bool = True,
    ) -> Rendered:
        """The exact prompt (and its token count) a chat with these messages would feed the loaded model."""
        self._send(Render(messages, template, options or AnswerOptions(), add_generation_prompt))
        for event in self.events(60):
            assert isinstance(event, Rendered)
            return event
        raise EngineError("The engine ended the rendering without an answer.")

    def answer(
        self,
        messages: list[dict[str, Any]],
        sampling: SamplingParams | None = None,
        template: str | None = None,
        on_piece: Callable[[AnswerPiece], None] | None = None,
        options: AnswerOptions | None = None,
    ) -> AnswerStats:
        """Stream one answer, calling on_piece per piece of reasoning or answer; returns its stats."""
        before = self.info
        for event in self.chat(messages, sampling, template, options):
            if isinstance(event, Token):
                if on_piece is not None:
                    on_piece(AnswerPiece(event.text, event.reasoning, event.tool_call, event.logprobs))
            else:
                if self.info is not before and self.info is not None:  # loaded again meanwhile: say why
                    event.stats.notice = self.info.kernel_notice
                return event.stats
        raise EngineError("The engine ended the answer without its statistics.")

    def check(self, path: str, timeout: float = 600) -> str:
        """llama.cpp's own loader on a file: its message when it loads; ModelLoadError (damaged, or
        not for this build) when not."""
        self._send(Check(str(path)))
        for event in self.events(timeout):
            assert isinstance(event, Checked)
            return event.message
        raise EngineError("The engine ended the check without an answer.")

    def embed(self, texts: list[str], truncate: bool = False) -> Embedded:
        """Embedding vectors of the texts (L2-normalised), from the loaded embedding model."""
        for event in self._requested(Embed(list(texts), truncate), clear_stop=True):
            assert isinstance(event, Embedded)
            return event
        raise EngineError("The engine ended the embedding without an answer.")

    def bench(self, params: BenchParams | None = None) -> Iterator[BenchProgress | BenchDone]:
        for event in self._requested(Bench(params or BenchParams()), clear_stop=True):
            assert isinstance(event, (BenchProgress, BenchDone))
            yield event
