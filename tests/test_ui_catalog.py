"""The main window's catalog table, driven as real widgets offscreen."""

from __future__ import annotations

from pathlib import Path

from localopen.core.catalog import load_catalog
from localopen.core.paths import app_paths
from localopen.ui.main_window import MainWindow


def test_catalog_window_shows_models_and_fit(qtbot, tmp_path: Path) -> None:
    window = MainWindow(load_catalog(), app_paths())
    qtbot.addWidget(window)
    window.show()
    assert window.proxy.rowCount() >= 30
    with qtbot.waitSignal(window.profile_ready, timeout=30000):
        pass
    assert "This machine" in window.summary.text()
    fit_column = {window.proxy.index(r, 6).data() for r in range(window.proxy.rowCount())}
    assert "reading this machine…" not in fit_column
    assert fit_column & {"fits in RAM", "fits on GPU"}

    window.search.setText("olmo")
    assert 0 < window.proxy.rowCount() < 10
    assert all("olmo" in window.proxy.index(r, 0).data() for r in range(window.proxy.rowCount()))
    window.search.clear()

    # Sorted by openness: grade A rows come first.
    assert window.proxy.index(0, 4).data().startswith("A")
    window.grab().save(str(tmp_path / "catalog.png"))
    assert (tmp_path / "catalog.png").stat().st_size > 1000
    window.close()
