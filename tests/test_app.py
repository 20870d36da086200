"""The application layer both faces call: one answer per product fact, whichever face asks."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from cli_helpers import run
from localopen.app.context import AppContext
from localopen.app.models import library, library_listing
from localopen.app.settings import Settings
from localopen.app.usable import summary, usable_here
from localopen.core.paths import app_paths, save_settings
from localopen.core.store.library_db import import_file
from localopen.core.store.measurements import record_load_failure


def _rows(ctx: AppContext, profile):  # type: ignore[no-untyped-def]
    return usable_here.catalog_rows(ctx, usable_here.MachineSnapshot.read(ctx, profile))


def test_settings_are_typed_and_a_bad_value_falls_back(caplog: pytest.LogCaptureFixture) -> None:
    paths = app_paths()
    save_settings(paths, {"n_ctx": "lots", "offline": True, "n_threads": 3, "verdict_thresholds": {"fluent_tps": 30}})
    with caplog.at_level(logging.WARNING):
        s = Settings.load(paths)
    assert s.n_ctx == 4096 and s.offline is True and s.n_threads == 3 and s.thresholds.fluent_tps == 30
    assert "n_ctx" in caplog.text
    s.n_ctx = 8192
    s.save(paths)
    assert Settings.load(paths).n_ctx == 8192 and Settings.load(paths).thresholds.fluent_tps == 30


def test_the_cli_and_the_app_layer_use_the_users_context_setting() -> None:
    """The GUI used the context setting and the CLI always 4096: one place now decides."""
    paths = app_paths()
    save_settings(paths, {"n_ctx": 8192})
    ctx = AppContext()
    rows = {
        r.model.id: r for r in usable_here.catalog_rows(ctx, usable_here.MachineSnapshot.read(ctx, ctx.read_profile()))
    }
    out = run("catalog", "--json")
    assert out.returncode == 0, out.stderr
    for entry in json.loads(out.stdout):
        row = rows[entry["id"]]
        assert row.fit is not None
        assert entry["fit"]["memory"]["n_ctx"] == row.fit.memory.n_ctx
        assert entry["usable_here"]["band"] == row.verdict.band
        assert entry["usable_here"]["basis"] == row.verdict.basis == "predicted"
    olmo = rows["olmo-2-1124-7b-instruct"]  # 4096-token training context: capped
    smol = rows["smollm2-1.7b-instruct"]  # 8192
    assert olmo.fit.memory.n_ctx == 4096 and smol.fit.memory.n_ctx == 8192
    wider = json.loads(run("catalog", "--json", "--ctx", "2048").stdout)
    assert {e["fit"]["memory"]["n_ctx"] for e in wider} == {2048}


def test_a_failed_load_makes_the_installed_catalog_model_measured_does_not_fit(tiny_gguf: Path) -> None:
    ctx = AppContext()
    profile = ctx.read_profile(measure=False)
    entry = ctx.catalog.get("smollm2-135m-instruct")
    assert entry is not None
    # A file downloaded into the models folder of a catalog repo is that catalog model, installed.
    target = ctx.models_dir / entry.gguf_repo / "smollm2-135m-instruct-q8_0.gguf"
    target.parent.mkdir(parents=True)
    target.write_bytes(tiny_gguf.read_bytes())
    assert library.scan(ctx) == 1
    row = next(
        r for r in usable_here.catalog_rows(ctx, usable_here.MachineSnapshot.read(ctx, profile)) if r.model is entry
    )
    assert row.installed is not None and row.verdict.basis == "predicted"
    record_load_failure(ctx.db, str(target), profile.fingerprint, "out of memory")
    row = next(
        r for r in usable_here.catalog_rows(ctx, usable_here.MachineSnapshot.read(ctx, profile)) if r.model is entry
    )
    assert row.verdict.band == "does not fit" and row.verdict.basis == "measured"


def test_library_entries_grade_imported_files_once(tiny_gguf: Path, tmp_path: Path) -> None:
    ctx = AppContext()
    copy = tmp_path / "mine.gguf"
    copy.write_bytes(tiny_gguf.read_bytes())
    import_file(ctx.db, copy)
    [entry] = library_listing.entries(ctx)
    assert entry.badge == "C · T0" and entry.verdict is None  # apache-2.0 in its header; nothing measured
    copy.unlink()
    [gone] = library_listing.entries(ctx)
    assert gone.model.missing and gone.badge == "?"


def test_summary_is_the_same_page_in_the_cli_and_the_app() -> None:
    ctx = AppContext()
    profile = ctx.read_profile()
    page = summary.render(ctx, "markdown", profile)
    out = run("summary")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == page.strip()
    assert "## A — Open science" in page and "(predicted)" in page
    html = run("summary", "--html").stdout
    assert html.startswith("<!doctype html>") and "Open models on this machine" in html


def test_an_unexpected_error_is_one_line_and_the_traceback_goes_to_the_log(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from localopen.cli import catalog_commands, main

    def broken(_ctx: AppContext, _args: object) -> int:
        raise RuntimeError("something nobody expected")

    monkeypatch.setattr(catalog_commands, "cmd_hw", broken)  # a bug in a command, as the CLI would meet it
    assert main.run_cli(["hw"]) == 1
    err = capsys.readouterr().err
    log_file = app_paths().logs / "localopen.log"
    assert err.count("\n") == 1 and "something nobody expected" in err and str(log_file) in err
    assert "Traceback" not in err
    logged = log_file.read_text()
    assert "Traceback" in logged and "RuntimeError: something nobody expected" in logged


def test_diagnostics_for_a_bug_report_never_show_the_hub_token() -> None:
    import os

    secret = "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"
    log_file = app_paths().logs / "localopen.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    log_file.write_text(f"2026-11-23 INFO localopen.hub: a careless line with {secret} in it\n", encoding="utf-8")
    out = run("diagnostics", env={**os.environ, "HF_TOKEN": secret})
    assert out.returncode == 0, out.stderr
    assert "localopen 0.1.0" in out.stdout and "llama-cpp-python" in out.stdout and str(log_file) in out.stdout
    assert "a careless line" in out.stdout and "[token hidden]" in out.stdout
    assert secret not in out.stdout


def test_recommendations_are_usable_here_the_most_open_first_and_follow_what_is_measured(tiny_gguf: Path) -> None:
    from localopen.app.usable.recommend import USABLE_BANDS, recommend

    ctx = AppContext()
    profile = ctx.read_profile()
    here = usable_here.MachineSnapshot.read(ctx, profile)
    found = recommend(ctx, here, limit=100)
    assert found, "this machine runs some catalog model"
    rows = {r.model.id: r for r in usable_here.catalog_rows(ctx, here)}
    for rec in found:
        row = rows[rec.id]
        assert row.fits and row.model.raw["chat"] and rec.band == row.verdict.band in USABLE_BANDS
        assert rec.basis == row.verdict.basis and rec.installed_path is None
    keys = [(r.letter, -rows[r.id].model.grade.transparency, USABLE_BANDS.index(r.band)) for r in found]
    assert keys == sorted(keys)  # the most open first, then the best band
    assert [r.id for r in recommend(ctx, here, limit=3)] == [r.id for r in found[:3]]
    out = run("recommend", "--json", "--limit", "100")
    assert [e["id"] for e in json.loads(out.stdout)] == [r.id for r in found]  # one list for every face

    # Installed: chat at once. A load that failed here: no longer recommended.
    entry = ctx.catalog.get(found[0].id)
    assert entry is not None
    target = ctx.models_dir / entry.gguf_repo / f"{entry.id}-{entry.recommended.type.lower()}.gguf"
    target.parent.mkdir(parents=True)
    target.write_bytes(tiny_gguf.read_bytes())
    library.scan(ctx)
    mine = recommend(ctx, usable_here.MachineSnapshot.read(ctx, profile), limit=100)
    assert next(r for r in mine if r.id == entry.id).installed_path == str(target.resolve())
    record_load_failure(ctx.db, str(target.resolve()), profile.fingerprint, "out of memory")
    after = recommend(ctx, usable_here.MachineSnapshot.read(ctx, profile), limit=100)
    assert entry.id not in [r.id for r in after]


def test_files_from_other_apps_are_recognised_as_catalog_models(tmp_path: Path) -> None:
    """A user's LM Studio or shared-folder file: recognised by its name in its own metadata (or by
    its sha256 where the catalog knows the file), then the curated grade applies, with its basis;
    a fine-tune of a catalog model names itself and stays provisional."""
    import hashlib

    from localopen.core.hub.client import RemoteFile
    from localopen.core.store.hashing import cached_sha256
    from localopen.core.store.library_db import record_hub_files

    from tiny_gguf import write_tiny_llama

    ctx = AppContext()
    (tmp_path / "lmstudio").mkdir()
    named = write_tiny_llama(
        tmp_path / "lmstudio" / "Qwen2.5-7B-Instruct-Q4_K_M.gguf",
        extra={"general.basename": "Qwen2.5", "general.size_label": "7B", "general.finetune": "Instruct"},
    )
    tuned = write_tiny_llama(
        tmp_path / "lmstudio" / "MyTune-7B-Q4_K_M.gguf",
        extra={
            "general.basename": "MyTune",
            "general.size_label": "7B",
            "general.base_model.count": 1,
            "general.base_model.0.repo_url": "https://huggingface.co/Qwen/Qwen2.5-7B-Instruct",
        },
        seed=1,
    )
    anonymous = write_tiny_llama(tmp_path / "lmstudio" / "x.gguf", seed=2)
    for path in (named, tuned, anonymous):
        import_file(ctx.db, path)
    # The catalog knows one file's sha256 (as `localopen refresh` caches the Hub's).
    smol = ctx.catalog.get("smollm2-135m-instruct")
    assert smol is not None
    digest = hashlib.sha256(anonymous.read_bytes()).hexdigest()
    hub_name = smol.recommended.pattern.replace("*", "SmolLM2-135M-Instruct-", 1).replace("*", "")
    record_hub_files(ctx.db, [RemoteFile(smol.gguf_repo, hub_name, anonymous.stat().st_size, digest)])
    ctx.refresh_catalog()
    assert cached_sha256(ctx.db, anonymous) == digest  # verify or a benchmark hashed it once

    entries = {e.model.path.name: e for e in library_listing.entries(ctx)}
    qwen = entries[named.name]
    assert qwen.match is not None and qwen.match.model.id == "qwen2.5-7b-instruct" and not qwen.match.exact
    assert "by name" in qwen.match.basis and qwen.grade == ctx.catalog.get("qwen2.5-7b-instruct").grade
    assert not qwen.grade.provisional
    exact = entries[anonymous.name]
    assert exact.match is not None and exact.match.exact and exact.match.model.id == "smollm2-135m-instruct"
    assert f"same sha256 as {smol.gguf_repo}" in exact.match.basis
    fine_tune = entries[tuned.name]
    assert fine_tune.match is None and fine_tune.grade.provisional
    # The catalog sees the recognised file as its model, installed.
    rows = {r.model.id: r for r in _rows(ctx, ctx.read_profile(measure=False))}
    assert rows["qwen2.5-7b-instruct"].installed is not None
    assert rows["qwen2.5-7b-instruct"].installed.path == named.resolve()
    out = run("info", str(named), "--json")
    assert json.loads(out.stdout)["catalog_match"]["id"] == "qwen2.5-7b-instruct"


def test_other_apps_models_are_found_named_and_added_without_copying(tmp_path: Path, tiny_gguf: Path) -> None:
    """LM Studio's folder of .gguf files and Ollama's blobs (named by its manifests) are added by
    path, recognised where the catalog knows them, and never deleted by rm."""
    import os

    from tiny_gguf import write_tiny_llama

    home = tmp_path / "home"
    lmstudio = home / ".lmstudio" / "models" / "lmstudio-community" / "Qwen2.5-7B-Instruct-GGUF"
    lmstudio.mkdir(parents=True)
    write_tiny_llama(
        lmstudio / "Qwen2.5-7B-Instruct-Q4_K_M.gguf",
        extra={"general.basename": "Qwen2.5", "general.size_label": "7B", "general.finetune": "Instruct"},
    )
    (lmstudio / "mmproj-model-f16.gguf").write_bytes(tiny_gguf.read_bytes())  # a projector is no model
    ollama = home / ".ollama" / "models"
    (ollama / "blobs").mkdir(parents=True)
    blob = ollama / "blobs" / ("sha256-" + "ab" * 32)
    blob.write_bytes(tiny_gguf.read_bytes())
    manifest = ollama / "manifests" / "registry.ollama.ai" / "library" / "tinyllama" / "1.1b"
    manifest.parent.mkdir(parents=True)
    layers = [{"mediaType": "application/vnd.ollama.image.model", "digest": "sha256:" + "ab" * 32}]
    manifest.write_text(json.dumps({"layers": layers}))
    env = {**os.environ, "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache")}
    env.pop("OLLAMA_MODELS", None)
    env.pop("LLAMA_CACHE", None)

    out = run("import", "--other-apps", env=env)
    assert out.returncode == 0, out.stderr
    assert "LM Studio" in out.stdout and "Ollama" in out.stdout and "Added 2 model(s)" in out.stdout
    listed = json.loads(run("models", "--json", env=env).stdout)
    by_name = {m["name"]: m for m in listed}
    assert set(by_name) == {"Qwen2.5-7B-Instruct-Q4_K_M", "tinyllama-1.1b"}
    assert by_name["Qwen2.5-7B-Instruct-Q4_K_M"]["catalog_match"]["id"] == "qwen2.5-7b-instruct"
    assert run("import", "--other-apps", env=env).stdout.startswith("No models")  # nothing twice
    assert run("rm", "tinyllama-1.1b", "-y", env=env).returncode == 0
    assert blob.exists()  # Ollama's file is Ollama's
