"""What every operation of the product needs: paths, settings, the database, the catalog, the Hub,
and this machine's profile. One context per process; both faces build theirs with `AppContext()`.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

from localopen.app.activity import EngineActivity
from localopen.app.model_store import ModelStore
from localopen.app.settings import Settings
from localopen.core.estimate.verdict import Thresholds
from localopen.core.hub.client import Hub
from localopen.core.machine.hardware import HardwareProfile, read_profile
from localopen.core.openness.catalog import Catalog, load_catalog
from localopen.core.paths import AppPaths, app_paths
from localopen.core.store.db import check_integrity, connect
from localopen.core.store.library_db import cached_files_by_repo

log = logging.getLogger("localopen.app")


class AppContext:
    """Shared state, safe to use from several threads: SQLite connections are per thread, the
    catalog and the profile are read once (and replaced whole, never mutated)."""

    def __init__(self, paths: AppPaths | None = None) -> None:
        self.paths = paths or app_paths()
        self.settings = Settings.load(self.paths)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._catalog: Catalog | None = None
        self._profile: HardwareProfile | None = None
        self._fingerprint: str | None = None  # this machine's id, before its profile is read
        self.activity = EngineActivity()  # which engines work now (the calibration waits for none)
        self._models: ModelStore | None = None
        # This thread's connection, made now: a database that cannot be opened or migrated, or has
        # damaged pages, fails early and clearly (with the repair), not in the middle of a task.
        self._local.conn = connect(self.paths.database)
        check_integrity(self._local.conn, self.paths.database)

    # -- storage ----------------------------------------------------------------------------------
    @property
    def db(self) -> sqlite3.Connection:
        """This thread's connection (SQLite connections cannot cross threads)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = connect(self.paths.database)
        return conn

    @property
    def models(self) -> ModelStore:
        """The loaded models, lent to every face of this process (made at first use)."""
        with self._lock:
            if self._models is None:
                self._models = ModelStore(self.settings.budget)
            return self._models

    def close_models(self) -> None:
        """End every engine this process loaded (the process is ending)."""
        with self._lock:
            models, self._models = self._models, None
        if models is not None:
            models.close()

    @property
    def models_dir(self) -> Path:
        return self.settings.models_path(self.paths)

    @property
    def thresholds(self) -> Thresholds:
        return self.settings.thresholds

    def save_settings(self, settings: Settings) -> None:
        settings.save(self.paths)
        self.settings = settings

    # -- catalog, Hub, machine --------------------------------------------------------------------
    @property
    def catalog(self) -> Catalog:
        """The curated catalog, with exact sizes wherever the Hub's file lists are cached."""
        with self._lock:
            if self._catalog is None:
                self._catalog = load_catalog(files_by_repo=cached_files_by_repo(self.db))
            return self._catalog

    def refresh_catalog(self) -> None:
        """After new exact sizes were cached (a download, a refresh): read them into the catalog."""
        catalog = load_catalog(files_by_repo=cached_files_by_repo(self.db))
        with self._lock:
            self._catalog = catalog

    def hub(self) -> Hub:
        return Hub(offline=self.settings.offline)

    @property
    def offline(self) -> bool:
        """The Hub is not to be asked (the offline setting, or HF_HUB_OFFLINE)."""
        from localopen.core.hub.client import is_offline

        return is_offline(self.settings.offline)

    @property
    def profile(self) -> HardwareProfile | None:
        """This machine, once read (None until then)."""
        return self._profile

    def read_profile(self, measure: bool = True) -> HardwareProfile:
        """Read this machine (the bandwidth probe runs once per machine, then is cached)."""
        profile = read_profile(self.models_dir, self.paths.cache, measure=measure)
        if measure:  # the slow reading: the kernel canary's once-per-build answer goes with it
            from localopen.app import cpu_kernels

            profile.cpu_kernels = cpu_kernels.in_words()
        if measure or self._profile is None:
            self._profile = profile
        return profile

    def machine_id(self) -> str:
        """This machine's id for saved results and load failures. Asking for it reads the machine
        quickly if needed, without making that reading (no bandwidth) the `profile` faces wait for."""
        if self._profile is not None:
            return self._profile.fingerprint
        if self._fingerprint is None:
            self._fingerprint = read_profile(self.models_dir, self.paths.cache, measure=False).fingerprint
        return self._fingerprint
