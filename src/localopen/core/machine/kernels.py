"""Which of llama.cpp's CPU kernels run on this machine: the canary's record.

llama.cpp's CPU backend offers "extra buffer types" (AMX on Xeons with it, CPU_REPACK on every
AVX2/AVX-512 or Arm CPU, KleidiAI): weights laid out for faster kernels. On some CPUs one of
them crashes on the first matrix multiply (AMX on many virtualised Xeons: Ollama issues 17205,
17249, llama.cpp 20824) while the plain kernels run. The canary (engine/canary.py) tries each in a
throwaway process once per CPU, OS kernel and llama.cpp build; this record says what it found,
and every model loads with only the buffer types that decoded there. A model that crashes anyway
(what the canary did not predict) is remembered here too, to load without any.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import platform
from pathlib import Path
from typing import Any

log = logging.getLogger("localopen.kernels")

# What each buffer type is, in words a person can follow.
_WHAT = {
    "AMX": "AMX",
    "CPU_REPACK": "repacked",
    "CPU_KLEIDIAI": "KleidiAI",
}
_KNOWN = {"AMX": " (a known problem on virtualised Xeon hosts)"}


def kernel_key(cpu_model: str, cpu_flags: list[str], build: str) -> str:
    """The canary's record holds for this CPU, OS kernel (it grants AMX's tile state) and build."""
    raw = json.dumps([cpu_model, sorted(cpu_flags), platform.system(), platform.release(), build])
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


@dataclasses.dataclass
class KernelChoice:
    """What the canary found: the extra buffer types llama.cpp offers on this CPU (in its order of
    preference) and those whose canary crashed, with how it ended."""

    key: str
    build: str
    offered: list[str]
    crashed: dict[str, str] = dataclasses.field(default_factory=dict)
    checked_at: str = ""
    simd: str = ""  # the widest vector kernels this CPU runs ("AVX-512", "AVX2"…), for the sentence
    # Model files that crashed on their first decode although the canary's kernels ran: they load
    # with no extra buffer type (path -> what happened).
    files: dict[str, str] = dataclasses.field(default_factory=dict)
    # In a build with its CPU backend in one library per CPU generation: the one models load
    # ("" a build with it linked in), and those that crashed first, best first (name -> how).
    variant: str = ""
    variants_crashed: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def working(self) -> list[str]:
        return [name for name in self.offered if name not in self.crashed]

    def for_file(self, path: str | Path) -> tuple[str, ...]:
        """The extra buffer types this file loads with."""
        return () if str(path) in self.files else tuple(self.working)

    def sentence(self) -> str | None:
        """The one sentence a person needs, or None when every kernel runs."""
        said = [s for s in (self._variant_sentence(), self._buffer_sentence()) if s]
        return " ".join(said) or None

    def _variant_sentence(self) -> str | None:
        if not self.variants_crashed:
            return None
        names = " and ".join(self.variants_crashed)
        builds = "builds crash" if len(self.variants_crashed) > 1 else "build crashes"
        return f"llama.cpp's {names} CPU {builds} on this CPU; localopen uses its {self.variant} build instead."

    def _buffer_sentence(self) -> str | None:
        if not self.crashed:
            return None
        names = [name for name in self.offered if name in self.crashed]
        what = " and ".join(_WHAT.get(n, n) for n in names)
        known = "".join(_KNOWN.get(n, "") for n in names)
        if self.working:
            instead = " and ".join(_WHAT.get(n, n) for n in self.working)
            simd = f"{self.simd} " if self.simd else ""
            use = f"its {instead} {simd}kernels instead"
        else:
            use = f"its plain {self.simd + ' ' if self.simd else ''}CPU kernels instead"
        return f"llama.cpp's {what} kernels crash on this CPU{known}; localopen uses {use}."

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> KernelChoice:
        return cls(
            key=str(data["key"]),
            build=str(data.get("build", "")),
            offered=[str(n) for n in data["offered"]],
            crashed={str(k): str(v) for k, v in dict(data.get("crashed", {})).items()},
            checked_at=str(data.get("checked_at", "")),
            simd=str(data.get("simd", "")),
            files={str(k): str(v) for k, v in dict(data.get("files", {})).items()},
            variant=str(data.get("variant", "")),
            variants_crashed={str(k): str(v) for k, v in dict(data.get("variants_crashed", {})).items()},
        )


def record_path(cache_dir: Path, key: str) -> Path:
    return cache_dir / f"kernels-{key}.json"


def read_choice(cache_dir: Path, key: str) -> KernelChoice | None:
    path = record_path(cache_dir, key)
    if not path.exists():
        return None
    try:
        choice = KernelChoice.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        log.warning("Unreadable kernel record %s: the canary runs again", path, exc_info=True)
        return None
    return choice if choice.key == key else None


def save_choice(cache_dir: Path, choice: KernelChoice) -> None:
    path = record_path(cache_dir, choice.key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(choice.to_dict(), indent=1))
    except OSError:
        log.warning("Could not keep the kernel record in %s: the canary runs again next time", path, exc_info=True)


def simd_level(flags: list[str]) -> str:
    """The widest vector instructions of these ggml feature names, as people name them."""
    have = {f.upper() for f in flags}
    for name, label in (("AVX512", "AVX-512"), ("AVX2", "AVX2"), ("AVX", "AVX"), ("SVE", "SVE"), ("NEON", "NEON")):
        if name in have:
            return label
    return ""
