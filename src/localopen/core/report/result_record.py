"""A benchmark result as others can read it: a frozen, versioned record of one model file's prompt
and generation speed on one machine, with the settings that produced it, its band and how it was
obtained. What `localopen results --records` prints and what a shared index of measured results
publishes and reads: a reader meets the same fields whichever localopen wrote them, and a record
from a newer schema is refused in words, never half read.

The machine is described by what decides speed and can be compared across machines (its CPU
model and widest vector instructions, cores, RAM, measured memory bandwidth, GPUs, the backend
and the llama.cpp build), never by anything that names the person or the host.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from enum import Enum
from typing import Any

from localopen.core.errors import LocalopenError
from localopen.core.estimate.verdict import PROMPT_TOKENS, Thresholds, band_for
from localopen.core.machine.hardware import HardwareProfile
from localopen.core.machine.kernels import simd_level
from localopen.core.records import BenchResult

SCHEMA = "localopen.result"
SCHEMA_VERSION = 1


class Band(str, Enum):
    """Generation speed and time to first token in bands people recognise (core/estimate/verdict)."""

    FLUENT = "fluent"
    COMFORTABLE = "comfortable"
    READABLE = "readable"
    TOO_SLOW = "too slow"


class Basis(str, Enum):
    MEASURED = "measured"  # a benchmark of the real file
    PROBED = "probed"  # a benchmark of a zero-data replica of the Hub file, before any download


class RecordError(LocalopenError):
    """A record that cannot be read: another schema, a newer version, a missing or wrong field."""


@dataclass(frozen=True)
class MachineClass:
    os: str
    arch: str
    cpu_model: str
    simd: str  # the widest vector instructions: "AVX-512", "AVX2", "NEON"…
    cores_physical: int
    cores_logical: int
    ram_gib: int  # rounded: machines of one class differ by a few MiB
    bandwidth_gbs: float | None  # measured memory copy speed (None: not measured)
    gpus: tuple[str, ...]
    backend: str  # what ran the model: "CPU", "CUDA"…
    llama_cpp: str  # the llama.cpp build (llama-cpp-python's version)

    @classmethod
    def of(cls, hw: HardwareProfile, backend: str, llama_cpp: str) -> MachineClass:
        return cls(
            os=hw.os.split()[0] if hw.os else "",  # the system, not its kernel's release
            arch=hw.arch,
            cpu_model=hw.cpu_model,
            simd=simd_level(hw.simd),
            cores_physical=hw.cores_physical,
            cores_logical=hw.cores_logical,
            ram_gib=round(hw.ram_total / 2**30),
            bandwidth_gbs=hw.bandwidth_gbs,
            gpus=tuple(g.name for g in hw.gpus),
            backend=backend,
            llama_cpp=llama_cpp,
        )

    @property
    def key(self) -> str:
        """Machines of one class share it (the bandwidth, a measurement, is left out)."""
        fields = dataclasses.asdict(self)
        fields.pop("bandwidth_gbs")
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ResultRecord:
    model_file: str
    sha256: str  # "" when the file's hash is not known
    repo: str  # the Hub repository, when known
    quantization: str
    n_params: int
    size_bytes: int
    basis: Basis
    pp_tokens: int  # the prompt test's length (llama-bench's -p)
    pp_ts: float
    pp_sd: float
    tg_tokens: int  # the generation test's length (-n)
    tg_ts: float
    tg_sd: float
    reps: int
    n_threads: int
    n_gpu_layers: int
    type_k: str
    type_v: str
    flash_attn: str
    machine: MachineClass
    measured_at: str  # ISO 8601, UTC
    version: int = SCHEMA_VERSION

    @property
    def band(self) -> Band:
        """At the default thresholds, for a 512-token prompt (a reader may apply its own)."""
        ttft = PROMPT_TOKENS / self.pp_ts if self.pp_ts else None
        return Band(band_for(self.tg_ts, ttft, Thresholds()))

    @classmethod
    def of(cls, pp: BenchResult, tg: BenchResult, machine: MachineClass) -> ResultRecord:
        """One model's prompt and generation tests, measured together on `machine`."""
        return cls(
            model_file=tg.model_filename.split("/")[-1],
            sha256=tg.sha256,
            repo=tg.repo,
            quantization=tg.quantization,
            n_params=tg.model_n_params,
            size_bytes=tg.model_size,
            basis=Basis(tg.basis),
            pp_tokens=pp.n_prompt,
            pp_ts=round(pp.avg_ts, 2),
            pp_sd=round(pp.stddev_ts, 2),
            tg_tokens=tg.n_gen,
            tg_ts=round(tg.avg_ts, 2),
            tg_sd=round(tg.stddev_ts, 2),
            reps=min(len(pp.samples_ts), len(tg.samples_ts)),
            n_threads=tg.n_threads,
            n_gpu_layers=tg.n_gpu_layers,
            type_k=tg.type_k,
            type_v=tg.type_v,
            flash_attn=tg.flash_attn,
            machine=machine,
            measured_at=max(pp.test_time, tg.test_time),
        )

    def to_dict(self) -> dict[str, Any]:
        fields = dataclasses.asdict(self)
        fields.pop("version")
        fields["machine"]["gpus"] = list(self.machine.gpus)
        return {"schema": SCHEMA, "version": self.version, "band": self.band.value, **fields}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ResultRecord:
        """Raises RecordError in words for another schema, a newer version or a wrong field."""
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            raise RecordError(f"Not a localopen result record (its schema is {_schema_of(data)!r}).")
        version = data.get("version")
        if not isinstance(version, int) or version < 1:
            raise RecordError(f"A result record without a usable version ({version!r}).")
        if version > SCHEMA_VERSION:
            raise RecordError(
                f"A result record of schema version {version}, newer than this localopen reads "
                f"({SCHEMA_VERSION}): update localopen to read it."
            )
        try:
            machine = dict(data["machine"])
            machine["gpus"] = tuple(str(g) for g in machine["gpus"])
            fields = {f.name: data[f.name] for f in dataclasses.fields(cls) if f.name not in ("machine", "version")}
            fields["basis"] = Basis(fields["basis"])
            record = cls(**fields, machine=MachineClass(**machine), version=version)
        except (KeyError, TypeError, ValueError) as exc:
            raise RecordError(f"A result record with a missing or wrong field: {exc}.") from exc
        _check_types(record)
        return record


def _schema_of(data: Any) -> Any:
    return data.get("schema") if isinstance(data, dict) else type(data).__name__


def _check_types(record: ResultRecord) -> None:
    """Numbers are numbers and texts are texts, as the fields say (a record may come from anyone)."""
    for value, f in [(getattr(record, f.name), f) for f in dataclasses.fields(record)] + [
        (getattr(record.machine, f.name), f) for f in dataclasses.fields(record.machine)
    ]:
        kind = str(f.type)
        ok = {
            "str": isinstance(value, str),
            "int": isinstance(value, int) and not isinstance(value, bool),
            "float": isinstance(value, (int, float)) and not isinstance(value, bool),
            "float | None": value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)),
        }.get(kind, True)
        if not ok:
            raise RecordError(f"A result record whose {f.name} is {value!r}, not a {kind}.")
