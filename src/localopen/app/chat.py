"""A chat: its engine (one process owned by one chat face, one model loaded at a time) and the
conversation's rules (a title from the first message; an edit or a regeneration drops what followed).

Nothing else sends requests to this engine (a benchmark has its own), so the model a user is
chatting with stays loaded whatever else the app does. The Chat view and `localopen chat` only
render what these return.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localopen.app import library
from localopen.app.context import AppContext
from localopen.core.chat import conversations as convs
from localopen.core.errors import LocalopenError
from localopen.core.records import AnswerPiece, AnswerStats, LoadInfo
from localopen.engine.client import Engine
from localopen.engine.errors import EngineDied, ModelLoadError
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


NEW_CHAT_TITLE = "New chat"
TITLE_LENGTH = 48


def add_user_turn(ctx: AppContext, conversation: convs.Conversation, text: str, edit_from: int | None = None) -> None:
    """The user's message joins the conversation. Sent as an edit of an earlier message (its position),
    everything from there on is dropped first; the first message of an untitled chat names it."""
    db = ctx.db
    if edit_from is not None:
        convs.truncate_from(db, conversation.id, edit_from)
    if not convs.messages(db, conversation.id) and conversation.title == NEW_CHAT_TITLE:
        conversation.title = text[:TITLE_LENGTH]
        convs.rename(db, conversation.id, conversation.title)
    convs.add_message(db, conversation.id, "user", text)


def drop_last_answer(ctx: AppContext, conversation_id: int) -> bool:
    """Before a regeneration: the last answer goes; True when a message is left to answer."""
    history = convs.messages(ctx.db, conversation_id)
    if history and history[-1].role == "assistant":
        convs.truncate_from(ctx.db, conversation_id, history[-1].position)
        history = history[:-1]
    return bool(history)


def conversation_messages(ctx: AppContext, conversation_id: int, system: str) -> list[dict[str, Any]]:
    """A stored conversation as its template reads it: tool calls with their answers' ids, and each
    tool result with the call it answers (and that tool's name)."""
    stored = convs.messages(ctx.db, conversation_id)
    names = {c.get("id"): c.get("function", {}).get("name", "") for m in stored for c in m.tool_calls}
    messages = template_messages(system, [(m.role, m.content, m.reasoning) for m in stored])
    for message, m in zip(messages[len(messages) - len(stored) :], stored):
        if m.tool_calls:
            message["tool_calls"] = m.tool_calls
        if m.tool_call_id:
            message["tool_call_id"] = m.tool_call_id
            message["name"] = names.get(m.tool_call_id, "")
    return messages


def save_tool_turn(ctx: AppContext, conversation_id: int, added: list[dict[str, Any]], stats: AnswerStats) -> None:
    """Keep what a turn with tool calls added (each answer with its calls, each result), so the calls
    and results survive a restart and go back to the model with the conversation."""
    last = len(added) - 1
    for n, m in enumerate(added):
        convs.add_message(
            ctx.db,
            conversation_id,
            m["role"],
            m.get("content") or "",
            stats if n == last else None,
            m.get("reasoning_content", ""),
            m.get("tool_calls"),
            m.get("tool_call_id", ""),
        )


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
            if isinstance(exc, EngineDied):
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
            raise ModelLoadError("No model is loaded: load one first.")
        try:
            with self.ctx.activity.busy():
                return self.engine.answer(messages, sampling, template, on_piece, options)
        except EngineDied:
            self.loaded, self._loaded_for = None, None
            raise

    def embed(self, texts: list[str], truncate: bool = False) -> tuple[list[list[float]], int]:
        """Embedding vectors of the texts from the loaded model, and their tokens in all."""
        if self.loaded is None or not self.engine.alive:
            self.loaded = None
            raise ModelLoadError("No model is loaded: load one first.")
        try:
            with self.ctx.activity.busy():
                done = self.engine.embed(texts, truncate)
        except EngineDied:
            self.loaded, self._loaded_for = None, None
            raise
        return done.vectors, done.tokens

    def render(
        self,
        messages: list[dict[str, Any]],
        template: str | None = None,
        options: AnswerOptions | None = None,
        add_generation_prompt: bool = True,
    ) -> tuple[str, int]:
        """The exact prompt (and its tokens) the loaded model would be fed for these messages."""
        if self.loaded is None or not self.engine.alive:
            raise ModelLoadError("No model is loaded: load one first.")
        rendered = self.engine.render(messages, template, options, add_generation_prompt)
        return rendered.prompt, rendered.tokens

    def stop(self) -> None:
        """Stop the answer in progress (within one token)."""
        self.engine.stop()

    def shutdown(self) -> None:
        self.loaded, self._loaded_for = None, None
        self.engine.shutdown()

    def kill(self) -> None:
        self.engine.kill()
