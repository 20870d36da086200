"""Small constructors for the controls every view makes: always with an accessible name."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtWidgets import QComboBox, QDoubleSpinBox, QPushButton, QSpinBox

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
