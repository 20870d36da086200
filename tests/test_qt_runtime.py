"""Guards on the Qt bindings themselves, for defects that would crash the app in use."""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject, Signal


class _Emitter(QObject):
    happened = Signal(object)


def test_emitting_a_signal_keeps_the_reference_to_true() -> None:
    """PySide6 6.12.0 drops one reference to True on every emit(). On Python before 3.12, where
    True is reference-counted, a streamed answer of a few hundred tokens then brings it to zero
    and the interpreter aborts ('bool_dealloc'), during the chat or at exit. pyproject.toml keeps
    PySide6 below 6.12 for this; this test says when a version is safe again."""
    emitter = _Emitter()
    received: list[object] = []
    emitter.happened.connect(received.append)
    before = sys.getrefcount(True)
    for _ in range(200):
        emitter.happened.emit("token")
    assert len(received) == 200
    assert sys.getrefcount(True) - before > -20, "each emit() lost a reference to True"
