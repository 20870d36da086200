"""A zero-data replica of a Hub GGUF file, from its header alone.

The header (metadata and tensor table) is the first few MB of a file; it is fetched with Range
requests that grow until the tensor table is complete. The replica is that header followed by
zeros up to the real file's size, written as a sparse file: llama.cpp benchmarks it like the
real file and reports the same memory (docs/DESIGN.md), for a few MB of download and disk.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from localopen.core.errors import LocalopenError
from localopen.core.gguf.header import GGUFError, GGUFHeader, GGUFIncompleteError, parse_prefix
from localopen.core.hub.client import RemoteFile
from localopen.core.hub.downloader import RangeReader

log = logging.getLogger("localopen.replica")

FIRST_SPAN = 4 * 2**20  # most headers fit (a 262k-token vocabulary takes about 6.5 MB)
MAX_HEADER = 256 * 2**20  # no real header is this large: stop rather than fetch the model
SPARSE_TEST_SIZE = 64 * 2**20


class ReplicaError(LocalopenError):
    pass


@dataclass
class RemoteHeader:
    remote: RemoteFile
    header: GGUFHeader
    prefix: bytes  # the file's first bytes, up to its tensor data
    bytes_fetched: int


def fetch_header(remote: RemoteFile, timeout: float = 30.0, first_span: int = FIRST_SPAN) -> RemoteHeader:
    """The header of a Hub file, by Range requests that double until it is complete; checked
    against the Hub's size for the file."""
    if not remote.size:
        raise ReplicaError(f"The Hub gave no size for {remote.filename}: its header cannot be checked.")
    reader = RangeReader(remote, timeout)
    data = b""
    span = first_span
    while True:
        wanted = min(span, remote.size, MAX_HEADER)
        if wanted > len(data):
            data += reader.read(len(data), wanted - 1)
        try:
            header = parse_prefix(Path(remote.filename).name, data, remote.size)
            break
        except GGUFIncompleteError:
            if len(data) >= min(remote.size, MAX_HEADER) or len(data) < wanted:
                raise ReplicaError(
                    f"The header of {remote.filename} did not end within {len(data):,} bytes: "
                    "it is not a GGUF file localopen can read."
                ) from None
            span *= 2
        except GGUFError as exc:
            raise ReplicaError(f"{remote.filename} on the Hub: {exc}") from exc
    check_size(header, remote)
    return RemoteHeader(remote, header, data[: header.tensor_data_offset], reader.bytes_fetched)


def check_size(header: GGUFHeader, remote: RemoteFile) -> None:
    """The tensor data the header describes must end where the Hub's file ends (up to the padding
    after the last tensor): otherwise the header is not the file's, and nothing is benchmarked."""
    alignment = header.get("general.alignment") or 32
    end = header.tensor_data_end
    if end is None:
        raise ReplicaError(f"{remote.filename} uses a tensor type localopen does not know; it cannot be probed.")
    if not end <= (remote.size or 0) < end + alignment:
        raise ReplicaError(
            f"The header of {remote.filename} describes {end:,} bytes but the Hub's file has "
            f"{remote.size:,}: they do not match, so nothing was measured."
        )


def supports_sparse(folder: Path) -> bool:
    """Whether files in this folder can have holes (they take disk only for what is written)."""
    test = folder / ".sparse-test"
    try:
        with test.open("wb") as fh:
            _mark_sparse(fh)
            fh.write(b"x")
            fh.truncate(SPARSE_TEST_SIZE)
        allocated = _allocated(test)
        return allocated is not None and allocated < SPARSE_TEST_SIZE // 4
    except OSError:
        log.warning("Sparse-file test failed in %s", folder, exc_info=True)
        return False
    finally:
        test.unlink(missing_ok=True)


def _allocated(path: Path) -> int | None:
    blocks = getattr(path.stat(), "st_blocks", None)
    if blocks is not None:
        return int(blocks) * 512
    if sys.platform == "win32":
        return _windows_allocated(path)
    return None


def _mark_sparse(fh: BinaryIO) -> None:
    """NTFS makes a file sparse only when asked (FSCTL_SET_SPARSE); elsewhere holes are the default."""
    if sys.platform != "win32":
        return
    import ctypes
    import msvcrt
    from ctypes import wintypes

    fsctl_set_sparse = 0x000900C4
    handle = msvcrt.get_osfhandle(fh.fileno())
    returned = wintypes.DWORD()
    ok = ctypes.windll.kernel32.DeviceIoControl(
        wintypes.HANDLE(handle), fsctl_set_sparse, None, 0, None, 0, ctypes.byref(returned), None
    )
    if not ok:
        raise OSError("this filesystem does not take sparse files")


def _windows_allocated(path: Path) -> int | None:
    if sys.platform != "win32":
        return None
    import ctypes
    from ctypes import wintypes

    high = wintypes.DWORD()
    low = ctypes.windll.kernel32.GetCompressedFileSizeW(str(path), ctypes.byref(high))
    return (high.value << 32) + low if low != 0xFFFFFFFF else None


def disk_needed(headers: list[RemoteHeader], sparse: bool) -> int:
    """Disk a replica takes: its headers where holes are possible, else every byte."""
    if sparse:
        return sum(len(h.prefix) for h in headers)
    return sum(h.remote.size or 0 for h in headers)


def write_replica(headers: list[RemoteHeader], folder: Path) -> Path:
    """Write every part (named as on the Hub, so llama.cpp finds the parts of a split model);
    returns the path to load. The caller deletes the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    sparse = supports_sparse(folder)
    needed = disk_needed(headers, sparse)
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise ReplicaError(
            f"The probe needs {needed / 1e9:.2f} GB free in {folder} "
            f"({'headers only' if sparse else 'this filesystem has no sparse files, so the whole size'}); "
            f"{free / 1e9:.2f} GB is free."
        )
    paths = []
    for h in headers:
        path = folder / Path(h.remote.filename).name
        with path.open("wb") as fh:
            if sparse:
                _mark_sparse(fh)
            fh.write(h.prefix)
            fh.truncate(h.remote.size or 0)
            fh.flush()
            os.fsync(fh.fileno())
        paths.append(path)
    return paths[0]
