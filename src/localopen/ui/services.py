"""What every screen shares: the application context, the download queue, and the signals that
tell views to refresh. Nothing here computes a product fact; views ask the application layer."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal, Slot

from localopen.app.context import AppContext
from localopen.app.models import library
from localopen.app.models.download_queue import DownloadQueue, QueuedDownload
from localopen.app.settings import Settings
from localopen.core.machine.hardware import HardwareProfile
from localopen.core.store.db import connect
from localopen.ui.background import run_in_background

if TYPE_CHECKING:
    from localopen.ui.calibration_task import CalibrationTask

log = logging.getLogger("localopen.ui")


class Services(QObject):
    profile_ready = Signal(object)  # always emitted on the UI thread
    job_changed = Signal(object)  # a QueuedDownload, from a worker thread: connect with queued connections
    settings_changed = Signal()
    library_changed = Signal()
    results_changed = Signal()

    def __init__(self, ctx: AppContext | None = None) -> None:
        super().__init__()
        self.ctx = ctx or AppContext()
        self.downloads = DownloadQueue(
            self.ctx.hub(),
            lambda: connect(self.ctx.paths.database),
            self.ctx.models_dir,
            self.ctx.settings.max_parallel_downloads,
        )
        self.downloads.listeners.append(self.job_changed.emit)
        self.job_changed.connect(self._on_job)
        self._calibration: CalibrationTask | None = None

    @property
    def calibration(self) -> CalibrationTask:
        """This machine's calibration, shared by every view (made at first use)."""
        if self._calibration is None:
            from localopen.ui.calibration_task import CalibrationTask

            self._calibration = CalibrationTask(self.ctx, self)
        return self._calibration

    @property
    def profile(self) -> HardwareProfile | None:
        return self.ctx.profile

    def save_settings(self, settings: Settings) -> None:
        self.ctx.save_settings(settings)
        self.downloads.max_parallel = max(1, settings.max_parallel_downloads)
        self.downloads.hub = self.ctx.hub()
        self.downloads.models_dir = self.ctx.models_dir
        self.settings_changed.emit()
        self.scan_library()  # the models folder may have changed

    def read_profile_async(self) -> None:
        """The profile's bandwidth probe takes a moment on first run: never on the UI thread."""
        run_in_background(self.ctx.read_profile, self.profile_ready.emit, name="profile", owner=self)

    def scan_library(self) -> None:
        """Pick up models put in the models folder by hand (disk work, in the background)."""

        def done(added: int) -> None:
            if added:
                self.library_changed.emit()

        run_in_background(lambda: library.scan(self.ctx), done, name="library-scan", owner=self)

    @Slot(object)
    def _on_job(self, job: QueuedDownload) -> None:
        if job.state == "done":
            self.ctx.refresh_catalog()  # the download cached the Hub's exact sizes
            self.library_changed.emit()

    def shutdown(self) -> None:
        self.downloads.stop_all()  # .part files stay; the next start offers to resume
        if self._calibration is not None:
            self._calibration.shutdown()
