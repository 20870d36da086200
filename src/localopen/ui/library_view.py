"""Library: installed and imported models; verify, delete, chat, benchmark."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from localopen.core.errors import LocalopenError
from localopen.core.fit import human_bytes
from localopen.core.gguf_header import read_header
from localopen.core.library import LibraryModel, import_file, list_models, remove, verify
from localopen.core.openness import evidence_from_header, grade
from localopen.core.storage import connect
from localopen.core.usability import verdict_here
from localopen.ui.downloads_panel import DownloadsPanel
from localopen.ui.services import Services

COLUMNS = ["Model", "Quantization", "Size", "Openness", "Usable here", "Last used", "Source"]


class LibraryView(QWidget):
    chat_requested = Signal(str)
    bench_requested = Signal(str)
    verified = Signal(str, str)  # path, message (from a worker thread)
    imported = Signal(str, bool)  # message, success (from a worker thread)

    def __init__(self, services: Services) -> None:
        super().__init__()
        self.services = services
        self.models: list[LibraryModel] = []
        self._badges: dict[str, tuple[int, str]] = {}
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setAccessibleName("Installed models")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().hide()
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QTableWidget.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setSortingEnabled(True)
        self.table.doubleClicked.connect(lambda _: self._emit(self.chat_requested))
        buttons = QHBoxLayout()
        for text, slot, name in (("Chat", lambda: self._emit(self.chat_requested), "Chat with the selected model"),
                                 ("Benchmark", lambda: self._emit(self.bench_requested),
                                  "Benchmark the selected model"),
                                 ("Verify", self.verify_selected, "Verify the selected model's sha256"),
                                 ("Delete…", self.delete_selected, "Delete the selected model"),
                                 ("Import GGUF…", self.import_dialog, "Import a GGUF file")):
            b = QPushButton(text)
            b.setAccessibleName(name)
            b.clicked.connect(slot)
            buttons.addWidget(b)
        buttons.addStretch(1)
        self.status = QLabel("Drop a .gguf file on the window to import it (it is not copied).")
        self.status.setAccessibleName("Library status")
        self.status.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addLayout(buttons)
        layout.addWidget(self.table, 3)
        layout.addWidget(self.status)
        layout.addWidget(QLabel("<b>Downloads</b>"))
        self.downloads = DownloadsPanel(services)
        layout.addWidget(self.downloads, 1)
        self.verified.connect(self._on_verified)
        self.imported.connect(self._on_imported)
        services.library_changed.connect(self.reload)
        services.results_changed.connect(self.reload)
        services.profile_ready.connect(lambda _: self.reload())
        self.reload()

    def reload(self) -> None:
        s = self.services
        self.models = list_models(s.db, s.paths.models_dir())
        known = s.catalog.evidence_by_repo()
        self.table.setSortingEnabled(False)
        self.table.setRowCount(len(self.models))
        for r, m in enumerate(self.models):
            letter = "?" if m.missing else self._badge(m, known)
            here = verdict_here(s.db, str(m.path), s.profile.fingerprint, s.thresholds) \
                if s.profile and not m.missing else None
            verdict = here.label if here else ""
            last = m.last_used or ""
            if last:
                last = dt.datetime.fromisoformat(last).astimezone().strftime("%Y-%m-%d %H:%M")
            values = [m.name, m.quant or "?", "missing (moved or deleted)" if m.missing else human_bytes(m.size),
                      letter, verdict or "not measured yet", last, m.source]
            for c, v in enumerate(values):
                item = QTableWidgetItem(v)
                item.setData(Qt.ItemDataRole.UserRole, str(m.path))
                if m.missing:
                    item.setForeground(Qt.GlobalColor.red)
                self.table.setItem(r, c, item)
        self.table.setSortingEnabled(True)

    def _badge(self, m: LibraryModel, known: dict) -> str:
        """The grade badge of a file, cached by path and modification time: reading a header with a
        large vocabulary takes ~0.1 s, too long to repeat for every model on each refresh."""
        entry = self.services.catalog.get(m.repo) if m.repo else None
        if entry is not None:
            return entry.grade.badge
        try:
            stamp = m.path.stat().st_mtime_ns
        except OSError:
            return "?"
        cached = self._badges.get(str(m.path))
        if cached and cached[0] == stamp:
            return cached[1]
        try:
            badge = grade(evidence_from_header(read_header(m.path).metadata, known)).badge
        except LocalopenError:
            badge = "unreadable"
        self._badges[str(m.path)] = (stamp, badge)
        return badge

    def selected(self) -> LibraryModel | None:
        items = self.table.selectedItems()
        if not items:
            return None
        path = items[0].data(Qt.ItemDataRole.UserRole)
        return next((m for m in self.models if str(m.path) == path), None)

    def select_path(self, path: str) -> None:
        for r in range(self.table.rowCount()):
            if self.table.item(r, 0).data(Qt.ItemDataRole.UserRole) == path:
                self.table.selectRow(r)

    def _emit(self, signal: Signal) -> None:
        m = self.selected()
        if m is None:
            self.status.setText("Select a model first.")
        elif m.missing:
            self.status.setText(f"{m.path} is missing: import it again from its new place, or delete it.")
        else:
            signal.emit(str(m.path))

    def verify_selected(self) -> None:
        m = self.selected()
        if m is None:
            return
        self.status.setText(f"Verifying {m.filename}…")
        db_path = self.services.paths.database

        def work() -> None:
            try:
                result = verify(connect(db_path), m)
                self.verified.emit(str(m.path), result.message)
            except (LocalopenError, OSError) as exc:
                self.verified.emit(str(m.path), str(exc))

        threading.Thread(target=work, daemon=True, name="verify").start()

    def _on_verified(self, path: str, message: str) -> None:
        self.status.setText(f"{Path(path).name}: {message}")

    def delete_selected(self) -> None:
        m = self.selected()
        if m is None:
            return
        what = "forget this imported model (the file stays)" if m.source == "imported" else \
            f"delete {m.filename} ({human_bytes(m.size)}) and its partial downloads"
        answer = QMessageBox.question(self, "Delete model", f"Really {what}?")
        if answer == QMessageBox.StandardButton.Yes:
            self.status.setText(remove(self.services.db, m, self.services.paths.models_dir()))
            self.services.library_changed.emit()

    def import_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import a GGUF model", str(Path.home()), "GGUF models (*.gguf)")
        if path:
            self.import_path(Path(path))

    def import_path(self, path: Path) -> None:
        """Import in the background: the first sha256 of a multi-GB file takes seconds."""
        self.status.setText(f"Importing {path.name}…")
        connect = self.services.new_connection

        def work() -> None:
            conn = connect()
            try:
                model = import_file(conn, path)
                self.imported.emit(f"Imported {model.filename}; the file stays where it is.", True)
            except (LocalopenError, OSError) as exc:
                self.imported.emit(f"Could not import {path.name}: {exc}", False)
            finally:
                conn.close()

        threading.Thread(target=work, daemon=True, name="import").start()

    def _on_imported(self, message: str, ok: bool) -> None:
        self.status.setText(message)
        if ok:
            self.services.library_changed.emit()
