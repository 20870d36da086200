"""Compare: benchmark installed models with llama-bench's protocol, side by side, with charts.

Benchmarks run in engines of their own (a BenchmarkSession on its own thread), never in the
chat's. The efficiency column is measured generation speed against this machine's
memory-bandwidth bound, as the application layer computes it.
"""

from __future__ import annotations

import functools
import html
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QGuiApplication, QPalette
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from localopen.app import engine_options
from localopen.app.conversation import drafting
from localopen.app.index import share
from localopen.app.measure import draft_bench
from localopen.app.measure import tune as tuning
from localopen.app.measure.benchmark import (
    RERUN_PARAMS,
    BenchmarkSession,
    BenchRun,
    ComparisonRow,
    build_changes,
    compare,
    history,
    stale,
)
from localopen.app.measure.calibration import build_shift, llama_cpp_version
from localopen.app.models import library
from localopen.app.presets import preset_for
from localopen.core.errors import LocalopenError
from localopen.core.estimate.memory import human_bytes
from localopen.core.options import BenchParams
from localopen.core.records import BenchResult, LoadInfo
from localopen.core.report import bench_format
from localopen.ui.background import run_in_background
from localopen.ui.engine_runner import EngineRunner
from localopen.ui.services import Services
from localopen.ui.share_dialog import ShareDialog
from localopen.ui.widgets import button, spin

COLUMNS = [
    "Model", "Quant", "Grade", "pp t/s", "tg t/s", "Drafting", "TTFT", "Image", "Load", "Memory", "Efficiency",
    "Verdict",
]  # fmt: skip
HEADER_TIPS = {
    "Efficiency": (
        "Measured generation speed as a share of this machine's bound for the file: the tokens per second "
        "reachable if each token only read the model's weights once at the memory bandwidth measured here"
    ),
    "TTFT": "Time to first token: how long the prompt of the pp test takes before an answer could begin",
    "Memory": "The engine process's peak resident memory during the test",
    "Verdict": "How usable the generation speed is for chat, by the thresholds in Settings",
    "Grade": "Openness grade (A most open) from the catalog's evidence",
    "Drafting": "Speculative decoding's speed-up on each drafting task (the same text as plain decoding, or said)",
    "Image": "A vision model's time to encode the benchmark's picture (896x896), and its tokens",
}
LEFT_PANE = 290  # the models and the settings, in pixels: the results table needs the rest at 1280
CHART_NAME_CHARS = 26  # a model's name under its bars, elided in the middle beyond this
# Shown only when a result fills them (a drafting run, a vision model): the table stays within its pane.
OPTIONAL_COLUMNS = ("Drafting", "Image")
# Hidden in this order when the pane has no room for them beside a readable name (the name's tooltip
# and the exports keep every figure): never a sideways scroll at 1280x800.
SPARED_FIRST = ("Load", "TTFT", "Memory", "Quant", "Grade")
NAME_WIDTH = 170  # the least a model's name keeps, in pixels
# The Drafting choice: llama-bench's tests, or each model's drafting tasks plainly and drafted.
DRAFT_CHOICES = [
    ("Off: llama-bench's tests", None),
    ("Prompt lookup: speed-up", "lookup"),
    ("Draft model (suggested): speed-up", "model"),
]


class CompareView(QWidget):
    run_finished = Signal(str)  # how the run ended, in words
    tuned = Signal(object)  # a tuning's Choice

    def __init__(self, services: Services) -> None:
        super().__init__()
        self.services = services
        self.bench = BenchmarkSession(services.ctx)
        self.runner = EngineRunner("bench-engine")
        self.queue: list[str] = []
        self.running = False
        self.shown: list[BenchResult] = []  # results in the table, in order
        self._finished: list[BenchResult] = []  # this run's results of the models done
        self._began = 0.0  # when this run began (time.monotonic())

        self.models = QListWidget()
        self.models.setAccessibleName("Installed models to compare")
        self.models.setTextElideMode(Qt.TextElideMode.ElideMiddle)  # the pane stays narrow; the name's ends show
        self.models.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.n_prompt = spin(0, 16384, 512, "Prompt tokens (pp)")
        self.n_gen = spin(0, 4096, 128, "Generated tokens (tg)")
        self.reps = spin(1, 50, 5, "Repetitions")
        self.threads = spin(0, 256, services.ctx.settings.n_threads, "Threads (0 = physical cores)")
        self.ngl = spin(-1, 999, services.ctx.settings.n_gpu_layers, "GPU layers")
        self.drafting = QComboBox()
        self.drafting.setAccessibleName("Drafting")
        self.drafting.setToolTip(
            "Speculative decoding measured: each model copies a passage, edits code and answers a question, "
            "plainly and drafted, at temperature 0; the speed-up is shown (a draft model: the smallest "
            "installed model of the same family)"
        )
        for label, value in DRAFT_CHOICES:
            self.drafting.addItem(label, value)
        self.run_button = button("Run benchmark", "Run the benchmark", self.run)
        self.cancel_button = button("Cancel", "Cancel the benchmark", self.cancel)
        self.tune_button = button(
            "Tune for this machine",
            "Measure threads, batch, flash attention and KV cache for the checked model; keep what is faster",
            self.tune,
        )
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setAccessibleName("Benchmark progress")
        self.progress_text = QLabel("")
        self.progress_text.setWordWrap(True)
        form = QFormLayout()
        for label, w in (
            ("Prompt (pp)", self.n_prompt),
            ("Generate (tg)", self.n_gen),
            ("Repetitions", self.reps),
            ("Threads", self.threads),
            ("GPU layers", self.ngl),
            ("Drafting", self.drafting),
        ):
            form.addRow(label, w)
        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addWidget(QLabel("<b>Models</b> (check the ones to run)"))
        ll.addWidget(self.models, 1)
        ll.addLayout(form)
        row = QHBoxLayout()
        row.addWidget(self.run_button)
        row.addWidget(self.cancel_button)
        ll.addLayout(row)
        ll.addWidget(self.tune_button)
        ll.addWidget(self.progress)
        ll.addWidget(self.progress_text)

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setAccessibleName("Benchmark results")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)  # a long name keeps its quant at the end
        self.table.setWordWrap(False)  # wrapped at its dashes, a name would be cut at its end instead
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)  # the name takes what the figures leave
        header.setStretchLastSection(False)
        for name, tip in HEADER_TIPS.items():
            item = self.table.horizontalHeaderItem(COLUMNS.index(name))
            if item is not None:
                item.setToolTip(tip)
        self.rows: list[ComparisonRow] = []  # what the table and the chart show
        self.chart_view = self._make_chart_view()
        exports = QHBoxLayout()
        for label, fmt in (
            ("Export CSV", "csv"),
            ("Export JSON", "json"),
            ("Export Markdown", "md"),
            ("Save chart as PNG", "png"),
            ("Show history", "history"),
        ):
            exports.addWidget(button(label, label, functools.partial(self.export, fmt)))
        self.builds_button = button(
            "llama.cpp builds…", "Each model's speeds on the previous llama.cpp build and this one", self.show_builds
        )
        exports.addWidget(self.builds_button)
        self.share_button = button(
            "Share…",
            "Share results: see this machine's results not shared yet, then publish them to the open usability index",
            self.show_share,
        )
        exports.addWidget(self.share_button)
        exports.addStretch(1)
        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        # Nothing measured yet: say how to start, where the results will be.
        self.empty_hint = QLabel(
            "No results yet. Check one or more installed models on the left and press <b>Run benchmark</b>: "
            "prompt and generation speed are measured as llama-bench does and saved. <b>Tune for this machine</b> "
            "finds faster settings for one checked model. No model installed? <b>Start</b> recommends some."
        )
        self.empty_hint.setWordWrap(True)
        rl.addWidget(self.empty_hint)
        rl.addWidget(self.table, 2)
        rl.addWidget(self.chart_view, 3)
        rl.addLayout(exports)
        self.splitter = QSplitter()
        self.splitter.setObjectName("compare-splitter")
        self.splitter.addWidget(left)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(1, 3)
        self.splitter.setSizes([LEFT_PANE, 4 * LEFT_PANE])  # the results get the width (a kept state wins)
        layout = QVBoxLayout(self)
        layout.addWidget(self.splitter)

        services.library_changed.connect(self.reload_models)
        QGuiApplication.styleHints().colorSchemeChanged.connect(lambda _scheme: self._chart(self.rows))
        self.reload_models()
        self._chart([])  # an empty chart in the window's colours, not QtCharts' white box
        self.show_history()

    @staticmethod
    def _make_chart_view() -> Any:
        from PySide6.QtCharts import QChart, QChartView  # QtCharts loads only when Compare is built
        from PySide6.QtGui import QPainter

        view = QChartView(QChart())
        view.setAccessibleName("Throughput chart")
        view.setRenderHint(QPainter.RenderHint.Antialiasing)
        view.setMinimumHeight(220)
        return view

    def reload_models(self) -> None:
        checked = {
            self.models.item(i).data(Qt.ItemDataRole.UserRole)
            for i in range(self.models.count())
            if self.models.item(i).checkState() == Qt.CheckState.Checked
        }
        self.models.clear()
        for m in library.installed(self.services.ctx):
            item = QListWidgetItem(f"{m.name} ({m.quant or '?'}, {human_bytes(m.size)})")
            item.setData(Qt.ItemDataRole.UserRole, str(m.path))
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if str(m.path) in checked else Qt.CheckState.Unchecked)
            self.models.addItem(item)

    def check(self, path: str) -> None:
        for i in range(self.models.count()):
            item = self.models.item(i)
            if item.data(Qt.ItemDataRole.UserRole) == path:
                item.setCheckState(Qt.CheckState.Checked)

    # -- running ---------------------------------------------------------------------------------
    def run(self) -> None:
        paths = self._checked()
        if not paths or self.running:
            self.progress_text.setText("Check at least one model." if not paths else "A benchmark is running.")
            return
        self.queue = paths
        self.shown, self._finished = [], []
        self.running = True
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        if self.drafting.currentData():  # each task plainly and drafted, each repetition a step
            per_model = 2 * self.reps.value() * len(draft_bench.TASKS)
        else:  # each test's warm-up and repetitions, then the file's checksum
            tests = (self.n_prompt.value() > 0) + (self.n_gen.value() > 0)
            per_model = tests * (self.reps.value() + 1) + 1
        self.progress.setRange(0, len(paths) * per_model)
        self.progress.setValue(0)
        self._began = time.monotonic()
        self.table.setRowCount(0)
        self._next()

    def _next(self) -> None:
        if not self.queue:
            self._end("Done.")
            return
        path = self.queue.pop(0)
        self.progress_text.setText(f"Loading {Path(path).name}…")
        settings = self.services.ctx.settings
        # The model's preset applies; a value changed here from the settings' is this run's choice.
        options, params = engine_options.bench_options(
            settings,
            BenchParams(n_prompt=self.n_prompt.value(), n_gen=self.n_gen.value(), reps=self.reps.value()),
            n_threads=self.threads.value() if self.threads.value() != settings.n_threads else None,
            n_gpu_layers=self.ngl.value() if self.ngl.value() != settings.n_gpu_layers else None,
            preset=preset_for(self.services.ctx, path),
        )
        bench = self.bench
        work = lambda emit: bench.run(Path(path), options, params, emit, on_result=emit)  # noqa: E731
        if self.drafting.currentData():
            draft = self._draft_for(path)
            if draft is None:
                self.progress_text.setText(f"No installed model can draft for {Path(path).name}: skipped.")
                self._next()
                return
            load = engine_options.load_options(settings, preset=preset_for(self.services.ctx, path))
            n_gen, reps = self.n_gen.value() or 128, self.reps.value()
            work = lambda emit: bench.run_drafting(Path(path), load, draft, n_gen, reps, emit)  # noqa: E731
        self.runner.submit(work, on_progress=self._on_progress, on_done=self._on_done, on_failed=self._on_failed)

    def _draft_for(self, path: str) -> str | None:
        """The drafter the Drafting choice means for this model: lookup, or its suggested draft model."""
        if self.drafting.currentData() == "lookup":
            return "lookup"
        found = drafting.candidates(self.services.ctx, path)
        return str(found[0].path) if found else None

    def tune(self) -> None:
        """The checked model's load settings measured here; what is faster is kept as its preset."""
        paths = self._checked()
        if len(paths) != 1 or self.running:
            self.progress_text.setText("Check one model to tune." if not self.running else "A benchmark is running.")
            return
        path, ctx, bench = Path(paths[0]), self.services.ctx, self.bench
        self.running = True
        self.run_button.setEnabled(False)
        self.tune_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress.setRange(0, 0)  # busy: the sweep's length depends on this machine
        self.progress_text.setText(f"Tuning {path.name}: measuring its current settings…")

        def work(emit: Any) -> Any:
            choice = tuning.tune(ctx, path, bench, emit)
            tuning.save(ctx, path, choice)
            return choice

        self.runner.submit(work, self.progress_text.setText, self._on_tuned, self._on_tune_failed)

    def _on_tuned(self, choice: Any) -> None:
        self.tune_button.setEnabled(True)
        self.progress.setRange(0, 1)
        if choice.changed:
            said = f"Saved as the model's preset: {choice.best.candidate.label} ({choice.why})."
        else:
            said = f"No gain here: {choice.why}."
        base = choice.baseline
        self._end(f"{said} Current settings measured at tg {base.tg_ts:.1f}, pp {base.pp_ts:.1f} t/s.")
        self.tuned.emit(choice)

    def _on_tune_failed(self, error: LocalopenError) -> None:
        self.tune_button.setEnabled(True)
        self.progress.setRange(0, 1)
        self._end(str(error))

    def _checked(self) -> list[str]:
        return [
            self.models.item(i).data(Qt.ItemDataRole.UserRole)
            for i in range(self.models.count())
            if self.models.item(i).checkState() == Qt.CheckState.Checked
        ]

    def cancel(self) -> None:
        if self.running:
            self.queue = []
            self.bench.stop()  # a tuning sweep stops too (its engine is this session's)
            self.progress_text.setText("Cancelling: finished tests are kept…")

    def shutdown(self) -> None:
        """At quit: stop the run, end its engine process."""
        self.queue = []
        bench = self.bench
        self.runner.shutdown(stop=bench.stop, close=lambda: None, kill=bench.kill)

    def _end(self, text: str) -> None:
        self.running = False
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.progress_text.setText(text)
        self.progress.setValue(self.progress.maximum())
        self.run_finished.emit(text)

    def _on_progress(self, event: LoadInfo | BenchResult | str) -> None:
        if isinstance(event, LoadInfo):
            self.progress_text.setText(f"{event.name}: loaded in {event.load_time_ms:.0f} ms on {event.backend}")
            return
        if isinstance(event, BenchResult):  # a test ended: its row now, the model's other tests to come
            self.shown.append(event)
            self._fill(self.shown)
            return
        self.progress.setValue(self.progress.value() + 1)
        self.progress_text.setText(f"{html.escape(event)}{self._time_left()}")

    def _time_left(self) -> str:
        """About how long the run still takes, from the pace of the steps so far."""
        done, total = self.progress.value(), self.progress.maximum()
        if done < 2 or done >= total:
            return ""
        left = (time.monotonic() - self._began) / done * (total - done)
        return f" · about {_duration(left)} left"

    def _on_done(self, run: BenchRun) -> None:
        self.shown = self._finished + run.results  # the finished tests again, as saved
        self._finished = list(self.shown)
        self._fill(self.shown)
        self.services.results_changed.emit()
        if run.aborted:
            self.queue = []
            self._end("Cancelled; finished tests are saved.")
        else:
            self._next()

    def _on_failed(self, error: LocalopenError) -> None:
        self.services.results_changed.emit()  # a load that failed here changes the verdict
        if self.running:
            self.progress_text.setText(f"<span style='color:#c62828'>{error}</span>")
            self._next()

    # -- table, chart, history, export -------------------------------------------------------------
    def _fill(self, results: list[BenchResult]) -> None:
        rows = compare(results, self.services.ctx.thresholds)
        self.rows = rows
        self.table.setRowCount(len(rows))
        self.empty_hint.setVisible(not rows)
        for i, row in enumerate(rows):
            pp, tg, base = row.pp, row.tg, row.base
            efficiency = (
                f"{row.efficiency:.0%} of {tg.decode_bound_tps:.0f} t/s"
                if row.efficiency is not None and tg and tg.decode_bound_tps
                else ""
            )
            values = [
                row.name,
                base.quantization,
                base.grade,
                _speed(pp) if pp else "",
                _speed(tg) if tg else "",
                row.drafting_summary(),
                f"{pp.ttft_ms:.0f} ms" if pp and pp.ttft_ms else "",
                _image_encode(base),
                f"{base.load_time_ms:.0f} ms" if base.load_time_ms else "",
                human_bytes(base.peak_rss_bytes),
                efficiency,
                row.verdict.label if row.verdict else "",
            ]
            figures = "\n".join(f"{name}: {v}" for name, v in zip(COLUMNS[1:], values[1:]) if v)
            for c, v in enumerate(values):
                cell = QTableWidgetItem(v)
                if c == 0:  # the whole name, however the column elides it, and every figure shown or not
                    cell.setToolTip(f"{v}\n{figures}")
                self.table.setItem(i, c, cell)
        self.fit_columns()
        self._chart(rows)

    def fit_columns(self) -> None:
        """Every column a result fills, less those spared first where the pane is too narrow for
        them beside a readable name."""
        header, table = self.table.horizontalHeader(), self.table
        shown = []
        for c, name in enumerate(COLUMNS):
            filled = any((item := table.item(i, c)) is not None and item.text() for i in range(table.rowCount()))
            table.setColumnHidden(c, name in OPTIONAL_COLUMNS and not filled)
            if c and not table.isColumnHidden(c):
                shown.append(c)
        widths = {c: max(header.sectionSizeHint(c), table.sizeHintForColumn(c)) for c in shown}
        room = table.viewport().width() - NAME_WIDTH
        for name in SPARED_FIRST:
            if sum(widths.values()) <= room:
                break
            c = COLUMNS.index(name)
            table.setColumnHidden(c, True)
            widths.pop(c, None)

    def resizeEvent(self, event: Any) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        self.fit_columns()

    def _chart(self, rows: list[ComparisonRow]) -> None:
        """Prompt and generation speed per model, in the window's colours, on an axis whose ticks
        are round numbers each written once."""
        from PySide6.QtCharts import QBarCategoryAxis, QBarSeries, QBarSet, QChart, QValueAxis

        chart = QChart()
        palette = self.palette()
        text = palette.color(QPalette.ColorRole.WindowText)
        chart.setBackgroundBrush(palette.color(QPalette.ColorRole.Base))
        chart.setTitleBrush(text)
        chart.legend().setLabelColor(text)
        chart.setTitle("Throughput on this machine (tokens/s)")
        series = QBarSeries()
        pp_set, tg_set = QBarSet("prompt (pp)"), QBarSet("generation (tg)")
        names, top = [], 0.0
        for row in rows:
            names.append(elide_middle(row.name.removesuffix(".gguf"), CHART_NAME_CHARS))
            pp_set.append(row.pp.avg_ts if row.pp else 0.0)
            tg_set.append(row.tg.avg_ts if row.tg else 0.0)
            top = max(top, row.pp.avg_ts if row.pp else 0.0, row.tg.avg_ts if row.tg else 0.0)
        series.append(pp_set)
        series.append(tg_set)
        chart.addSeries(series)
        axis_x = QBarCategoryAxis()
        axis_x.append(names)
        axis_y = QValueAxis()
        axis_y.setRange(0, top or 1.0)
        axis_y.applyNiceNumbers()  # round ticks: 0, 5, 10… rather than 0, 0.8, 1.6…
        step = (axis_y.max() - axis_y.min()) / max(1, axis_y.tickCount() - 1)
        axis_y.setLabelFormat("%.0f" if step >= 1 else "%.1f" if step >= 0.1 else "%.2f")
        for axis, side in ((axis_x, Qt.AlignmentFlag.AlignBottom), (axis_y, Qt.AlignmentFlag.AlignLeft)):
            axis.setLabelsColor(text)
            chart.addAxis(axis, side)
            series.attachAxis(axis)
        chart.legend().setAlignment(Qt.AlignmentFlag.AlignBottom)
        self.chart_view.setChart(chart)
        self.chart_view.setBackgroundBrush(palette.color(QPalette.ColorRole.Base))

    def show_history(self) -> None:
        machine = self.services.profile.fingerprint if self.services.profile else None
        results = history(self.services.ctx, machine=machine)
        if results:
            self.shown = results
            self._fill(results)
            self.progress_text.setText(f"{len(results)} earlier results on this machine.")

    def show_builds(self) -> None:
        """The regression guard: each model's pp/tg on the previous build and this one, and an offer
        to measure again what only an earlier build measured."""
        ctx = self.services.ctx
        changes, waiting = build_changes(ctx), stale(ctx, llama_cpp_version())
        rows = "".join(
            f"<tr><td>{html.escape(c.model)}</td><td>{c.test}</td><td>{c.old_ts:.1f} ({c.old_build})</td>"
            f"<td>{c.new_ts:.1f} ({c.new_build})</td><td>{c.change:+.1%}</td>"
            f"<td>{('<b>slower</b>' if c.change < 0 else 'faster') if c.flagged else 'within noise'}</td></tr>"
            for c in changes
        )
        slower = [c for c in changes if c.slower]
        text = (
            "<table cellpadding=4><tr><th>Model</th><th>Test</th><th>Before</th><th>Now</th><th>Change</th>"
            f"<th></th></tr>{rows}</table>"
            if changes
            else "<p>No model has results on two llama.cpp builds on this machine yet.</p>"
        )
        if slower:
            text += f"<p>Slower beyond the noise. To go back: <code>{html.escape(slower[0].pin_command)}</code></p>"
        shift = build_shift(ctx)
        if shift:
            lines = "".join(f"<li>{html.escape(x.describe())}</li>" for x in shift[1])
            text += f"<p>This machine's calibration since llama.cpp {html.escape(shift[0])}:</p><ul>{lines}</ul>"
        dialog = QDialog(self)
        dialog.setWindowTitle("llama.cpp builds compared")
        view = QTextBrowser()
        view.setHtml(text)
        layout = QVBoxLayout(dialog)
        layout.addWidget(view)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(dialog.reject)
        if waiting:
            layout.addWidget(
                QLabel(f"{len(waiting)} installed model(s) were measured only with an earlier llama.cpp build.")
            )
            again = buttons.addButton("Measure them with this build", QDialogButtonBox.ButtonRole.AcceptRole)
            again.setAccessibleName("Measure again with this llama.cpp build (short protocol)")
            again.clicked.connect(dialog.accept)
            again.clicked.connect(lambda: self.measure_again(waiting))
        layout.addWidget(buttons)
        dialog.resize(760, 420)
        self.builds_dialog = dialog
        dialog.open()

    def show_share(self) -> None:
        """What a share would send (prepared off the UI thread), in a dialog that sends only on Publish."""
        ctx = self.services.ctx
        self.share_button.setEnabled(False)

        def shown(submission: share.Submission) -> None:
            self.share_button.setEnabled(True)
            self.share_dialog = ShareDialog(self.services, submission, self)
            self.share_dialog.open()

        def failed(error: LocalopenError) -> None:
            self.share_button.setEnabled(True)
            self.progress_text.setText(f"Results could not be read for sharing: {error}")

        run_in_background(lambda: share.prepare(ctx), shown, failed, name="share-prepare", owner=self)

    def measure_again(self, paths: list[Path]) -> None:
        """The short protocol on these models (enough repetitions to flag a change)."""
        for i in range(self.models.count()):
            item = self.models.item(i)
            wanted = item.data(Qt.ItemDataRole.UserRole) in {str(p) for p in paths}
            item.setCheckState(Qt.CheckState.Checked if wanted else Qt.CheckState.Unchecked)
        self.drafting.setCurrentIndex(0)  # llama-bench's tests, as the earlier build's results
        self.n_prompt.setValue(RERUN_PARAMS.n_prompt)
        self.n_gen.setValue(RERUN_PARAMS.n_gen)
        self.reps.setValue(RERUN_PARAMS.reps)
        self.run()

    def export(self, fmt: str) -> None:
        if fmt == "history":
            self.show_history()
            return
        if fmt == "png":
            path, _ = QFileDialog.getSaveFileName(self, "Save chart", "throughput.png", "PNG (*.png)")
            if path:
                self.chart_view.grab().save(path)
            return
        text = bench_format.FORMATS[fmt](self.shown)
        path, _ = QFileDialog.getSaveFileName(self, "Export results", f"results.{fmt}")
        if path:
            Path(path).write_text(text, encoding="utf-8")


def _speed(result: BenchResult) -> str:
    """Tokens per second with their spread, to three figures (826 ± 64, 29.7 ± 6.6)."""
    digits = 0 if result.avg_ts >= 100 else 1
    return f"{result.avg_ts:.{digits}f} ± {result.stddev_ts:.{digits}f}"


def elide_middle(text: str, chars: int) -> str:
    """A name shortened in its middle, so its start and its quant at the end stay readable."""
    if len(text) <= chars:
        return text
    head = (chars - 1) // 2
    return text[:head] + "…" + text[-(chars - 1 - head) :]


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _image_encode(result: BenchResult) -> str:
    """A vision model's time to encode the benchmark's picture (896x896) and its tokens."""
    if result.image_encode_ms is None:
        return ""
    ms = result.image_encode_ms
    return f"{ms:.1f} ms ({result.image_tokens} tokens)" if ms < 10 else f"{ms:.0f} ms ({result.image_tokens} tokens)"
