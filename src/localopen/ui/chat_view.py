"""Chat: conversations kept in SQLite, streamed answers batched on a timer, stop, regenerate, edit.

The chat owns its engine (a ChatSession on its own thread): nothing else loads or unloads it.
"""

from __future__ import annotations

import html
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer, QUrl, Signal
from PySide6.QtGui import (
    QColor,
    QGuiApplication,
    QKeySequence,
    QShortcut,
    QTextBlockFormat,
    QTextCharFormat,
    QTextCursor,
    QTextDocument,
)
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QSplitter,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from localopen.app import chat, chat_images, drafting, engine_options, presets, tool_loop, vision
from localopen.app.chat import ChatSession, needs_template
from localopen.app.tool_loop import ToolRun, TurnOutcome
from localopen.core.chat import conversations as convs
from localopen.core.errors import LocalopenError
from localopen.core.estimate.memory import KV_TYPES, human_bytes
from localopen.core.options import AnswerOptions, LoadOptions
from localopen.core.records import AnswerPiece, AnswerStats, LoadInfo
from localopen.core.store.library_db import list_models, touch
from localopen.engine.errors import ContextTooLongError, EngineDied, ModelLoadError, NoTemplateError
from localopen.ui import theme
from localopen.ui.background import run_in_background
from localopen.ui.chat_attachments import Attachments, pictures_in, thumbnail
from localopen.ui.chat_tools import ChatTools
from localopen.ui.engine_runner import EngineRunner
from localopen.ui.services import Services
from localopen.ui.widgets import button, dspin, kv_cache_box, spin

PICTURE_SIDE = 160  # a message's pictures in the transcript, at most this many pixels a side
FLUSH_MS = 33  # ~30 Hz: tokens are batched, the transcript is never re-rendered per token


def _thinking_format() -> QTextCharFormat:
    fmt = QTextCharFormat()
    fmt.setForeground(QColor(theme.muted_colour()))
    fmt.setFontItalic(True)
    return fmt


def _duration(ms: float) -> str:
    return f"{ms:.0f} ms" if ms < 1000 else f"{ms / 1000:.1f} s"


class _LiveThinking:
    """The Thinking section of the answer being streamed: open while the model thinks, one
    line once the answer starts."""

    def __init__(self) -> None:
        self.start: int | None = None  # where the section begins in the transcript
        self.began_at = 0.0
        self.tokens = 0
        self.collapsed = False
        self.format = _thinking_format()

    def begin(self, cursor: QTextCursor) -> None:
        self.start = cursor.position()
        self.began_at = time.perf_counter()
        cursor.insertText("▾ Thinking…\n", self.format)

    def collapse(self, cursor: QTextCursor) -> None:
        assert self.start is not None
        cursor.setPosition(self.start)
        cursor.movePosition(QTextCursor.MoveOperation.End, QTextCursor.MoveMode.KeepAnchor)
        took = _duration((time.perf_counter() - self.began_at) * 1000)
        cursor.insertText(f"▸ Thinking ({self.tokens} tokens, {took})\n", self.format)
        self.collapsed = True


class MessageInput(QPlainTextEdit):
    """Enter sends, Shift+Enter makes a new line; pictures pasted or dropped here are attached."""

    submitted = Signal()
    pictures = Signal(list)  # bytes of each picture pasted or dropped

    def canInsertFromMimeData(self, source: Any) -> bool:  # noqa: N802
        return bool(source.hasImage() or source.hasUrls()) or super().canInsertFromMimeData(source)

    def insertFromMimeData(self, source: Any) -> None:  # noqa: N802
        found = pictures_in(source)
        if found:
            self.pictures.emit(found)
        elif source.hasText():
            super().insertFromMimeData(source)

    def keyPressEvent(self, event: Any) -> None:  # noqa: N802
        if (
            event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter)
            and not event.modifiers() & Qt.KeyboardModifier.ShiftModifier
        ):
            self.submitted.emit()
            return
        super().keyPressEvent(event)


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
        self.session = ChatSession(services.ctx)
        self.runner = EngineRunner("chat-engine")
        self.conversation: convs.Conversation | None = None
        self.streaming = False
        self._pending: list[AnswerPiece | ToolRun] = []
        self._answer = ""
        self._reasoning = ""
        self._live = _LiveThinking()
        self._expanded: set[int] = set()  # positions of answers whose Thinking section is open
        self._queued_send: list[dict[str, Any]] | None = None
        self._edit_position: int | None = None
        self._loading = False  # a load is under way: a send waits for it instead of loading again

        # -- conversations ---------------------------------------------------------------------
        self.conv_search = QLineEdit(placeholderText="Search chats…")
        self.conv_search.setAccessibleName("Search conversations")
        self.conv_search.textChanged.connect(self.reload_conversations)
        self.conv_list = QListWidget()
        self.conv_list.setAccessibleName("Conversations")
        self.conv_list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.conv_list.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.conv_list.currentItemChanged.connect(self._on_conversation_selected)
        new_button = button("New chat", "New chat (Ctrl+N)", lambda: self.new_chat())
        rename_button = button("Rename", "Rename the conversation", self.rename_chat)
        delete_button = button("Delete", "Delete the conversation", self.delete_chat)
        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addWidget(new_button)
        ll.addWidget(self.conv_search)
        ll.addWidget(self.conv_list, 1)
        row = QHBoxLayout()
        row.addWidget(rename_button)
        row.addWidget(delete_button)
        ll.addLayout(row)

        # -- transcript and input --------------------------------------------------------------
        self.model_box = QComboBox()
        self.model_box.setAccessibleName("Model for this conversation")
        self.model_box.setMinimumContentsLength(30)
        self.model_box.activated.connect(lambda _i: self.show_preset())  # a model the person picks
        self.load_button = button("Load", "Load the model", self.load_model)
        self.status = QLabel("Choose an installed model, or download one in Explore.")
        self.status.setAccessibleName("Model status")
        self.status.setWordWrap(True)
        self.notice = QFrame()
        self.notice.setFrameShape(QFrame.Shape.StyledPanel)
        self.notice_text = QLabel()
        self.notice_text.setWordWrap(True)
        self.template_box = QComboBox()
        self.template_box.setAccessibleName("Chat template to use")
        # Not connected directly: clicked(bool) would arrive as use_template's `name`.
        self.use_template_button = button("Use this", "Use the chosen chat template", lambda: self.use_template())
        self.reload_button = button("Reload model", "Reload the model", self.load_model)
        nl = QHBoxLayout(self.notice)
        nl.addWidget(self.notice_text, 1)
        nl.addWidget(self.template_box)
        nl.addWidget(self.use_template_button)
        nl.addWidget(self.reload_button)
        self.notice.hide()

        self.tools = ChatTools(services)  # its switch sits with the settings, its question above the input
        self.transcript = QTextBrowser()
        self.transcript.setAccessibleName("Conversation")
        self.transcript.setOpenLinks(False)
        self.transcript.anchorClicked.connect(self._on_anchor)
        self.input = MessageInput()
        self.input.setAccessibleName("Message (Enter sends, Shift+Enter new line)")
        self.input.setPlaceholderText("Message… (Enter sends, Shift+Enter for a new line)")
        self.input.setMaximumHeight(110)
        self.input.submitted.connect(self.send)
        self.attachments = Attachments()
        self.attachments.refused.connect(self.status.setText)
        self.input.pictures.connect(self.attachments.add_all)
        self.attach_button = button(
            "Attach picture…", "Attach pictures for a vision model to see", self.attachments.choose
        )
        self.send_button = button("Send", "Send the message", self.send)
        self.stop_button = button("Stop", "Stop the answer (Esc)", self.stop)
        self.stop_button.setEnabled(False)
        self.regen_button = button("Regenerate", "Regenerate the last answer", self.regenerate)
        center = QWidget()
        cl = QVBoxLayout(center)
        cl.setContentsMargins(0, 0, 0, 0)
        top = QHBoxLayout()
        top.addWidget(QLabel("Model"))
        top.addWidget(self.model_box, 1)
        top.addWidget(self.load_button)
        cl.addLayout(top)
        cl.addWidget(self.status)
        cl.addWidget(self.notice)
        cl.addWidget(self.transcript, 1)
        cl.addWidget(self.tools.approval)
        cl.addWidget(self.attachments)
        cl.addWidget(self.input)
        buttons = QHBoxLayout()
        buttons.addWidget(self.attach_button)
        buttons.addWidget(self.regen_button)
        buttons.addStretch(1)
        buttons.addWidget(self.stop_button)
        buttons.addWidget(self.send_button)
        cl.addLayout(buttons)

        # -- settings panel --------------------------------------------------------------------
        s = services.ctx.settings
        self.system = QPlainTextEdit()
        self.system.setAccessibleName("System prompt")
        self.system.setPlaceholderText("System prompt (optional)")
        self.system.setMaximumHeight(90)
        d = engine_options.sampling()  # the one set of sampling defaults
        self.temperature = dspin(0, 2, d.temperature, "Temperature")
        self.top_p = dspin(0, 1, d.top_p, "Top-p")
        self.top_k = spin(0, 1000, d.top_k, "Top-k")
        self.min_p = dspin(0, 1, d.min_p, "Min-p")
        self.repeat = dspin(0.5, 2, d.repeat_penalty, "Repeat penalty")
        self.max_tokens = spin(1, 32768, d.max_tokens, "Max tokens")
        self.n_ctx = spin(256, 1 << 20, s.n_ctx, "Context size")
        self.threads = spin(0, 256, s.n_threads, "Threads (0 = automatic)")
        self.gpu_layers = spin(-1, 999, s.n_gpu_layers, "GPU layers (-1 = all)")
        self.kv_type = kv_cache_box(s.kv_cache_type, "KV-cache type")
        self.flash_attn = QCheckBox("Flash attention")
        self.flash_attn.setAccessibleName("Flash attention")
        self.flash_attn.setToolTip("Smaller compute buffers; a quantized V cache needs it")
        self.flash_attn.setChecked(s.flash_attn)
        self.draft_box = QComboBox()
        self.draft_box.setAccessibleName("Drafting")
        self.draft_box.setToolTip(
            "Speculative decoding: tokens drafted cheaply and checked in one batch; at temperature 0 the same "
            "text but where two tokens nearly tie. Prompt lookup helps when answers repeat the conversation "
            "(quoting, editing code); a draft model (a small one of the same family) helps in general."
        )
        self._fill_drafts(None)
        self.preset_button = button(
            "Save as this model's preset",
            "Save the context, KV cache, flash attention, threads, GPU layers and drafting as this model's preset",
            self.save_preset,
        )
        self.thinking = QCheckBox("Think before answering")
        self.thinking.setAccessibleName("Thinking")
        self.thinking.setChecked(True)
        self.thinking.setEnabled(False)
        self.thinking.setToolTip("Load a reasoning model whose chat template has a thinking switch to use this.")
        self.context_meter = QProgressBar()
        self.context_meter.setAccessibleName("Context used")
        self.context_meter.setFormat("context %p%")
        form = QFormLayout()
        form.addRow("System prompt", self.system)
        for label, w in (
            ("Temperature", self.temperature),
            ("Top-p", self.top_p),
            ("Top-k", self.top_k),
            ("Min-p", self.min_p),
            ("Repeat penalty", self.repeat),
            ("Max tokens", self.max_tokens),
            ("Context", self.n_ctx),
            ("Threads", self.threads),
            ("GPU layers", self.gpu_layers),
            ("KV cache", self.kv_type),
            ("", self.flash_attn),
            ("Drafting", self.draft_box),
            ("", self.preset_button),
            ("Thinking", self.thinking),
            ("Tools", self.tools),
        ):
            form.addRow(label, w)
        form.addRow("Context used", self.context_meter)
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        right_layout.addLayout(form)
        right_layout.addStretch(1)

        self.splitter = QSplitter()
        self.splitter.setObjectName("chat-splitter")
        for pane in (left, center, right):
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

    def settings_dict(self) -> dict[str, Any]:
        return {
            "system": self.system.toPlainText(),
            "temperature": self.temperature.value(),
            "top_p": self.top_p.value(),
            "top_k": self.top_k.value(),
            "min_p": self.min_p.value(),
            "repeat_penalty": self.repeat.value(),
            "max_tokens": self.max_tokens.value(),
            "n_ctx": self.n_ctx.value(),
            "n_threads": self.threads.value(),
            "n_gpu_layers": self.gpu_layers.value(),
            "kv_cache_type": self.kv_type.currentData(),
            "flash_attn": self.flash_attn.isChecked(),
            "draft": self.draft_box.currentData(),
            "thinking": self.thinking.isChecked(),
            "template": (self.conversation.settings.get("template") if self.conversation else None),
        }

    def apply_settings(self, st: dict[str, Any]) -> None:
        self.system.setPlainText(st.get("system", ""))
        for key, w in (
            ("temperature", self.temperature),
            ("top_p", self.top_p),
            ("top_k", self.top_k),
            ("min_p", self.min_p),
            ("repeat_penalty", self.repeat),
            ("max_tokens", self.max_tokens),
            ("n_ctx", self.n_ctx),
            ("n_threads", self.threads),
            ("n_gpu_layers", self.gpu_layers),
        ):
            if key in st:
                w.setValue(st[key])
        self.thinking.setChecked(bool(st.get("thinking", True)))
        if st.get("kv_cache_type") in KV_TYPES:
            self.kv_type.setCurrentIndex(self.kv_type.findData(st["kv_cache_type"]))
        if "flash_attn" in st:
            self.flash_attn.setChecked(bool(st["flash_attn"]))
        if self.draft_box.findData(st.get("draft")) >= 0:
            self.draft_box.setCurrentIndex(self.draft_box.findData(st.get("draft")))

    # -- models -------------------------------------------------------------------------------
    def reload_models(self) -> None:
        current = self.model_box.currentData()
        self.model_box.clear()
        for m in list_models(self.services.ctx.db):
            if not m.missing:
                self.model_box.addItem(f"{m.name} ({m.quant or '?'}, {human_bytes(m.size)})", str(m.path))
        if current:
            self.select_model(current)

    def select_model(self, path: str) -> None:
        i = self.model_box.findData(path)
        if i >= 0:
            self.model_box.setCurrentIndex(i)

    def load_options(self) -> LoadOptions:
        return engine_options.load_options(
            self.services.ctx.settings,
            n_ctx=self.n_ctx.value(),
            n_threads=self.threads.value(),
            n_gpu_layers=self.gpu_layers.value(),
            kv_cache_type=self.kv_type.currentData(),
            flash_attn=self.flash_attn.isChecked(),
            preset=presets.preset_for(self.services.ctx, self.model_box.currentData()),
            draft=self.draft_box.currentData(),
        )

    def _fill_drafts(self, path: str | None, chosen: str | None = None) -> None:
        """Off, prompt lookup and the chosen draft model at once; the installed models that could
        draft for the model at path join the list from a background read of their headers."""
        self.draft_box.clear()
        self.draft_box.addItem("Off", "off")
        self.draft_box.addItem("Prompt lookup", "lookup")
        if chosen not in (None, "off", "lookup"):
            self.draft_box.addItem(f"Draft model: {Path(str(chosen)).stem}", chosen)
        self.draft_box.setCurrentIndex(max(0, self.draft_box.findData(chosen or "off")))
        if path:
            ctx = self.services.ctx
            run_in_background(
                lambda: drafting.candidates(ctx, path),
                lambda found: self._add_drafts(path, found),
                name="draft-candidates",
                owner=self,
            )

    def _add_drafts(self, path: str, found: list[drafting.DraftCandidate]) -> None:
        if path != self.model_box.currentData():
            return  # another model was chosen meanwhile
        for candidate in found:
            if self.draft_box.findData(str(candidate.path)) < 0:
                self.draft_box.addItem(f"Draft model: {candidate.name}", str(candidate.path))

    def show_preset(self) -> None:
        """The chosen model's preset (what it does not name: the settings) in the load controls."""
        options = engine_options.load_options(
            self.services.ctx.settings, preset=presets.preset_for(self.services.ctx, self.model_box.currentData())
        )
        self.n_ctx.setValue(options.n_ctx)
        self.threads.setValue(options.n_threads or 0)
        self.gpu_layers.setValue(options.n_gpu_layers)
        self.kv_type.setCurrentIndex(self.kv_type.findData(options.type_k))
        self.flash_attn.setChecked(options.flash_attn)
        self._fill_drafts(self.model_box.currentData(), options.draft)

    def save_preset(self) -> None:
        path = self.model_box.currentData()
        if not path:
            return
        values = {
            "n_ctx": self.n_ctx.value(),
            "n_threads": self.threads.value(),
            "n_gpu_layers": self.gpu_layers.value(),
            "kv_cache_type": self.kv_type.currentData(),
            "flash_attn": self.flash_attn.isChecked(),
            "draft": self.draft_box.currentData(),
        }
        try:
            presets.save(self.services.ctx, presets.name_of(path), values, "saved in the Chat view")
        except LocalopenError as exc:
            self.status.setText(str(exc))
            return
        self.status.setText(f"Saved as {presets.name_of(path)}'s preset: every face loads it this way now.")

    def load_model(self) -> None:
        path = self.model_box.currentData()
        if not path:
            self.status.setText("No model installed yet: download one in Explore, or drop a .gguf on the window.")
            return
        self.notice.hide()
        self.status.setText(f"Loading {Path(path).name}…")
        self.load_button.setEnabled(False)
        self._loading = True
        options, session = self.load_options(), self.session
        self.runner.submit(
            lambda _emit: session.load(path, options), on_done=self._on_loaded, on_failed=self._on_load_failed
        )

    def _on_loaded(self, info: LoadInfo) -> None:
        self._loading = False
        self.load_button.setEnabled(True)
        touch(self.services.ctx.db, Path(info.path))
        self.services.results_changed.emit()  # a model that failed here before now loads
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
        self.status.setText(text)
        self._show_thinking_switch(info)
        self.model_loaded.emit(info)
        template = self.conversation.settings.get("template") if self.conversation else None
        if needs_template(info, template):
            self._show_template_notice(info.template_options, info.template_suggestion, info.template_suggestion_reason)
            return
        if self._queued_send is not None:
            messages, self._queued_send = self._queued_send, None
            self._start(messages)

    def _show_thinking_switch(self, info: LoadInfo) -> None:
        self.thinking.setEnabled(info.thinking_switch is not None)
        self.thinking.setToolTip(
            f"This model's chat template turns thinking on or off ({info.thinking_switch}). Off: faster "
            "answers without the reasoning."
            if info.thinking_switch
            else "This model's chat template has no thinking switch: a reasoning model still shows its "
            "thinking apart from its answer."
        )

    def _on_load_failed(self, error: LocalopenError) -> None:
        self._loading = False
        self._queued_send = None
        self.services.results_changed.emit()  # the verdict now says it does not fit here
        self._on_failed(error)

    def _show_template_notice(self, options: list[str], suggestion: str | None, reason: str = "") -> None:
        why = (
            f" Suggested: <b>{html.escape(suggestion)}</b>, because {html.escape(reason)}."
            if suggestion and reason
            else ""
        )
        self.notice_text.setText(
            "<b>This model has no chat template.</b> localopen will not guess one (a wrong template produces "
            f"garbage). Choose plain completion, or a known template.{why}"
        )
        self.template_box.clear()
        for option in options:
            self.template_box.addItem(option, option)
        self.template_box.setCurrentIndex(max(0, self.template_box.findData(suggestion)))
        self.template_box.show()
        self.reload_button.hide()
        self.notice.show()
        self.template_needed.emit()

    def use_template(self, name: str | None = None) -> None:
        """Use the template chosen in the notice (or the one named) for this conversation."""
        if name is not None:
            self.template_box.setCurrentIndex(max(0, self.template_box.findData(name)))
        if self.conversation is None:
            self.new_chat()
        assert self.conversation is not None
        self.conversation.settings["template"] = self.template_box.currentData()
        convs.update(self.services.ctx.db, self.conversation.id, self.model_box.currentData(), self.settings_dict())
        self.notice.hide()
        if self._queued_send is not None:
            messages, self._queued_send = self._queued_send, None
            self._start(messages)

    # -- conversations ------------------------------------------------------------------------
    def reload_conversations(self) -> None:
        keep = self.conversation.id if self.conversation else None
        self.conv_list.blockSignals(True)
        self.conv_list.clear()
        for c in convs.list_all(self.services.ctx.db, self.conv_search.text()):
            item = QListWidgetItem(c.title)
            item.setData(Qt.ItemDataRole.UserRole, c.id)
            self.conv_list.addItem(item)
            if c.id == keep:
                self.conv_list.setCurrentItem(item)
        self.conv_list.blockSignals(False)

    def new_chat(self, model_path: str | None = None) -> None:
        if model_path:
            self.select_model(model_path)
            self.show_preset()
        settings = self.settings_dict()
        settings["template"] = None
        self.conversation = convs.create(
            self.services.ctx.db, chat.NEW_CHAT_TITLE, self.model_box.currentData(), settings
        )
        self.reload_conversations()
        self.render_conversation()
        self.input.setFocus()

    def _on_conversation_selected(self, item: QListWidgetItem | None, _previous: Any = None) -> None:
        if item is None or self.streaming:
            return
        self.conversation = convs.get(self.services.ctx.db, item.data(Qt.ItemDataRole.UserRole))
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
            convs.rename(self.services.ctx.db, self.conversation.id, title)
            self.conversation.title = title
            self.reload_conversations()

    def delete_chat(self) -> None:
        if self.conversation is None:
            return
        if (
            QMessageBox.question(self, "Delete chat", f"Delete '{self.conversation.title}'?")
            != QMessageBox.StandardButton.Yes
        ):
            return
        convs.delete(self.services.ctx.db, self.conversation.id)
        chat_images.prune(self.services.ctx)  # its pictures, unless another chat shows them
        self.conversation = None
        self.reload_conversations()
        self.render_conversation()

    # -- sending ------------------------------------------------------------------------------
    def send(self) -> None:
        text = self.input.toPlainText().strip()
        if not (text or self.attachments.pictures) or self.streaming:
            return
        model = self.model_box.currentData()
        if self.attachments.pictures and model and vision.pairing(model).projector is None:
            self.status.setText(html.escape(vision.no_vision(model)))  # the pictures stay attached
            return
        if self.conversation is None:
            self.new_chat()
        c = self.conversation
        assert c is not None
        title = c.title
        try:
            chat.add_user_turn(self.services.ctx, c, text, self._edit_position, self.attachments.pictures)
        except LocalopenError as exc:
            self.status.setText(html.escape(str(exc)))
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
        convs.update(self.services.ctx.db, c.id, self.model_box.currentData(), self.settings_dict())
        messages = self._history_messages() or []
        self.render_conversation()
        loaded = self.session.loaded  # the session is the one place that knows which model is loaded
        if self._loading:  # the load under way answers it when done: never a second load
            self._queued_send = messages
            return
        if loaded is None or not self.session.is_loaded(self.model_box.currentData(), self.load_options()):
            self._queued_send = messages
            self.load_model()
            return
        template = c.settings.get("template")
        if needs_template(loaded, template):
            self._queued_send = messages
            self._show_template_notice(
                loaded.template_options, loaded.template_suggestion, loaded.template_suggestion_reason
            )
            return
        self._start(messages)

    def _start(self, messages: list[dict[str, Any]]) -> None:
        c = self.conversation
        assert c is not None
        sampling = engine_options.sampling(
            temperature=self.temperature.value(),
            top_p=self.top_p.value(),
            top_k=self.top_k.value(),
            min_p=self.min_p.value(),
            repeat_penalty=self.repeat.value(),
            max_tokens=self.max_tokens.value(),
        )
        self.streaming = True
        self._answer, self._reasoning, self._pending = "", "", []
        self._live = _LiveThinking()
        self.stop_button.setEnabled(True)
        self.send_button.setEnabled(False)
        self.regen_button.setEnabled(False)
        self._begin_stream_block()
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
        """Insert the pieces that came since the last refresh: reasoning into the open Thinking
        section, the answer after it (the section collapses to one line when the answer starts)."""
        if not self._pending:
            return
        pieces, self._pending = self._pending, []
        cursor = QTextCursor(self.transcript.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        answer_grew = thinking_grew = False
        for piece in pieces:
            if isinstance(piece, ToolRun):
                if self._live.start is not None and not self._live.collapsed:
                    self._live.collapse(cursor)
                cursor.insertBlock()
                cursor.insertHtml(
                    _tool_run_html(
                        piece.call.name, piece.call.arguments, piece.result.text, piece.result.is_error, piece.result.ms
                    )
                )
                cursor.insertBlock()
                continue
            if piece.tool_call is not None:
                continue  # shown once it has run (or was not allowed)
            if piece.reasoning and not self._answer:
                if self._live.start is None:
                    self._live.begin(cursor)
                self._live.tokens += 1
                self._reasoning += piece.text
                cursor.insertText(piece.text, self._live.format)
                thinking_grew = True
            elif piece.reasoning:
                self._reasoning += piece.text  # thinking after the answer began: kept, not shown live
            else:
                if self._live.start is not None and not self._live.collapsed:
                    self._live.collapse(cursor)
                self._answer += piece.text
                cursor.insertText(piece.text, QTextCharFormat())
                answer_grew = True
        bar = self.transcript.verticalScrollBar()
        bar.setValue(bar.maximum())
        if thinking_grew:
            self.thinking_text.emit(self._reasoning)
        if answer_grew:
            self.answer_text.emit(self._answer)

    def _begin_stream_block(self) -> None:
        cursor = QTextCursor(self.transcript.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.insertHtml("<p><b>Assistant</b></p>")
        cursor.insertBlock()

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
        self.stop_button.setEnabled(False)
        self.send_button.setEnabled(True)
        self.regen_button.setEnabled(True)
        self.tools.approval.hide()
        if not stored and self.conversation is not None and (self._answer or self._reasoning or stats):
            content = self._answer + (f"\n\n*{note}*" if note else "")
            convs.add_message(self.services.ctx.db, self.conversation.id, "assistant", content, stats, self._reasoning)
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
            choice = error.choice
            self._show_template_notice(choice.options, choice.suggested, choice.reason)
            if self.streaming:
                self.flush_timer.stop()
                self.streaming = False
                self.stop_button.setEnabled(False)
                self.send_button.setEnabled(True)
                self.render_conversation()
            return
        if self.streaming:
            self._finish(None, note=f"Interrupted: {message}")
        self.status.setText(f"<span style='color:#c62828'>{html.escape(message)}</span>")
        if isinstance(error, (EngineDied, ModelLoadError, ContextTooLongError)):
            self.notice_text.setText(f"<b>{html.escape(message)}</b>")
            self.template_box.hide()
            self.reload_button.show()
            self.notice.show()
        self.failed.emit(message)

    def _history_messages(self) -> list[dict[str, Any]] | None:
        if self.conversation is None:
            return None
        return chat.conversation_messages(self.services.ctx, self.conversation.id, self.system.toPlainText())

    # -- rendering ----------------------------------------------------------------------------
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
        self.transcript.clear()
        stored = convs.messages(self.services.ctx.db, self.conversation.id) if self.conversation else []
        if not stored:  # an empty chat says what to do next
            self.transcript.setHtml(f"<p style='color:{theme.muted_colour()}'>{self._empty_hint()}</p>")
            return
        cursor = QTextCursor(self.transcript.document())
        calls = {c.get("id"): c.get("function", {}) for m in stored for c in m.tool_calls}
        for m in stored:
            if m.role == "tool":  # a call's result, shown with the call it answers
                function = calls.get(m.tool_call_id, {})
                cursor.insertHtml(
                    _tool_run_html(function.get("name", "tool"), str(function.get("arguments", "")), m.content)
                )
                cursor.insertBlock()
                continue
            who = "You" if m.role == "user" else "Assistant"
            links = f"<a href='copy:{m.position}'>Copy</a>"
            if m.role == "user":
                links += f" · <a href='edit:{m.position}'>Edit and resend</a>"
            cursor.insertHtml(f"<p><b>{who}</b> <small>{links}</small></p>")
            cursor.insertBlock()
            if m.reasoning:
                self._insert_thinking(cursor, m)
            if m.images:
                self._insert_pictures(cursor, m.images)
            cursor.insertMarkdown(keep_line_breaks(m.content))
            cursor.insertBlock()
            if m.stats:
                bits = m.stats.describe()
                color = "#b26a00" if m.stats.finish_reason == "length" else "#777"
                cursor.insertHtml(f"<p style='color:{color}'><small>{html.escape(' · '.join(bits))}</small></p>")
                cursor.insertBlock()
        self.transcript.moveCursor(QTextCursor.MoveOperation.End)

    def _insert_pictures(self, cursor: QTextCursor, names: list[str]) -> None:
        """A message's pictures as thumbnails (from the app's copies; a deleted one is said)."""
        document = self.transcript.document()
        tags = []
        for name in names:
            data = chat_images.load(self.services.ctx, name)
            if data is None:
                tags.append("<i>(a picture that is no longer on this computer)</i>")
                continue
            url = QUrl(f"chat-image:{name}")
            document.addResource(QTextDocument.ResourceType.ImageResource, url, thumbnail(data, PICTURE_SIDE).toImage())
            tags.append(f"<img src='chat-image:{html.escape(name)}'> ")
        cursor.insertHtml("<p>" + "".join(tags) + "</p>")
        cursor.insertBlock()

    def _insert_thinking(self, cursor: QTextCursor, m: convs.Message) -> None:
        """A stored answer's Thinking section: one line, opened and closed by a click."""
        expanded = m.position in self._expanded
        figures = [f"{m.stats.reasoning_tokens} tokens"] if m.stats and m.stats.reasoning_tokens else []
        if m.stats and m.stats.reasoning_ms is not None:
            figures.append(_duration(m.stats.reasoning_ms))
        label = ("▾ " if expanded else "▸ ") + "Thinking" + (f" ({', '.join(figures)})" if figures else "")
        cursor.insertHtml(f"<p><a href='think:{m.position}' style='color:#777'>{html.escape(label)}</a></p>")
        cursor.insertBlock()
        if expanded:
            cursor.insertText(m.reasoning.strip(), _thinking_format())
            cursor.insertBlock(QTextBlockFormat(), QTextCharFormat())

    def toggle_thinking(self, position: int) -> None:
        """Open or close the Thinking section of the answer at `position`."""
        self._expanded ^= {position}
        bar = self.transcript.verticalScrollBar()
        scroll = bar.value()
        self.render_conversation()
        bar.setValue(scroll)

    def _on_anchor(self, url: QUrl) -> None:
        action, _, position = url.toString().partition(":")
        if not position.isdigit():
            return
        if action == "think":
            self.toggle_thinking(int(position))
        else:
            (self.copy_message if action == "copy" else self.edit_message)(int(position))

    def _message_at(self, position: int) -> convs.Message | None:
        if self.conversation is None:
            return None
        return next(
            (m for m in convs.messages(self.services.ctx.db, self.conversation.id) if m.position == position), None
        )

    def copy_message(self, position: int) -> None:
        msg = self._message_at(position)
        if msg is not None:
            QGuiApplication.clipboard().setText(msg.content)
            self.status.setText("Copied.")

    def edit_message(self, position: int) -> None:
        """Put a message of yours back in the input: sending replaces it and everything after it."""
        msg = self._message_at(position)
        if msg is not None and not self.streaming:
            self.input.setPlainText(msg.content)
            self._edit_position = msg.position
            self.input.setFocus()
            self.status.setText("Editing: sending replaces this message and everything after it.")


def _tool_run_html(name: str, arguments: str, result: str, is_error: bool = False, ms: float | None = None) -> str:
    """A tool call in the transcript: the tool, its arguments, its result (or error) and its time."""
    e = html.escape
    shown = result if len(result) <= 600 else result[:600] + "…"
    colour = "#c62828" if is_error else "#555"
    took = f" · {ms:.0f} ms" if ms is not None else ""
    return (
        f"<p style='color:#555'><small>Tool call: <b>{e(name)}</b>(<code>{e(arguments)}</code>){took}</small><br>"
        f"<small style='color:{colour}'>{e(shown)}</small></p>"
    )


def keep_line_breaks(text: str) -> str:
    """Markdown joins single line breaks into one paragraph; chat apps keep them (a poem, an address,
    a list without bullets). Each single break becomes a hard break, except inside code blocks,
    which stay exact."""
    out, fenced = [], False
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
            out.append(line)
            continue
        following = lines[i + 1] if i + 1 < len(lines) else ""
        hard = not fenced and line.strip() and following.strip() and not line.endswith("  ")
        out.append(line + "  " if hard else line)
    return "\n".join(out)
