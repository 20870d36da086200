"""Downloads in place: a bar, speed and ETA per job; pause, resume, cancel; errors in plain words."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget

from localopen.app.models.download_queue import QueuedDownload
from localopen.core.estimate.memory import human_bytes
from localopen.ui.services import Services


class JobRow(QWidget):
    def __init__(self, services: Services, job: QueuedDownload) -> None:
        super().__init__()
        self.services, self.job = services, job
        self.title = QLabel(job.filename or job.pattern or job.quant or job.repo)
        self.title.setToolTip(job.repo)
        self.bar = QProgressBar()
        self.bar.setAccessibleName(f"Download progress of {job.repo}")
        self.bar.setRange(0, 1000)
        self.status = QLabel("queued")
        self.status.setWordWrap(True)
        self.pause = QPushButton("Pause")
        self.pause.setAccessibleName("Pause or resume this download")
        self.pause.clicked.connect(self._toggle)
        self.cancel = QPushButton("Cancel")
        self.cancel.setAccessibleName("Cancel this download")
        self.cancel.clicked.connect(lambda: self.services.downloads.cancel(self.job))
        top = QHBoxLayout()
        top.addWidget(QLabel(f"<b>{job.repo}</b>"))
        top.addWidget(self.title, 1)
        top.addWidget(self.pause)
        top.addWidget(self.cancel)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        layout.addLayout(top)
        layout.addWidget(self.bar)
        layout.addWidget(self.status)

    def _toggle(self) -> None:
        q = self.services.downloads
        if self.job.state in ("running", "queued"):
            q.pause(self.job)
        else:
            q.resume(self.job)

    def update_view(self) -> None:
        j = self.job
        # The worker thread changes the job while this runs: read its state once, so the
        # status line and the buttons always describe the same moment.
        state, done, total, speed, eta_s = j.state, j.done, j.total, j.speed, j.eta_seconds
        if total:
            self.bar.setValue(int(1000 * done / total))
        eta = f", {eta_s:.0f} s left" if eta_s is not None and state == "running" else ""
        rate = f" at {human_bytes(speed)}/s" if state == "running" and speed else ""
        text = {
            "running": f"{human_bytes(done)} of {human_bytes(total)}{rate}{eta}",
            "queued": "waiting for a free slot",
            "paused": f"paused at {human_bytes(done)}",
            "done": j.message,
            "failed": j.message,
            "cancelled": j.message,
        }.get(state, state)
        self.status.setText(text)
        self.status.setStyleSheet("color: #c62828" if state == "failed" else "")
        self.pause.setText("Pause" if state in ("running", "queued") else "Resume")
        self.pause.setEnabled(state in ("running", "queued", "paused", "failed"))
        self.cancel.setEnabled(state not in ("done", "cancelled"))


class DownloadsPanel(QWidget):
    def __init__(self, services: Services) -> None:
        super().__init__()
        self.services = services
        self.rows: dict[int, JobRow] = {}
        self.empty = QLabel("No downloads. Choose a model in Explore and press Download.")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.layout_ = QVBoxLayout(self)
        self.layout_.addWidget(self.empty)
        self.layout_.addStretch(1)
        # Worker threads emit; Qt queues the call onto the UI thread.
        services.job_changed.connect(self.on_job, Qt.ConnectionType.QueuedConnection)
        for job in list(services.downloads.jobs):  # asked for (and maybe failed) before this panel was made
            self.on_job(job)

    def on_job(self, job: QueuedDownload) -> None:
        row = self.rows.get(job.id)
        if row is None:
            row = JobRow(self.services, job)
            self.rows[job.id] = row
            self.layout_.insertWidget(self.layout_.count() - 1, row)
            self.empty.hide()
        row.update_view()
