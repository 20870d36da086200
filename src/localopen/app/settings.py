"""The user's settings, typed, loaded once per process, saved atomically."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localopen.core import paths as paths_mod
from localopen.core.verdict import Thresholds

log = logging.getLogger("localopen.settings")


@dataclass
class Settings:
    models_dir: str | None = None  # None: <data>/models
    n_ctx: int = 4096
    n_threads: int = 0  # 0: physical cores
    n_gpu_layers: int = 0
    max_parallel_downloads: int = 2
    offline: bool = False
    calibrate_automatically: bool = True  # measure this machine once (83 s on 2 cores) for predicted speeds
    thresholds: Thresholds = field(default_factory=Thresholds)

    @classmethod
    def load(cls, paths: paths_mod.AppPaths) -> Settings:
        """Saved settings; a missing file means defaults, and a value of the wrong type is
        replaced by its default (logged), never a crash."""
        saved = paths_mod.load_settings(paths)
        defaults = cls()
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name == "thresholds" or f.name not in saved:
                continue
            value, default = saved[f.name], getattr(defaults, f.name)
            if f.name == "models_dir":
                ok = value is None or isinstance(value, str)
            elif isinstance(default, bool):
                ok = isinstance(value, bool)
            else:
                ok = isinstance(value, int) and not isinstance(value, bool)
            if ok:
                values[f.name] = value
            else:
                log.warning("Setting %s has an unusable value %r; using %r", f.name, value, default)
        thresholds = saved.get("verdict_thresholds")
        if isinstance(thresholds, dict):
            try:
                values["thresholds"] = Thresholds.from_dict(thresholds)
            except (TypeError, ValueError):
                log.warning("Verdict thresholds %r are unusable; using the defaults", thresholds)
        return cls(**values)

    def save(self, paths: paths_mod.AppPaths) -> None:
        data = dataclasses.asdict(self)
        data["verdict_thresholds"] = data.pop("thresholds")
        paths_mod.save_settings(paths, data)

    def models_path(self, paths: paths_mod.AppPaths) -> Path:
        """The models folder: the setting, else <data>/models."""
        return Path(self.models_dir).expanduser() if self.models_dir else paths.default_models_dir
