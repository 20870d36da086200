#!/usr/bin/env python3
"""Downloader throughput against the fake Hub on loopback, next to curl on the same file.

    python benchmarks/download_throughput.py [--mib 512] [--rounds 3]

Both clients fetch the same URL from the same server process. localopen verifies the sha256 while
the bytes arrive, so the fair comparison is curl followed by sha256sum; plain curl is shown too.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def main() -> int:
    from localopen.core.hub.client import RemoteFile
    from localopen.core.hub.downloader import download, resolve_url

    from fake_hub import FakeHub, Repo

    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not shutil.which("curl"):
        print("curl is not installed", file=sys.stderr)
        return 1
    data = os.urandom(args.mib * 2**20)
    hub = FakeHub().start()
    hub.add(Repo("bench/Big-GGUF", files={"big-Q4_K_M.gguf": data}))
    os.environ["HF_ENDPOINT"] = hub.endpoint
    remote = RemoteFile("bench/Big-GGUF", "big-Q4_K_M.gguf", len(data), hashlib.sha256(data).hexdigest())
    url = resolve_url(remote)
    ours, theirs, verified = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.rounds):
            target = Path(tmp) / f"curl-{i}.bin"
            start = time.perf_counter()
            subprocess.run(["curl", "-s", "-o", str(target), url], check=True)
            theirs.append(time.perf_counter() - start)
            subprocess.run(["sha256sum", str(target)], check=True, capture_output=True)
            verified.append(time.perf_counter() - start)
            target.unlink()
            target = Path(tmp) / f"ours-{i}.gguf"
            start = time.perf_counter()
            download(remote, target)
            ours.append(time.perf_counter() - start)
            target.unlink()
    hub.stop()
    mb = len(data) / 1e6
    best_ours, best_curl, best_verified = min(ours), min(theirs), min(verified)
    print(f"file: {mb:.0f} MB over 127.0.0.1, best of {args.rounds}")
    print(f"curl:             {mb / best_curl:8.1f} MB/s ({best_curl:.2f} s, not verified)")
    print(f"curl + sha256sum: {mb / best_verified:8.1f} MB/s ({best_verified:.2f} s)")
    print(f"localopen:        {mb / best_ours:8.1f} MB/s ({best_ours:.2f} s, sha256 verified while downloading)")
    print(f"ratio localopen / (curl + sha256sum): {best_verified / best_ours:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
