"""What every part of the engine process's worker shares: the pipe to the app, the stop flag, the
loaded model and its context, the request being answered (engine/worker.py puts the parts together)."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from localopen.core.chat.tool_calls import ToolCallStream
from localopen.core.gguf.header import GGUFHeader
from localopen.core.records import LoadInfo
from localopen.engine import llama_log
from localopen.engine.backend_sampling import BackendSampler
from localopen.engine.errors import BadRequestError, ModelLoadError
from localopen.engine.protocol import Event, MemoryShort, event_bytes
from localopen.engine.threadpool import Threadpool

log = logging.getLogger("localopen.engine")


class WorkerState:
    """The worker's state and the small things every part does with it."""

    def __init__(self, conn: Any, stop_event: Any, pulse: Any = None) -> None:
        self.conn = conn
        self.stop_event = stop_event
        self.pulse = pulse  # time.monotonic() of the last progress, read by the parent (a stuck engine)
        self.llm: Any = None
        self.vision: Any = None  # engine/vision's Vision: the loaded model's projector, if any
        self.header: GGUFHeader | None = None
        self.path: Path | None = None
        self.load_info: LoadInfo | None = None
        self.capture = llama_log.install()
        self._abort_cb: Any = None  # the ctypes callback, kept alive while the context uses it
        self._pool: Threadpool | None = None  # the loaded context's threadpool
        self._request_id = 0
        self.capture.on_memory_failure = lambda line: self.send(MemoryShort(line, request_id=self._request_id))
        self.backend_sampler = BackendSampler()  # the loaded context's in-graph cut of the vocabulary
        self._calls: ToolCallStream | None = None  # the answer in progress's tool-call parser
        self._logprobs: list[dict[str, Any]] = []  # asked for: tokens' log probabilities not sent yet
        self._n_calls = 0

    def _beat(self) -> None:
        if self.pulse is not None:
            self.pulse.value = time.monotonic()

    @contextlib.contextmanager
    def _beating(self) -> Iterator[None]:
        """Progress shown every half second through work of a known end that gives no sign of its
        own (tokenising a long prompt: seconds for megabytes), so the client and /health do not
        take it for a stuck engine. Only around such work: a stuck llama.cpp call must stay silent."""
        done = threading.Event()

        def beat() -> None:
            while not done.wait(0.5):
                self._beat()

        beater = threading.Thread(target=beat, name="engine-beat", daemon=True)
        beater.start()
        try:
            yield
        finally:
            done.set()
            beater.join()

    def send(self, event: Event) -> None:
        """Send an event tied to the request being handled."""
        event.request_id = self._request_id
        self.conn.send_bytes(event_bytes(event))

    def _require_model(self) -> None:
        if self.llm is None:
            raise ModelLoadError("No model is loaded.")

    def _check_stop(self) -> None:
        """Between pieces of a prompt: a stop asked ends it as an aborted evaluation does."""
        self._beat()
        if self.stop_event.is_set():
            raise RuntimeError("stopped while the prompt was evaluated")

    def _abortable(self, on: bool) -> None:
        """llama.cpp's abort callback, on while a prompt is evaluated (Stop ends a long prompt at
        once), off while tokens are generated: ggml calls it after every node of the graph, some
        400 Python calls a token, and between tokens the answer loop looks at the stop flag itself."""
        import llama_cpp

        if on and self._abort_cb is None:
            stop, beat = self.stop_event, self._beat

            @llama_cpp.ggml_abort_callback
            def _abort(_data: ctypes.c_void_p) -> bool:
                beat()  # a long prompt is progress too
                return bool(stop.is_set())

            self._abort_cb = _abort  # kept alive while the context may call it
        callback = self._abort_cb if on else llama_cpp.ggml_abort_callback()
        llama_cpp.llama_set_abort_callback(self.llm.ctx, callback, ctypes.c_void_p(0))

    def _clear_cache(self) -> None:
        import llama_cpp

        self.llm.reset()
        llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(self.llm.ctx), True)


def utf8(text: str) -> bytes:
    """Text as llama.cpp takes it; a lone surrogate (bytes that were not UTF-8, passed on by a
    terminal or a client) is refused in words."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise BadRequestError(
            "The text has characters that are not valid Unicode (bytes that are not UTF-8, such as a terminal "
            "set to another encoding sends): send it as UTF-8."
        ) from exc
