"""`localopen refresh --audit`: the catalog checked against the Hub itself — here the fake Hub on
127.0.0.1, with one repository as the catalog records it and one that changed in every way the
audit tells (a pattern matching nothing, a file gone, a file changed, a new quantization, the
licence tag, gating), and one that is no longer there; then the catalog written back with the
files the Hub shows, which the next audit finds in agreement."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from cli_helpers import run
from localopen.core.openness.catalog import load_catalog

from fake_hub import FakeHub, Repo, sha256_of

ROOT = Path(__file__).resolve().parents[1]


def _entry(model_id: str, repo: str, files_seen: dict) -> dict:
    """A real catalog entry (Qwen2.5 0.5B Instruct's) moved to a fake repository."""
    data = json.loads((ROOT / "resources" / "catalog.json").read_text(encoding="utf-8"))
    raw = copy.deepcopy(next(m for m in data["models"] if m["id"] == "qwen2.5-0.5b-instruct"))
    raw.update(id=model_id, gguf_repo=repo, gguf_repo_license="apache-2.0", files_seen=files_seen)
    raw["quants"] = [
        {"type": "Q4_K_M", "pattern": "*q4_k_m*.gguf"},
        {"type": "Q8_0", "pattern": "*q8_0*.gguf"},
        {"type": "F16", "pattern": "*fp16*.gguf"},
    ]
    return raw


FILES = {
    "m-q4_k_m.gguf": b"GGUF" + b"4" * 300,
    "m-q8_0.gguf": b"GGUF" + b"8" * 500,
    "m-fp16.gguf": b"GGUF" + b"f" * 900,
}


def _seen(files: dict[str, bytes]) -> dict:
    return {
        "names": list(files),
        "sizes": {n: len(b) for n, b in files.items()},
        "sha256": {n: sha256_of(b) for n, b in files.items()},
        "source": "test",
        "read": "2026-12-01",
    }


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch):
    server = FakeHub().start()
    server.add(Repo("org/Same-GGUF", files={**FILES, "README.md": b"#"}, card={"license": "apache-2.0"}))
    changed = {
        "m-q4_k_m.gguf": FILES["m-q4_k_m.gguf"] + b"longer now",  # changed since it was recorded
        # m-q8_0.gguf is gone, and with it the only Q8_0 file; no fp16 file at all
        "m-q3_k_m.gguf": b"GGUF" + b"3" * 200,  # a new quantization
        "mmproj-m-f16.gguf": b"GGUF" + b"p" * 50,  # a projector: never a model's file
    }
    server.add(Repo("org/Changed-GGUF", files=changed, card={"license": "other"}, gated="manual"))
    monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    yield server
    server.stop()


def test_the_audit_tells_each_kind_of_drift_and_writes_what_the_hub_shows(hub: FakeHub, tmp_path: Path) -> None:
    catalog = {
        "schema": 1,
        "checked": "2026-12-01",
        "models": [
            _entry("same", "org/Same-GGUF", _seen(FILES)),
            _entry("changed", "org/Changed-GGUF", _seen(FILES)),
            _entry("vanished", "org/Vanished-GGUF", _seen(FILES)),
        ],
    }
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(catalog), encoding="utf-8")
    out = tmp_path / "written.json"
    result = run("refresh", "--audit", "--catalog", str(path), "--write-seen", str(out), timeout=120)
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    drifts = [line for line in lines if "  " in line and ":" in line and not line.startswith("3 entries")]
    assert not any(" same:" in line for line in drifts)  # the repository as recorded: nothing said
    assert "ok     same" in result.stderr
    said = "\n".join(drifts)
    assert "gated              changed: org/Changed-GGUF is gated (manual)" in said
    assert "licence            changed: org/Changed-GGUF has 'other' on the Hub; the catalog says 'apache-2.0'" in said
    assert "pattern            changed: Q8_0: the pattern *q8_0*.gguf matches no file" in said
    assert "pattern            changed: F16: the pattern *fp16*.gguf matches no file" in said
    assert "gone               changed: m-q8_0.gguf is no longer in org/Changed-GGUF" in said
    assert "gone               changed: m-fp16.gguf is no longer" in said
    assert "changed            changed: m-q4_k_m.gguf is 314 bytes now; the catalog recorded 304" in said
    assert "new quantization   changed: Q3_K_M is offered in org/Changed-GGUF (m-q3_k_m.gguf)" in said
    assert "mmproj" not in said
    assert "unreachable        vanished:" in said and "Traceback" not in result.stderr
    assert "3 entries of" in result.stdout and "2 checked against the Hub" in result.stdout
    assert "files_seen of 2 entries written" in result.stdout

    # The written catalog loads as the app loads it, with the Hub's files, sizes and sha256.
    written = load_catalog(out)
    changed = written.get("changed")
    assert changed is not None
    seen = changed.raw["files_seen"]
    assert seen["names"] == ["m-q4_k_m.gguf"] and seen["unseen"] == ["Q8_0", "F16"]
    assert seen["sizes"]["m-q4_k_m.gguf"] == 314 and seen["sha256"]["m-q4_k_m.gguf"] == sha256_of(
        FILES["m-q4_k_m.gguf"] + b"longer now"
    )
    q4 = next(q for q in changed.quants if q.type == "Q4_K_M")
    assert q4.size_bytes == 314 and not q4.size_is_estimate  # the recorded size is the exact one
    # Audited again: what the written record settled is no longer said; the rest still is.
    again = run("refresh", "--audit", "--catalog", str(out), timeout=120)
    assert again.returncode == 1
    assert "gone " not in again.stdout and "changed            " not in again.stdout
    assert "licence            changed" in again.stdout and "new quantization   changed" in again.stdout


def test_an_audit_without_the_hub_says_so_and_flags_go_together(tmp_path: Path) -> None:
    offline = run("refresh", "--audit", timeout=60)  # the tests' HF_HUB_OFFLINE=1
    assert offline.returncode != 0 and "offline" in offline.stderr.lower() and "Traceback" not in offline.stderr
    alone = run("refresh", "--write-seen", str(tmp_path / "x.json"), timeout=60)
    assert alone.returncode == 2 and "go with --audit" in alone.stderr
    bad = tmp_path / "bad.json"
    bad.write_text("{", encoding="utf-8")
    broken = run("refresh", "--audit", "--catalog", str(bad), timeout=60)
    assert broken.returncode != 0 and "not valid JSON" in broken.stderr and "Traceback" not in broken.stderr
