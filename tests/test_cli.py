"""The `localopen` command through its installed entry point, as a user runs it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from cli_helpers import exe, run


def test_entry_point_is_installed() -> None:
    assert exe()[0] != sys.executable, "pip install should have installed the `localopen` console script"
    out = run("--version")
    assert out.returncode == 0 and "localopen" in out.stdout
    assert "--self-test" in run("--help").stdout


def test_catalog_json_and_filters() -> None:
    out = run("catalog", "--json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert len(rows) >= 30
    assert {"grade", "rights", "transparency", "provisional", "license", "fit"} <= set(rows[0])
    only_e = json.loads(run("catalog", "--grade", "E", "--json").stdout)
    assert only_e and all(r["grade"] == "E" for r in only_e)
    found = json.loads(run("catalog", "--search", "olmo", "--json").stdout)
    assert found and all("olmo" in r["id"] for r in found)
    fits = json.loads(run("catalog", "--fits", "--json").stdout)
    assert all(r["fit"]["verdict"] in ("fits_ram", "fits_gpu") for r in fits)
    table = run("catalog")
    assert "fit here" in table.stdout and "A · T3" in table.stdout


def test_hw_json() -> None:
    out = run("hw", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["cores_logical"] >= 1 and data["ram_total"] > 0 and "llama_backends" in data
    assert "Bandwidth" in run("hw").stdout


def test_info_on_catalog_model_and_file(tiny_gguf: Path) -> None:
    out = run("info", "olmo-2-1124-7b-instruct")
    assert out.returncode == 0 and "A · T3" in out.stdout and "arxiv.org" in out.stdout
    data = json.loads(run("info", str(tiny_gguf), "--json").stdout)
    assert data["architecture"] == "llama" and data["grade"] == "C" and data["provisional"] is True
    assert data["fit"]["memory"]["kv_cache"] > 0


@pytest.mark.parametrize(
    "card, letter, rights, transparency",
    [
        ({"id": "a/b-GGUF", "cardData": {"license": "apache-2.0"}, "tags": []}, "C", "R3", "T0"),
        (
            {
                "id": "a/c-GGUF",
                "cardData": {"license": "mit", "base_model": "deepseek-ai/DeepSeek-R1-Distill-Llama-8B"},
            },
            "D",
            "R2",
            "T0",
        ),
        ({"id": "a/d-GGUF", "cardData": {"license": "other", "license_name": "qwen-research"}}, "E", "R1", "T0"),
        ({"id": "a/e-GGUF", "cardData": {}}, "?", "R0", "T0"),
    ],
)
def test_grade_card_json(tmp_path: Path, card: dict, letter: str, rights: str, transparency: str) -> None:
    path = tmp_path / "card.json"
    path.write_text(json.dumps(card))
    out = run("grade", "--card", str(path), "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert (data["grade"], data["rights"], data["transparency"]) == (letter, rights, transparency)
    assert data["provisional"] is True
    assert "effective" in data["license"] and "source" in data["license"]
    assert "evidence" in data


@pytest.mark.parametrize(
    "args, message",
    [
        (["info", "/nonexistent/model.gguf"], "neither a file nor a model"),
        (["info", "/"], "folder"),
        (["grade", "--card", "/nonexistent.json"], "Cannot read"),
    ],
)
def test_bad_input_is_one_plain_line(args: list[str], message: str) -> None:
    out = run(*args)
    assert out.returncode == 1
    assert message in out.stderr
    assert "Traceback" not in out.stderr


def test_bad_card_and_not_gguf(tmp_path: Path) -> None:
    bad = tmp_path / "card.json"
    bad.write_text("[1, 2")
    out = run("grade", "--card", str(bad))
    assert out.returncode == 1 and "not valid JSON" in out.stderr and "Traceback" not in out.stderr
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"this is not a model at all, just text" * 10)
    out = run("info", str(fake))
    assert out.returncode == 1 and "not a GGUF file" in out.stderr and "Traceback" not in out.stderr


def test_a_truncated_model_is_reported_with_both_sizes_everywhere(tmp_path: Path, tiny_gguf: Path) -> None:
    """Before, `info` on such a file exited 0 with 1.9 MB of weights and an 8,000 tokens/s bound."""
    data = tiny_gguf.read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(data[: len(data) * 2 // 3])
    expected, actual = f"{len(data):,}", f"{len(data) * 2 // 3:,}"
    for args in (["info", str(cut)], ["info", str(cut), "--json"], ["import", str(cut)]):
        out = run(*args)
        assert out.returncode == 1, args
        assert "truncated" in out.stderr and expected in out.stderr and actual in out.stderr
        assert out.stdout == "" and "Traceback" not in out.stderr
    # A file that was whole when imported and was cut later: the library and verify say so.
    whole = tmp_path / "later-cut.gguf"
    whole.write_bytes(data)
    assert run("import", str(whole)).returncode == 0
    whole.write_bytes(data[: len(data) // 2])
    models = json.loads(run("models", "--json").stdout)
    [entry] = [m for m in models if m["filename"] == "later-cut.gguf"]
    assert entry["grade"] == "damaged" and "truncated" in entry["problem"]
    verified = run("verify", "later-cut")
    assert verified.returncode == 1 and "truncated" in verified.stdout


def test_a_reader_that_stops_early_ends_the_command_quietly() -> None:
    """`localopen catalog | head -3`: no 'unexpected error', no traceback."""
    import subprocess

    from cli_helpers import exe

    proc = subprocess.Popen([*exe(), "catalog"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    proc.stdout.close()  # the reader is gone before the first line (the table fits in a pipe's buffer)
    _, err = proc.communicate(timeout=60)
    assert err.decode() == "" and proc.returncode == 141
    # A short answer waits in the buffer until the end: met in the command's own flush, not the
    # interpreter's at exit ("Exception ignored … BrokenPipeError", status 120, as the .deb showed).
    short = subprocess.Popen([*exe(), "settings", "n_ctx"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert short.stdout is not None
    short.stdout.close()
    _, err = short.communicate(timeout=60)
    assert err.decode() == "" and short.returncode == 141


def test_a_models_folder_that_is_a_file_and_a_malformed_hub_address_are_said_in_words(tmp_path: Path) -> None:
    import os

    not_a_folder = tmp_path / "models.txt"
    not_a_folder.write_text("a file")
    assert run("settings", "models_dir", str(not_a_folder)).returncode == 0
    out = run("pull", "someone/some-model-GGUF")
    assert out.returncode == 1 and "names a file, not a folder" in out.stderr and "Traceback" not in out.stderr
    assert "unexpected" not in out.stderr.lower()
    run("settings", "--unset", "models_dir")
    out = run("pull", "someone/some-model-GGUF", env={**os.environ, "HF_ENDPOINT": "http://[::1", "HF_HUB_OFFLINE": ""})
    assert out.returncode == 1 and "HF_ENDPOINT is not a usable address" in out.stderr
    assert "unexpected" not in out.stderr.lower()


def test_models_lists_each_model_by_the_name_every_face_uses(tmp_path: Path, tiny_gguf: Path) -> None:
    """One name in every face: the id the API and the Chat view use (the file's name without
    .gguf), not the file name."""
    copy = tmp_path / "gemma-chat.gguf"
    copy.write_bytes(tiny_gguf.read_bytes())
    assert run("import", str(copy)).returncode == 0
    listed = run("models")
    assert listed.stdout.split()[0] == "gemma-chat" and "gemma-chat.gguf" not in listed.stdout.split()
    [entry] = json.loads(run("models", "--json").stdout)
    assert entry["name"] == "gemma-chat" and entry["filename"] == "gemma-chat.gguf"
