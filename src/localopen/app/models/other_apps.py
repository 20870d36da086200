"""Models the user already has from other apps: LM Studio, Jan, GPT4All, llama.cpp's download cache
and Ollama. Their folders are found where those apps keep them; adding them imports each GGUF by
path (never copied or moved; `rm` only forgets an imported file, never deletes it). Ollama keeps
its models as blobs named by sha256: its manifests give each one its name (llama3.2:3b), which the
library shows. The catalog then recognises what it can (app/library.recognised).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from localopen.app.context import AppContext
from localopen.core.errors import LocalopenError
from localopen.core.gguf.files import is_first_part, is_gguf
from localopen.core.store import folders, library_db

log = logging.getLogger("localopen.library")

OLLAMA_MODEL_LAYER = "application/vnd.ollama.image.model"


@dataclass(frozen=True)
class OtherAppModels:
    app: str
    folder: Path
    files: list[tuple[Path, str]]  # (the file, the name the library shows)


def _candidates(home: Path) -> list[tuple[str, Path]]:
    appdata = Path(os.environ.get("APPDATA", home / "AppData" / "Roaming"))
    support = home / "Library" / "Application Support"
    data = Path(os.environ.get("XDG_DATA_HOME", home / ".local" / "share"))
    cache = Path(os.environ.get("XDG_CACHE_HOME", home / ".cache"))
    llama_cache = os.environ.get("LLAMA_CACHE")
    ollama = os.environ.get("OLLAMA_MODELS")
    return [
        ("LM Studio", home / ".lmstudio" / "models"),
        ("LM Studio", cache / "lm-studio" / "models"),
        ("Jan", home / "jan" / "models"),
        ("Jan", data / "Jan" / "data" / "models"),
        ("Jan", support / "Jan" / "data" / "models"),
        ("Jan", appdata / "Jan" / "data" / "models"),
        ("GPT4All", data / "nomic.ai" / "GPT4All"),
        ("GPT4All", support / "nomic.ai" / "GPT4All"),
        ("llama.cpp", Path(llama_cache) if llama_cache else cache / "llama.cpp"),
        ("llama.cpp", home / "Library" / "Caches" / "llama.cpp"),  # macOS
        ("Ollama", Path(ollama) if ollama else home / ".ollama" / "models"),
        ("Ollama", Path("/usr/share/ollama/.ollama/models")),
    ]


def _gguf_files(folder: Path, limit: int = 2000) -> list[tuple[Path, str]]:
    out = []
    for path in folders.files_under(folder):
        name = path.name
        if is_gguf(name) and is_first_part(name) and not name.lower().startswith("mmproj"):
            out.append((path, name))
            if len(out) >= limit:
                return out
    return out


def ollama_models(root: Path) -> list[tuple[Path, str]]:
    """Each Ollama model's weights blob with its name (registry/namespace/name/tag manifests)."""
    manifests = root / "manifests"
    out: list[tuple[Path, str]] = []
    if not manifests.is_dir():
        return out
    for manifest in sorted(p for p in manifests.rglob("*") if p.is_file()):
        try:
            layers = json.loads(manifest.read_text(encoding="utf-8")).get("layers", [])
        except (OSError, ValueError, AttributeError):
            log.info("Unreadable Ollama manifest %s", manifest, exc_info=True)
            continue
        digest = next(
            (x.get("digest") for x in layers if isinstance(x, dict) and x.get("mediaType") == OLLAMA_MODEL_LAYER), None
        )
        if not isinstance(digest, str) or ":" not in digest:
            continue
        blob = root / "blobs" / digest.replace(":", "-")
        parts = manifest.relative_to(manifests).parts  # registry, namespace, name, tag
        name, tag = parts[-2], parts[-1]
        namespace = "" if len(parts) < 3 or parts[-3] == "library" else f"{parts[-3]}-"
        if blob.is_file():
            out.append((blob, f"{namespace}{name}-{tag}.gguf"))
    return out


def find(home: Path | None = None) -> list[OtherAppModels]:
    """Other apps' model folders on this machine, with the GGUF files in each."""
    home = home or Path.home()
    found, seen = [], set()
    for app, folder in _candidates(home):
        try:
            if not folder.is_dir() or folder.resolve() in seen:
                continue
            seen.add(folder.resolve())
            files = ollama_models(folder) if app == "Ollama" else _gguf_files(folder)
        except OSError:
            continue
        if files:
            found.append(OtherAppModels(app, folder, files))
    return found


def not_in_library(ctx: AppContext, found: list[OtherAppModels]) -> list[OtherAppModels]:
    """What of it the library does not have yet."""
    known = {m.path for m in library_db.list_models(ctx.db)}
    out = []
    for group in found:
        files = [(p, n) for p, n in group.files if p.resolve() not in known]
        if files:
            out.append(OtherAppModels(group.app, group.folder, files))
    return out


def add(ctx: AppContext, groups: list[OtherAppModels]) -> tuple[int, list[str]]:
    """Import the files (by path, with their names); returns how many were added and, in words,
    those that could not be (a damaged or unreadable file is skipped, never fatal)."""
    added, problems = 0, []
    for group in groups:
        for path, name in group.files:
            try:
                library_db.import_file(ctx.db, path, name=name)
                added += 1
            except LocalopenError as exc:
                problems.append(f"{group.app}: {name}: {exc}")
    return added, problems
