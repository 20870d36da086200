"""A chat's engine: one engine process owned by one chat face, loaded with one model at a time.

Nothing else sends requests to this engine (a benchmark has its own), so the model a user is
chatting with stays loaded whatever else the app does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localopen.app import library
from localopen.app.context import AppContext
from localopen.core.errors import LocalopenError
from localopen.core.records import AnswerPiece, AnswerStats, LoadInfo
from localopen.engine.client import Engine, EngineError
from localopen.engine.protocol import AnswerOptions, LoadOptions, SamplingParams

log = logging.getLogger("localopen.chat")


def template_messages(system: str, turns: list[tuple[str, str, str]]) -> list[dict[str, Any]]:
    """The conversation as a chat template reads it: the system prompt, then (role, content,
    reasoning) turns. A past answer's reasoning goes under the fields templates read
    (reasoning_content, thinking): a template that wants it back (Qwen3 for the current turn,
    gpt-oss) takes it, every other one ignores it. It is never mixed into the content."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}] if system.strip() else []
    for role, content, reasoning in turns:
        message: dict[str, Any] = {"role": role, "content": content}
        if role == "assistant" and reasoning:
            message["reasoning_content"] = reasoning
        messages.append(message)
    return messages


@dataclass(frozen=True)
class LoadRequest:
    """What a load is for: the same request twice needs one load."""

    path: str
    options: LoadOptions


class ChatSession:
    """Owns one engine. load() and answer() block: call them from one worker thread; stop() and
    kill() from any thread."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.engine = Engine()
        self.loaded: LoadInfo | None = None
        self._loaded_for: LoadRequest | None = None

    def is_loaded(self, path: str, options: LoadOptions) -> bool:
        return self.loaded is not None and self._loaded_for == LoadRequest(str(path), options) and self.engine.alive

    def load(self, path: str | Path, options: LoadOptions) -> LoadInfo:
        """Load a model (a failed load is remembered: the verdict says it does not fit here)."""
        self.loaded, self._loaded_for = None, None
        try:
            info = self.engine.load(str(path), options)
        except LocalopenError as exc:
            if isinstance(exc, EngineError) and exc.kind == "died":
                self.engine.kill()
            library.note_load(self.ctx, path, exc)
            raise
        library.note_load(self.ctx, path, None)
        self.loaded, self._loaded_for = info, LoadRequest(str(path), options)
        return info

    def answer(
        self,
        messages: list[dict[str, Any]],
        sampling: SamplingParams,
        template: str | None,
        on_piece: Callable[[AnswerPiece], None] | None = None,
        options: AnswerOptions | None = None,
    ) -> AnswerStats:
        """Stream one answer from the loaded model; on_piece gets each piece of reasoning or answer."""
        if self.loaded is None or not self.engine.alive:
            self.loaded = None
            raise EngineError("No model is loaded: load one first.", "load")
        try:
            with self.ctx.activity.busy():
                return self.engine.answer(messages, sampling, template, on_piece, options)
        except EngineError as exc:
            if exc.kind == "died":
                self.loaded, self._loaded_for = None, None
            raise

    def stop(self) -> None:
        """Stop the answer in progress (within one token)."""
        self.engine.stop()

    def shutdown(self) -> None:
        self.loaded, self._loaded_for = None, None
        self.engine.shutdown()

    def kill(self) -> None:
        self.engine.kill()
