"""Reading the open usability index: the records of the files this machine is shown, fetched
folder by folder (one listing per file, then only the submission files not yet read), cached, and
read from the cache when offline. The cost grows with the files on screen, never with the index.

What the cache holds is what was published, unchecked: every read checks it again
(core/index/trust), so a newer localopen's stricter checks apply to records fetched long ago.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from pathlib import Path

from localopen.app.context import AppContext
from localopen.app.models import library
from localopen.core.hub.client import HubError, NotFoundError, OfflineError
from localopen.core.index.layout import partition
from localopen.core.index.trust import Checked, check
from localopen.core.openness.catalog import CatalogModel
from localopen.core.store.hashing import known_sha256
from localopen.core.store.library_db import cached_files_by_repo

log = logging.getLogger("localopen.index")

FRESH_FOR_S = 24 * 3600  # a file's folder is listed again after a day
# A submission holds a few records of one file (a few KB): a larger file is not one, and is not
# downloaded (an index must not make its readers fetch what someone chose to make large).
MAX_SUBMISSION_BYTES = 256 * 1024
TOO_LARGE = "file too large to be a submission"
# A much-measured file's folder can hold thousands of submissions: the newest are read (their names
# start with the day), enough for a median, so a reader's cost stays bounded per file shown.
NEWEST_SUBMISSIONS = 200
SHA256_LENGTH = 64


def cache_dir(ctx: AppContext) -> Path:
    return ctx.paths.cache / "index" / ctx.settings.index_repo.replace("/", "--")


def refresh(ctx: AppContext, sha256s: Iterable[str], fresh_for_s: float = FRESH_FOR_S) -> str | None:
    """Fetch the records of these files (those not listed within `fresh_for_s`); None, or why the
    index could not be read now (then the cache answers)."""
    wanted = sorted({s for s in sha256s if len(s) == SHA256_LENGTH})
    if not wanted or ctx.offline:
        return None
    folder = cache_dir(ctx)
    folder.mkdir(parents=True, exist_ok=True)
    hub = ctx.hub()
    for sha in wanted:
        cached = _read_cache(folder, sha)
        if time.time() - cached.get("listed_at", 0) < fresh_for_s:
            continue
        old: dict[str, dict[str, str]] = cached.get("files", {})
        try:
            listing = hub.dataset_folder(ctx.settings.index_repo, partition(sha))
        except NotFoundError:
            listing = []  # no record of this file yet
        except OfflineError as exc:
            return str(exc)
        except HubError as exc:
            log.warning("The open index could not be read for %s: %s", sha[:12], exc)
            return str(exc)
        files = {}
        try:
            for path, blob, size in sorted(listing, reverse=True)[:NEWEST_SUBMISSIONS]:
                if path in old and old[path].get("blob") == blob:
                    files[path] = old[path]
                elif size > MAX_SUBMISSION_BYTES:
                    files[path] = {"blob": blob, "skipped": TOO_LARGE}
                else:
                    text = hub.dataset_file(ctx.settings.index_repo, path).decode("utf-8", "replace")
                    files[path] = {"blob": blob, "text": text}
        except HubError as exc:
            log.warning("An index file of %s could not be read: %s", sha[:12], exc)
            return str(exc)
        _write_cache(folder, sha, {"listed_at": time.time(), "files": files})
    return None


def refresh_models(ctx: AppContext, models: Iterable[CatalogModel], learn_hashes: bool = False) -> str | None:
    """The records of these catalog models' files. A file is found in the index by its sha256:
    with `learn_hashes`, the Hub's file list (sizes and sha256) is read first for a model whose
    files it has not told yet (one request per model, cached)."""
    models = list(models)
    if ctx.offline:
        return None
    if learn_hashes:
        known = cached_files_by_repo(ctx.db)
        try:
            for model in [m for m in models if m.gguf_repo not in known]:
                try:
                    library.remember_hub_files(ctx, model.gguf_repo)
                except OfflineError as exc:
                    return str(exc)
                except HubError as exc:  # this repository only (renamed, gated): the others go on
                    log.info("The Hub's file list of %s could not be read: %s", model.gguf_repo, exc)
        finally:
            ctx.refresh_catalog()
        models = [ctx.catalog.get(m.id) or m for m in models]
    return refresh(ctx, [q.sha256 for m in models for q in m.quants if q.sha256])


def refresh_file(ctx: AppContext, path: Path) -> str | None:
    """The records of a local file, when its sha256 is known here (never hashed for this)."""
    sha = known_sha256(ctx.db, path) if path.is_file() else None
    return refresh(ctx, [sha]) if sha else None


def cached(ctx: AppContext) -> dict[str, Checked]:
    """Every cached file's records, checked (no request: offline works the same)."""
    folder = cache_dir(ctx)
    out: dict[str, Checked] = {}
    for path in folder.glob("*.json") if folder.is_dir() else []:
        files = _read_cache(folder, path.stem).get("files", {})
        lines = [(source, line) for source, f in files.items() for line in str(f.get("text", "")).splitlines()]
        checked = check(lines)
        checked.ignored.update(str(f["skipped"]) for f in files.values() if f.get("skipped"))
        out[path.stem] = checked
    return out


def _read_cache(folder: Path, sha: str) -> dict:
    try:
        data = json.loads((folder / f"{sha}.json").read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        log.warning("The index cache of %s is unreadable: read again", sha[:12], exc_info=True)
        return {}


def _write_cache(folder: Path, sha: str, data: dict) -> None:
    fresh = folder / f".{sha}.json.new"
    fresh.write_text(json.dumps(data), encoding="utf-8")
    fresh.replace(folder / f"{sha}.json")
