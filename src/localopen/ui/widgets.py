"""Small constructors for the controls every view makes: always with an accessible name."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtWidgets import QDoubleSpinBox, QPushButton, QSpinBox


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
