"""A queue of downloads: a few at a time (configurable), the rest waiting; pause, resume, cancel.

Listeners are called from worker threads; the Qt layer turns them into signals.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from localopen.app.models.pull import choose_files, choose_projector, pull, target_path
from localopen.core.errors import LocalopenError
from localopen.core.hub.client import Hub
from localopen.core.hub.downloader import Paused, Progress, part_paths

log = logging.getLogger("localopen.downloads")


@dataclass
class QueuedDownload:
    id: int
    repo: str
    quant: str | None = None
    filename: str | None = None
    pattern: str | None = None
    state: str = "queued"  # queued | running | paused | done | failed | cancelled
    done: int = 0
    total: int = 0
    speed: float = 0.0
    message: str = ""
    path: Path | None = None
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _cancel: bool = field(default=False, repr=False)

    @property
    def eta_seconds(self) -> float | None:
        return (self.total - self.done) / self.speed if self.speed > 0 and self.total else None


Listener = Callable[[QueuedDownload], None]


class DownloadQueue:
    def __init__(
        self, hub: Hub, connect: Callable[[], sqlite3.Connection], models_dir: Path, max_parallel: int = 2
    ) -> None:
        self.hub, self.connect, self.models_dir = hub, connect, models_dir
        self.max_parallel = max(1, max_parallel)
        self.jobs: list[QueuedDownload] = []
        self.listeners: list[Listener] = []
        self._lock = threading.Lock()
        self._next_id = 1
        self._threads: list[threading.Thread] = []

    def _emit(self, job: QueuedDownload) -> None:
        for listener in list(self.listeners):
            listener(job)

    def add(
        self, repo: str, quant: str | None = None, filename: str | None = None, pattern: str | None = None
    ) -> QueuedDownload:
        with self._lock:
            job = QueuedDownload(self._next_id, repo, quant, filename, pattern)
            self._next_id += 1
            self.jobs.append(job)
        self._emit(job)
        self._schedule()
        return job

    def pause(self, job: QueuedDownload) -> None:
        if job.state in ("running", "queued"):
            job._stop.set()
            if job.state == "queued":
                job.state = "paused"
                self._emit(job)

    def resume(self, job: QueuedDownload) -> None:
        if job.state in ("paused", "failed"):
            job._stop.clear()
            job.state, job.message = "queued", ""
            self._emit(job)
            self._schedule()

    def cancel(self, job: QueuedDownload) -> None:
        """Stop and delete the partial bytes."""
        job._cancel = True
        job._stop.set()
        if job.state != "running":
            self._finish_cancel(job)

    def _finish_cancel(self, job: QueuedDownload) -> None:
        job.state, job.message = "cancelled", "Cancelled; partial bytes deleted."
        with contextlib.suppress(LocalopenError):
            known = self._known_files(job)
            projector = choose_projector(known)  # fetched with the model: its partial bytes go too
            fetched = choose_files(known, job.quant, job.filename, job.pattern) + ([projector] if projector else [])
            for remote in fetched:
                for p in part_paths(target_path(self.models_dir, remote)):
                    with contextlib.suppress(FileNotFoundError):
                        p.unlink()
        self._emit(job)

    def _known_files(self, job: QueuedDownload):
        from localopen.core.store.library_db import hub_files

        conn = self.connect()
        try:
            return hub_files(conn, job.repo)
        finally:
            conn.close()

    def _schedule(self) -> None:
        with self._lock:
            running = sum(1 for j in self.jobs if j.state == "running")
            for job in self.jobs:
                if running >= self.max_parallel:
                    break
                if job.state == "queued":
                    job.state = "running"
                    running += 1
                    thread = threading.Thread(target=self._run, args=(job,), daemon=True, name=f"download-{job.id}")
                    self._threads.append(thread)
                    thread.start()

    def _run(self, job: QueuedDownload) -> None:
        self._emit(job)
        conn = self.connect()
        progress_by_file: dict[str, Progress] = {}

        def on_progress(name: str, p: Progress) -> None:
            progress_by_file[name] = p
            job.done = sum(x.done for x in progress_by_file.values())
            job.total = max(job.total, sum(x.total for x in progress_by_file.values()))
            job.speed = p.bytes_per_second
            self._emit(job)

        try:
            job.path = pull(
                self.hub,
                conn,
                self.models_dir,
                job.repo,
                quant=job.quant,
                filename=job.filename,
                pattern=job.pattern,
                on_progress=on_progress,
                should_stop=job._stop.is_set,
            )
            job.state, job.message = "done", f"Installed {job.path.name}"
            job.done = job.total = max(job.total, job.done)
        except Paused:
            if job._cancel:
                conn.close()
                self._finish_cancel(job)
                self._schedule()
                return
            job.state, job.message = "paused", "Paused; resume continues where it stopped."
        except LocalopenError as exc:
            job.state, job.message = "failed", str(exc)
        except Exception as exc:  # noqa: BLE001 - a worker thread must never die silently
            log.exception("Download of %s failed unexpectedly", job.repo)
            job.state, job.message = "failed", f"Unexpected error ({type(exc).__name__}: {exc}); see the log."
        finally:
            conn.close()
        self._emit(job)
        self._schedule()

    def wait(self, timeout: float | None = None) -> None:
        """Until no download runs (jobs started meanwhile included), or the timeout passes."""
        import time

        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            alive = [t for t in list(self._threads) if t.is_alive()]
            if not alive:
                return
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return
            alive[0].join(left)

    def stop_all(self) -> None:
        """Pause everything (used when the app quits: .part files stay for a later resume)."""
        for job in self.jobs:
            if job.state in ("running", "queued"):
                job._stop.set()
        self.wait(10)
