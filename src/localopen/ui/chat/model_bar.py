"""The model a conversation uses: the installed models to choose from, Load, the status line (what
loaded, how fast, its memory), and the notice that asks for a chat template or offers a reload."""

from __future__ import annotations

import html

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import QComboBox, QFrame, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from localopen.core.estimate.memory import human_bytes
from localopen.core.store.library_db import LibraryModel
from localopen.ui.widgets import button

PASSING_MS = 6000  # how long a passing word stays in the status line


class ModelBar(QWidget):
    load = Signal()
    picked = Signal()  # a model the person chose in the list
    use_template = Signal()

    def __init__(self) -> None:
        super().__init__()
        self.model_box = QComboBox()
        self.model_box.setAccessibleName("Model for this conversation")
        self.model_box.setMinimumContentsLength(30)
        self.model_box.activated.connect(lambda _i: self.picked.emit())
        self.load_button = button("Load", "Load the model", self.load.emit)
        self.status = QLabel("")
        self.status.setAccessibleName("Model status")
        self.status.setWordWrap(True)
        self.state = ""  # what is true of the model now: the status line whenever nothing passing is said
        self._passing = QTimer(self)
        self._passing.setSingleShot(True)
        self._passing.setInterval(PASSING_MS)
        self._passing.timeout.connect(lambda: self.status.setText(self.state))
        self.notice = QFrame()
        self.notice.setFrameShape(QFrame.Shape.StyledPanel)
        self.notice_text = QLabel()
        self.notice_text.setWordWrap(True)
        self.template_box = QComboBox()
        self.template_box.setAccessibleName("Chat template to use")
        # Not connected to a slot with arguments: clicked(bool) would arrive as its first one.
        self.use_template_button = button("Use this", "Use the chosen chat template", self.use_template.emit)
        self.reload_button = button("Reload model", "Reload the model", self.load.emit)
        nl = QHBoxLayout(self.notice)
        nl.addWidget(self.notice_text, 1)
        nl.addWidget(self.template_box)
        nl.addWidget(self.use_template_button)
        nl.addWidget(self.reload_button)
        self.notice.hide()
        top = QHBoxLayout()
        top.addWidget(QLabel("Model"))
        top.addWidget(self.model_box, 1)
        top.addWidget(self.load_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.status)
        layout.addWidget(self.notice)

    def show_state(self, text: str) -> None:
        """What is true of the chosen model now (to load, loading, loaded, failed)."""
        self.state = text
        self._passing.stop()
        self.status.setText(text)

    def say(self, text: str) -> None:
        """A passing word (copied, saved, editing): shown a few seconds, then the model's state again."""
        self.status.setText(text)
        self._passing.start()

    def fill(self, models: list[LibraryModel]) -> None:
        """The installed models (present on disk), the chosen one kept."""
        current = self.model_box.currentData()
        self.model_box.clear()
        for m in models:
            if not m.missing:
                self.model_box.addItem(f"{m.name} ({m.quant or '?'}, {human_bytes(m.size)})", str(m.path))
        if current:
            self.select(current)

    def select(self, path: str) -> None:
        i = self.model_box.findData(path)
        if i >= 0:
            self.model_box.setCurrentIndex(i)

    def path(self) -> str | None:
        data = self.model_box.currentData()
        return str(data) if data else None

    def ask_for_template(self, options: list[str], suggestion: str | None, reason: str = "") -> None:
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
        self.use_template_button.show()
        self.reload_button.hide()
        self.notice.show()

    def offer_reload(self, headline: str, what_next: str = "") -> None:
        """A load that failed or an engine that ended: said once, with Reload model beside it."""
        self.notice_text.setText(f"<b>{html.escape(headline)}</b> {html.escape(what_next)}")
        self.template_box.hide()
        self.use_template_button.hide()
        self.reload_button.show()
        self.notice.show()
