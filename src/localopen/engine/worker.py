"""The engine process (child side): one model loaded at a time, requests answered in order, every
error sent back typed. Its parts: loading (engine/model_load.py), answering (engine/generate.py),
embedding (engine/embed.py), over what they share (engine/worker_state.py)."""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from typing import Any

from localopen.core.errors import LocalopenError
from localopen.core.records import BenchResult
from localopen.engine.bench_runner import run_bench
from localopen.engine.embed import Embedding
from localopen.engine.errors import EngineError
from localopen.engine.generate import Generating
from localopen.engine.model_load import Loading, peak_rss
from localopen.engine.protocol import (
    Bench,
    BenchDone,
    BenchProgress,
    Chat,
    Check,
    Done,
    Embed,
    Error,
    Load,
    Loaded,
    Render,
    Rendered,
    Request,
    Shutdown,
)

log = logging.getLogger("localopen.engine")


def worker_main(conn: Any, stop_event: Any, pulse: Any = None) -> None:
    """Entry point of the engine process (started with the spawn method).

    llama.cpp's log goes to the engine's log file, never to the user's terminal.
    """

    from localopen.core.logs import setup_logging
    from localopen.core.paths import app_paths

    # Ctrl+C in a terminal reaches the whole process group: the app decides what it stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    setup_logging(app_paths(), "engine.log")
    Worker(conn, stop_event, pulse).serve()


class Worker(Loading, Generating, Embedding):
    """The engine's loop: each request read from the pipe, answered by the part it is for."""

    def serve(self) -> None:
        while True:
            try:
                request = self.conn.recv()
            except (EOFError, OSError):
                return  # the app went away: end quietly
            if isinstance(request, Shutdown):
                self._unload()
                return
            self._request_id = getattr(request, "request_id", 0)
            self._beat()
            try:
                self.handle(request)
            except (BrokenPipeError, ConnectionResetError):
                return  # the app went away while this answered: nobody is left to tell
            except EngineError as exc:
                self.send(Error(str(exc), exc.kind, exc.details()))
            except LocalopenError as exc:
                self.send(Error(str(exc), "error"))
            except Exception as exc:  # noqa: BLE001 - report, keep serving
                log.exception("Unexpected engine error while handling %s", type(request).__name__)
                self.send(Error(f"Unexpected engine error: {type(exc).__name__}: {exc}", "error"))

    def handle(self, request: Request) -> None:
        if isinstance(request, Load):
            self.send(Loaded(self._load(request)))
        elif isinstance(request, Chat):
            self.send(Done(self._chat(request)))
        elif isinstance(request, Render):
            self._require_model()
            choice, traits, switches, tools = self._prepare(request.template, request.options)
            add = request.add_generation_prompt
            tokens, prompt, _ = self._tokens_for(request.messages, choice, switches, tools, add)
            self.send(Rendered(prompt, len(tokens)))
        elif isinstance(request, Check):
            self.send(self._check(Path(request.path)))
        elif isinstance(request, Embed):
            self._require_model()
            self.send(self._embed(request))
        elif isinstance(request, Bench):
            self._require_model()
            assert self.load_info is not None
            info = self.load_info

            def finished(result: BenchResult) -> None:
                result.stamp_load(info)
                result.peak_rss_bytes = peak_rss()
                self.send(BenchProgress(f"{result.test}: done", result))

            results, aborted = run_bench(
                self.llm,
                request.params,
                self.stop_event,
                progress=lambda msg: self.send(BenchProgress(msg)),
                finished=finished,
                log_lines=self.capture.lines,
                # the weights as the load holds them (a repacked tensor's mapped pages once)
                weights=self.load_info.memory_actual.weights - self.load_info.memory_actual.mapped_repacked,
            )
            encoded = self._image_encode(request.params.reps) if results and not aborted else None
            for r in results:
                if encoded is not None:
                    r.image_encode_ms, r.image_tokens = encoded
                r.stamp_load(self.load_info)
                r.peak_rss_bytes = peak_rss()
            self.send(BenchDone(results, aborted))
        else:
            raise EngineError(f"Unknown request {type(request).__name__}.")
