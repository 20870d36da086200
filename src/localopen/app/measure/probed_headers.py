"""Headers of probed Hub files, kept in the cache folder after the replica is deleted.

A probe fetches a file's header (metadata and tensor table, a few MB) to write its replica. Kept,
it lets every later view of that file show its exact size and the fit read from its own shape,
where a file that was never probed has only the parameter-count estimate. The cache folder may be
emptied at any time: a missing or unreadable entry just means the estimate again.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from localopen.app.context import AppContext
from localopen.core.gguf.header import GGUFError, GGUFHeader, parse_prefix
from localopen.core.hub.replica import RemoteHeader

log = logging.getLogger("localopen.probed_headers")


@dataclass(frozen=True)
class ProbedHeader:
    header: GGUFHeader  # the first part's
    file_size: int  # all parts, as the Hub gives them
    tensor_bytes: int  # all parts


def _folder(ctx: AppContext) -> Path:
    return ctx.paths.cache / "probed-headers"


def _stem(repo: str, filename: str) -> str:
    return hashlib.sha256(f"{repo}/{filename}".encode()).hexdigest()[:32]


def remember(ctx: AppContext, headers: list[RemoteHeader]) -> None:
    """Keep the first part's header and the file's totals (a failure to write is logged, not raised:
    the probe's result stands without it)."""
    first = headers[0]
    stem = _stem(first.remote.repo, first.remote.filename)
    meta = {
        "repo": first.remote.repo,
        "filename": first.remote.filename,
        "first_part_size": first.remote.size,
        "file_size": sum(h.remote.size or 0 for h in headers),
        "tensor_bytes": sum(h.header.tensor_bytes for h in headers),
    }
    try:
        folder = _folder(ctx)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{stem}.header").write_bytes(first.prefix)
        (folder / f"{stem}.json").write_text(json.dumps(meta), encoding="utf-8")
    except OSError:
        log.exception("The header of %s/%s was not kept", first.remote.repo, first.remote.filename)


def recall(ctx: AppContext, repo: str, filename: str) -> ProbedHeader | None:
    """The header kept by a probe of this Hub file, or None (never probed here, or cache emptied)."""
    stem = _stem(repo, filename)
    folder = _folder(ctx)
    try:
        meta = json.loads((folder / f"{stem}.json").read_text(encoding="utf-8"))
        prefix = (folder / f"{stem}.header").read_bytes()
        header = parse_prefix(filename, prefix, int(meta["first_part_size"]))
        return ProbedHeader(header, int(meta["file_size"]), int(meta["tensor_bytes"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, GGUFError) as exc:
        log.warning("The kept header of %s/%s is unreadable (%s); using estimates", repo, filename, exc)
        return None
