"""The build's CPU features against the processor's, in one vocabulary (ggml's).

tests/data/cpuinfo/ holds /proc/cpuinfo texts of several processors (flag lines as Linux prints
them, from published dumps of those CPUs): the kernel writes `avx512_vnni` and `avx512_bf16` with an
underscore but `avx512vbmi` without, and SSE3 as `pni`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from localopen.core.machine import cpu_features
from localopen.core.machine.cpu_features import CpuFeatures, build_features, from_cpuinfo, missing

CPUINFO = Path(__file__).parent / "data" / "cpuinfo"

# What each processor has, in ggml's names (from the vendors' specifications).
EXPECTED = {
    "skylake-i7-6700": {"SSE3", "SSSE3", "AVX", "AVX2", "F16C", "FMA", "BMI2"},
    "icelake-xeon-8375c": {
        "SSE3",
        "SSSE3",
        "AVX",
        "AVX2",
        "F16C",
        "FMA",
        "BMI2",
        "AVX512",
        "AVX512_VBMI",
        "AVX512_VNNI",
    },
    "sapphire-rapids-xeon-8480": {
        *("SSE3", "SSSE3", "AVX", "AVX_VNNI", "AVX2", "F16C", "FMA", "BMI2"),
        *("AVX512", "AVX512_VBMI", "AVX512_VNNI", "AVX512_BF16", "AMX_INT8"),
    },
    "zen2-epyc-7742": {"SSE3", "SSSE3", "AVX", "AVX2", "F16C", "FMA", "BMI2"},
    "zen4-epyc-9654": {
        *("SSE3", "SSSE3", "AVX", "AVX2", "F16C", "FMA", "BMI2"),
        *("AVX512", "AVX512_VBMI", "AVX512_VNNI", "AVX512_BF16"),
    },
    "zen5-ryzen-9950x": {
        *("SSE3", "SSSE3", "AVX", "AVX_VNNI", "AVX2", "F16C", "FMA", "BMI2"),
        *("AVX512", "AVX512_VBMI", "AVX512_VNNI", "AVX512_BF16"),
    },
    "raspberry-pi-5-cortex-a76": {"NEON", "ARM_FMA", "FP16_VA", "DOTPROD"},
    "graviton3-neoverse-v1": {"NEON", "ARM_FMA", "FP16_VA", "DOTPROD", "MATMUL_INT8", "SVE"},
}


def _read(name: str) -> CpuFeatures:
    machine = "aarch64" if name.startswith(("raspberry", "graviton")) else "x86_64"
    return from_cpuinfo((CPUINFO / f"{name}.txt").read_text(), machine)


def _native_build(features: set[str]) -> str:
    """llama.cpp's system info for a build compiled on that CPU (GGML_NATIVE), build options included."""
    return "CPU : " + " | ".join(f"{f} = 1" for f in sorted(features)) + " | LLAMAFILE = 1 | OPENMP = 1 | REPACK = 1 |"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_processor_reads_as_its_specification(name: str) -> None:
    assert set(_read(name).present) == EXPECTED[name]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_build_made_on_the_processor_lacks_nothing_there(name: str) -> None:
    """The false alarm of old: a VNNI machine's own native build was said to need what it has."""
    assert missing(_native_build(EXPECTED[name]), _read(name)) == []


def test_an_avx512_build_on_a_processor_without_it_names_each_missing_feature() -> None:
    icelake_build = _native_build(EXPECTED["icelake-xeon-8375c"])
    assert missing(icelake_build, _read("skylake-i7-6700")) == ["AVX512", "AVX512_VBMI", "AVX512_VNNI"]
    spr_build = _native_build(EXPECTED["sapphire-rapids-xeon-8480"])
    assert missing(spr_build, _read("zen4-epyc-9654")) == ["AMX_INT8", "AVX_VNNI"]


def test_build_options_are_not_instruction_sets() -> None:
    info = "CPU : SSE3 = 1 | AVX2 = 1 | AVX512 = 0 | LLAMAFILE = 1 | OPENMP = 1 | REPACK = 1 |"
    assert build_features(info) == {"SSE3", "AVX2"}


def test_what_a_source_cannot_tell_is_never_reported_missing() -> None:
    """Windows' API knows AVX2 and AVX512F but not VNNI: a VNNI build is not flagged there."""
    windows = cpu_features.from_windows({13: True, 36: True, 39: True, 40: True, 41: True})
    assert missing(_native_build({"AVX2", "AVX512", "AVX512_VNNI"}), windows) == []
    windows_no512 = cpu_features.from_windows({13: True, 36: True, 39: True, 40: True, 41: False})
    assert missing(_native_build({"AVX2", "AVX512", "AVX512_VNNI"}), windows_no512) == ["AVX512"]
    # No flags line at all (some containers): nothing known, nothing missing.
    assert missing(_native_build({"AVX2"}), from_cpuinfo("processor : 0\n", "x86_64")) == []


def test_mac_sysctl_on_intel_and_apple_silicon() -> None:
    intel = cpu_features.from_mac_sysctl(
        {
            "machdep.cpu.features": "FPU VME SSE3 PCLMULQDQ SSSE3 FMA CX16 SSE4.1 SSE4.2 POPCNT AVX1.0 RDRAND F16C",
            "machdep.cpu.leaf7_features": "RDWRFSGS TSC_THREAD_OFFSET BMI1 AVX2 SMEP BMI2 ERMS INVPCID FPU_CSDS",
        },
        "x86_64",
    )
    assert set(intel.present) == {"SSE3", "SSSE3", "AVX", "AVX2", "F16C", "FMA", "BMI2"}
    assert missing(_native_build({"AVX2", "AVX512"}), intel) == ["AVX512"]
    m1 = cpu_features.from_mac_sysctl(
        {
            "hw.optional.neon": "1",
            "hw.optional.arm.FEAT_FP16": "1",
            "hw.optional.arm.FEAT_DotProd": "1",
            "hw.optional.arm.FEAT_I8MM": "0",
        },
        "arm64",
    )
    assert set(m1.present) == {"NEON", "ARM_FMA", "FP16_VA", "DOTPROD"}
    assert missing(_native_build({"NEON", "MATMUL_INT8", "SME"}), m1) == ["MATMUL_INT8"]  # SME: unknown here


def test_this_machine_against_the_installed_llama_cpp() -> None:
    """The self-test's own comparison, on this machine's processor and build: nothing missing."""
    llama_cpp = pytest.importorskip("llama_cpp")
    info = llama_cpp.llama_print_system_info().decode()
    assert build_features(info), info  # the build says which features it uses
    assert missing(info, cpu_features.read()) == []
