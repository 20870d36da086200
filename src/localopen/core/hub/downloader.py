"""Resumable, verified downloads over HTTP Range requests.

Bytes go to `<name>.part` beside a `<name>.part.json` that records what is being fetched
(URL, size, sha256, commit); a later run, after a pause, a crash or a kill, continues from the
`.part` file's length. A file counts as installed only once its sha256 matches; a mismatch
deletes the bytes and says so. Transient failures (timeouts, 5xx, resets) retry with backoff.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import http.client
import json
import logging
import os
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from localopen.core.errors import LocalopenError
from localopen.core.hub.client import RemoteFile, endpoint, explain_http, token

log = logging.getLogger("localopen.downloads")

CHUNK = 1 << 20
# Bytes asked for per request. The Hub serves GGUF files from Xet storage: /resolve/ answers 302
# to a signed CDN URL that takes Range requests and expires after about an hour, and a
# range-less GET of a very large file has been seen to fail with 400. Bounded ranges also mean
# an expired signature costs at most one span before the URL is resolved again.
REQUEST_SPAN = 64 * 2**20
MARGIN_BYTES = 200 * 2**20  # keep this much free beyond the file


class DownloadError(LocalopenError):
    pass


class ChecksumError(DownloadError):
    pass


class DiskSpaceError(DownloadError):
    pass


class Paused(DownloadError):
    """The download was paused or cancelled by the caller; the .part file is kept."""


class _Transient(Exception):
    pass


class _Expired(Exception):
    """The signed CDN URL was refused (its signature expired): resolve it again and continue."""


@dataclass
class Progress:
    done: int
    total: int
    bytes_per_second: float

    @property
    def eta_seconds(self) -> float | None:
        if self.bytes_per_second <= 0 or self.total <= 0:
            return None
        return (self.total - self.done) / self.bytes_per_second


def part_paths(final: Path) -> tuple[Path, Path]:
    return final.with_name(final.name + ".part"), final.with_name(final.name + ".part.json")


def unfinished_downloads(models_dir: Path) -> list[tuple[str, str]]:
    """(repo, filename) of downloads an earlier run left unfinished (disk work: a folder walk)."""
    pending = []
    for sidecar in models_dir.rglob("*.part.json") if models_dir.is_dir() else []:
        try:
            record = json.loads(sidecar.read_text(encoding="utf-8"))
            pending.append((str(record["repo"]), str(record["filename"])))
        except (OSError, ValueError, KeyError, TypeError):
            log.warning("Unreadable download record %s", sidecar)
    return pending


def resolve_url(remote: RemoteFile) -> str:
    quoted = urllib.parse.quote(remote.filename)
    return f"{endpoint()}/{remote.repo}/resolve/{remote.revision}/{quoted}"


class _NoAuthOnRedirect(urllib.request.HTTPRedirectHandler):
    """Follow redirects, but never send the token to another host (CDNs)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and urllib.parse.urlparse(newurl).netloc != urllib.parse.urlparse(req.full_url).netloc:
            new.remove_header("Authorization")
        return new


_OPENER = urllib.request.build_opener(_NoAuthOnRedirect())


def check_disk_space(folder: Path, needed: int) -> None:
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < needed + MARGIN_BYTES:
        raise DiskSpaceError(
            f"Not enough disk space in {folder}: this download needs {needed / 1e9:.2f} GB more "
            f"(plus {MARGIN_BYTES / 1e9:.1f} GB to spare) and {free / 1e9:.2f} GB is free. "
            "Free some space or choose another models folder in the settings."
        )


def download(
    remote: RemoteFile,
    final: Path,
    *,
    on_progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    timeout: float = 30.0,
    retries: int = 5,
    backoff: float = 1.0,
    free_space_check: Callable[[Path, int], None] = check_disk_space,
    request_span: int = REQUEST_SPAN,
) -> Path:
    """Fetch `remote` into `final`, resuming any earlier .part; returns `final` once verified."""
    if remote.size is None or not remote.sha256:
        raise DownloadError(f"The Hub gave no size or sha256 for {remote.filename}; it cannot be verified.")
    with _disk_errors_in_words(final):
        part, sidecar = _prepare_part(remote, final, free_space_check)
        hashed = _RunningHash()
        attempt = 0
        while True:
            try:
                _fetch(remote, part, on_progress, should_stop, timeout, hashed, request_span)
                break
            except _Transient as exc:
                attempt += 1
                if attempt > retries:
                    raise DownloadError(
                        f"Download of {remote.filename} keeps failing ({exc}); "
                        "run it again later: it will resume where it stopped."
                    ) from exc
                time.sleep(min(backoff * 2 ** (attempt - 1), 30))
        return _verify_and_install(remote, part, sidecar, final, hashed.digest_for(part))


@contextlib.contextmanager
def _disk_errors_in_words(final: Path) -> Iterator[None]:
    """The network's errors are retried inside; an OSError that reaches here is the disk's: said in
    words, the bytes already written kept in the .part file."""
    try:
        yield
    except OSError as exc:
        raise _disk_error(final, exc) from exc


def _disk_error(final: Path, exc: OSError) -> DownloadError:
    part, _ = part_paths(final)
    kept = part.stat().st_size if part.exists() else 0
    resume = f" The {kept / 1e6:.1f} MB downloaded are kept: run it again to resume." if kept else ""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskSpaceError(f"The disk holding {final.parent} is full: free some space.{resume}")
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return DownloadError(
            f"localopen cannot write to {final.parent}: it is read-only. Choose another models folder in the settings."
        )
    return DownloadError(f"Writing {final.name} to {final.parent} failed: {exc.strerror or exc}.{resume}")


def _prepare_part(remote: RemoteFile, final: Path, free_space_check: Callable[[Path, int], None]) -> tuple[Path, Path]:
    """The .part file to append to (an earlier one of another file or version is started again)
    and its sidecar naming what it holds; the free space checked for what is left to fetch."""
    assert remote.size is not None  # download() refuses a file without a known size
    final.parent.mkdir(parents=True, exist_ok=True)
    part, sidecar = part_paths(final)
    record = {
        "repo": remote.repo,
        "filename": remote.filename,
        "revision": remote.revision,
        "size": remote.size,
        "sha256": remote.sha256,
    }
    if part.exists():
        try:
            previous = json.loads(sidecar.read_text())
        except (OSError, ValueError):
            previous = None
        if previous != record:  # a different file or version: start again
            part.unlink()
    sidecar.write_text(json.dumps(record))
    free_space_check(final.parent, remote.size - (part.stat().st_size if part.exists() else 0))
    return part, sidecar


class _RunningHash:
    """sha256 computed while bytes arrive, so verifying costs no second read of the file.
    After a resume the bytes already on disk are hashed once first."""

    def __init__(self) -> None:
        self.hasher = hashlib.sha256()
        self.covered = 0

    def catch_up(self, part: Path, offset: int) -> None:
        if self.covered == offset:
            return
        self.hasher, self.covered = hashlib.sha256(), 0
        if offset:
            with part.open("rb") as fh:
                while self.covered < offset and (block := fh.read(min(8 * CHUNK, offset - self.covered))):
                    self.update(block)

    def update(self, block: bytes) -> None:
        self.hasher.update(block)
        self.covered += len(block)

    def digest_for(self, part: Path) -> str:
        self.catch_up(part, part.stat().st_size)
        return self.hasher.hexdigest()


def _fetch(
    remote: RemoteFile,
    part: Path,
    on_progress: Callable[[Progress], None] | None,
    should_stop: Callable[[], bool] | None,
    timeout: float,
    hashed: _RunningHash,
    request_span: int,
) -> None:
    """Append the missing bytes to `part`, one bounded Range request at a time."""
    size = remote.size
    assert size is not None  # download() refuses a file without a known size
    offset = part.stat().st_size if part.exists() else 0
    hashed.catch_up(part, offset)
    signed_url: str | None = None  # where /resolve/ sent us: reused until it is refused
    start, last_report, started_at = offset, 0.0, time.monotonic()
    while offset < size:
        end = min(offset + request_span, size) - 1
        try:
            signed_url, response = _open_range(remote, signed_url, offset, end, timeout)
        except _Expired:
            log.info("Signed URL for %s refused at byte %d: resolving again", remote.filename, offset)
            signed_url, response = _open_range(remote, None, offset, end, timeout)
        if response is None:
            return  # 416: nothing left to fetch; verification decides
        with response:
            if response.status == 200:
                if offset:  # the server ignored the range: start over rather than append garbage
                    part.write_bytes(b"")
                    hashed.catch_up(part, 0)
                    offset = start = 0
                end = size - 1
            with part.open("ab" if offset else "wb") as out:
                while offset <= end:
                    if should_stop and should_stop():
                        raise Paused(f"Paused {remote.filename} at {offset} of {size} bytes.")
                    try:
                        block = response.read(min(CHUNK, end + 1 - offset))
                    except (TimeoutError, ConnectionError, http.client.HTTPException, OSError) as exc:
                        raise _Transient(f"connection lost after {offset} bytes: {exc}") from exc
                    if not block:
                        raise _Transient(f"the connection closed after {offset} of {size} bytes")
                    out.write(block)
                    hashed.update(block)
                    offset += len(block)
                    now = time.monotonic()
                    if on_progress and (now - last_report > 0.2 or offset >= size):
                        last_report = now
                        on_progress(Progress(offset, size, (offset - start) / max(now - started_at, 1e-6)))


def _open_range(
    remote: RemoteFile, signed_url: str | None, first: int, last: int, timeout: float
) -> tuple[str | None, http.client.HTTPResponse | None]:
    """Open bytes first..last: through /resolve/ (with the token; a redirect to another host drops
    it) when no signed URL is known yet, else from the signed URL (never with the token).
    Returns the URL to reuse and the response (None: the range is past the end)."""
    url = signed_url or resolve_url(remote)
    request = urllib.request.Request(url, headers={"Range": f"bytes={first}-{last}", "User-Agent": "localopen"})
    tok = token()
    if tok and signed_url is None:
        request.add_header("Authorization", f"Bearer {tok}")
    try:
        response = _OPENER.open(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and first:
            return signed_url, None
        if signed_url is not None and exc.code in (400, 401, 403, 410):
            raise _Expired() from exc  # a signed URL past its time: the Hub gives a fresh one
        if exc.code >= 500 or exc.code == 429:
            raise _Transient(f"HTTP {exc.code}") from exc
        raise explain_http(exc.code, remote.repo, remote.filename, exc.headers.get("X-Error-Code")) from exc
    except (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException) as exc:
        raise _Transient(str(getattr(exc, "reason", exc))) from exc
    final_url = response.geturl()
    redirected = urllib.parse.urlparse(final_url).netloc != urllib.parse.urlparse(url).netloc
    return (final_url if redirected else signed_url), response


class RangeReader:
    """Reads byte ranges of one Hub file: through /resolve/ once, then from the signed URL it
    redirects to (re-resolved when it expires). For a header, not a download: nothing is saved."""

    def __init__(self, remote: RemoteFile, timeout: float = 30.0, retries: int = 3) -> None:
        self.remote, self.timeout, self.retries = remote, timeout, retries
        self.bytes_fetched = 0
        self._signed_url: str | None = None

    def read(self, first: int, last: int) -> bytes:
        """Bytes first..last (inclusive, clipped to the file); DownloadError when the network fails."""
        for attempt in range(self.retries + 1):
            try:
                return self._read_once(first, last)
            except _Transient as exc:
                if attempt == self.retries:
                    raise DownloadError(f"Could not read {self.remote.filename} from the Hub ({exc}).") from exc
                time.sleep(min(2**attempt, 10))
        raise AssertionError("unreachable")

    def _read_once(self, first: int, last: int) -> bytes:
        try:
            self._signed_url, response = _open_range(self.remote, self._signed_url, first, last, self.timeout)
        except _Expired:
            self._signed_url, response = _open_range(self.remote, None, first, last, self.timeout)
        if response is None:
            return b""
        with response:
            try:
                if response.status == 200:  # no Range support: skip to `first` (those bytes count too)
                    self.bytes_fetched += len(response.read(first))
                data = response.read(last + 1 - first)
            except (TimeoutError, ConnectionError, http.client.HTTPException, OSError) as exc:
                raise _Transient(f"connection lost: {exc}") from exc
        self.bytes_fetched += len(data)
        return data


def _verify_and_install(remote: RemoteFile, part: Path, sidecar: Path, final: Path, actual: str) -> Path:
    expected = remote.sha256
    assert expected is not None  # download() refuses a file without a known sha256
    if actual != expected:
        part.unlink()
        with contextlib.suppress(OSError):
            sidecar.unlink()
        raise ChecksumError(
            f"{remote.filename} arrived damaged (sha256 {actual[:12]}… instead of {expected[:12]}…). "
            "The bytes were deleted; download it again."
        )
    os.replace(part, final)
    with contextlib.suppress(OSError):
        sidecar.unlink()
    return final
