"""What every screen shares: paths, settings, catalog, database, Hub, downloads, machine profile."""

from __future__ import annotations

import sqlite3
import threading
from typing import Any

from PySide6.QtCore import QObject, Signal, Slot

from localopen.core import paths as paths_mod
from localopen.core.catalog import Catalog, load_catalog
from localopen.core.download_queue import DownloadQueue, Job
from localopen.core.hardware import HardwareProfile, read_profile
from localopen.core.hub import Hub
from localopen.core.library import cached_files_by_repo
from localopen.core.storage import connect
from localopen.core.verdict import Thresholds

DEFAULTS: dict[str, Any] = {
    "n_ctx": 4096, "n_threads": 0, "n_gpu_layers": 0, "max_parallel_downloads": 2, "offline": False,
}


class Services(QObject):
    profile_ready = Signal(object)  # always emitted on the UI thread
    _profile_read = Signal(object)  # from the reading thread
    job_changed = Signal(object)  # a download Job, from a worker thread: connect with queued connections
    settings_changed = Signal()
    library_changed = Signal()
    results_changed = Signal()

    def __init__(self, app_paths: paths_mod.AppPaths | None = None) -> None:
        super().__init__()
        self.paths = app_paths or paths_mod.app_paths()
        self.settings: dict[str, Any] = {**DEFAULTS, **paths_mod.load_settings(self.paths)}
        self.db = connect(self.paths.database)
        self.catalog: Catalog = load_catalog(files_by_repo=cached_files_by_repo(self.db))
        self.profile: HardwareProfile | None = None
        self.downloads = DownloadQueue(Hub(self.settings), self.new_connection, self.paths.models_dir(),
                                       int(self.settings["max_parallel_downloads"]))
        self.downloads.listeners.append(self.job_changed.emit)
        self.job_changed.connect(self._on_job)
        self._profile_read.connect(self._on_profile_read)

    def new_connection(self) -> sqlite3.Connection:
        """SQLite connections are per thread: workers get their own."""
        return connect(self.paths.database)

    @property
    def thresholds(self) -> Thresholds:
        return Thresholds.from_settings(self.settings)

    def hub(self) -> Hub:
        return Hub(self.settings)

    def save_settings(self, changes: dict[str, Any]) -> None:
        self.settings.update(changes)
        paths_mod.save_settings(self.paths, {k: v for k, v in self.settings.items()})
        self.downloads.max_parallel = max(1, int(self.settings["max_parallel_downloads"]))
        self.downloads.hub = Hub(self.settings)
        self.downloads.models_dir = self.paths.models_dir()
        self.settings_changed.emit()

    def read_profile_async(self) -> None:
        """The profile's bandwidth probe takes a moment on first run: never on the UI thread."""
        def work() -> None:
            self._profile_read.emit(read_profile(self.paths.models_dir(), self.paths.cache))

        threading.Thread(target=work, daemon=True, name="profile").start()

    @Slot(object)
    def _on_profile_read(self, profile: HardwareProfile) -> None:
        # Runs on the UI thread (queued): listeners may touch widgets.
        self.profile = profile
        self.profile_ready.emit(profile)

    def _on_job(self, job: Job) -> None:
        if job.state == "done":
            self.refresh_catalog_sizes()
            self.library_changed.emit()

    def refresh_catalog_sizes(self) -> None:
        self.catalog = load_catalog(files_by_repo=cached_files_by_repo(self.db))

    @Slot(str, str)
    def note_load_failed(self, path: str, message: str) -> None:
        self.note_load(path, message)

    @Slot(dict)
    def note_loaded(self, info: dict) -> None:
        self.note_load(info["path"], None)

    def note_load(self, path: str, failure: str | None) -> None:
        """Remember whether a model loaded on this machine: a failed load makes its verdict 'does not fit'."""
        from localopen.core import usability

        machine = self.profile.fingerprint if self.profile else None
        if machine is None:
            return
        if failure:
            usability.record_load_failure(self.db, path, machine, failure)
        else:
            usability.clear_load_failure(self.db, path, machine)
        self.results_changed.emit()

    def shutdown(self) -> None:
        self.downloads.stop_all()  # .part files stay; the next start offers to resume
