"""Explore: the catalog and Hub search results, filters, and a detail pane with the evidence."""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSplitter,
    QTableView,
    QTableWidget,
    QTableWidgetItem,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from localopen.app.context import AppContext
from localopen.app.conversation import capabilities
from localopen.app.index import read as index_reader
from localopen.app.measure.probe import ProbeReport, ProbeSession
from localopen.app.models import hub_search, library
from localopen.app.models.hub_search import HubResult
from localopen.app.usable.usable_here import MachineSnapshot, catalog_rows, quant_rows
from localopen.core.errors import LocalopenError
from localopen.core.estimate.memory import human_bytes
from localopen.core.estimate.speed import Calibration
from localopen.core.estimate.verdict import Verdict
from localopen.core.machine.hardware import HardwareProfile
from localopen.core.openness.grade import COMPONENTS
from localopen.core.records import LoadInfo
from localopen.ui import theme
from localopen.ui.background import run_in_background
from localopen.ui.engine_runner import EngineRunner
from localopen.ui.explore_model import ALWAYS_SHOWN, OPENNESS_COLUMN, ROW_ROLE, ExploreFilter, ExploreModel, ExploreRow
from localopen.ui.services import Services
from localopen.ui.widgets import LoadingNote

QUANT_COLUMNS = ["Quantization", "Size", "Usable here", "", ""]
USABLE_COLUMN, MEASURE_COLUMN, DOWNLOAD_COLUMN = 2, 3, 4

EVIDENCE_NAMES = {
    "data_pretrain": "Pre-training data",
    "data_posttrain": "Post-training data",
    "training_code": "Training code",
    "report": "Report",
}


def _link_text(url: str) -> str:
    """A short, readable label for a source URL: the site and the last part of the path."""
    from urllib.parse import urlparse

    parsed = urlparse(url)
    tail = parsed.path.rstrip("/").rsplit("/", 1)[-1]
    return f"{parsed.netloc.removeprefix('www.')}/…/{tail}" if tail else parsed.netloc


class ExploreView(QWidget):
    download_requested = Signal(str, str)  # repo, file pattern
    probe_finished = Signal(object)  # ProbeReport
    probe_failed = Signal(str)
    calibrated = Signal(object)  # Calibration
    rows_ready = Signal()  # the rows, computed in the background, are shown
    detail_ready = Signal()  # the selected model's files are listed

    def __init__(self, services: Services) -> None:
        super().__init__()
        self.services = services
        self.model = ExploreModel(self)
        self.proxy = ExploreFilter(self)
        self.proxy.setSourceModel(self.model)
        self._hub_results: list[HubResult] = []
        self._here: MachineSnapshot | None = None  # this machine as the shown rows read it
        self._reloads = self._reloads_shown = 0  # a reload's result is shown only if no newer one was asked for
        self._details = self._details_shown = 0

        self.search = QLineEdit(placeholderText="Filter models, families, licences…  (Ctrl+F)")
        self.search.setAccessibleName("Filter the model list")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(lambda t: self.proxy.update(text=t))
        self.grade_box = QComboBox()
        self.grade_box.setAccessibleName("Openness grades to show")
        for label, grades in (
            ("All grades", "ABCDE?"),
            ("A–B: open source", "AB"),
            ("A–C: open licence", "ABC"),
            ("D: restricted", "D"),
            ("E: non-commercial", "E"),
            ("?: unrated", "?"),
        ):
            self.grade_box.addItem(label, grades)
        self.grade_box.currentIndexChanged.connect(lambda: self.proxy.update(grades=set(self.grade_box.currentData())))
        self.fits_box = QCheckBox("Fits this machine")
        self.fits_box.setAccessibleName("Only models that fit this machine")
        self.fits_box.toggled.connect(lambda on: self.proxy.update(fits_only=on))
        self.installed_box = QCheckBox("Installed")
        self.installed_box.setAccessibleName("Only installed models")
        self.installed_box.toggled.connect(lambda on: self.proxy.update(installed_only=on))
        self.min_size_box = QDoubleSpinBox(minimum=0, maximum=500, decimals=1, suffix=" GB")
        self.min_size_box.setSpecialValueText("any")
        self.min_size_box.setAccessibleName("Smallest file size to show")
        self.min_size_box.valueChanged.connect(lambda v: self.proxy.update(min_size_gb=v or None))
        self.size_box = QDoubleSpinBox(minimum=0, maximum=500, decimals=1, suffix=" GB")
        self.size_box.setSpecialValueText("any")
        self.size_box.setAccessibleName("Largest file size to show")
        self.size_box.setToolTip("Largest download size to show (0: any)")
        self.size_box.valueChanged.connect(lambda v: self.proxy.update(max_size_gb=v or None))

        self.hub_query = QLineEdit(placeholderText="Search GGUF models on the Hugging Face Hub…")
        self.hub_query.setAccessibleName("Search the Hub")
        self.hub_query.returnPressed.connect(self.search_hub)
        self.hub_sort = QComboBox()
        self.hub_sort.setAccessibleName("Sort Hub results by")
        for label, key in (("Most downloaded", "downloads"), ("Most liked", "likes"), ("Recently updated", "recent")):
            self.hub_sort.addItem(label, key)
        self.hub_button = QPushButton("Search Hub")
        self.hub_button.setAccessibleName("Search the Hub")
        self.hub_button.clicked.connect(self.search_hub)
        self.hub_status = QLabel("")
        self.hub_status.setAccessibleName("Hub search status")

        self.table = QTableView()
        self.table.setAccessibleName("Models")
        self.table.setModel(self.proxy)
        self.loading = LoadingNote(self.table, "Reading the catalog and what fits this machine…")
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(OPENNESS_COLUMN, Qt.SortOrder.AscendingOrder)
        self.table.setSelectionBehavior(QTableView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QTableView.SelectionMode.SingleSelection)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.selectionModel().currentRowChanged.connect(lambda cur, _prev: self.show_detail(cur))
        self.table.viewport().installEventFilter(self)  # on resize: the columns that fit (fit_columns)

        self.detail = QTextBrowser()
        self.detail.setAccessibleName("Model details and openness evidence")
        self.detail.setOpenExternalLinks(True)
        # The fit is in the usable-here cell's tooltip (a file that does not fit says so there): the
        # actions stay visible without scrolling at a laptop's 1280x800.
        self.quants = QTableWidget(0, len(QUANT_COLUMNS))
        self.quants.setAccessibleName("Files of the selected model")
        self.quants.setHorizontalHeaderLabels(QUANT_COLUMNS)
        self.quants.verticalHeader().hide()
        header = self.quants.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(USABLE_COLUMN, QHeaderView.ResizeMode.Stretch)
        header.setStretchLastSection(False)

        self.search.setMinimumWidth(220)
        filters = QVBoxLayout()  # two rows: the filter box keeps room to type at a laptop's width
        first, second = QHBoxLayout(), QHBoxLayout()
        first.addWidget(self.search, 1)
        first.addWidget(self.grade_box)
        second_row: tuple[QWidget, ...] = (
            self.fits_box,
            self.installed_box,
            QLabel("Size"),
            self.min_size_box,
            QLabel("to"),
            self.size_box,
        )
        for w in second_row:
            second.addWidget(w)
        second.addStretch(1)
        filters.addLayout(first)
        filters.addLayout(second)
        hub_row = QHBoxLayout()
        for w in (self.hub_query, self.hub_sort, self.hub_button):
            hub_row.addWidget(w)
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addLayout(filters)
        left_layout.addWidget(self.table)
        left_layout.addLayout(hub_row)
        left_layout.addWidget(self.hub_status)
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        right_layout.addWidget(self.detail, 3)
        right_layout.addWidget(QLabel("Files"))
        right_layout.addWidget(self.quants, 2)
        self.probe_status = QLabel(
            "Measure here: reads only the file's header from the Hub and benchmarks a zero-data copy of it "
            "on this machine, before any download."
        )
        self.probe_status.setWordWrap(True)
        self.probe_status.setAccessibleName("Probe status")
        right_layout.addWidget(self.probe_status)
        self.splitter = QSplitter()
        self.splitter.setObjectName("explore-splitter")
        self.splitter.addWidget(left)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        self.splitter.setSizes([600, 500])  # at 1280x800 both the model list and the files' actions show
        layout = QVBoxLayout(self)
        layout.addWidget(self.splitter)

        self._asked_exact: set[str] = set()
        self.probe_session = ProbeSession(services.ctx)
        self.probe_runner = EngineRunner("probe-engine")
        self._probing: tuple[str, str] | None = None  # repo, quantization
        calibration = services.calibration
        calibration.step.connect(lambda step: self.probe_status.setText(str(step)))
        calibration.calibrated.connect(self._on_calibrated)
        calibration.failed.connect(self._on_calibration_failed)
        # Bound methods, not lambdas: Qt disconnects them when this view is deleted.
        services.profile_ready.connect(self._on_profile)
        services.library_changed.connect(self.reload)
        services.results_changed.connect(self.reload)
        services.settings_changed.connect(self.reload)
        self.reload()

    # -- rows -----------------------------------------------------------------------------------
    def reload(self) -> None:
        """Rows from the application layer, computed off the UI thread from one reading of this machine."""
        ctx, profile, results = self.services.ctx, self.services.profile, list(self._hub_results)
        self._reloads += 1
        serial = self._reloads
        self.loading.waiting(True)
        run_in_background(
            lambda: explore_rows(ctx, profile, results),
            lambda out: self._on_rows(serial, out),
            self._on_rows_failed,
            name="explore-rows",
            owner=self,
        )

    def _on_rows(self, serial: int, out: tuple[MachineSnapshot, list[ExploreRow]]) -> None:
        if serial != self._reloads:
            return  # a newer reload is on its way
        self._reloads_shown = serial
        self.loading.waiting(False)
        selected = self.selected_row()
        self._here, rows = out
        self.model.set_rows(rows)
        self.fit_columns()
        if selected is not None:
            self.select(selected.key)
        self.rows_ready.emit()

    def _on_rows_failed(self, error: LocalopenError) -> None:
        self.loading.waiting(False)
        self._reloads_shown, self._details_shown = self._reloads, self._details
        self.hub_status.setText(f"The list could not be refreshed: {error}")

    @property
    def settled(self) -> bool:
        """Every refresh asked for is shown (the rows and the selected model's files), read with the
        machine's profile once it is known."""
        current = self._here is not None and self._here.profile is self.services.profile
        return current and self._reloads_shown == self._reloads and self._details_shown == self._details

    def selected_row(self) -> ExploreRow | None:
        index = self.table.currentIndex()
        return index.data(ROW_ROLE) if index.isValid() else None

    def select(self, key: str) -> bool:
        for r in range(self.proxy.rowCount()):
            if self.proxy.index(r, 0).data() == key:
                self.table.selectRow(r)
                return True
        return False

    # -- Hub search -----------------------------------------------------------------------------
    def search_hub(self) -> None:
        query, sort = self.hub_query.text().strip(), self.hub_sort.currentData()
        self.hub_status.setText("Searching the Hub…")
        self.hub_button.setEnabled(False)
        ctx = self.services.ctx
        run_in_background(
            lambda: hub_search.search_hub(ctx, query, sort=sort, limit=30),
            self._on_hub_results,
            self._on_hub_failed,
            name="hub-search",
            owner=self,
        )

    def _on_hub_failed(self, error: LocalopenError) -> None:
        self.hub_button.setEnabled(True)
        self.hub_status.setText(str(error))

    def _on_hub_results(self, results: list[HubResult]) -> None:
        self.hub_button.setEnabled(True)
        self._hub_results = results
        self.hub_status.setText(f"{len(results)} Hub repositories (grades are provisional: from model cards alone).")
        self.reload()

    # -- detail ---------------------------------------------------------------------------------
    def eventFilter(self, watched: Any, event: Any) -> bool:  # noqa: N802
        if watched is self.table.viewport() and event.type() == QEvent.Type.Resize:
            self.fit_columns()
        return super().eventFilter(watched, event)

    def fit_columns(self) -> None:
        """The columns that fit the pane, in their order, the rest hidden: never a sideways scroll
        at 1280x800 (the detail pane says everything a hidden column would)."""
        header = self.table.horizontalHeader()
        room, used = self.table.viewport().width(), 0
        for column in range(self.model.columnCount()):
            width = max(header.sectionSizeHint(column), self.table.sizeHintForColumn(column))
            fits = column <= ALWAYS_SHOWN or (used + width <= room and not self.table.isColumnHidden(column - 1))
            self.table.setColumnHidden(column, not fits)
            used += width if fits else 0

    def show_detail(self, index: Any) -> None:
        row: ExploreRow | None = index.data(ROW_ROLE) if index.isValid() else None
        self.quants.setRowCount(0)
        if row is None:
            self.detail.clear()
            return
        self.detail.setHtml(self._detail_html(row))
        if row.catalog is not None and not all(q.from_hub for q in row.catalog.quants):
            self._fetch_exact_sizes(row.catalog.gguf_repo)
        here = self._here
        if here is None:
            return  # the rows' reading of this machine is on its way; it shows the detail again
        ctx = self.services.ctx
        result = next((r for r in self._hub_results if r.repo == row.repo), None)
        self._details += 1
        serial = self._details
        run_in_background(
            lambda: file_rows(ctx, here, row, result),
            lambda out: self._on_file_rows(serial, row.repo, out),
            self._on_rows_failed,
            name="explore-files",
            owner=self,
        )

    def _on_file_rows(self, serial: int, repo: str, rows: list[FileLine]) -> None:
        if serial != self._details:
            return
        self._details_shown = serial
        self.quants.setRowCount(0)
        for line in rows:
            self._add_quant_row(line.quant, line.size, line.fit, repo, line.pattern, line.verdict)
        self.detail_ready.emit()

    def _fetch_exact_sizes(self, repo: str) -> None:
        """Exact sizes and sha256 of a catalog model's files, fetched once in the background when
        online (never in offline mode) and cached, so estimates and recorded sizes give way to the Hub's."""
        ctx = self.services.ctx
        if repo in self._asked_exact or ctx.offline:
            return
        self._asked_exact.add(repo)

        def work() -> None:
            library.remember_hub_files(ctx, repo)
            ctx.refresh_catalog()
            # now that the files' sha256 are known: the open index's records of them
            index_reader.refresh_models(ctx, [m for m in ctx.catalog.models if m.gguf_repo == repo])

        # Offline or unreachable: the estimates stay, marked as such (the failure is logged).
        run_in_background(
            work, lambda _none: self._on_exact_sizes(), lambda _error: None, name="exact-sizes", owner=self
        )

    def _on_exact_sizes(self) -> None:
        self.reload()
        self.show_detail(self.table.currentIndex())

    def _add_quant_row(self, quant: str, size: str, fit: str, repo: str, pattern: str, verdict: Verdict | None) -> None:
        r = self.quants.rowCount()
        self.quants.insertRow(r)
        usable = verdict.label if verdict is not None else "–"
        for c, text in enumerate((quant, size, usable)):
            item = QTableWidgetItem(text)
            if c == USABLE_COLUMN:  # its speeds and the fit, in words
                item.setToolTip(f"{verdict.reason}\nFit: {fit}" if verdict is not None else f"Fit: {fit}")
            self.quants.setItem(r, c, item)
        probing = self._probing == (repo, quant)
        measure = QPushButton("Stop" if probing else "Measure here")
        measure.setAccessibleName(f"Measure {repo} {quant} here before downloading")
        measure.setToolTip("Benchmark this file on this machine from its header alone (a few MB), before downloading")
        measure.setEnabled(probing or self._probing is None)
        measure.clicked.connect(lambda _=False, rp=repo, q=quant: self.probe(rp, q))
        self.quants.setCellWidget(r, MEASURE_COLUMN, measure)
        button = QPushButton("Download")
        button.setAccessibleName(f"Download {repo} {quant}")
        button.clicked.connect(lambda _=False, rp=repo, pt=pattern: self.download_requested.emit(rp, pt))
        self.quants.setCellWidget(r, DOWNLOAD_COLUMN, button)

    def _on_profile(self, _hw: object) -> None:
        self.reload()

    # -- calibration and probe ------------------------------------------------------------------
    def calibrate_if_needed(self) -> None:
        """Measure this machine once per llama.cpp build, in the background, so predicted speeds are
        this machine's (the setting turns it off; `localopen calibrate` does the same)."""
        if self.services.calibration.start_if_needed():
            self.probe_status.setText("Calibrating this machine once (1-2 minutes) so predicted speeds are its own…")

    def _on_calibrated(self, calibration: Calibration) -> None:
        self.probe_status.setText(
            f"This machine is calibrated: {calibration.bandwidth_gbs:.1f} GB/s for generation; predicted speeds "
            "below are its own. Measure here benchmarks one file before downloading it."
        )
        self.calibrated.emit(calibration)
        self.reload()
        self.show_detail(self.table.currentIndex())

    def _on_calibration_failed(self, error: str) -> None:
        self.probe_status.setText(f"Calibration failed, predicted speeds stay rough: {error}")

    def probe(self, repo: str, quant: str) -> None:
        """Measure one Hub file here before downloading it (a second click stops it)."""
        if self._probing is not None:
            if self._probing == (repo, quant):
                self.probe_session.stop()
                self.probe_status.setText("Stopping the probe…")
            return
        self._probing = (repo, quant)
        self.probe_status.setText(f"Probing {repo} {quant}…")
        self.show_detail(self.table.currentIndex())
        session = self.probe_session
        self.probe_runner.submit(
            lambda emit: session.run(repo, quant=quant, on_progress=emit),
            self._on_probe_progress,
            self._on_probe_done,
            self._on_probe_failed,
        )

    def _on_probe_progress(self, event: LoadInfo | str) -> None:
        if isinstance(event, LoadInfo):
            self.probe_status.setText(f"Replica loaded in {event.load_time_ms:.0f} ms; benchmarking…")
        else:
            self.probe_status.setText(str(event))

    def _on_probe_done(self, report: ProbeReport) -> None:
        self._probing = None
        v = report.verdict
        self.probe_status.setText(
            f"{Path(report.file).name}: {v.label}: {v.tg_tps or 0:.1f} tokens/s, first token after {v.ttft_s} s "
            f"for a 512-token prompt; memory {human_bytes(report.memory.total)} at {report.n_ctx} tokens of "
            f"context. Read {human_bytes(report.bytes_fetched)} of {human_bytes(report.file_size)} from the Hub."
        )
        self.probe_finished.emit(report)
        self.services.results_changed.emit()

    def _on_probe_failed(self, error: LocalopenError) -> None:
        self._probing = None
        self.probe_status.setText(str(error))
        self.show_detail(self.table.currentIndex())
        self.probe_failed.emit(str(error))

    def shutdown(self) -> None:
        session = self.probe_session
        self.probe_runner.shutdown(stop=session.stop, close=lambda: None, kill=session.kill)

    def _detail_html(self, row: ExploreRow) -> str:
        e = html.escape
        g = row.grade
        parts = [
            f"<h2>{e(row.key)}</h2>",
            f"<p><b style='color:{theme.grade_colour(g.letter)}'>{e(g.badge)}</b> — {e(g.label)}"
            f"{' <i>(provisional)</i>' if g.provisional else ''}</p>",
            f"<p>GGUF repository: <a href='https://huggingface.co/{e(row.repo)}'>{e(row.repo)}</a></p>",
        ]
        if row.catalog is not None and row.catalog.kind_words:
            parts.append(f"<p><b>What it is:</b> {e(row.catalog.kind_words)}</p>")
        if row.verdict:
            parts.append(f"<p><b>Usable here:</b> {e(row.verdict.label)} — {e(row.verdict.reason)}</p>")
        if row.fit:
            parts.append(f"<p><b>Fit:</b> {e(row.fit.label)} — {e(row.fit.detail)}</p>")
        caps = row.capabilities
        if caps is not None:
            parts.append(
                f"<p><b>Can:</b> {e(caps.reasoning or 'no reasoning')}; {e(caps.tools_label)} "
                f"<i>(from the {e(caps.basis)})</i></p>"
            )
        elif row.catalog is not None and row.catalog.kind == "embedding":
            parts.append("<p><b>Can:</b> embeddings (the server's /v1/embeddings); no chat, no text</p>")
        else:
            parts.append("<p><b>Can:</b> known once a file is installed or probed here (its chat template says)</p>")
        if row.sees_images:
            projector = row.capabilities.vision if row.capabilities and row.capabilities.vision else None
            said = f"with {e(projector)} beside it" if projector else "its repository publishes a vision projector"
            parts.append(f"<p><b>Sees images:</b> {said}; a download fetches the projector with the model.</p>")
        parts.append(f"<p><b>Licence:</b> {e(g.rights.reason)} (from {e(g.rights_origin)})</p>")
        if row.catalog is not None:
            ev = row.catalog.evidence
            parts.append(
                "<table cellpadding=3><tr><th align=left>Component</th><th align=left>Status</th>"
                "<th align=left>Source</th></tr>"
            )
            for c in COMPONENTS:
                value = getattr(ev, c)
                shown = "not verified" if value == "unknown" else value
                if c in ev.unverified_facts:
                    shown += " (to re-check)"
                src = ev.sources.get(c, "")
                parts.append(
                    f"<tr><td>{EVIDENCE_NAMES[c]}</td><td>{e(shown)}</td>"
                    f"<td><a href='{e(src)}' title='{e(src)}'>{e(_link_text(src))}</a></td></tr>"
                )
            parts.append("</table>")
            badges = [e(b) for b in row.catalog.badges()]
            if badges:
                parts.append("<p>" + " · ".join(badges) + "</p>")
            if row.catalog.notes:
                parts.append(f"<p><i>{e(row.catalog.notes)}</i></p>")
        if g.flags:
            parts.append(f"<p><b>Licence flags:</b> {e(', '.join(sorted(g.flags)))}</p>")
        if g.raise_hints:
            parts.append(
                "<p><b>What would raise the grade:</b></p><ul>"
                + "".join(f"<li>{e(h)}</li>" for h in g.raise_hints)
                + "</ul>"
            )
        return "".join(parts)


@dataclass(frozen=True)
class FileLine:
    """One file of the selected model, as its row in the detail pane shows it."""

    quant: str
    size: str
    fit: str
    pattern: str
    verdict: Verdict | None


def explore_rows(
    ctx: AppContext, profile: HardwareProfile | None, hub_results: list[HubResult]
) -> tuple[MachineSnapshot, list[ExploreRow]]:
    """Catalog models, then Hub results outside the catalog, as this machine sees them now (a probe,
    a download or a benchmark changes them): disk and SQLite work, run off the UI thread."""
    index_reader.refresh_models(ctx, ctx.catalog.models)  # the open index's records of known files (a day's cache)
    here = MachineSnapshot.read(ctx, profile)
    rows = [
        ExploreRow(
            r.model.id,
            r.model.gguf_repo,
            r.model.family,
            r.model.params_b,
            r.model.grade,
            r.quant.size_bytes,
            r.quant.size_is_estimate,
            "catalog",
            catalog=r.model,
            fit=r.fit,
            verdict=r.verdict,
            installed=r.installed is not None,
            capabilities=capabilities.of_repo(ctx, here, r.model.gguf_repo),
        )
        for r in catalog_rows(ctx, here)
    ]
    hub_search.assess(ctx, hub_results, here)
    catalog_repos = {x.repo for x in rows}
    rows += [
        ExploreRow(
            r.repo,
            r.repo,
            "Hub",
            r.params_b,
            r.grade,
            r.size_bytes,
            r.size_estimate,
            "hub",
            hub_info=r.info,
            quants=r.quants,
            fit=r.fit,
            verdict=r.verdict,
            installed=r.repo in here.installed,
            capabilities=capabilities.of_repo(ctx, here, r.repo),
        )
        for r in hub_results
        if r.repo not in catalog_repos
    ]
    return here, rows


def file_rows(ctx: AppContext, here: MachineSnapshot, row: ExploreRow, result: HubResult | None) -> list[FileLine]:
    """The files of one model with size, fit and usable-here (an installed file's header is read)."""
    if row.catalog is not None:
        return [
            FileLine(
                qr.quant.type,
                ("~" if qr.quant.size_is_estimate else "") + human_bytes(qr.quant.size_bytes),
                qr.fit.label if qr.fit else "…",
                qr.quant.pattern,
                qr.verdict,
            )
            for qr in quant_rows(ctx, here, row.catalog)
        ]
    return [
        FileLine(
            hq.quant,
            ("~" if hq.size_estimate else "") + human_bytes(hq.size_bytes) if hq.size_bytes else "–",
            hq.fit.label if hq.fit else "–",
            f"*{hq.quant}*.gguf",
            hq.verdict,
        )
        for hq in (hub_search.quant_rows(ctx, here, result) if result else [])
    ]
