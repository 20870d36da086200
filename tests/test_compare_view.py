"""Compare while it measures and after: Cancel honoured within a second, each finished test shown as
it ends with the time left estimated, and a chart and table that read well at a laptop's width."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from localopen.core.store.library_db import import_file
from localopen.ui.main_window import MainWindow

pytest.importorskip("llama_cpp")


def _compare_with(window: MainWindow, model: Path):  # type: ignore[no-untyped-def]
    import_file(window.services.ctx.db, model)
    window.services.library_changed.emit()
    compare = window.goto("Compare")
    compare.check(str(model.resolve()))
    return compare


@pytest.mark.parametrize("moment", ["pp512", "tg"])
def test_cancel_ends_a_long_benchmark_within_a_second(window: MainWindow, qtbot, gemma_path: Path, moment) -> None:
    compare = _compare_with(window, gemma_path)
    compare.n_prompt.setValue(512 if moment == "pp512" else 0)
    compare.n_gen.setValue(2048)
    compare.reps.setValue(50)
    compare.run()
    wanted = "pp512: run" if moment == "pp512" else "tg2048: warm-up"
    qtbot.waitUntil(lambda: wanted in compare.progress_text.text(), timeout=120000)
    asked = time.monotonic()
    compare.cancel()
    assert "Cancelling" in compare.progress_text.text()
    with qtbot.waitSignal(compare.run_finished, timeout=30000) as finished:
        pass
    assert time.monotonic() - asked < 1.5, time.monotonic() - asked
    assert "Cancelled" in finished.args[0]


def test_each_test_shows_its_row_as_it_ends_with_the_time_left(window: MainWindow, qtbot, gemma_path: Path) -> None:
    compare = _compare_with(window, gemma_path)
    compare.n_prompt.setValue(256)
    compare.n_gen.setValue(16)
    compare.reps.setValue(3)
    compare.run()
    # The prompt test ended, the generation test runs: its row is there already, with the time left.
    qtbot.waitUntil(lambda: "tg16: run 1/3" in compare.progress_text.text(), timeout=60000)
    assert compare.table.rowCount() == 1 and compare.table.item(0, 3).text()  # pp t/s filled
    assert not compare.table.item(0, 4).text()  # tg: not yet
    assert "left" in compare.progress_text.text()
    with qtbot.waitSignal(compare.run_finished, timeout=60000):
        pass
    assert compare.table.rowCount() == 1 and compare.table.item(0, 4).text()


def test_the_chart_and_table_read_well(window: MainWindow, qtbot, tiny_gguf: Path) -> None:
    from PySide6.QtCharts import QValueAxis

    from localopen.ui.compare_view import COLUMNS, elide_middle

    compare = _compare_with(window, tiny_gguf)
    compare.n_prompt.setValue(16)
    compare.n_gen.setValue(4)
    compare.reps.setValue(1)
    with qtbot.waitSignal(compare.run_finished, timeout=60000):
        compare.run()
    chart = compare.chart_view.chart()
    axis = next(a for a in chart.axes() if isinstance(a, QValueAxis))
    ticks = [axis.min() + i * (axis.max() - axis.min()) / (axis.tickCount() - 1) for i in range(axis.tickCount())]
    labels = [axis.labelFormat() % t for t in ticks]
    assert len(set(labels)) == len(labels), labels  # each tick written once
    # The chart takes the window's colours (a dark scheme: no white box).
    assert chart.backgroundBrush().color() == compare.palette().color(compare.palette().ColorRole.Base)
    # Efficiency explained where it is read, a name's whole text in its tooltip.
    header = compare.table.horizontalHeaderItem(COLUMNS.index("Efficiency"))
    assert "bandwidth" in header.toolTip()
    tip = compare.table.item(0, 0).toolTip()
    assert tip.startswith(compare.table.item(0, 0).text()) and "Efficiency:" in tip and "Load:" in tip
    assert elide_middle("Qwen2.5-Coder-1.5B-Instruct-Q4_K_M", 20) == "Qwen2.5-C…uct-Q4_K_M"
    # At a laptop's 1280x800 the table fits its pane, even with a vision model's column: no sideways scrolling,
    # and the name keeps a readable width.
    from PySide6.QtWidgets import QTableWidgetItem

    compare.table.setItem(0, COLUMNS.index("Image"), QTableWidgetItem("0.3 ms (4 tokens)"))
    compare.table.item(0, 0).setText("gemma-3-270m-vision-q4_k_m.gguf")
    window.resize(1280, 800)
    qtbot.wait(200)
    compare.fit_columns()
    assert not compare.table.isColumnHidden(COLUMNS.index("Image"))
    assert compare.table.horizontalScrollBar().maximum() == 0
    assert compare.table.columnWidth(0) >= 120
    assert not compare.table.wordWrap() and compare.table.textElideMode() == Qt.TextElideMode.ElideMiddle
