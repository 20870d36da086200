"""Where a message is written: the input (Enter sends, Shift+Enter a new line, pictures pasted or
dropped are attached), the attached pictures, and the Attach, Regenerate, Stop and Send buttons."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QPlainTextEdit, QVBoxLayout, QWidget

from localopen.ui.chat_attachments import Attachments, pictures_in
from localopen.ui.widgets import button


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


class Composer(QWidget):
    send = Signal()
    stop = Signal()
    regenerate = Signal()

    def __init__(self, above_input: QWidget) -> None:
        """`above_input`: what sits between the pictures and the input (a tool call's question)."""
        super().__init__()
        self.input = MessageInput()
        self.input.setAccessibleName("Message (Enter sends, Shift+Enter new line)")
        self.input.setPlaceholderText("Message… (Enter sends, Shift+Enter for a new line)")
        self.input.setMaximumHeight(110)
        self.input.submitted.connect(self.send)
        self.attachments = Attachments()
        self.input.pictures.connect(self.attachments.add_all)
        self.attach_button = button(
            "Attach picture…", "Attach pictures for a vision model to see", self.attachments.choose
        )
        self.send_button = button("Send", "Send the message", self.send.emit)
        self.stop_button = button("Stop", "Stop the answer (Esc)", self.stop.emit)
        self.stop_button.setEnabled(False)
        self.regen_button = button("Regenerate", "Regenerate the last answer", self.regenerate.emit)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(above_input)
        layout.addWidget(self.attachments)
        layout.addWidget(self.input)
        buttons = QHBoxLayout()
        buttons.addWidget(self.attach_button)
        buttons.addWidget(self.regen_button)
        buttons.addStretch(1)
        buttons.addWidget(self.stop_button)
        buttons.addWidget(self.send_button)
        layout.addLayout(buttons)

    def answering(self, on: bool) -> None:
        """While an answer streams: Stop on, Send and Regenerate off."""
        self.stop_button.setText("Stop")
        self.stop_button.setEnabled(on)
        self.send_button.setEnabled(not on)
        self.regen_button.setEnabled(not on)

    def stopping(self) -> None:
        """Stop was asked: said on the button until the answer has ended."""
        self.stop_button.setText("Stopping…")
        self.stop_button.setEnabled(False)
