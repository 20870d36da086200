"""The window fits the screen it opens on: a laptop's used whole, a large one not left mostly empty,
a size remembered from a larger screen not restored off the edges, every section usable at a
laptop's free area."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QRect, QSettings

from localopen.ui.main_window import SECTIONS, MainWindow, first_geometry
from localopen.ui.services import Services

pytest.importorskip("llama_cpp")

LAPTOP = QRect(0, 32, 1280, 768)  # 1280x800 less a top panel
DESKTOP = QRect(0, 0, 1920, 1048)  # 1920x1080 less a task bar


def test_a_laptops_screen_is_used_whole() -> None:
    rect, maximised = first_geometry(LAPTOP)
    assert maximised and rect == LAPTOP


@pytest.mark.parametrize("area", [DESKTOP, QRect(0, 0, 2560, 1400), QRect(1920, 0, 3840, 2120)])
def test_a_large_screen_gets_a_large_centred_window_with_room_for_its_frame(area: QRect) -> None:
    rect, maximised = first_geometry(area)
    assert not maximised
    assert area.contains(rect.adjusted(0, -30, 0, 0))  # its title bar on the screen too
    assert rect.width() >= 0.75 * area.width() and rect.height() >= 0.8 * area.height()
    assert abs(rect.center().x() - area.center().x()) <= 1 and abs(rect.center().y() - area.center().y()) <= 1


def test_a_size_kept_from_a_larger_screen_is_not_restored_off_the_edges(qtbot, window: MainWindow) -> None:
    window.setGeometry(0, 0, 2400, 1500)  # as left on a large monitor
    window.close()  # saves its geometry
    assert QSettings().value("window/geometry") is not None
    again = MainWindow(Services())
    qtbot.addWidget(again)
    area = again.screen().availableGeometry()
    assert area.contains(again.geometry()) and again.width() <= area.width()


def test_every_section_fits_a_laptops_free_area(window: MainWindow, qtbot) -> None:
    for name in SECTIONS:
        window.goto(name)
        qtbot.wait(20)
        hint = window.minimumSizeHint()
        assert hint.width() <= LAPTOP.width() and hint.height() <= LAPTOP.height() - 30, (name, hint)


def test_an_empty_table_says_what_it_waits_for(window: MainWindow, qtbot) -> None:
    explore = window.goto("Explore")
    qtbot.waitUntil(lambda: explore.settled, timeout=20000)
    explore.model.set_rows([])  # as when Explore first opens
    explore.reload()
    assert explore.loading.isVisibleTo(explore) and "Reading the catalog" in explore.loading.text()
    qtbot.waitUntil(lambda: explore.settled and explore.proxy.rowCount() > 0, timeout=20000)
    assert not explore.loading.isVisibleTo(explore)
    library = window.goto("Library")
    library.reload()
    assert library.loading.isVisibleTo(library)  # nothing installed yet: the note until the answer comes
    with qtbot.waitSignal(library.reloaded, timeout=20000):
        pass
    assert not library.loading.isVisibleTo(library)
