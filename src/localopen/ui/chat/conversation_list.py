"""The conversations, newest first, searchable, with New chat, Rename and Delete."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLineEdit, QListWidget, QListWidgetItem, QVBoxLayout, QWidget

from localopen.core.chat.conversations import Conversation
from localopen.ui.widgets import button


class ConversationList(QWidget):
    selected = Signal(int)  # a conversation's id
    new_chat = Signal()
    rename = Signal()
    delete = Signal()
    search_changed = Signal()

    def __init__(self) -> None:
        super().__init__()
        self.search = QLineEdit(placeholderText="Search chats…")
        self.search.setAccessibleName("Search conversations")
        self.search.textChanged.connect(self.search_changed)
        self.items = QListWidget()
        self.items.setAccessibleName("Conversations")
        self.items.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.items.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.items.currentItemChanged.connect(self._on_current)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(button("New chat", "New chat (Ctrl+N)", self.new_chat.emit))
        layout.addWidget(self.search)
        layout.addWidget(self.items, 1)
        row = QHBoxLayout()
        row.addWidget(button("Rename", "Rename the conversation", self.rename.emit))
        row.addWidget(button("Delete", "Delete the conversation", self.delete.emit))
        layout.addLayout(row)

    def show_list(self, conversations: list[Conversation], current: int | None) -> None:
        """These conversations, the current one selected (without announcing it again)."""
        self.items.blockSignals(True)
        self.items.clear()
        for c in conversations:
            item = QListWidgetItem(c.title)
            item.setData(Qt.ItemDataRole.UserRole, c.id)
            self.items.addItem(item)
            if c.id == current:
                self.items.setCurrentItem(item)
        self.items.blockSignals(False)

    def _on_current(self, item: QListWidgetItem | None, _previous: Any = None) -> None:
        if item is not None:
            self.selected.emit(int(item.data(Qt.ItemDataRole.UserRole)))
