"""The main window: the catalog with grades and fit verdicts (the full app is built on this)."""

from __future__ import annotations

from PySide6.QtCore import QObject, QSettings, QSortFilterProxyModel, Qt, QThread, Signal
from PySide6.QtWidgets import QHeaderView, QLabel, QLineEdit, QMainWindow, QTableView, QVBoxLayout, QWidget

from localopen.core.catalog import Catalog
from localopen.core.fit import human_bytes
from localopen.core.hardware import HardwareProfile, read_profile
from localopen.core.paths import AppPaths
from localopen.ui.catalog_model import SORT_ROLE, CatalogTableModel


class ProfileReader(QObject):
    """Reads the hardware profile off the UI thread (the bandwidth probe takes a moment)."""

    done = Signal(object)

    def __init__(self, paths: AppPaths) -> None:
        super().__init__()
        self.paths = paths

    def run(self) -> None:
        self.done.emit(read_profile(self.paths.models_dir(), self.paths.cache))


class MainWindow(QMainWindow):
    profile_ready = Signal(object)

    def __init__(self, catalog: Catalog, paths: AppPaths) -> None:
        super().__init__()
        self.setWindowTitle("localopen — open models on this machine")
        self.paths = paths
        self.model = CatalogTableModel(catalog, self)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(SORT_ROLE)
        self.proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.proxy.setFilterKeyColumn(-1)

        self.summary = QLabel("Reading this machine…")
        self.summary.setAccessibleName("Machine summary")
        self.summary.setWordWrap(True)
        self.search = QLineEdit(placeholderText="Search models, families, licences…")
        self.search.setAccessibleName("Search the catalog")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self.proxy.setFilterFixedString)
        self.table = QTableView()
        self.table.setAccessibleName("Model catalog")
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(4, Qt.SortOrder.AscendingOrder)
        self.table.setSelectionBehavior(QTableView.SelectionBehavior.SelectRows)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)

        body = QWidget()
        layout = QVBoxLayout(body)
        layout.addWidget(self.summary)
        layout.addWidget(self.search)
        layout.addWidget(self.table)
        self.setCentralWidget(body)
        self._restore()
        self._start_profile()

    def _start_profile(self) -> None:
        self._thread = QThread(self)
        self._reader = ProfileReader(self.paths)
        self._reader.moveToThread(self._thread)
        self._thread.started.connect(self._reader.run)
        self._reader.done.connect(self._on_profile)
        self._reader.done.connect(self._thread.quit)
        self._thread.start()

    def _on_profile(self, hw: HardwareProfile) -> None:
        self.model.set_profile(hw)
        fitting = [f for f in self.model.fits if f and f.code in ("fits_gpu", "fits_ram")]
        fluent = [f for f in fitting if f.decode_bound_tps and f.decode_bound_tps >= 20]
        gpu = ", GPU offload possible" if hw.gpu_offload_possible else ""
        self.summary.setText(
            f"This machine: {hw.cpu_model}, {hw.cores_physical} cores, {human_bytes(hw.ram_total)} RAM, "
            f"{hw.bandwidth_gbs} GB/s{gpu}. {len(fitting)} of {len(self.model.fits)} catalog models fit; "
            f"{len(fluent)} could decode at 20 tokens/s or more (bandwidth bound, before measuring)."
        )
        self.profile_ready.emit(hw)

    def _restore(self) -> None:
        settings = QSettings("localopen", "localopen")
        geometry = settings.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1100, 700)

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        QSettings("localopen", "localopen").setValue("window/geometry", self.saveGeometry())
        if self._thread.isRunning():
            self._thread.quit()
            self._thread.wait(5000)
        super().closeEvent(event)
