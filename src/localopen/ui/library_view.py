"""Library: installed and imported models; verify, delete, chat, benchmark."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt, Signal, SignalInstance
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

from localopen.app.models import library, library_listing
from localopen.app.models.library import verify
from localopen.app.models.library_listing import LibraryEntry
from localopen.core.errors import LocalopenError
from localopen.core.estimate.memory import human_bytes
from localopen.core.store.library_db import LibraryModel, VerifyResult
from localopen.ui.background import run_in_background
from localopen.ui.downloads_panel import DownloadsPanel
from localopen.ui.services import Services
from localopen.ui.widgets import LoadingNote

COLUMNS = ["Model", "Quantization", "Size", "Openness", "Usable here", "Can", "Last used", "Source"]


class LibraryView(QWidget):
    chat_requested = Signal(str)
    bench_requested = Signal(str)
    reloaded = Signal()  # the table shows the library as it is now

    def __init__(self, services: Services) -> None:
        super().__init__()
        self.services = services
        self.models: list[LibraryModel] = []
        self._reloads = 0  # only the newest reload's entries are shown
        self._recording = False  # a task recording found files' sha256 is under way
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
        self.loading = LoadingNote(self.table, "Reading the library (each new file's header)…")
        self.table.doubleClicked.connect(lambda _: self._emit(self.chat_requested))
        buttons = QHBoxLayout()
        for text, slot, name in (
            ("Chat", lambda: self._emit(self.chat_requested), "Chat with the selected model"),
            ("Benchmark", lambda: self._emit(self.bench_requested), "Benchmark the selected model"),
            ("Verify", self.verify_selected, "Verify the selected model's sha256"),
            ("Delete…", self.delete_selected, "Delete the selected model"),
            ("Import GGUF…", self.import_dialog, "Import a GGUF file"),
        ):
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
        services.library_changed.connect(self.reload)
        services.results_changed.connect(self.reload)
        services.profile_ready.connect(self._on_profile)  # a bound method: disconnected with the view
        self.reload()

    def _on_profile(self, _hw: object) -> None:
        self.reload()

    def reload(self) -> None:
        """Grades need header reads of new files: the entries are made in the background."""
        ctx, profile = self.services.ctx, self.services.profile
        self._reloads += 1
        number = self._reloads
        self.loading.waiting(True)

        def render(entries: list[LibraryEntry]) -> None:
            if number == self._reloads:
                self._render(entries)

        run_in_background(
            lambda: library_listing.entries(ctx, profile), render, self._on_error, name="library", owner=self
        )

    def _on_error(self, error: LocalopenError) -> None:
        self.loading.waiting(False)
        self.status.setText(str(error))

    def _record_hashes(self) -> None:
        """Files found in the models folder get their sha256 recorded once, out of sight, so that
        `verify` can tell later whether their bytes changed (one task at a time)."""
        if self._recording:
            return
        self._recording = True

        def done(_read: int) -> None:
            self._recording = False

        def failed(error: LocalopenError) -> None:
            self._recording = False
            self._on_error(error)

        ctx = self.services.ctx
        run_in_background(lambda: library.record_missing_sha256(ctx), done, failed, name="record sha256", owner=self)

    def _render(self, entries: list[LibraryEntry]) -> None:
        self.loading.waiting(False)
        self._record_hashes()
        self.models = [e.model for e in entries]
        self.table.setSortingEnabled(False)
        self.table.setRowCount(len(entries))
        for r, e in enumerate(entries):
            m = e.model
            last = m.last_used or ""
            if last:
                last = dt.datetime.fromisoformat(last).astimezone().strftime("%Y-%m-%d %H:%M")
            usable = e.verdict.label if e.verdict else "not measured yet"
            values = [
                m.name,
                m.quant or "?",
                "missing (moved or deleted)" if m.missing else human_bytes(m.size),
                f"{e.badge} · {e.match.model.id}" if e.match else e.badge,
                "cannot be used: damaged" if e.problem else usable,
                e.capabilities.short if e.capabilities else "",
                last,
                m.source,
            ]
            for c, v in enumerate(values):
                item = QTableWidgetItem(v)
                item.setData(Qt.ItemDataRole.UserRole, str(m.path))
                if m.missing or e.problem:
                    item.setForeground(Qt.GlobalColor.red)
                    item.setToolTip(e.problem or f"{m.path} is missing")
                elif e.match is not None and v.startswith(e.badge + " · "):
                    item.setToolTip(f"Recognised as the catalog's {e.match.model.id}: {e.match.basis}")
                elif c == COLUMNS.index("Can") and e.capabilities is not None:
                    item.setToolTip(f"{e.capabilities.reasoning or 'no reasoning'}; {e.capabilities.tools_label}")
                self.table.setItem(r, c, item)
        self.table.setSortingEnabled(True)
        self.reloaded.emit()

    def selected(self) -> LibraryModel | None:
        items = self.table.selectedItems()
        if not items:
            return None
        path = items[0].data(Qt.ItemDataRole.UserRole)
        return next((m for m in self.models if str(m.path) == path), None)

    def _emit(self, signal: SignalInstance) -> None:
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
        ctx = self.services.ctx

        def shown(result: VerifyResult) -> None:
            self.status.setText(f"{m.filename}: {result.message}")

        def checked(result: VerifyResult) -> None:
            shown(result)
            self.services.library_changed.emit()  # a damaged file's verdict changes

        run_in_background(lambda: verify(ctx, m), checked, self._on_error, name="verify", owner=self)

    def delete_selected(self) -> None:
        m = self.selected()
        if m is None:
            return
        ctx = self.services.ctx
        what = (
            f"delete {m.filename} ({human_bytes(m.size)}) and its partial downloads"
            if library.owns(ctx, m)
            else f"forget this {m.source} model (localopen did not download it: the file stays)"
        )
        answer = QMessageBox.question(self, "Delete model", f"Really {what}?")
        if answer == QMessageBox.StandardButton.Yes:
            self.status.setText(library.remove_model(ctx, m))
            self.services.library_changed.emit()

    def import_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import a GGUF model", str(Path.home()), "GGUF models (*.gguf)")
        if path:
            self.import_path(Path(path))

    def import_path(self, path: Path, then: Callable[[LibraryModel], None] | None = None) -> None:
        """Import in the background (its header is read; its sha256 is recorded afterwards); `then`
        is called with the model once it is in the library (a file opened from outside: its chat)."""
        self.status.setText(f"Importing {path.name}…")
        ctx = self.services.ctx

        def imported(model: LibraryModel) -> None:
            self.status.setText(f"Imported {model.filename}; the file stays where it is.")
            self.services.library_changed.emit()
            if then is not None:
                then(model)
            # Its sha256 next, out of sight: `verify` compares with it later (a flipped byte keeps size and time).
            run_in_background(
                lambda: library.record_sha256(ctx, model), lambda _none: None, recording_failed, name="record sha256",
                owner=self,
            )  # fmt: skip

        def recording_failed(error: LocalopenError) -> None:
            self.status.setText(f"Imported {path.name}, but its sha256 could not be recorded: {error}")

        def failed(error: LocalopenError) -> None:
            self.status.setText(f"Could not import {path.name}: {error}")

        run_in_background(lambda: library.import_model(ctx, path), imported, failed, name="import", owner=self)
