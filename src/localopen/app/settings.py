"""The user's settings, typed, loaded once per process, saved atomically."""

from __future__ import annotations

import dataclasses
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localopen.core import paths as paths_mod
from localopen.core.errors import LocalopenError
from localopen.core.estimate.budget import Budget
from localopen.core.estimate.memory import KV_TYPES, kv_type
from localopen.core.estimate.verdict import Thresholds
from localopen.core.index.layout import DEFAULT_REPO as DEFAULT_INDEX_REPO
from localopen.core.options import BY_KEY
from localopen.core.store import folders

log = logging.getLogger("localopen.settings")
REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}")  # a Hub repository id, owner/name
MEMORY_PERCENT_RANGE = BY_KEY["models_memory_percent"].bounds or (10, 100)  # a share that leaves the system some
# The range of each whole-number setting: the load options' from their table, the others' here.
BOUNDS: dict[str, tuple[int, int]] = {o.key: o.bounds for o in BY_KEY.values() if o.bounds is not None} | {
    "max_parallel_downloads": (1, 16),
    "keep_alive_s": (-1, 366 * 24 * 3600),  # -1: until memory is needed; at most a year
}


@dataclass
class Settings:
    models_dir: str | None = None  # None: <data>/models
    # The load options' global values (core/options.OPTIONS: their words, kinds and defaults).
    n_ctx: int = BY_KEY["n_ctx"].default
    n_threads: int = BY_KEY["n_threads"].default  # 0: physical cores
    n_gpu_layers: int = BY_KEY["n_gpu_layers"].default
    kv_cache_type: str = BY_KEY["kv_cache_type"].default
    flash_attn: bool = BY_KEY["flash_attn"].default
    models_memory_percent: int = BY_KEY["models_memory_percent"].default  # core/estimate/budget.py
    max_parallel_downloads: int = 2
    offline: bool = False
    calibrate_automatically: bool = True  # measure this machine once (83 s on 2 cores) for predicted speeds
    # Seconds a model the local server loaded stays loaded while idle; -1: until memory is needed.
    keep_alive_s: int = 300
    # Host names the local server answers to beyond loopback and its own address (api/guard.py).
    allowed_hosts: list[str] = field(default_factory=list)
    # The Hub dataset of the open usability index: results shared to it (by pull request, only when
    # the user says so) and read from it ("measured on N machines like this one").
    index_repo: str = DEFAULT_INDEX_REPO
    thresholds: Thresholds = field(default_factory=Thresholds)

    @property
    def budget(self) -> Budget:
        """The one memory rule these settings give."""
        return Budget(self.models_memory_percent)

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
            elif f.name == "kv_cache_type":
                ok = isinstance(value, str) and value in KV_TYPES
            elif f.name == "index_repo":
                ok = isinstance(value, str) and REPO_ID.fullmatch(value) is not None
            elif isinstance(default, list):
                ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
            elif isinstance(default, bool):
                ok = isinstance(value, bool)
            else:
                ok = isinstance(value, int) and not isinstance(value, bool)
                low, high = BOUNDS.get(f.name, (-(2**63), 2**63))
                ok = ok and low <= value <= high
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

    def values(self) -> dict[str, Any]:
        """Every setting by its key, the verdict thresholds as `thresholds.NAME` (`localopen settings`)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "thresholds"}
        out |= {f"thresholds.{k}": v for k, v in self.thresholds.to_dict().items()}
        return out

    def with_value(self, key: str, text: str | None) -> Settings:
        """A copy with one setting parsed from text; None restores its default. Raises
        SettingError for an unknown key or a value of the wrong kind, saying what is expected."""
        if key not in self.values():
            raise SettingError(f"No setting '{key}'. Settings: {', '.join(self.values())}.")
        if key.startswith("thresholds."):
            name = key.split(".", 1)[1]
            default_t = getattr(Thresholds(), name)
            value_t = default_t if text is None else parse_value(key, text, default_t)
            return dataclasses.replace(self, thresholds=dataclasses.replace(self.thresholds, **{name: value_t}))
        default = getattr(Settings(), key)
        value = default if text is None else parse_value(key, text, default)
        return dataclasses.replace(self, **{key: value})

    def save(self, paths: paths_mod.AppPaths) -> None:
        data = dataclasses.asdict(self)
        data["verdict_thresholds"] = data.pop("thresholds")
        paths_mod.save_settings(paths, data)

    def models_path(self, paths: paths_mod.AppPaths) -> Path:
        """The models folder: the setting, else <data>/models."""
        return Path(self.models_dir).expanduser() if self.models_dir else paths.default_models_dir


class SettingError(LocalopenError):
    """A setting named or valued wrongly (`localopen settings KEY VALUE`)."""


def parse_value(key: str, text: str, default: Any) -> Any:
    """A setting's value from text, by the kind of its default (a model's preset parses the same way)."""
    text = text.strip()
    if key == "models_dir":
        if text and folders.system_folder(Path(text)):
            raise SettingError(
                f"'{text}' is the system's own folder, not a models folder: choose the folder they are in."
            )
        return text or None
    if key == "index_repo":
        if not REPO_ID.fullmatch(text):
            raise SettingError(f"'{key}' is a Hub dataset's id, owner/name, not '{text}'.")
        return text
    if key == "kv_cache_type":
        try:
            return kv_type(text)
        except ValueError as exc:
            raise SettingError(str(exc)) from None
    if isinstance(default, bool):
        if text.lower() in ("true", "yes", "on", "1"):
            return True
        if text.lower() in ("false", "no", "off", "0"):
            return False
        raise SettingError(f"'{key}' is true or false, not '{text}'.")
    if isinstance(default, list):
        return [part.strip() for part in text.split(",") if part.strip()]
    try:
        value = float(text) if isinstance(default, float) else int(text)
    except ValueError:
        kind = "a number" if isinstance(default, float) else "a whole number"
        raise SettingError(f"'{key}' is {kind}, not '{text}'.") from None
    if not math.isfinite(value):
        raise SettingError(f"'{key}' is a number, not '{text}'.")
    if key == "models_memory_percent" and not MEMORY_PERCENT_RANGE[0] <= value <= MEMORY_PERCENT_RANGE[1]:
        low, high = MEMORY_PERCENT_RANGE
        raise SettingError(
            f"'{key}' is the share of free memory models may take, {low} to {high} (percent), not {text}."
        )
    low, high = BOUNDS.get(key, (0, 2**63))
    if not low <= value <= high:
        raise SettingError(f"'{key}' is {low} to {high}, not {text}.")
    return value


def save_hub_token(token: str) -> Path:
    """The Hub token a person typed, kept where huggingface_hub keeps its login, private to this user."""
    from localopen.core.hub.client import save_token

    return save_token(token)
