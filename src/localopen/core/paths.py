"""Where localopen keeps its files: platformdirs, overridable by LOCALOPEN_HOME."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

APP = "localopen"


@dataclass(frozen=True)
class AppPaths:
    config: Path
    data: Path
    cache: Path
    logs: Path

    @property
    def settings_file(self) -> Path:
        return self.config / "settings.json"

    @property
    def database(self) -> Path:
        return self.data / "localopen.sqlite3"

    @property
    def default_models_dir(self) -> Path:
        return self.data / "models"


def app_paths() -> AppPaths:
    """LOCALOPEN_HOME puts everything under one folder (portable installs, tests)."""
    home = os.environ.get("LOCALOPEN_HOME")
    if home:
        root = Path(home).expanduser()
        return AppPaths(config=root / "config", data=root / "data", cache=root / "cache", logs=root / "logs")
    return AppPaths(
        config=Path(platformdirs.user_config_dir(APP, appauthor=False)),
        data=Path(platformdirs.user_data_dir(APP, appauthor=False)),
        cache=Path(platformdirs.user_cache_dir(APP, appauthor=False)),
        logs=Path(platformdirs.user_log_dir(APP, appauthor=False)),
    )


def load_settings(paths: AppPaths) -> dict:
    """Settings as saved; a missing or unreadable file means defaults (never a crash)."""
    try:
        data = json.loads(paths.settings_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def save_settings(paths: AppPaths, settings: dict) -> None:
    """Write atomically so a crash mid-write never loses the previous settings."""
    paths.config.mkdir(parents=True, exist_ok=True)
    tmp = paths.settings_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(settings, indent=2, sort_keys=True), encoding="utf-8")
    os.replace(tmp, paths.settings_file)
