"""Chat: conversations kept in SQLite, streamed answers batched on a timer, stop, regenerate, edit.

The chat owns its engine (a ChatSession on its own thread): nothing else loads or unloads it. Its
parts render (ui/chat/: the conversation list, the model bar, the transcript, the composer, the
settings beside it); what a conversation is and how it is kept is app/conversation/chat.py's.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QGuiApplication, QKeySequence, QShortcut
from PySide6.QtWidgets import QInputDialog, QMessageBox, QSplitter, QVBoxLayout, QWidget

from localopen.app import engine_options, presets
from localopen.app.conversation import chat, chat_images, tool_loop, vision
from localopen.app.conversation.chat import ChatSession, needs_template
from localopen.app.conversation.tool_loop import ToolRun, TurnOutcome
from localopen.app.models import library
from localopen.core.chat.conversations import Conversation, Message
from localopen.core.errors import LocalopenError
from localopen.core.estimate.memory import human_bytes
from localopen.core.options import AnswerOptions, LoadOptions
from localopen.core.records import AnswerPiece, AnswerStats, LoadInfo
from localopen.engine.errors import ContextTooLongError, EngineDied, ModelLoadError, NoTemplateError
from localopen.ui.chat.composer import Composer
from localopen.ui.chat.conversation_list import ConversationList
from localopen.ui.chat.model_bar import ModelBar
from localopen.ui.chat.side_panel import ChatSettingsPanel
from localopen.ui.chat.transcript import Transcript
from localopen.ui.chat_tools import ChatTools
from localopen.ui.engine_runner import EngineRunner
from localopen.ui.services import Services

FLUSH_MS = 33  # ~30 Hz: tokens are batched, the transcript is never re-rendered per token


class ChatView(QWidget):
    model_loaded = Signal(object)  # LoadInfo
    answer_text = Signal(str)  # the answer so far, at each refresh of the transcript (~30 Hz)
    thinking_text = Signal(str)  # the reasoning so far, while the Thinking section streams
    answer_finished = Signal(object)  # AnswerStats, or None when the answer was interrupted
    template_needed = Signal()  # the model has no chat template: the user must choose one
    failed = Signal(str)

    def __init__(self, services: Services) -> None:
        super().__init__()
        self.services = services
        ctx = services.ctx
        self.session = ChatSession(ctx)
        self.runner = EngineRunner("chat-engine")
        self.conversation: Conversation | None = None
        self.streaming = False
        self._pending: list[AnswerPiece | ToolRun] = []
        self._queued_send: list[dict[str, Any]] | None = None
        self._edit_position: int | None = None
        self._loading = False  # a load is under way: a send waits for it instead of loading again

        self.conversations = ConversationList()
        self.conversations.new_chat.connect(lambda: self.new_chat())
        self.conversations.rename.connect(self.rename_chat)
        self.conversations.delete.connect(self.delete_chat)
        self.conversations.search_changed.connect(self.reload_conversations)
        self.conversations.selected.connect(self._on_conversation_selected)
        self.model_bar = ModelBar()
        self.model_bar.load.connect(self.load_model)
        self.model_bar.picked.connect(self.show_preset)
        self.model_bar.picked.connect(self.show_model_state)
        self.model_bar.use_template.connect(lambda: self.use_template())
        self.tools = ChatTools(services)  # its switch sits with the settings, its question above the input
        self.transcript = Transcript(lambda name: chat_images.load(ctx, name))
        self.transcript.message_action.connect(self._on_message_action)
        self.transcript.said.connect(self.model_bar.say)
        self.composer = Composer(self.tools.approval)
        self.composer.send.connect(self.send)
        self.composer.stop.connect(self.stop)
        self.composer.regenerate.connect(self.regenerate)
        self.composer.attachments.refused.connect(self.model_bar.say)
        self.panel = ChatSettingsPanel(ctx, self.tools)
        self.panel.save_preset.connect(self.save_preset)
        self._name_the_controls()

        center = QWidget()
        cl = QVBoxLayout(center)
        cl.setContentsMargins(0, 0, 0, 0)
        cl.addWidget(self.model_bar)
        cl.addWidget(self.transcript, 1)
        cl.addWidget(self.composer)
        self.splitter = QSplitter()
        self.splitter.setObjectName("chat-splitter")
        for pane in (self.conversations, center, self.panel):
            self.splitter.addWidget(pane)
        self.splitter.setStretchFactor(1, 3)
        layout = QVBoxLayout(self)
        layout.addWidget(self.splitter)

        self.flush_timer = QTimer(self)
        self.flush_timer.setInterval(FLUSH_MS)
        self.flush_timer.timeout.connect(self._flush)
        QShortcut(QKeySequence(Qt.Key.Key_Escape), self, self.stop)

        services.library_changed.connect(self.reload_models)
        self.reload_models()
        self.reload_conversations()
        self.tools.restore()

    def _name_the_controls(self) -> None:
        """The parts' controls by the names the rest of the app (and its tests) use."""
        bar, composer, panel = self.model_bar, self.composer, self.panel
        self.conv_list, self.conv_search = self.conversations.items, self.conversations.search
        self.model_box, self.load_button, self.status = bar.model_box, bar.load_button, bar.status
        self.notice, self.notice_text, self.template_box = bar.notice, bar.notice_text, bar.template_box
        self.use_template_button, self.reload_button = bar.use_template_button, bar.reload_button
        self.input, self.attachments = composer.input, composer.attachments
        self.send_button, self.stop_button, self.regen_button = (
            composer.send_button,
            composer.stop_button,
            composer.regen_button,
        )
        self.system, self.thinking, self.context_meter = panel.system, panel.thinking, panel.context_meter
        self.temperature, self.top_p, self.top_k, self.min_p = panel.temperature, panel.top_p, panel.top_k, panel.min_p
        self.repeat, self.max_tokens = panel.repeat, panel.max_tokens
        self.n_ctx, self.threads, self.gpu_layers = panel.n_ctx, panel.threads, panel.gpu_layers
        self.kv_type, self.flash_attn, self.draft_box = panel.kv_type, panel.flash_attn, panel.draft_box
        self.preset_button = panel.preset_button

    def settings_dict(self) -> dict[str, Any]:
        template = self.conversation.settings.get("template") if self.conversation else None
        return {**self.panel.values(), "template": template}

    def apply_settings(self, st: dict[str, Any]) -> None:
        self.panel.apply(st)

    # -- models -------------------------------------------------------------------------------
    def reload_models(self) -> None:
        self.model_bar.fill(library.installed(self.services.ctx))
        self.show_model_state()

    def select_model(self, path: str) -> None:
        self.model_bar.select(path)
        self.show_model_state()

    def show_model_state(self) -> None:
        """The status line says what is true of the chosen model: loaded (how), or that it loads on
        the first message (and which one is loaded meanwhile), or that there is none."""
        path, loaded = self.model_bar.path(), self.session.loaded
        if path is None:
            self.model_bar.show_state(
                "No model installed yet: download one in Explore (Start recommends some), or drop a .gguf "
                "file on the window."
            )
        elif loaded is not None and Path(loaded.path) == Path(path):
            self.model_bar.show_state(loaded_words(loaded))
        else:
            name = html.escape(self.model_box.currentText())
            meanwhile = f" (loaded now: {html.escape(loaded.name)})" if loaded is not None else ""
            self.model_bar.show_state(f"<b>{name}</b> loads when you send a message, or press Load{meanwhile}.")

    def load_options(self) -> LoadOptions:
        return engine_options.load_options(
            self.services.ctx.settings,
            preset=presets.preset_for(self.services.ctx, self.model_bar.path()),
            **self.panel.load_values(),
        )

    def show_preset(self) -> None:
        """The chosen model's preset (what it does not name: the settings) in the load controls."""
        path = self.model_bar.path()
        preset = presets.preset_for(self.services.ctx, path)
        options = engine_options.load_options(self.services.ctx.settings, preset=preset)
        self.panel.show_options(path, options, presets.name_of(path) if preset and path else None)

    def save_preset(self) -> None:
        path = self.model_bar.path()
        if not path:
            return
        try:
            presets.save(self.services.ctx, presets.name_of(path), self.panel.load_values(), "saved in the Chat view")
        except LocalopenError as exc:
            self.model_bar.say(html.escape(str(exc)))
            return
        self.show_preset()
        self.model_bar.say(f"Saved as {presets.name_of(path)}'s preset: every face loads it this way now.")

    def load_model(self) -> None:
        path = self.model_bar.path()
        if not path:
            self.show_model_state()
            return
        self.notice.hide()
        self.model_bar.show_state(f"Loading {html.escape(Path(path).name)}…")
        self.load_button.setEnabled(False)
        self._loading = True
        options, session = self.load_options(), self.session
        self.runner.submit(
            lambda _emit: session.load(path, options), on_done=self._on_loaded, on_failed=self._on_load_failed
        )

    def _on_loaded(self, info: LoadInfo) -> None:
        self._loading = False
        self.load_button.setEnabled(True)
        library.mark_used(self.services.ctx, info.path)
        self.services.results_changed.emit()  # a model that failed here before now loads
        self.show_model_state()
        self.panel.show_thinking_switch(info)
        self.model_loaded.emit(info)
        template = self.conversation.settings.get("template") if self.conversation else None
        if needs_template(info, template):
            self._ask_for_template(info.template_options, info.template_suggestion, info.template_suggestion_reason)
            return
        if self._queued_send is not None:
            messages, self._queued_send = self._queued_send, None
            self._start(messages)

    def _on_load_failed(self, error: LocalopenError) -> None:
        self._loading = False
        self._queued_send = None
        self.services.results_changed.emit()  # the verdict now says it does not fit here
        self._on_failed(error)

    def _ask_for_template(self, options: list[str], suggestion: str | None, reason: str = "") -> None:
        self.model_bar.ask_for_template(options, suggestion, reason)
        self.template_needed.emit()

    def use_template(self, name: str | None = None) -> None:
        """Use the template chosen in the notice (or the one named) for this conversation."""
        if name is not None:
            self.template_box.setCurrentIndex(max(0, self.template_box.findData(name)))
        if self.conversation is None:
            self.new_chat()
        assert self.conversation is not None
        settings = {**self.settings_dict(), "template": self.template_box.currentData()}
        chat.keep_settings(self.services.ctx, self.conversation, self.model_bar.path(), settings)
        self.notice.hide()
        if self._queued_send is not None:
            messages, self._queued_send = self._queued_send, None
            self._start(messages)

    # -- conversations ------------------------------------------------------------------------
    def reload_conversations(self) -> None:
        found = chat.conversations(self.services.ctx, self.conv_search.text())
        self.conversations.show_list(found, self.conversation.id if self.conversation else None)

    def new_chat(self, model_path: str | None = None) -> None:
        if model_path:
            self.select_model(model_path)
            self.show_preset()
        settings = {**self.settings_dict(), "template": None}
        self.conversation = chat.new_conversation(self.services.ctx, self.model_bar.path(), settings)
        self.reload_conversations()
        self.render_conversation()
        self.input.setFocus()

    def _on_conversation_selected(self, conversation_id: int) -> None:
        if self.streaming:
            return
        self.conversation = chat.open_conversation(self.services.ctx, conversation_id)
        if self.conversation:
            self.apply_settings(self.conversation.settings)
            if self.conversation.model_path:
                self.select_model(self.conversation.model_path)
        self.render_conversation()

    def rename_chat(self) -> None:
        if self.conversation is None:
            return
        title, ok = QInputDialog.getText(self, "Rename chat", "Title", text=self.conversation.title)
        if ok:
            chat.rename_conversation(self.services.ctx, self.conversation, title)
            self.reload_conversations()

    def delete_chat(self) -> None:
        if self.conversation is None:
            return
        if (
            QMessageBox.question(self, "Delete chat", f"Delete '{self.conversation.title}'?")
            != QMessageBox.StandardButton.Yes
        ):
            return
        chat.delete_conversation(self.services.ctx, self.conversation.id)
        self.conversation = None
        self.reload_conversations()
        self.render_conversation()

    # -- sending ------------------------------------------------------------------------------
    def send(self) -> None:
        text = self.input.toPlainText().strip()
        if not (text or self.attachments.pictures) or self.streaming:
            return
        model = self.model_bar.path()
        if self.attachments.pictures and model and vision.pairing(model).projector is None:
            self.model_bar.say(html.escape(vision.no_vision(model)))  # the pictures stay attached
            return
        if self.conversation is None:
            self.new_chat()
        c = self.conversation
        assert c is not None
        title = c.title
        try:
            chat.add_user_turn(self.services.ctx, c, text, self._edit_position, self.attachments.pictures)
        except LocalopenError as exc:
            self.model_bar.say(html.escape(str(exc)))
            return
        self.attachments.take()
        self._edit_position = None
        if c.title != title:
            self.reload_conversations()
        self.input.clear()
        self._request_answer()

    def regenerate(self) -> None:
        if self.conversation is None or self.streaming:
            return
        if chat.drop_last_answer(self.services.ctx, self.conversation.id):
            self._request_answer()

    def _request_answer(self) -> None:
        c = self.conversation
        assert c is not None
        chat.keep_settings(self.services.ctx, c, self.model_bar.path(), self.settings_dict())
        messages = self._history_messages() or []
        self.render_conversation()
        loaded = self.session.loaded  # the session is the one place that knows which model is loaded
        if self._loading:  # the load under way answers it when done: never a second load
            self._queued_send = messages
            return
        if loaded is None or not self.session.is_loaded(self.model_bar.path() or "", self.load_options()):
            self._queued_send = messages
            self.load_model()
            return
        if needs_template(loaded, c.settings.get("template")):
            self._queued_send = messages
            self._ask_for_template(
                loaded.template_options, loaded.template_suggestion, loaded.template_suggestion_reason
            )
            return
        self._start(messages)

    def _start(self, messages: list[dict[str, Any]]) -> None:
        c = self.conversation
        assert c is not None
        sampling = self.panel.sampling()
        self.streaming = True
        self._pending = []
        self.composer.answering(True)
        self.transcript.begin_answer()
        self.flush_timer.start()
        template, session = c.settings.get("template"), self.session
        loaded = session.loaded
        thinking = self.thinking.isChecked() if loaded is not None and loaded.thinking_switch else None
        connections = self.tools.active()
        if connections is not None:  # the model may call tools: each runs once the person allows it
            allow = self.tools.allow
            self.runner.submit(
                lambda emit: tool_loop.answer_with_tools(
                    session, messages, sampling, template, connections, allow, emit, emit, thinking=thinking
                ),
                on_progress=self._on_token,
                on_done=self._on_tool_turn,
                on_failed=self._on_failed,
            )
            return
        self.runner.submit(
            lambda emit: session.answer(messages, sampling, template, emit, AnswerOptions(thinking=thinking)),
            on_progress=self._on_token,
            on_done=self._on_done,
            on_failed=self._on_failed,
        )

    def stop(self) -> None:
        if self.streaming:
            self.composer.stopping()
            self.tools.cancel()  # a call waiting for permission is not run
            self.session.stop()

    def shutdown(self) -> None:
        """At quit: stop the answer, end the engine process (killed if it does not end in time)."""
        self.flush_timer.stop()
        self.tools.cancel()
        session = self.session
        self.runner.shutdown(stop=session.stop, close=session.shutdown, kill=session.kill)
        self.tools.shutdown()

    # -- streaming ----------------------------------------------------------------------------
    def _on_token(self, piece: AnswerPiece | ToolRun) -> None:
        if self.streaming:
            self._pending.append(piece)

    def _flush(self) -> None:
        if not self._pending:
            read = self.session.prompt_read
            if read is not None:
                done, total = read
                self.transcript.show_wait(f"Reading the prompt: {done:,} of {total:,} tokens ({done / total:.0%})…")
            return
        pieces, self._pending = self._pending, []
        thinking_grew, answer_grew = self.transcript.add_pieces(pieces)
        if thinking_grew:
            self.thinking_text.emit(self.transcript.reasoning)
        if answer_grew:
            self.answer_text.emit(self.transcript.answer)

    def _on_tool_turn(self, outcome: TurnOutcome) -> None:
        """A turn with tools ended: every answer, call and result is kept in the conversation."""
        if not self.streaming:
            return
        if self.conversation is not None:
            chat.save_tool_turn(self.services.ctx, self.conversation.id, outcome.messages, outcome.stats)
        self._finish(outcome.stats, stored=True)

    def _finish(self, stats: AnswerStats | None, note: str | None = None, stored: bool = False) -> None:
        self.flush_timer.stop()
        self._flush()
        self.streaming = False
        self.composer.answering(False)
        self.tools.approval.hide()
        answer, reasoning = self.transcript.answer, self.transcript.reasoning
        if not stored and self.conversation is not None and (answer or reasoning or stats):
            content = answer + (f"\n\n*{note}*" if note else "")
            chat.save_answer(self.services.ctx, self.conversation.id, content, stats, reasoning)
        if stats is not None and stats.context_used is not None:
            self.context_meter.setValue(min(100, int(100 * stats.context_used)))
        self.render_conversation()
        self.answer_finished.emit(stats)

    def _on_done(self, stats: AnswerStats) -> None:
        if self.streaming:
            self._finish(stats)

    def _on_failed(self, error: LocalopenError) -> None:
        message = str(error)
        self.load_button.setEnabled(True)
        if isinstance(error, NoTemplateError):
            self._queued_send = self._queued_send or self._history_messages()
            offer = error.choice
            self._ask_for_template(offer.options, offer.suggested, offer.reason)
            if self.streaming:
                self.flush_timer.stop()
                self.streaming = False
                self.composer.answering(False)
                self.render_conversation()
            return
        if isinstance(error, EngineDied):  # said once, in words: what happened, what is kept, what Reload does
            name = Path(self.model_bar.path() or "").name or "the model"
            if self.streaming:
                self._finish(None, note=f"Interrupted: the engine {error.how}.")
            self.model_bar.offer_reload(
                f"The engine running {name} {error.how}.",
                "Your conversation is kept, with the answer as far as it got. Reload model starts the engine "
                "again; if it stops again, the log (About) says more.",
            )
            self.show_model_state()
        elif isinstance(error, (ModelLoadError, ContextTooLongError)):
            if self.streaming:
                self._finish(None, note=f"Interrupted: {message}")
            self.model_bar.offer_reload(message, "Change the settings (Advanced) if need be, then reload the model.")
            if isinstance(error, ModelLoadError):
                name = html.escape(self.model_box.currentText())
                self.model_bar.show_state(f"<span style='color:#c62828'><b>{name}</b> did not load (below).</span>")
            else:
                self.show_model_state()
        else:
            if self.streaming:
                self._finish(None, note=f"Interrupted: {message}")
            self.model_bar.show_state(f"<span style='color:#c62828'>{html.escape(message)}</span>")
        self.failed.emit(message)

    def _history_messages(self) -> list[dict[str, Any]] | None:
        if self.conversation is None:
            return None
        return chat.conversation_messages(self.services.ctx, self.conversation.id, self.system.toPlainText())

    # -- the transcript -----------------------------------------------------------------------
    def _empty_hint(self) -> str:
        if self.model_box.count() == 0:
            return (
                "No model is installed yet. <b>Start</b> recommends open models that run well on this machine: "
                "one click downloads one and opens a chat with it. You can also drop a .gguf file on the window."
            )
        if self.conversation is None:
            return "Start a new chat (Ctrl+N) with an installed model. Everything runs on this machine, offline."
        return "Pick a model above and write a message below; Enter sends. Everything runs on this machine, offline."

    def render_conversation(self) -> None:
        """Render the whole conversation once (on load and after each answer, never per token)."""
        c = self.conversation
        self.transcript.show_conversation(
            chat.stored_messages(self.services.ctx, c.id) if c else [], self._empty_hint()
        )

    def toggle_thinking(self, position: int) -> None:
        self.transcript.toggle_thinking(position)

    def _on_message_action(self, action: str, position: int) -> None:
        (self.copy_message if action == "copy" else self.edit_message)(position)

    def _message_at(self, position: int) -> Message | None:
        if self.conversation is None:
            return None
        return chat.message_at(self.services.ctx, self.conversation.id, position)

    def copy_message(self, position: int) -> None:
        msg = self._message_at(position)
        if msg is not None:
            QGuiApplication.clipboard().setText(msg.content)
            self.model_bar.say("Copied.")

    def edit_message(self, position: int) -> None:
        """Put a message of yours back in the input: sending replaces it and everything after it."""
        msg = self._message_at(position)
        if msg is not None and not self.streaming:
            self.input.setPlainText(msg.content)
            self._edit_position = msg.position
            self.input.setFocus()
            self.model_bar.say("Editing: sending replaces this message and everything after it.")


def loaded_words(info: LoadInfo) -> str:
    """The status line's words for a loaded model: how long it took, on what, its memory against
    the estimate, and what to know (a GPU that was not used, pictures it can see)."""
    err = info.estimate_error
    text = (
        f"{info.name} ({info.quantization}) loaded in {info.load_time_ms:.0f} ms on "
        f"<b>{info.backend}</b>; memory {human_bytes(info.memory_actual.total)} (estimated "
        f"{human_bytes(info.memory_estimate.total)}{f', {err:+.1%}' if err is not None else ''})."
    )
    if info.gpu_warning:
        text += f" <span style='color:#c62828'>{html.escape(info.gpu_warning)}</span>"
    if info.vision is not None:
        text += f" Sees images ({html.escape(Path(info.vision['projector']).name)}): attach pictures below."
    return text
