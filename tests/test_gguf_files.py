"""GGUF file-naming rules, read the same way by the Hub listing, the models folder, pulls and the catalog."""

from __future__ import annotations

from pathlib import Path

import pytest

from localopen.app.models.pull import choose_files
from localopen.core.gguf.files import is_first_part, is_gguf, matches_quant, model_name, parts_of, quant_of, split_part
from localopen.core.hub.client import RemoteFile
from localopen.core.store.library_db import list_models, scan


@pytest.mark.parametrize(
    ("name", "quant"),
    [
        ("Qwen2.5-0.5B-Instruct-Q4_K_M.gguf", "Q4_K_M"),
        ("qwen2.5-0.5b-instruct-q4_k_m.gguf", "Q4_K_M"),
        ("qwen2.5-0.5b-instruct-fp16.gguf", "F16"),  # Qwen's name for F16
        ("gemma-3-1b-it-BF16.gguf", "BF16"),
        ("Llama-3.1-8B-Instruct-IQ3_XXS.gguf", "IQ3_XXS"),
        ("gpt-oss-20b-MXFP4.gguf", "MXFP4"),
        ("model-Q8_0-00002-of-00003.gguf", "Q8_0"),
        ("model-00001-of-00003.gguf", None),
        ("README.md", None),
    ],
)
def test_quantization_from_a_file_name(name: str, quant: str | None) -> None:
    assert quant_of(name) == quant


def test_a_catalog_pattern_matches_exactly_its_quantization() -> None:
    assert matches_quant("Qwen2.5-0.5B-Instruct-Q6_K.gguf", "*Q6_K*.gguf")
    assert not matches_quant("Qwen2.5-0.5B-Instruct-Q6_K_L.gguf", "*Q6_K*.gguf")
    assert not matches_quant("model-BF16.gguf", "*F16*.gguf")
    assert matches_quant("qwen2.5-0.5b-instruct-fp16.gguf", "*F16*.gguf")  # matched nothing before
    assert matches_quant("model-Q4_K_M-00001-of-00002.gguf", "*Q4_K_M*.gguf")
    assert matches_quant("Model-Q4_K_M.gguf", "model-*q4_k_m*.gguf")
    assert not matches_quant("other-Q4_K_M.gguf", "model-*Q4_K_M*.gguf")
    # A vision projector is never one of the model's files, whatever its precision.
    assert not matches_quant("mmproj-model-f16.gguf", "*F16*.gguf")
    assert matches_quant("gemma-3-4b-it-f16.gguf", "*F16*.gguf")


def test_split_parts_and_model_names() -> None:
    assert split_part("big-Q4_K_M-00002-of-00003.gguf") is not None
    assert split_part("big-Q4_K_M-00002-of-00003.GGUF") is not None  # the suffix in any case
    assert is_first_part("big-00001-of-00003.gguf") and not is_first_part("big-00003-of-00003.gguf")
    assert is_first_part("whole.gguf") and is_gguf("WHOLE.GGUF") and not is_gguf("whole.bin")
    assert model_name("sub/big-Q4_K_M-00001-of-00003.gguf") == "big-Q4_K_M" == model_name("big-Q4_K_M.gguf")
    assert [p.name for p in parts_of(Path("/m/big-00002-of-00003.gguf"))] == [
        "big-00001-of-00003.gguf",
        "big-00002-of-00003.gguf",
        "big-00003-of-00003.gguf",
    ]


def test_the_models_folder_and_a_pull_read_names_alike(tmp_path: Path) -> None:
    """A split model is one library entry, found by its first part, whatever the suffix's case."""
    from localopen.app.context import AppContext

    folder = tmp_path / "models" / "owner" / "repo"
    folder.mkdir(parents=True)
    for i in (1, 2):
        (folder / f"big-Q4_K_M-0000{i}-of-00002.GGUF").write_bytes(b"GGUF")
    (folder / "notes.txt").write_text("not a model")
    ctx = AppContext()
    assert scan(ctx.db, tmp_path / "models") == 1
    [model] = list_models(ctx.db)
    assert model.name == "big-Q4_K_M" and model.quant == "Q4_K_M" and model.repo == "owner/repo"
    files = [RemoteFile("owner/repo", f"big-Q4_K_M-0000{i}-of-00002.gguf", 4, None) for i in (2, 1)]
    files.append(RemoteFile("owner/repo", "big-Q8_0.gguf", 4, None))
    assert [f.filename for f in choose_files(files, quant="Q4_K_M")] == [
        "big-Q4_K_M-00001-of-00002.gguf",
        "big-Q4_K_M-00002-of-00002.gguf",
    ]
