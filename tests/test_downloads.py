"""Downloads and the library against a fake Hub on 127.0.0.1 (real HTTP, real files, real SQLite)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli_helpers import exe
from localopen.app.models.pull import choose_files, pull
from localopen.core.hub import downloader
from localopen.core.hub.client import GatedError, Hub, NotFoundError, OfflineError, RemoteFile
from localopen.core.hub.downloader import ChecksumError, DiskSpaceError, DownloadError, download
from localopen.core.paths import app_paths
from localopen.core.store.db import connect
from localopen.core.store.library_db import find, import_file, list_models, remove, verify

from fake_hub import FakeHub, Repo
from tiny_gguf import rot

REPO = "org/Tiny-GGUF"


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tiny_gguf: Path):
    server = FakeHub().start()
    data = tiny_gguf.read_bytes()
    big = os.urandom(3 * 2**20)
    server.add(
        Repo(
            REPO,
            files={
                "tiny-Q4_K_M.gguf": data,
                "tiny-Q8_0.gguf": data + b"\0" * 64,
                "big-Q6_K.gguf": big,
                "README.md": b"# tiny",
            },
            card={"license": "apache-2.0", "base_model": "HuggingFaceTB/SmolLM2-135M-Instruct"},
            downloads=10,
        )
    )
    server.add(
        Repo(
            "org/Split-GGUF",
            files={"m-Q4_K_M-00001-of-00002.gguf": data[:1000], "m-Q4_K_M-00002-of-00002.gguf": data[1000:]},
        )
    )
    server.add(Repo("meta/Gated-GGUF", files={"g-Q4_K_M.gguf": data}, card={"license": "llama3.2"}, gated="manual"))
    monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    yield server
    server.stop()


def remote_for(server: FakeHub, name: str, repo: str = REPO) -> RemoteFile:
    data = server.repos[repo].files[name]
    return RemoteFile(repo, name, len(data), hashlib.sha256(data).hexdigest())


def test_pull_verifies_and_records(hub: FakeHub, tmp_path: Path) -> None:
    conn = connect(app_paths().database)
    models = tmp_path / "models"
    path = pull(Hub(), conn, models, REPO, quant="Q4_K_M")
    assert path == models / REPO / "tiny-Q4_K_M.gguf"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == hashlib.sha256(hub.repos[REPO].files[path.name]).hexdigest()
    assert not path.with_name(path.name + ".part").exists()
    [model] = list_models(conn)
    assert model.repo == REPO and model.quant == "Q4_K_M" and model.expected_sha256
    assert verify(conn, model).ok is True
    # Bit rot, or a bad copy with `cp -p`: one byte changed, size and modification time kept.
    st = path.stat()
    with path.open("r+b") as fh:
        fh.seek(st.st_size - 10)
        byte = fh.read(1)
        fh.seek(st.st_size - 10)
        fh.write(bytes([byte[0] ^ 0xFF]))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    rotten = verify(conn, model)
    assert rotten.ok is False and "does not match the Hub's sha256" in rotten.message
    with path.open("r+b") as fh:  # put it back
        fh.seek(st.st_size - 10)
        fh.write(byte)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert verify(conn, model).ok is True
    # Pulling again downloads nothing.
    before = hub.count(f"/{REPO}/resolve")
    pull(Hub(), conn, models, REPO, quant="Q4_K_M")
    assert hub.count(f"/{REPO}/resolve") == before


def test_unknown_quant_lists_the_offered_ones(hub: FakeHub, tmp_path: Path) -> None:
    with pytest.raises(Exception, match="Quantizations offered: Q4_K_M, Q6_K, Q8_0"):
        pull(Hub(), connect(app_paths().database), tmp_path, REPO, quant="Q2_K")


def test_split_model_downloads_every_part(hub: FakeHub, tmp_path: Path) -> None:
    conn = connect(app_paths().database)
    first = pull(Hub(), conn, tmp_path, "org/Split-GGUF", quant="Q4_K_M")
    assert first.name == "m-Q4_K_M-00001-of-00002.gguf"
    joined = first.read_bytes() + first.with_name("m-Q4_K_M-00002-of-00002.gguf").read_bytes()
    assert (
        joined
        == hub.repos["org/Split-GGUF"].files["m-Q4_K_M-00001-of-00002.gguf"]
        + hub.repos["org/Split-GGUF"].files["m-Q4_K_M-00002-of-00002.gguf"]
    )
    assert [m.filename for m in list_models(conn)] == ["m-Q4_K_M-00001-of-00002.gguf"]
    files = Hub().files("org/Split-GGUF")
    assert [f.filename for f in choose_files(files, filename="m-Q4_K_M-00002-of-00002.gguf")] == [
        "m-Q4_K_M-00001-of-00002.gguf",
        "m-Q4_K_M-00002-of-00002.gguf",
    ]


def test_corrupted_bytes_leave_no_installed_file(hub: FakeHub, tmp_path: Path) -> None:
    hub.corrupt = True
    final = tmp_path / "tiny-Q4_K_M.gguf"
    with pytest.raises(ChecksumError, match="damaged"):
        download(remote_for(hub, "tiny-Q4_K_M.gguf"), final, backoff=0)
    assert not final.exists() and not (tmp_path / "tiny-Q4_K_M.gguf.part").exists()


def test_server_error_is_retried(hub: FakeHub, tmp_path: Path) -> None:
    hub.fail_next = [500, 503]
    final = download(remote_for(hub, "tiny-Q4_K_M.gguf"), tmp_path / "t.gguf", backoff=0.01)
    assert final.exists()
    assert hub.count(f"/{REPO}/resolve") == 3


def test_gated_repo_says_what_to_do_and_never_prints_the_token(
    hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub.require_token = "right-token"
    monkeypatch.setenv("HF_TOKEN", "secret-wrong-token")
    with pytest.raises(GatedError) as err:
        download(remote_for(hub, "g-Q4_K_M.gguf", "meta/Gated-GGUF"), tmp_path / "g.gguf", backoff=0)
    assert "accept its licence" in str(err.value) and "secret-wrong-token" not in str(err.value)
    monkeypatch.setenv("HF_TOKEN", "right-token")
    assert download(remote_for(hub, "g-Q4_K_M.gguf", "meta/Gated-GGUF"), tmp_path / "g.gguf").exists()


def test_missing_repo_logged_out_is_not_found_or_private(
    hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real Hub answers 401 (not 404) for a missing repository when logged out: that must read
    'not found, or private', never 'gated'."""
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))  # no stored login either
    with pytest.raises(NotFoundError, match="not found on the Hub, or it is private") as err:
        Hub().files("nobody/nothing")
    assert "gated" not in str(err.value)
    assert any(code == 401 for _, path, code in hub.responses if path.startswith("/api/models/nobody"))
    with pytest.raises(NotFoundError, match="or it is private"):  # the downloader speaks HTTP itself
        download(RemoteFile("nobody/nothing", "x-Q4_K_M.gguf", 10, "ab" * 32), tmp_path / "x.gguf", backoff=0)
    monkeypatch.setenv("HF_TOKEN", "some-token")  # logged in, the Hub says 404
    with pytest.raises(NotFoundError, match="not found"):
        Hub().files("nobody/nothing")


def test_stalled_server_times_out_then_resumes(hub: FakeHub, tmp_path: Path) -> None:
    remote = remote_for(hub, "big-Q6_K.gguf")
    final = tmp_path / "big.gguf"
    hub.stall_after = 1 << 20
    start = time.monotonic()
    with pytest.raises(DownloadError, match="keeps failing"):
        download(remote, final, timeout=1.0, retries=1, backoff=0)
    assert time.monotonic() - start < 20
    part = final.with_name(final.name + ".part")
    assert part.stat().st_size >= 1 << 20
    hub.stall_after = None
    download(remote, final)
    ranges = [h.get("Range") for m, p, h in hub.requests if p.endswith("big-Q6_K.gguf") and m == "GET"]
    assert ranges[-1] not in (None, "bytes=0-")  # resumed, not restarted
    assert final.read_bytes() == hub.repos[REPO].files["big-Q6_K.gguf"]


def test_download_killed_mid_way_resumes_from_part(hub: FakeHub, tmp_path: Path) -> None:
    """Kill the process (not an exception) mid-download; the next run resumes from the .part offset."""
    hub.bytes_per_second = 512 * 1024
    cmd = [*exe(), "pull", REPO, "--file", "big-Q6_K.gguf"]
    env = {**os.environ}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    part = app_paths().default_models_dir / REPO / "big-Q6_K.gguf.part"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (not part.exists() or part.stat().st_size < 600 * 1024):
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    kept = part.stat().st_size
    assert 0 < kept < 3 * 2**20
    assert not (app_paths().default_models_dir / REPO / "big-Q6_K.gguf").exists()
    hub.bytes_per_second = None
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    final = Path(out.stdout.strip())
    assert final.read_bytes() == hub.repos[REPO].files["big-Q6_K.gguf"]
    last_range = [h.get("Range") for m, p, h in hub.requests if p.endswith("big-Q6_K.gguf") and m == "GET"][-1]
    first, last = (int(x) for x in last_range.split("=")[1].split("-"))
    assert first >= kept - (1 << 20) and first > 0  # from the .part offset (less one chunk)
    assert last == len(hub.repos[REPO].files["big-Q6_K.gguf"]) - 1  # a bounded range, as the CDN wants


def test_disk_too_small_is_refused_before_downloading(
    hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A full disk cannot be made here without root mounts, so the free-space figure is faked;
    # everything else (Hub metadata over HTTP, the refusal) is real.
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(downloader.shutil, "disk_usage", lambda p: usage._replace(free=100 * 2**20))
    with pytest.raises(DiskSpaceError, match="Not enough disk space"):
        pull(Hub(), connect(app_paths().database), tmp_path, REPO, quant="Q6_K")
    assert hub.count(f"/{REPO}/resolve") == 0
    assert not list(tmp_path.rglob("*.part"))


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 210 MB file system (tmpfs), where a disk can really fill up; needs root."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=210m", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip("mounting a small file system needs root")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_disk_that_fills_up_mid_download_is_said_and_the_download_resumes(hub: FakeHub, small_disk: Path) -> None:
    """Another program fills the disk while a download runs: one sentence saying so (not an
    unexpected OSError), and once space is freed the same command resumes and verifies."""
    hub.bytes_per_second = 512 * 1024
    env = {**os.environ, "LOCALOPEN_HOME": str(small_disk.parent / "home")}
    subprocess.run([*exe(), "settings", "models_dir", str(small_disk / "models")], env=env, check=True)
    cmd = [*exe(), "pull", REPO, "--file", "big-Q6_K.gguf"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    part = small_disk / "models" / REPO / "big-Q6_K.gguf.part"
    deadline = time.monotonic() + 30
    while not part.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    filler = os.open(small_disk / "filler", os.O_WRONLY | os.O_CREAT)
    with pytest.raises(OSError):  # noqa: PT012 - written until the disk is full
        while True:
            os.write(filler, bytes(1 << 16))
    os.close(filler)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "is full: free some space" in err and "unexpected" not in err
    (small_disk / "filler").unlink()
    hub.bytes_per_second = None
    resumed = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert resumed.returncode == 0, resumed.stderr
    assert Path(resumed.stdout.strip()).read_bytes() == hub.repos[REPO].files["big-Q6_K.gguf"]


def test_no_network_is_said_at_once_as_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a network huggingface_hub retries for some 24 s before it says so; the Hub's host not
    taking a connection is said at once, in words, before any request."""
    import time

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    for endpoint in ("http://127.0.0.1:9", "https://no-such-host.invalid"):  # refused; no name
        monkeypatch.setenv("HF_ENDPOINT", endpoint)
        began = time.monotonic()
        with pytest.raises(OfflineError, match="Offline: the Hub could not be reached"):
            Hub().search("tiny")
        assert time.monotonic() - began < 4


def test_offline_makes_no_connection(hub: FakeHub, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OfflineError):
        pull(Hub(), connect(app_paths().database), tmp_path, REPO)
    with pytest.raises(OfflineError):
        Hub().search("tiny")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    with pytest.raises(OfflineError):
        Hub(offline=True).files(REPO)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    for args in (["catalog", "--json"], ["hw", "--json"], ["models", "--json"], ["search", "tiny"], ["pull", REPO]):
        out = subprocess.run([*exe(), *args], env=env, capture_output=True, text=True, timeout=60)
        assert "Traceback" not in out.stderr, args
        if args[0] in ("search", "pull"):
            assert out.returncode == 1 and "offline" in out.stderr
        else:
            assert out.returncode == 0, (args, out.stderr)
    assert hub.requests == []


def test_search_gives_provisional_grades(hub: FakeHub) -> None:
    out = subprocess.run([*exe(), "search", "gguf", "--json"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    rows = {r["id"]: r for r in json.loads(out.stdout)}
    assert rows[REPO]["grade"] == "C"  # Apache-2.0, but transparency from card hints alone is T0
    assert rows[REPO]["provisional"] is True and "Q4_K_M" in rows[REPO]["quants"]
    assert rows["meta/Gated-GGUF"]["grade"] == "D"


def test_library_import_missing_verify_and_remove(hub: FakeHub, tmp_path: Path, tiny_gguf: Path) -> None:
    conn = connect(app_paths().database)
    models = app_paths().default_models_dir
    copy = tmp_path / "mine.gguf"
    copy.write_bytes(tiny_gguf.read_bytes())
    imported = import_file(conn, copy)
    assert imported.source == "imported" and imported.quant == "F32"
    copy.rename(tmp_path / "moved.gguf")
    model = find(conn, "mine")
    assert model.missing and verify(conn, model).ok is False
    out = subprocess.run([*exe(), "models", "--json"], capture_output=True, text=True)
    assert json.loads(out.stdout)[0]["missing"] is True
    assert "stays" in remove(conn, model, models)
    # A downloaded model that gets damaged is caught by verify, and rm deletes it with its partials.
    path = pull(Hub(), conn, models, REPO, quant="Q8_0")
    (path.with_name(path.name + ".part")).write_bytes(b"leftover")
    with path.open("r+b") as fh:
        fh.seek(100)
        fh.write(b"XXXX")
    downloaded = find(conn, "Q8_0")
    assert verify(conn, downloaded).ok is False
    remove(conn, downloaded, models)
    assert not path.exists() and not path.with_name(path.name + ".part").exists()


def test_cli_import_rejects_non_gguf(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_text("hello, this is not a model file at all" * 3)
    out = subprocess.run([*exe(), "import", str(bad)], capture_output=True, text=True)
    assert out.returncode == 1 and "not a GGUF file" in out.stderr and "Traceback" not in out.stderr


def test_catalog_uses_exact_sizes_once_known(hub: FakeHub, tmp_path: Path) -> None:
    from localopen.core.openness.catalog import load_catalog
    from localopen.core.store.library_db import cached_files_by_repo, record_hub_files

    conn = connect(app_paths().database)
    record_hub_files(
        conn,
        [
            RemoteFile(
                "HuggingFaceTB/SmolLM2-360M-Instruct-GGUF", "smollm2-360m-instruct-q8_0.gguf", 386404992, "ab" * 32
            )
        ],
    )
    entry = load_catalog(files_by_repo=cached_files_by_repo(conn)).get("smollm2-360m-instruct")
    q8 = next(q for q in entry.quants if q.type == "Q8_0")
    assert q8.size_bytes == 386404992 and not q8.size_is_estimate and q8.sha256 == "ab" * 32


def test_queue_runs_a_few_at_a_time_with_pause_resume_cancel(hub: FakeHub, tmp_path: Path) -> None:
    from localopen.app.models.download_queue import DownloadQueue

    hub.bytes_per_second = 1024 * 1024
    db = app_paths().database
    queue = DownloadQueue(Hub(), lambda: connect(db), tmp_path, max_parallel=1)
    seen: list[tuple[int, str]] = []
    queue.listeners.append(lambda job: seen.append((job.id, job.state)))
    first = queue.add(REPO, filename="big-Q6_K.gguf")
    second = queue.add(REPO, quant="Q4_K_M")
    assert first.state == "running" and second.state == "queued"
    deadline = time.monotonic() + 20
    while first.done < 256 * 1024 and time.monotonic() < deadline:
        time.sleep(0.05)
    queue.pause(first)
    queue.wait(20)
    assert first.state == "paused" and 0 < first.done < first.total
    assert (tmp_path / REPO / "big-Q6_K.gguf.part").exists()
    assert second.state == "done" and second.path and second.path.exists()
    hub.bytes_per_second = None
    queue.resume(first)
    queue.wait(30)
    assert first.state == "done" and first.path.read_bytes() == hub.repos[REPO].files["big-Q6_K.gguf"]
    assert (first.id, "paused") in seen and (first.id, "done") in seen
    third = queue.add(REPO, quant="Q8_0")
    queue.cancel(third)
    queue.wait(20)
    assert third.state == "cancelled" and not list((tmp_path / REPO).glob("*Q8_0*.part"))


if sys.platform == "win32":  # pragma: no cover
    pytestmark = pytest.mark.skip("signals differ on Windows")


# --- downloads the way the Hub serves GGUF files now: Xet storage behind signed CDN URLs -------------
def _cdn_ranges(cdn) -> list[tuple[int, int]]:
    """(first, last) byte of every range the CDN served."""
    out = []
    for _path, headers, status in cdn.requests:
        if status == 206:
            first, last = headers["Range"].split("=")[1].split("-")
            out.append((int(first), int(last)))
    return out


def test_a_redirect_to_the_cdn_never_carries_the_token(
    hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cdn = hub.use_cdn()
    hub.require_token = "right-token"
    monkeypatch.setenv("HF_TOKEN", "right-token")
    remote = remote_for(hub, "g-Q4_K_M.gguf", "meta/Gated-GGUF")
    final = download(remote, tmp_path / "g.gguf", request_span=64 * 1024)
    assert final.read_bytes() == hub.repos["meta/Gated-GGUF"].files["g-Q4_K_M.gguf"]
    resolves = [h for m, p, h in hub.requests if "/resolve/" in p]
    assert resolves and all(h.get("Authorization") == "Bearer right-token" for h in resolves)
    assert cdn.requests and all("Authorization" not in headers for _p, headers, _s in cdn.requests)
    assert all(re.fullmatch(r"bytes=\d+-\d+", headers["Range"]) for _p, headers, _s in cdn.requests)
    spans = _cdn_ranges(cdn)
    assert len(spans) > 1 and spans[0][0] == 0 and spans[-1][1] == remote.size - 1
    assert len(resolves) == 1  # the signed URL is reused while it is valid


def test_an_expired_signature_is_resolved_again_and_the_download_continues(hub: FakeHub, tmp_path: Path) -> None:
    cdn = hub.use_cdn(ttl=2)
    hub.bytes_per_second = 768 * 1024  # 3 MiB take ~4 s: the signed URL expires on the way
    remote = remote_for(hub, "big-Q6_K.gguf")
    final = download(remote, tmp_path / "big.gguf", request_span=256 * 1024, backoff=0)
    assert hashlib.sha256(final.read_bytes()).hexdigest() == remote.sha256  # the API's sha256, not X-Xet-Hash
    assert any(status == 403 for _p, _h, status in cdn.requests)  # the CDN refused an expired URL ...
    assert hub.count(f"/{REPO}/resolve") >= 2  # ... and the Hub gave a fresh one
    spans = _cdn_ranges(cdn)
    covered = [b for first, last in spans for b in (first, last)]
    assert sorted(spans) == spans and covered[0] == 0 and covered[-1] == remote.size - 1
    assert all(spans[i][0] == spans[i - 1][1] + 1 for i in range(1, len(spans)))  # each byte fetched once


def test_the_fake_cdn_refuses_what_the_real_one_refuses(hub: FakeHub) -> None:
    """The test double must be strict: a range-less GET of a large file and a token are refused."""
    import urllib.error
    import urllib.request

    cdn = hub.use_cdn()
    url = cdn.signed_url(REPO, "big-Q6_K.gguf")
    with pytest.raises(urllib.error.HTTPError) as rangeless:
        urllib.request.urlopen(url, timeout=10)
    assert rangeless.value.code == 400
    with pytest.raises(urllib.error.HTTPError) as with_token:
        urllib.request.urlopen(
            urllib.request.Request(url, headers={"Range": "bytes=0-9", "Authorization": "Bearer x"}), timeout=10
        )
    assert with_token.value.code == 400
    ok = urllib.request.urlopen(urllib.request.Request(url, headers={"Range": "bytes=0-9"}), timeout=10)
    assert ok.status == 206 and ok.read() == hub.repos[REPO].files["big-Q6_K.gguf"][:10]


def test_a_catalog_pattern_downloads_exactly_its_quantization() -> None:
    files = [RemoteFile("r/x", n, 10, "ab" * 32) for n in ("m-Q6_K_L.gguf", "m-Q6_K.gguf", "m-BF16.gguf", "m-F16.gguf")]
    assert [f.filename for f in choose_files(files, pattern="*Q6_K*.gguf")] == ["m-Q6_K.gguf"]
    assert [f.filename for f in choose_files(files, pattern="*F16*.gguf")] == ["m-F16.gguf"]


def test_a_file_found_in_a_shared_models_folder_is_never_deleted_unasked(tmp_path: Path, tiny_gguf: Path) -> None:
    """Another program's GGUF in the models folder is listed as found; rm forgets it and the file
    stays, unless the person asks for the file itself (--delete-file)."""
    models = tmp_path / "shared"
    theirs = models / "other-app" / "theirs.gguf"
    theirs.parent.mkdir(parents=True)
    theirs.write_bytes(tiny_gguf.read_bytes())
    subprocess.run([*exe(), "settings", "models_dir", str(models)], check=True, capture_output=True)
    listed = json.loads(subprocess.run([*exe(), "models", "--json"], capture_output=True, text=True).stdout)
    assert [m["source"] for m in listed if m["filename"] == "theirs.gguf"] == ["found"]
    out = subprocess.run([*exe(), "rm", "-y", "theirs"], capture_output=True, text=True)
    assert out.returncode == 0 and "stays" in out.stdout and theirs.exists()
    out = subprocess.run([*exe(), "rm", "-y", "--delete-file", "theirs"], capture_output=True, text=True)
    assert out.returncode == 0 and "Deleted" in out.stdout and not theirs.exists()


def test_a_saved_hub_token_is_private_from_its_first_byte(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Written to a new 0600 file and moved into place: a token file that was readable by others
    is replaced, not rewritten in place; huggingface_hub reads it back."""
    import os
    import stat

    from localopen.core.hub import client

    path = tmp_path / "hf" / "token"
    path.parent.mkdir()
    path.write_text("old")
    path.chmod(0o644)
    from huggingface_hub import constants

    monkeypatch.delenv("HF_TOKEN_PATH", raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(path))  # where a login keeps it (HF_HOME/token)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    assert client.save_token("  hf_abcdefghijklmnop \n") == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == "hf_abcdefghijklmnop"
    assert os.listdir(path.parent) == ["token"]  # no temporary file left
    assert client.token() == "hf_abcdefghijklmnop"


def test_verify_notices_bit_rot_in_an_imported_file(tmp_path: Path, tiny_gguf: Path) -> None:
    """A byte flipped in the middle of an imported file, its size and modification time kept: the
    sha256 recorded at import tells it apart (before, verify said only that the header checked out)."""
    copy = tmp_path / "rot.gguf"
    copy.write_bytes(tiny_gguf.read_bytes())
    out = subprocess.run([*exe(), "import", str(copy)], capture_output=True, text=True)
    assert out.returncode == 0 and "Recording its sha256" in out.stdout, out.stderr
    conn = connect(app_paths().database)
    first = verify(conn, find(conn, "rot"))
    assert first.ok is True and "recorded when it was added" in first.message
    rot(copy)
    out = subprocess.run([*exe(), "verify", "rot"], capture_output=True, text=True)
    assert out.returncode != 0 and "bytes changed since its sha256 was recorded" in out.stdout + out.stderr
    # A file rewritten on purpose (a new time) is said as rewritten, and recorded anew.
    os.utime(copy, None)
    again = verify(conn, find(conn, "rot"))
    assert again.ok is None and "rewritten" in again.message
    assert verify(conn, find(conn, "rot")).ok is True


def test_a_file_found_in_the_models_folder_has_its_sha256_recorded_in_the_background(tiny_gguf: Path) -> None:
    """What the Library view runs after listing: found files' sha256 recorded once, so bit rot in
    them is told apart at the next verify too."""
    from localopen.app.context import AppContext
    from localopen.app.models import library

    ctx = AppContext()
    found = ctx.models_dir / "someone" / "repo" / "found.gguf"
    found.parent.mkdir(parents=True)
    found.write_bytes(tiny_gguf.read_bytes())
    library.scan(ctx)
    assert library.record_missing_sha256(ctx) == 1 and library.record_missing_sha256(ctx) == 0  # once
    rot(found)
    model = library.find_model(ctx, "found")
    assert model.source == "found" and verify(ctx.db, model).ok is False
