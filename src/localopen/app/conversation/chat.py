"""A chat: the model it answers with (borrowed from the process's model store, shared with the
local server and other chats) and the conversation's rules (a title from the first message; an
edit or a regeneration drops what followed). A benchmark has its own engine, so it never unloads
the model a user is chatting with. The Chat view and `localopen chat` only render what these return.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localopen.app.context import AppContext
from localopen.app.conversation import chat_images, vision
from localopen.app.model_store import Resident
from localopen.app.models import library
from localopen.core.chat import conversations as convs
from localopen.core.errors import LocalopenError
from localopen.core.options import AnswerOptions, LoadOptions, SamplingParams
from localopen.core.records import AnswerPiece, AnswerStats, LoadInfo
from localopen.engine.client import Engine
from localopen.engine.errors import EngineDied, ModelLoadError

log = logging.getLogger("localopen.chat")


def needs_template(info: LoadInfo, chosen: str | None) -> bool:
    """Whether a person must choose a chat template before this model can chat: its file has none
    and none was chosen (localopen never guesses one)."""
    return not info.has_chat_template and not chosen


def template_for(info: LoadInfo, chosen: str | None) -> str | None:
    """The template a chat renders with: the model's own (None) where its file has one, else the
    one chosen for it."""
    return None if info.has_chat_template else chosen


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


def add_user_turn(
    ctx: AppContext,
    conversation: convs.Conversation,
    text: str,
    edit_from: int | None = None,
    images: list[bytes] | None = None,
) -> None:
    """The user's message joins the conversation, its pictures copied into the app's data
    (app/chat_images). Sent as an edit of an earlier message (its position), everything from there
    on is dropped first; the first message of an untitled chat names it."""
    db = ctx.db
    names = [chat_images.store(ctx, data) for data in images or []]
    if edit_from is not None:
        convs.truncate_from(db, conversation.id, edit_from)
    if not convs.messages(db, conversation.id) and conversation.title == NEW_CHAT_TITLE:
        taken = {c.title for c in convs.list_all(db) if c.id != conversation.id}
        conversation.title = title_from(text, taken)
        convs.rename(db, conversation.id, conversation.title)
    convs.add_message(db, conversation.id, "user", text, images=names)


def conversations(ctx: AppContext, search: str = "") -> list[convs.Conversation]:
    return convs.list_all(ctx.db, search)


def title_from(text: str, taken: set[str]) -> str:
    """A chat's title from its first message: the first line with words, cut at a word near
    TITLE_LENGTH, told apart from the titles already taken by a number (as files are)."""
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "") or "Picture"
    if len(line) > TITLE_LENGTH:
        cut = line[:TITLE_LENGTH]
        line = (cut.rsplit(" ", 1)[0] if " " in cut[TITLE_LENGTH // 2 :] else cut).rstrip(" ,.;:-") + "…"
    title, n = line, 2
    while title in taken:
        title, n = f"{line} ({n})", n + 1
    return title


def new_conversation(ctx: AppContext, model_path: str | None, settings: dict[str, Any]) -> convs.Conversation:
    """A new chat; an empty one already there is used again rather than a second "New chat"."""
    for c in convs.list_all(ctx.db):
        if c.title == NEW_CHAT_TITLE and not convs.messages(ctx.db, c.id):
            convs.update(ctx.db, c.id, model_path, settings)
            found = convs.get(ctx.db, c.id)
            assert found is not None
            return found
    return convs.create(ctx.db, NEW_CHAT_TITLE, model_path, settings)


def open_conversation(ctx: AppContext, conversation_id: int) -> convs.Conversation | None:
    return convs.get(ctx.db, conversation_id)


def rename_conversation(ctx: AppContext, conversation: convs.Conversation, title: str) -> None:
    convs.rename(ctx.db, conversation.id, title)
    conversation.title = title


def delete_conversation(ctx: AppContext, conversation_id: int) -> None:
    """The conversation and its pictures (unless another conversation shows them)."""
    convs.delete(ctx.db, conversation_id)
    chat_images.prune(ctx)


def keep_settings(
    ctx: AppContext, conversation: convs.Conversation, model_path: str | None, settings: dict[str, Any]
) -> None:
    """The conversation's model and settings (sampling, load values, template) as they are now."""
    conversation.settings = settings
    convs.update(ctx.db, conversation.id, model_path, settings)


def save_answer(ctx: AppContext, conversation_id: int, content: str, stats: AnswerStats | None, reasoning: str) -> None:
    convs.add_message(ctx.db, conversation_id, "assistant", content, stats, reasoning)


def stored_messages(ctx: AppContext, conversation_id: int) -> list[convs.Message]:
    return convs.messages(ctx.db, conversation_id)


def message_at(ctx: AppContext, conversation_id: int, position: int) -> convs.Message | None:
    return next((m for m in convs.messages(ctx.db, conversation_id) if m.position == position), None)


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
        if m.images:  # its pictures, then its text (a picture deleted by hand is left out)
            pictures = [data for data in (chat_images.load(ctx, name) for name in m.images) if data is not None]
            parts = [vision.image_part(data, "A kept picture") for data in pictures]
            message["content"] = vision.user_message(m.content, parts)["content"]
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
    """One face's hold on one loaded model at a time, borrowed from the process's model store
    (app/model_store.py): a model the server or another chat has loaded is shared, not loaded
    again, and requests on it take turns. load() and answer() block: call them from one worker
    thread; stop() and kill() from any thread."""

    def __init__(self, ctx: AppContext, kind: str = "chat") -> None:
        self.ctx = ctx
        self.kind = kind  # who holds the model, as `ps` says it: chat, server, cli…
        self.loaded: LoadInfo | None = None
        self._loaded_for: LoadRequest | None = None
        self._resident: Resident | None = None
        self._answering: Engine | None = None  # the engine while it answers for this session

    @property
    def engine_pid(self) -> int | None:
        """The engine process answering for this session (shared with other faces using the model)."""
        resident = self._resident
        process = resident.engine.process if resident is not None else None
        return process.pid if process is not None else None

    @property
    def silent_s(self) -> float:
        """Seconds since this session's engine last showed progress (0 with no engine)."""
        resident = self._resident
        return resident.engine.silent_s if resident is not None and resident.engine.alive else 0.0

    def is_loaded(self, path: str, options: LoadOptions) -> bool:
        resident = self._resident
        return (
            resident is not None
            and not resident.unloaded
            and resident.engine.alive
            and self._loaded_for == LoadRequest(str(path), options)
        )

    def load(self, path: str | Path, options: LoadOptions, keep_alive: float | None = None) -> LoadInfo:
        """Hold this model (loaded now unless another face has it loaded); the one held before is
        let go. A failed load is remembered: the verdict says the model does not fit here."""
        self.release()
        try:
            with self.ctx.activity.busy():  # a load works the machine too (the calibration waits)
                # A vision model loads with the projector beside it (app/vision): it then reads images.
                loaded_with = vision.with_projector(path, options)
                resident = self.ctx.models.acquire(path, loaded_with, self, self.kind, keep_alive)
        except LocalopenError as exc:
            library.note_load(self.ctx, path, exc)
            raise
        library.note_load(self.ctx, path, None)
        self._resident = resident
        self.loaded, self._loaded_for = resident.info, LoadRequest(str(path), options)
        return resident.info

    def release(self) -> None:
        """Let the model go (it stays loaded while others hold it, or for its keep-alive)."""
        resident, self._resident = self._resident, None
        self.loaded = None
        if resident is not None:
            self.ctx.models.release(resident, self)

    @contextmanager
    def _turn(self) -> Iterator[Engine]:
        """The engine for one request. A model unloaded to make room for another is loaded again."""
        wanted, resident = self._loaded_for, self._resident
        if wanted is None:
            raise ModelLoadError("No model is loaded: load one first.")
        if resident is None or resident.unloaded or not resident.engine.alive:
            self.load(wanted.path, wanted.options)
            resident = self._resident
        assert resident is not None
        try:
            with self.ctx.activity.busy(), self.ctx.models.turn(resident, self) as engine:
                yield engine
        except EngineDied:
            self.ctx.models.release(resident, self)
            self._resident, self.loaded = None, None
            raise

    def answer(
        self,
        messages: list[dict[str, Any]],
        sampling: SamplingParams,
        template: str | None,
        on_piece: Callable[[AnswerPiece], None] | None = None,
        options: AnswerOptions | None = None,
    ) -> AnswerStats:
        """Stream one answer from the loaded model; on_piece gets each piece of reasoning or answer."""
        with self._turn() as engine:
            self._answering = engine
            try:
                return engine.answer(messages, sampling, template, on_piece, options)
            finally:
                self._answering = None

    @property
    def prompt_read(self) -> tuple[int, int] | None:
        """This session's answer's prompt: tokens evaluated and in all, while a long one is read."""
        engine = self._answering
        return engine.prompt_read if engine is not None else None

    def embed(self, texts: list[str], truncate: bool = False) -> tuple[list[list[float]], int]:
        """Embedding vectors of the texts from the loaded model, and their tokens in all."""
        with self._turn() as engine:
            done = engine.embed(texts, truncate)
        return done.vectors, done.tokens

    def render(
        self,
        messages: list[dict[str, Any]],
        template: str | None = None,
        options: AnswerOptions | None = None,
        add_generation_prompt: bool = True,
    ) -> tuple[str, int]:
        """The exact prompt (and its tokens) the loaded model would be fed for these messages."""
        with self._turn() as engine:
            rendered = engine.render(messages, template, options, add_generation_prompt)
        return rendered.prompt, rendered.tokens

    def stop(self) -> None:
        """Stop this session's answer in progress (within one token); another face's is untouched."""
        resident = self._resident
        if resident is not None:
            self.ctx.models.stop(resident, self)

    def shutdown(self) -> None:
        """Let the model go and forget it (unloaded when nobody else holds it)."""
        self.release()
        self._loaded_for = None

    def kill(self) -> None:
        """End the engine now (it does not answer a stop): every face using this model loses it."""
        resident = self._resident
        if resident is not None:
            resident.engine.kill()
