"""Per-model presets: the context, KV-cache type, flash attention, threads, batch sizes, GPU layers
and memory mapping one model loads with, over the global settings, for every face (Chat, the
server, Compare, the CLI). A command's own flags still win over a preset; what a preset does not
name comes from the settings. Set with `localopen preset MODEL KEY VALUE` or in the Chat view."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from localopen.app.context import AppContext
from localopen.app.conversation import drafting
from localopen.app.settings import SettingError, parse_value
from localopen.core.gguf.files import model_name
from localopen.core.options import OPTIONS
from localopen.core.store import presets as store

# key -> (a value of its kind, what it is): the load options a model may have its own value of
# (core/options.OPTIONS); parsed as the settings are (app/settings.parse_value).
KEYS: dict[str, tuple[Any, str]] = {o.key: (o.default, o.words) for o in OPTIONS if o.preset}


def all_presets(ctx: AppContext) -> list[store.Preset]:
    """Every model's saved preset."""
    return store.all_presets(ctx.db)


def name_of(path: str | Path) -> str:
    """The name a preset is kept under: the model's name as the library and the API say it."""
    return model_name(Path(path).name)


def preset_for(ctx: AppContext, path: str | Path | None) -> dict[str, Any]:
    """The saved preset of the model at path ({} when none, or no model)."""
    if path is None:
        return {}
    found = store.get(ctx.db, name_of(path))
    return {k: v for k, v in found.settings.items() if k in KEYS} if found is not None else {}


def parse(key: str, text: str) -> Any:
    """A preset value from text, by its kind; SettingError in words when it is not one."""
    if key not in KEYS:
        raise SettingError(f"No preset setting '{key}'. Preset settings: {', '.join(KEYS)}.")
    if key == "draft":
        value = text.strip()
        if value.lower() in ("lookup", "off"):
            return value.lower()
        if not value.endswith(".gguf") or not Path(value).is_file():
            raise SettingError(f"'draft' is lookup, off or a draft model's file, not '{value}'.")
        return value
    value = parse_value(key, text, KEYS[key][0])
    if value == 0 and key in ("n_ctx", "n_batch", "n_ubatch"):
        raise SettingError(f"'{key}' cannot be {text.strip()}.")
    return value


def set_value(ctx: AppContext, model: str, key: str, text: str | None, note: str = "set by hand") -> dict[str, Any]:
    """Set (or with None remove) one value of a model's preset; returns the preset now."""
    saved = store.get(ctx.db, model)
    current = dict(saved.settings) if saved is not None else {}
    if text is None:
        if key not in KEYS:
            raise SettingError(f"No preset setting '{key}'. Preset settings: {', '.join(KEYS)}.")
        current.pop(key, None)
    else:
        if key == "draft":  # a library name becomes the draft model's path
            text = drafting.resolve(ctx, text) or "off"
        current[key] = parse(key, text)
    store.save(ctx.db, model, current, note)
    return current


def save(ctx: AppContext, model: str, values: dict[str, Any], note: str) -> None:
    """Replace a model's preset with these values (each checked)."""
    checked = {k: parse(k, str(v).lower() if isinstance(v, bool) else str(v)) for k, v in values.items()}
    store.save(ctx.db, model, checked, note)
