"""The fit estimate: against llama.cpp's own buffer report, and the verdict rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_helpers import run
from localopen.core.estimate.budget import Budget, fit_verdict
from localopen.core.estimate.memory import GiB, ModelShape, estimate_memory
from localopen.core.gguf.header import read_header
from localopen.core.machine.hardware import GPU, HardwareProfile


def _llama_report(path: Path, n_ctx: int, cache: str = "f16", flash_attn: bool = False):
    llama_cpp = pytest.importorskip("llama_cpp")
    from localopen.engine import llama_log

    capture = llama_log.install()
    capture.clear()
    ggml = {"f16": llama_cpp.GGML_TYPE_F16, "q8_0": llama_cpp.GGML_TYPE_Q8_0, "q4_0": llama_cpp.GGML_TYPE_Q4_0}[cache]
    llm = llama_cpp.Llama(
        str(path),
        n_ctx=n_ctx,
        n_ubatch=512,
        n_batch=512,
        swa_full=False,
        flash_attn=flash_attn,
        type_k=ggml,
        type_v=ggml,
        verbose=False,
    )
    report = llama_log.parse_memory(capture.lines)
    llm.close()
    return report


@pytest.mark.slow
@pytest.mark.parametrize("n_ctx", [1024, 8192])
def test_estimate_within_10_percent_of_llama_cpp(gemma_path: Path, n_ctx: int) -> None:
    estimate = estimate_memory(ModelShape.from_header(read_header(gemma_path)), n_ctx, n_ubatch=512)
    actual = _llama_report(gemma_path, n_ctx)
    assert actual.kv_cache > 0 and actual.compute > 0 and actual.weights > 0
    error = abs(estimate.total - actual.total) / actual.total
    print(
        f"n_ctx={n_ctx}: estimate {estimate.total / 2**20:.1f} MiB, llama.cpp {actual.total / 2**20:.1f} MiB, "
        f"error {error:.2%} (KV {estimate.kv_cache / 2**20:.1f} vs {actual.kv_cache / 2**20:.1f})"
    )
    assert error < 0.10
    assert abs(estimate.kv_cache - actual.kv_cache) / actual.kv_cache < 0.10


@pytest.mark.slow
@pytest.mark.parametrize(("cache", "flash_attn"), [("f16", True), ("q8_0", True), ("q4_0", True)])
def test_kv_cache_types_and_flash_attention_within_10_percent_of_llama_cpp(
    gemma_path: Path, cache: str, flash_attn: bool
) -> None:
    """The fit follows the cache: q8_0 about 0.53x and q4_0 about 0.28x of f16's KV bytes, and flash
    attention's smaller compute buffer, against llama.cpp's own buffer report."""
    shape = ModelShape.from_header(read_header(gemma_path))
    estimate = estimate_memory(shape, 8192, n_ubatch=512, flash_attn=flash_attn, type_k=cache, type_v=cache)
    actual = _llama_report(gemma_path, 8192, cache, flash_attn)
    print(
        f"{cache}, flash attention {flash_attn}: estimate {estimate.total / 2**20:.1f} MiB (KV "
        f"{estimate.kv_cache / 2**20:.1f}, compute {estimate.compute / 2**20:.1f}), llama.cpp "
        f"{actual.total / 2**20:.1f} MiB (KV {actual.kv_cache / 2**20:.1f}, compute {actual.compute / 2**20:.1f})"
    )
    assert abs(estimate.total - actual.total) / actual.total < 0.10
    assert abs(estimate.kv_cache - actual.kv_cache) / actual.kv_cache < 0.10
    f16 = estimate_memory(shape, 8192, n_ubatch=512, flash_attn=flash_attn)
    assert estimate.kv_cache / f16.kv_cache == pytest.approx({"f16": 1.0, "q8_0": 0.53, "q4_0": 0.28}[cache], abs=0.01)


def test_largest_context_is_the_largest_that_fits(tiny_gguf: Path) -> None:
    largest_context = Budget.largest_context
    shape = ModelShape.from_header(read_header(tiny_gguf))
    budget = estimate_memory(shape, 3000).total
    found = largest_context(shape, budget, 1 << 20)
    assert found is not None and found % 256 == 0
    assert estimate_memory(shape, found).total <= budget < estimate_memory(shape, found + 256).total
    smaller = largest_context(shape, budget, 1 << 20, type_k="q4_0", type_v="q4_0", flash_attn=True)
    assert smaller is not None and smaller > found  # a quantized cache fits a longer context
    assert largest_context(shape, 1, 4096) is None
    assert largest_context(shape, budget * 100, 4096) == 4096  # capped at the model's context


def test_kv_grows_with_context_and_swa_caps_it(tiny_gguf: Path) -> None:
    shape = ModelShape.from_header(read_header(tiny_gguf))
    small, large = estimate_memory(shape, 256), estimate_memory(shape, 4096)
    assert large.kv_cache == small.kv_cache * 16
    swa = ModelShape(
        weight_bytes=1,
        n_layers=6,
        n_head=4,
        n_head_kv=1,
        key_length=256,
        value_length=256,
        n_vocab=1000,
        n_embd=640,
        sliding_window=512,
        n_swa_layers=5,
    )
    full = estimate_memory(swa, 32768, swa_full=True)
    capped = estimate_memory(swa, 32768, swa_full=False)
    assert capped.kv_cache < full.kv_cache / 4


def _hw(ram_gb: float, available_gb: float, gpu_gb: float | None = None, backends=("CPU",)) -> HardwareProfile:
    gpus = [GPU("Test GPU", "NVIDIA", int(gpu_gb * GiB), int(gpu_gb * GiB))] if gpu_gb else []
    return HardwareProfile(
        os="Linux",
        arch="x86_64",
        cpu_model="test",
        cores_physical=4,
        cores_logical=8,
        simd=[],
        ram_total=int(ram_gb * GiB),
        ram_available=int(available_gb * GiB),
        disk_free=None,
        models_dir="/tmp",
        gpus=gpus,
        llama_backends=list(backends),
        bandwidth_gbs=50.0,
    )


SHAPE_4GB = ModelShape(
    weight_bytes=4 * GiB,
    n_layers=32,
    n_head=32,
    n_head_kv=8,
    key_length=128,
    value_length=128,
    n_vocab=32000,
    n_embd=4096,
)


@pytest.mark.parametrize(
    "hw, code",
    [
        (_hw(32, 28), "fits_ram"),
        (_hw(8, 4), "tight"),
        (_hw(4, 3), "no_fit"),
        (_hw(16, 12, gpu_gb=12, backends=("CPU", "CUDA")), "fits_gpu"),
        (_hw(16, 12, gpu_gb=12, backends=("CPU",)), "fits_ram"),  # a GPU this build cannot use
        (_hw(16, 12, gpu_gb=2, backends=("CPU", "CUDA")), "fits_ram"),
    ],
)
def test_verdicts(hw: HardwareProfile, code: str) -> None:
    verdict = fit_verdict(SHAPE_4GB, hw, 4096)
    assert verdict.code == code
    assert verdict.detail


def test_the_share_models_may_take_is_one_setting_said_in_words() -> None:
    """4 GB of weights plus cache on a machine with 5.5 GB available: within 85 % it does not fit,
    within 95 % it does; the verdict says the room and the share."""
    hw = _hw(8, 5.5)
    strict, relaxed = fit_verdict(SHAPE_4GB, hw, 4096), fit_verdict(SHAPE_4GB, hw, 4096, Budget(95))
    assert strict.code == "tight" and relaxed.code == "fits_ram"
    assert "(85% of 5.9 GB available)" in strict.detail and "(95% of 5.9 GB available)" in relaxed.detail
    assert Budget(5).percent == 10 and Budget(150).percent == 100  # a share that leaves something, or all
    from localopen.app.settings import SettingError, Settings

    assert Settings().with_value("models_memory_percent", "95").budget == Budget(95)
    with pytest.raises(SettingError, match="share of free memory models may take, 10 to 100"):
        Settings().with_value("models_memory_percent", "150")


def test_decode_bound_from_bandwidth() -> None:
    verdict = fit_verdict(SHAPE_4GB, _hw(32, 28), 4096)
    assert verdict.decode_bound_tps == pytest.approx(50e9 / (4 * GiB), rel=0.01)


def _gemma4_e2b_header(path: Path) -> Path:
    """The gemma4.* keys of Gemma 4 E2B's GGUF (the ones the KV estimate reads), no tensors."""
    import gguf

    writer = gguf.GGUFWriter(str(path), "gemma4")
    writer.add_block_count(35)
    writer.add_embedding_length(1536)
    writer.add_head_count(8)
    writer.add_head_count_kv(1)
    writer.add_key_length(512)
    writer.add_value_length(512)
    writer.add_uint32("gemma4.attention.key_length_swa", 256)
    writer.add_uint32("gemma4.attention.value_length_swa", 256)
    writer.add_uint32("gemma4.attention.shared_kv_layers", 20)
    writer.add_sliding_window(512)
    writer.add_array("gemma4.attention.sliding_window_pattern", [(i + 1) % 5 != 0 for i in range(35)])
    writer.add_context_length(131072)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.close()
    return path


def test_gemma4_kv_cache_follows_llama_cpps_shared_and_sliding_layers(tmp_path: Path) -> None:
    """Gemma 4 E2B: llama.cpp keeps a KV cache for the first 35 - 20 = 15 layers only
    (n_layer_kv_from_start); 12 of them slide over 512 tokens with 256-wide heads, 3 are global
    with 512-wide heads. The header and the catalog's architecture block must both say so."""
    from localopen.core.estimate.inputs import catalog_shape
    from localopen.core.openness.catalog import load_catalog

    n_ctx = 8192
    swa_cells = 1024  # the window plus one micro-batch, padded to 256
    expected = (12 * swa_cells * 1 * (256 + 256) + 3 * n_ctx * 1 * (512 + 512)) * 2
    from_header = ModelShape.from_header(read_header(_gemma4_e2b_header(tmp_path / "g4.gguf")))
    assert estimate_memory(from_header, n_ctx).kv_cache == expected

    entry = load_catalog().get("gemma-4-e2b-it")
    assert entry is not None and entry.arch is not None
    assert estimate_memory(catalog_shape(entry, entry.recommended), n_ctx).kv_cache == expected
    # Without the sharing and the narrow sliding heads it would be 35 layers of 512-wide heads.
    naive = ModelShape(1, 35, 8, 1, 512, 512, 262144, 1536, sliding_window=512, n_swa_layers=28)
    assert estimate_memory(naive, n_ctx).kv_cache > 2 * expected


@pytest.mark.slow
def test_bench_json_carries_llama_cpps_buffer_report_which_the_fit_predicts(gemma_path: Path) -> None:
    """Each benchmark result carries llama.cpp's own report for its test's context (weights, KV
    cache, compute, output); the fit at that context and cache agrees within 10 %."""
    out = run("bench", str(gemma_path), "-p", "256", "-n", "8", "-r", "1", "--kv-type", "q8_0", "--flash-attn", "on",
              "--json", timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr
    pp = next(r for r in json.loads(out.stdout) if r["test"] == "pp256")
    report = pp["memory"]
    assert set(report) == {"weights", "kv_cache", "compute", "output", "total"}
    assert report["total"] == report["weights"] + report["kv_cache"] + report["compute"] + report["output"]
    info = run("info", str(gemma_path), "--ctx", "256", "--kv-type", "q8_0", "--flash-attn", "on", "--json")
    estimate = json.loads(info.stdout)["fit"]["memory"]
    for kind in ("kv_cache", "compute", "total"):
        assert abs(estimate[kind] - report[kind]) <= 0.10 * report[kind], kind
