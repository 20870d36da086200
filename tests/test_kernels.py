"""The kernel canary: llama.cpp's CPU kernels tried in throwaway processes, models loaded with
those that decode, a crash it did not predict survived once (real llama.cpp, real Gemma 270M)."""

from __future__ import annotations

from pathlib import Path

import pytest

from localopen.core.machine.kernels import KernelChoice, read_choice, save_choice
from localopen.core.options import LoadOptions, SamplingParams
from localopen.core.paths import app_paths
from localopen.engine import canary
from localopen.engine.client import Engine

from crashing_children import (
    CRASHING,
    VARIANTS,
    canary_crashing_with_repack,
    canary_with_variants_best_crashing,
    engine_crashing_with_repack,
)

pytest.importorskip("llama_cpp")
HELLO = [{"role": "user", "content": "Hello"}]
GREEDY = SamplingParams(max_tokens=6, temperature=0.0, seed=1)


@pytest.fixture
def fresh_canary(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process forgets what it learned: the record in this test's home decides."""
    monkeypatch.setattr(canary, "_known", {})


def _real_choice() -> KernelChoice:
    key, build = canary.current_key()
    choice = canary.check_kernels(key, build)
    assert choice is not None, "llama.cpp's plain CPU kernels should decode the canary here"
    return choice


def test_the_sentence_names_what_crashed_and_what_runs_instead() -> None:
    choice = KernelChoice("k", "b", ["AMX", "CPU_REPACK"], {"AMX": "crashed (segmentation fault)"}, simd="AVX-512")
    assert choice.working == ["CPU_REPACK"]
    assert choice.sentence() == (
        "llama.cpp's AMX kernels crash on this CPU (a known problem on virtualised Xeon hosts); "
        "localopen uses its repacked AVX-512 kernels instead."
    )
    both = KernelChoice("k", "b", ["AMX", "CPU_REPACK"], {"AMX": "x", "CPU_REPACK": "y"}, simd="AVX2")
    assert both.working == [] and "plain AVX2 CPU kernels" in (both.sentence() or "")
    assert KernelChoice("k", "b", ["CPU_REPACK"]).sentence() is None
    remembered = KernelChoice("k", "b", ["CPU_REPACK"], files={"/m.gguf": "crashed"})
    assert remembered.for_file("/m.gguf") == () and remembered.for_file("/other.gguf") == ("CPU_REPACK",)


def test_every_kernel_the_canary_keeps_answers_with_gemma(gemma_path: Path) -> None:
    """On this machine, for real: each buffer type that decoded the canary decodes a real model
    (on an AMX Xeon the canary finds AMX crashing and keeps CPU_REPACK)."""
    choice = _real_choice()
    assert set(choice.working) | set(choice.crashed) == set(choice.offered)
    for kernels in [(), *[(name,) for name in choice.working]]:
        engine = Engine()
        try:
            info = engine.load(str(gemma_path), LoadOptions(n_ctx=512, kernels=kernels))
            assert info.kernels == list(kernels)  # the weights went where they were allowed to
            assert set(info.memory_actual.extra_buffers) == set(kernels)
            stats = engine.answer(HELLO, GREEDY, template="gemma")
            assert stats.completion_tokens >= 1
        finally:
            engine.shutdown()


def test_a_kernel_that_crashes_is_recorded_and_never_used(gemma_path: Path, fresh_canary: None) -> None:
    key, build = canary.current_key()
    choice = canary.check_kernels(key, build, child=canary_crashing_with_repack)
    assert choice is not None
    if CRASHING not in choice.offered:
        pytest.skip(f"this llama.cpp offers no {CRASHING} here")
    assert choice.crashed[CRASHING] == "crashed (segmentation fault)"
    assert CRASHING not in choice.working
    assert "repacked" in (choice.sentence() or "")
    save_choice(app_paths().cache, choice)

    engine = Engine()  # as every face loads: the kernels come from the record
    try:
        info = engine.load(str(gemma_path), LoadOptions(n_ctx=512))
        assert CRASHING not in info.kernels
        assert CRASHING not in info.memory_actual.extra_buffers
        assert engine.answer(HELLO, GREEDY, template="gemma").completion_tokens >= 1
    finally:
        engine.shutdown()


def test_a_crash_the_canary_did_not_predict_restarts_once_without_extra_kernels(
    gemma_path: Path, fresh_canary: None
) -> None:
    choice = canary.kernel_choice()
    if choice is None or CRASHING not in choice.working:
        pytest.skip(f"{CRASHING} does not run here")
    engine = Engine(child=engine_crashing_with_repack)
    try:
        info = engine.load(str(gemma_path), LoadOptions(n_ctx=512))
        assert CRASHING in info.kernels
        stats = engine.answer(HELLO, GREEDY, template="gemma")  # the first child dies; the answer comes anyway
        assert stats.completion_tokens >= 1
        assert "CPU_REPACK kernels crashed on this model's first answer" in (stats.notice or "")
        assert engine.info is not None and engine.info.kernels == []
        notice = engine.info.kernel_notice or ""
        assert "crashed on this model's first answer (crashed (segmentation fault))" in notice
        # Once only: the same engine answers again without a restart.
        pid = engine.process.pid if engine.process else None
        assert engine.answer(HELLO, GREEDY, template="gemma").completion_tokens >= 1
        assert engine.process is not None and engine.process.pid == pid
    finally:
        engine.shutdown()
    record = read_choice(app_paths().cache, choice.key)
    assert record is not None and str(gemma_path) in record.files
    again = Engine()  # remembered for this file and build: no extra kernels from the start
    try:
        assert again.load(str(gemma_path), LoadOptions(n_ctx=512)).kernels == []
    finally:
        again.shutdown()


def test_the_self_test_decodes_quantized_weights_and_fails_where_a_chat_would_crash() -> None:
    from localopen import selftest

    from crashing_children import engine_crashing_on_quantized

    lines: list[str] = []
    selftest._engine_check(lines)
    assert any(line.startswith("quantized weights (Q4_0, Q8_0, Q4_K, Q6_K): decoded") for line in lines), lines

    with pytest.raises(RuntimeError, match=r"decoding quantized weights .* crashed \(segmentation fault\)"):
        selftest._engine_check([], child=engine_crashing_on_quantized)


def test_the_self_test_survives_a_kernel_crash_by_the_restart_and_says_so(fresh_canary: None) -> None:
    from localopen import selftest

    choice = canary.kernel_choice()
    if choice is None or CRASHING not in choice.working:
        pytest.skip(f"{CRASHING} does not run here")
    lines: list[str] = []
    selftest._engine_check(lines, child=engine_crashing_with_repack)
    decoded = next(line for line in lines if line.startswith("quantized weights"))
    assert "with plain CPU kernels (llama.cpp's CPU_REPACK kernels crashed" in decoded, decoded


def test_a_cpu_variant_that_crashes_is_skipped_for_the_next_best(gemma_path: Path, fresh_canary: None) -> None:
    """In a build with one CPU backend per CPU generation, the canary tries them best first; the
    first that decodes is this machine's, the one before it is named in the sentence, and every
    load asks for it."""
    key, build = canary.current_key()
    choice = canary.check_kernels(key, build, child=canary_with_variants_best_crashing)
    assert choice is not None
    assert choice.variant == VARIANTS[1]
    assert choice.variants_crashed == {VARIANTS[0]: "crashed (segmentation fault)"}
    assert f"llama.cpp's {VARIANTS[0]} CPU build crashes on this CPU; localopen uses its {VARIANTS[1]} build" in (
        choice.sentence() or ""
    )
    assert KernelChoice.from_dict(choice.to_dict()) == choice
    save_choice(app_paths().cache, choice)

    from localopen.app import cpu_kernels as words

    assert f"of its {VARIANTS[1]} CPU build" in words.in_words()
    engine = Engine()
    try:
        # This llama.cpp links its CPU backend in: the variant is asked for and nothing is loaded.
        info = engine.load(str(gemma_path), LoadOptions(n_ctx=512))
        assert info.cpu_variant == ""
        assert engine._loaded is not None and engine._loaded[1].cpu_variant == VARIANTS[1]
        assert engine.answer(HELLO, GREEDY, template="gemma").completion_tokens >= 1
    finally:
        engine.shutdown()


def test_cpu_variants_are_ranked_by_their_own_score(tmp_path: Path) -> None:
    """Real shared libraries, each exporting ggml_backend_score() as ggml's variants do: those
    scoring 0 (cannot run on this CPU) are left out, the rest come best first."""
    import shutil
    import subprocess

    from localopen.engine import cpu_variants

    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler")
    for name, score in (("x64", 1), ("haswell", 40), ("sapphirerapids", 0), ("icelake", 77)):
        source = tmp_path / f"{name}.c"
        source.write_text(f"int ggml_backend_score(void) {{ return {score}; }}\n")
        subprocess.run(
            [compiler, "-shared", "-fPIC", "-o", str(tmp_path / f"libggml-cpu-{name}.so"), str(source)], check=True
        )
    (tmp_path / "libggml-base.so").write_bytes(b"")  # not a variant
    (tmp_path / "libggml-cpu.so").write_bytes(b"")  # a linked-in CPU backend: not a variant either
    assert set(cpu_variants.variant_files(tmp_path)) == {"x64", "haswell", "sapphirerapids", "icelake"}
    ranked = cpu_variants.ranked(tmp_path)
    assert [(v.name, v.score) for v in ranked] == [("icelake", 77), ("haswell", 40), ("x64", 1)]
