"""The CPU features llama.cpp's build uses, against what this processor has: one vocabulary (ggml's).

A build compiled for an instruction set the processor lacks dies with "illegal instruction". ggml
names its features in `llama_print_system_info()` ("AVX512_VNNI = 1 | ..."); operating systems spell
the same features otherwise (Linux's /proc/cpuinfo writes `avx512_vnni` but `avx512vbmi`, SSE3 is
`pni`). Every reading here is translated into ggml's names, so the comparison is name for name.

A source that cannot tell a feature (Windows' API knows a few; a Mac's sysctl differs by chip) leaves
it *unknown*, never absent: only a feature the source can speak to can be reported missing.
"""

from __future__ import annotations

import platform
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

# ggml's x86 feature names (ggml-cpu's order) -> Linux /proc/cpuinfo flags, compared without
# underscores because the kernel spells some with ("avx512_vnni") and some without ("avx512vbmi").
X86_CPUINFO = {
    "SSE3": ("pni", "sse3"),
    "SSSE3": ("ssse3",),
    "AVX": ("avx",),
    "AVX_VNNI": ("avx_vnni",),
    "AVX2": ("avx2",),
    "F16C": ("f16c",),
    "FMA": ("fma",),
    "BMI2": ("bmi2",),
    "AVX512": ("avx512f",),
    "AVX512_VBMI": ("avx512vbmi",),
    "AVX512_VNNI": ("avx512_vnni",),
    "AVX512_BF16": ("avx512_bf16",),
    "AMX_INT8": ("amx_int8",),
}
# ggml's Arm feature names -> Linux "Features" (asimd is NEON; FMA is part of every AArch64 NEON).
ARM_CPUINFO = {
    "NEON": ("asimd",),
    "ARM_FMA": ("asimd",),
    "FP16_VA": ("asimdhp",),
    "DOTPROD": ("asimddp",),
    "MATMUL_INT8": ("i8mm",),
    "SVE": ("sve",),
    "SME": ("sme",),
}
# macOS: Intel Macs list CPUID flags in upper case in machdep.cpu.features/leaf7_features; Apple
# silicon answers hw.optional.* with 0 or 1.
MAC_INTEL = {
    "SSE3": "SSE3",
    "SSSE3": "SSSE3",
    "AVX": "AVX1.0",
    "AVX2": "AVX2",
    "F16C": "F16C",
    "FMA": "FMA",
    "BMI2": "BMI2",
    "AVX512": "AVX512F",
    "AVX512_VBMI": "AVX512VBMI",
    "AVX512_VNNI": "AVX512VNNI",
}
MAC_ARM = {
    "NEON": "hw.optional.neon",
    "ARM_FMA": "hw.optional.neon",
    "FP16_VA": "hw.optional.arm.FEAT_FP16",
    "DOTPROD": "hw.optional.arm.FEAT_DotProd",
    "MATMUL_INT8": "hw.optional.arm.FEAT_I8MM",
    "SME": "hw.optional.arm.FEAT_SME",
}
# Windows: IsProcessorFeaturePresent's PF_* numbers (winnt.h) for the features it can tell.
WINDOWS_PF = {
    "SSE3": 13,  # PF_SSE3_INSTRUCTIONS_AVAILABLE
    "SSSE3": 36,  # PF_SSSE3_INSTRUCTIONS_AVAILABLE
    "AVX": 39,  # PF_AVX_INSTRUCTIONS_AVAILABLE
    "AVX2": 40,  # PF_AVX2_INSTRUCTIONS_AVAILABLE
    "AVX512": 41,  # PF_AVX512F_INSTRUCTIONS_AVAILABLE
    "NEON": 19,  # PF_ARM_NEON_INSTRUCTIONS_AVAILABLE
    "DOTPROD": 43,  # PF_ARM_V82_DP_INSTRUCTIONS_AVAILABLE
}
# Not instruction sets: build options ggml lists beside them ("OPENMP = 1", "REPACK = 1").
BUILD_OPTIONS = {"LLAMAFILE", "OPENMP", "REPACK", "ACCELERATE", "KLEIDIAI"}


@dataclass(frozen=True)
class CpuFeatures:
    """What one source says of this processor, in ggml's names."""

    present: frozenset[str]
    known: frozenset[str]  # the features this source can tell present or absent
    source: str

    def ordered(self) -> list[str]:
        """Present features in ggml's order (x86 then Arm), for display."""
        order = list(X86_CPUINFO) + [f for f in ARM_CPUINFO if f not in X86_CPUINFO]
        return [f for f in order if f in self.present]


def from_cpuinfo(text: str, machine: str) -> CpuFeatures:
    """Linux: the first 'flags' (x86) or 'Features' (Arm) line of /proc/cpuinfo."""
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            flags = {f.replace("_", "") for f in value.split()}
            break
    table = ARM_CPUINFO if machine.lower() in ("aarch64", "arm64") else X86_CPUINFO
    present = {name for name, spellings in table.items() if any(s.replace("_", "") in flags for s in spellings)}
    # No flags line at all (a container hiding it): nothing is known.
    return CpuFeatures(frozenset(present), frozenset(table if flags else ()), "/proc/cpuinfo")


def from_mac_sysctl(values: dict[str, str], machine: str) -> CpuFeatures:
    """macOS: `sysctl` values by name (machdep.cpu.features and leaf7_features on Intel, hw.optional.* on Arm)."""
    if machine.lower() == "arm64":
        known = {name for name, key in MAC_ARM.items() if key in values}
        present = {name for name in known if values[MAC_ARM[name]].strip() == "1"}
        return CpuFeatures(frozenset(present), frozenset(known), "sysctl")
    words = set(
        (values.get("machdep.cpu.features", "") + " " + values.get("machdep.cpu.leaf7_features", "")).upper().split()
    )
    known = set(MAC_INTEL) if words else set()
    present = {name for name, word in MAC_INTEL.items() if word in words}
    return CpuFeatures(frozenset(present), frozenset(known), "sysctl")


def from_windows(is_present: dict[int, bool]) -> CpuFeatures:
    """Windows: IsProcessorFeaturePresent answers by PF_* number."""
    known = {name for name, pf in WINDOWS_PF.items() if pf in is_present}
    present = {name for name in known if is_present[WINDOWS_PF[name]]}
    return CpuFeatures(frozenset(present), frozenset(known), "IsProcessorFeaturePresent")


def read() -> CpuFeatures:
    """This processor, from its operating system."""
    system, machine = platform.system(), platform.machine()
    if system == "Linux":
        try:
            return from_cpuinfo(Path("/proc/cpuinfo").read_text(errors="replace"), machine)
        except OSError:
            return CpuFeatures(frozenset(), frozenset(), "/proc/cpuinfo (unreadable)")
    if system == "Darwin":
        keys = [*MAC_ARM.values()] if machine == "arm64" else ["machdep.cpu.features", "machdep.cpu.leaf7_features"]
        values = {}
        for key in dict.fromkeys(keys):
            value = _sysctl(key)
            if value is not None:
                values[key] = value
        return from_mac_sysctl(values, machine)
    if system == "Windows":
        import ctypes

        kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined,unused-ignore]
        return from_windows({pf: bool(kernel32.IsProcessorFeaturePresent(pf)) for pf in WINDOWS_PF.values()})
    return CpuFeatures(frozenset(), frozenset(), "none")


def _sysctl(key: str) -> str | None:
    try:
        out = subprocess.run(["sysctl", "-n", key], capture_output=True, text=True, timeout=2, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def build_features(system_info: str) -> set[str]:
    """The instruction sets a llama.cpp build was compiled to use, from its system info
    ('CPU : SSE3 = 1 | AVX2 = 1 | ... | OPENMP = 1'); build options are left out."""
    return {name for name, on in re.findall(r"([A-Z][A-Z0-9_]*) = (\d)", system_info) if on == "1"} - BUILD_OPTIONS


def missing(system_info: str, cpu: CpuFeatures) -> list[str]:
    """The features the build uses that this processor is known to lack (unknown ones never count)."""
    return sorted(f for f in build_features(system_info) if f in cpu.known and f not in cpu.present)
