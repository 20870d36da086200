"""Small constructors for the controls every view makes (always with an accessible name), and the
note an empty table shows while its rows are computed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import QAbstractItemView, QComboBox, QDoubleSpinBox, QLabel, QPushButton, QSpinBox

from localopen.core.estimate.memory import KV_TYPES


def button(text: str, name: str, slot: Callable[[], object] | None = None) -> QPushButton:
    b = QPushButton(text)
    b.setAccessibleName(name)
    if slot is not None:
        b.clicked.connect(slot)
    return b


def spin(lo: int, hi: int, value: int, name: str) -> QSpinBox:
    w = QSpinBox(minimum=lo, maximum=hi, value=value)
    w.setAccessibleName(name)
    return w


def dspin(lo: float, hi: float, value: float, name: str, step: float = 0.05) -> QDoubleSpinBox:
    w = QDoubleSpinBox(minimum=lo, maximum=hi, singleStep=step, decimals=2, value=value)
    w.setAccessibleName(name)
    return w


def kv_cache_box(current: str, name: str) -> QComboBox:
    """The KV cache's types, the current one chosen (each item's data is its name)."""
    w = QComboBox()
    w.setAccessibleName(name)
    w.setToolTip("The KV cache's type: q8_0 takes about half the memory of f16, q4_0 about a quarter")
    for kind in KV_TYPES:
        w.addItem(kind, kind)
    w.setCurrentIndex(w.findData(current))
    return w


class LoadingNote(QLabel):
    """What an empty table waits for, written over it while its rows are computed in the
    background (a table that stays blank for seconds looks broken)."""

    def __init__(self, view: QAbstractItemView, text: str) -> None:
        super().__init__(text, view.viewport())
        self.view = view
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setWordWrap(True)
        self.setEnabled(False)  # the palette's muted text
        view.viewport().installEventFilter(self)
        self.hide()

    def eventFilter(self, watched: QObject, event: Any) -> bool:  # noqa: N802 - Qt's name
        if event.type() == QEvent.Type.Resize:
            self.setGeometry(self.view.viewport().rect())
        return False

    def waiting(self, on: bool) -> None:
        """Shown while `on` and the table has no rows yet."""
        model = self.view.model()
        self.setVisible(on and (model is None or model.rowCount() == 0))
        self.setGeometry(self.view.viewport().rect())
