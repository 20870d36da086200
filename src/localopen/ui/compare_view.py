"""Compare: benchmark installed models with llama-bench's protocol, side by side, with charts.

The efficiency column is measured generation speed against this machine's memory-bandwidth bound.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
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
    QVBoxLayout,
    QWidget,
)

from localopen.core import results as results_mod
from localopen.core import verdict as verdicts
from localopen.core.errors import LocalopenError
from localopen.core.fit import human_bytes
from localopen.core.library import list_models
from localopen.engine.protocol import BenchParams, LoadOptions
from localopen.ui.engine_host import EngineThread
from localopen.ui.services import Services
from localopen.ui.widgets import button, spin

COLUMNS = ["Model", "Quant", "Openness", "pp t/s", "tg t/s", "TTFT", "Load", "Peak memory", "Efficiency", "Verdict"]


class CompareView(QWidget):
    _hashed = Signal(str, list, bool, dict)  # path, records, aborted, file facts (from a worker thread)

    def __init__(self, services: Services, engine: EngineThread) -> None:
        super().__init__()
        self.services, self.host = services, engine.host
        self.queue: list[str] = []
        self.running = False
        self.session: list[dict[str, Any]] = []  # records of this run, in order

        self.models = QListWidget()
        self.models.setAccessibleName("Installed models to compare")
        self.n_prompt = spin(0, 16384, 512, "Prompt tokens (pp)")
        self.n_gen = spin(0, 4096, 128, "Generated tokens (tg)")
        self.reps = spin(1, 50, 5, "Repetitions")
        self.threads = spin(0, 256, 0, "Threads (0 = physical cores)")
        self.ngl = spin(-1, 999, int(services.settings["n_gpu_layers"]), "GPU layers")
        self.run_button = button("Run benchmark", "Run the benchmark", self.run)
        self.cancel_button = button("Cancel", "Cancel the benchmark", self.cancel)
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setAccessibleName("Benchmark progress")
        self.progress_text = QLabel("")
        self.progress_text.setWordWrap(True)
        form = QFormLayout()
        for label, w in (("Prompt (pp)", self.n_prompt), ("Generate (tg)", self.n_gen), ("Repetitions", self.reps),
                         ("Threads", self.threads), ("GPU layers", self.ngl)):
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
        ll.addWidget(self.progress)
        ll.addWidget(self.progress_text)

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setAccessibleName("Benchmark results")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.chart_view = self._make_chart_view()
        exports = QHBoxLayout()
        for label, fmt in (("Export CSV", "csv"), ("Export JSON", "json"), ("Export Markdown", "md"),
                           ("Save chart as PNG", "png"), ("Show history", "history")):
            exports.addWidget(button(label, label, lambda f=fmt: self.export(f)))
        exports.addStretch(1)
        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(self.table, 2)
        rl.addWidget(self.chart_view, 3)
        rl.addLayout(exports)
        self.splitter = QSplitter()
        self.splitter.setObjectName("compare-splitter")
        self.splitter.addWidget(left)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(1, 3)
        layout = QVBoxLayout(self)
        layout.addWidget(self.splitter)

        self.host.bench_loaded.connect(self._on_loaded)
        self.host.bench_progress.connect(self._on_progress)
        self.host.bench_done.connect(self._on_done)
        self._hashed.connect(self._save)
        self.host.failed.connect(self._on_failed)
        services.library_changed.connect(self.reload_models)
        self.reload_models()
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
        checked = {self.models.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.models.count())
                   if self.models.item(i).checkState() == Qt.CheckState.Checked}
        self.models.clear()
        for m in list_models(self.services.db, self.services.paths.models_dir()):
            if m.missing:
                continue
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
        paths = [self.models.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.models.count())
                 if self.models.item(i).checkState() == Qt.CheckState.Checked]
        if not paths or self.running:
            self.progress_text.setText("Check at least one model." if not paths else "A benchmark is running.")
            return
        self.queue = paths
        self.session = []
        self.running = True
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress.setRange(0, len(paths) * 2 * (self.reps.value() + 1))
        self.progress.setValue(0)
        self.table.setRowCount(0)
        self._next()

    def _next(self) -> None:
        if not self.queue:
            self._end("Done.")
            return
        path = self.queue.pop(0)
        self.progress_text.setText(f"Loading {Path(path).name}…")
        options = LoadOptions(n_ctx=256, n_threads=self.threads.value() or None, n_gpu_layers=self.ngl.value())
        params = BenchParams(n_prompt=self.n_prompt.value(), n_gen=self.n_gen.value(), reps=self.reps.value(),
                             n_threads=self.threads.value() or None)
        self.host.bench_requested.emit(path, options, params)

    def cancel(self) -> None:
        if self.running:
            self.queue = []
            self.host.stop()
            self.progress_text.setText("Cancelling: finished tests are kept…")

    def _end(self, text: str) -> None:
        self.running = False
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.progress_text.setText(text)
        self.progress.setValue(self.progress.maximum())

    def _on_loaded(self, info: dict[str, Any]) -> None:
        self._current_info = info
        self.progress_text.setText(f"{info['name']}: loaded in {info['load_time_ms']:.0f} ms on {info['backend']}")

    def _on_progress(self, message: str) -> None:
        self.progress.setValue(self.progress.value() + 1)
        self.progress_text.setText(message)

    def _on_done(self, path: str, records: list[dict[str, Any]], aborted: bool) -> None:
        """Hash the file and read its header off the UI thread (the first sha256 of a multi-GB model
        takes seconds; a header with a large vocabulary ~0.1 s)."""
        self.progress_text.setText(f"{Path(path).name}: checking the file's sha256…")
        connect, known = self.services.new_connection, self.services.catalog.evidence_by_repo()

        def work() -> None:
            conn = connect()
            try:
                facts = results_mod.file_facts(conn, Path(path), known)
            except (OSError, LocalopenError) as exc:
                facts = {"sha256": "", "quantization": "?", "model_name": Path(path).name, "grade": "?",
                         "note": str(exc)}
            finally:
                conn.close()
            self._hashed.emit(path, records, aborted, facts)

        threading.Thread(target=work, daemon=True, name="bench-sha256").start()

    def _save(self, path: str, records: list[dict[str, Any]], aborted: bool, facts: dict[str, Any]) -> None:
        s = self.services
        info = getattr(self, "_current_info", {})
        facts = {**facts, **results_mod.run_facts(s.profile, info.get("llama_cpp_version"))}
        for r in records:
            r.update(facts)
            r["id"] = results_mod.save(s.db, r)
        self.session.extend(records)
        self._fill(self.session)
        s.results_changed.emit()
        if aborted:
            self.queue = []
            self._end("Cancelled; finished tests are saved.")
        else:
            self._next()

    def _on_failed(self, message: str, kind: str, details: dict[str, Any]) -> None:
        if self.running:
            self.progress_text.setText(f"<span style='color:#c62828'>{message}</span>")
            self._next()

    # -- table, chart, history, export -------------------------------------------------------------
    def _rows(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """One row per model: its pp and tg results side by side."""
        by_model: dict[str, dict[str, Any]] = {}
        for r in records:
            row = by_model.setdefault(r["model_filename"], {"records": []})
            row["records"].append(r)
            row["pp" if r["n_prompt"] else "tg"] = r
        return list(by_model.values())

    def _fill(self, records: list[dict[str, Any]]) -> None:
        s = self.services
        rows = self._rows(records)
        self.table.setRowCount(len(rows))
        for i, row in enumerate(rows):
            pp, tg = row.get("pp"), row.get("tg")
            base = tg or pp
            efficiency = ""
            if tg and s.profile and s.profile.bandwidth_gbs and base["model_size"]:
                # Dense decode reads every weight once per token: the bandwidth bound.
                bound = s.profile.bandwidth_gbs * 1e9 / base["model_size"]
                efficiency = f"{tg['avg_ts'] / bound:.0%} of {bound:.0f}"
            verdict = verdicts.measured(tg["avg_ts"], pp["avg_ts"] if pp else None, s.thresholds).band if tg else ""
            values = [
                Path(base["model_filename"]).name, base.get("quantization", ""), base.get("grade", ""),
                f"{pp['avg_ts']:.1f} ± {pp['stddev_ts']:.1f}" if pp else "",
                f"{tg['avg_ts']:.1f} ± {tg['stddev_ts']:.1f}" if tg else "",
                f"{pp['ttft_ms']:.0f} ms" if pp and pp.get("ttft_ms") else "",
                f"{base['load_time_ms']:.0f} ms" if base.get("load_time_ms") else "",
                human_bytes(base.get("peak_rss_bytes")), efficiency, verdict,
            ]
            for c, v in enumerate(values):
                self.table.setItem(i, c, QTableWidgetItem(v))
        self._chart(rows)

    def _chart(self, rows: list[dict[str, Any]]) -> None:
        from PySide6.QtCharts import QBarCategoryAxis, QBarSeries, QBarSet, QChart, QValueAxis

        chart = QChart()
        chart.setTitle("Throughput on this machine (tokens/s)")
        series = QBarSeries()
        pp_set, tg_set = QBarSet("prompt (pp)"), QBarSet("generation (tg)")
        names = []
        for row in rows:
            base = row.get("tg") or row.get("pp")
            names.append(Path(base["model_filename"]).stem[:24])
            pp_set.append(row["pp"]["avg_ts"] if "pp" in row else 0.0)
            tg_set.append(row["tg"]["avg_ts"] if "tg" in row else 0.0)
        series.append(pp_set)
        series.append(tg_set)
        chart.addSeries(series)
        axis_x = QBarCategoryAxis()
        axis_x.append(names)
        chart.addAxis(axis_x, Qt.AlignmentFlag.AlignBottom)
        series.attachAxis(axis_x)
        axis_y = QValueAxis()
        axis_y.setLabelFormat("%.0f")
        chart.addAxis(axis_y, Qt.AlignmentFlag.AlignLeft)
        series.attachAxis(axis_y)
        chart.legend().setAlignment(Qt.AlignmentFlag.AlignBottom)
        self.chart_view.setChart(chart)

    def show_history(self) -> None:
        machine = self.services.profile.fingerprint if self.services.profile else None
        records = results_mod.query(self.services.db, machine=machine)
        if records:
            self.session = records
            self._fill(records)
            self.progress_text.setText(f"{len(records)} earlier results on this machine.")

    def export(self, fmt: str) -> None:
        if fmt == "history":
            self.show_history()
            return
        if fmt == "png":
            path, _ = QFileDialog.getSaveFileName(self, "Save chart", "throughput.png", "PNG (*.png)")
            if path:
                self.chart_view.grab().save(path)
            return
        text = {"csv": results_mod.to_csv, "json": results_mod.to_json, "md": results_mod.markdown}[fmt](self.session)
        path, _ = QFileDialog.getSaveFileName(self, "Export results", f"results.{fmt}")
        if path:
            Path(path).write_text(text if fmt != "json" else json.dumps(json.loads(text), indent=2))
