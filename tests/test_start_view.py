"""The Start screen says failures where the user looks (a download that cannot start, a calibration
that did not finish) and uses a wide window's width."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from localopen.ui.main_window import MainWindow

pytest.importorskip("llama_cpp")


def _shown(window: MainWindow, qtbot):  # type: ignore[no-untyped-def]
    start = window.goto("Start")
    qtbot.waitUntil(lambda: bool(start.recommendations) and bool(start.buttons), timeout=20000)
    return start


def test_a_download_that_cannot_start_says_why_on_its_card_and_in_the_library(
    window: MainWindow, qtbot, monkeypatch
) -> None:
    start = _shown(window, qtbot)
    first = start.recommendations[0]
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens: no network
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    window.services.downloads.hub = window.services.ctx.hub()
    button = start.buttons[first.id]
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    message = start.messages[first.id]
    qtbot.waitUntil(lambda: message.isVisibleTo(start) and bool(message.text()), timeout=60000)
    assert "did not start" in message.text() and "try again" in message.text()
    assert start.buttons[first.id].text() == "Try again" and start.buttons[first.id].isEnabled()
    # The Library's Downloads panel, made after the failure, lists the download and why.
    library = window.goto("Library")
    rows = list(library.downloads.rows.values())
    assert len(rows) == 1 and rows[0].job.state == "failed"
    assert not library.downloads.empty.isVisibleTo(library) and rows[0].status.text()
    # Shown again (the list refreshes as facts change): the card still says it.
    start._show(start.recommendations)
    assert start.messages[first.id].text() == message.text() and start.buttons[first.id].text() == "Try again"


def test_a_calibration_that_did_not_finish_stays_said_with_a_retry(window: MainWindow, qtbot) -> None:
    start = _shown(window, qtbot)
    window.services.calibration.failed.emit("The calibration measurements could not be used; try again.")
    assert start.calibration_box.isVisibleTo(start) and start.retry.isVisibleTo(start)
    assert "did not finish" in start.progress_text.text() and not start.progress.isVisibleTo(start)


def test_a_wide_window_shows_the_models_in_two_columns(window: MainWindow, qtbot) -> None:
    start = _shown(window, qtbot)
    window.resize(1280, 800)
    qtbot.waitUntil(lambda: start.columns == 1, timeout=5000)
    window.resize(1920, 1080)
    qtbot.waitUntil(lambda: start.columns == 2, timeout=5000)
    cards = start.cards
    assert len(cards) >= 2
    qtbot.waitUntil(lambda: cards[0].y() == cards[1].y() and cards[0].x() < cards[1].x(), timeout=5000)
