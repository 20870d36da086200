"""A benchmark result as others can read it: a frozen, versioned record of one model file's prompt
and generation speed on one machine, with the settings that produced it, its band and how it was
obtained. What `localopen results --records` prints and what a shared index of measured results
publishes and reads: a reader meets the same fields whichever localopen wrote them, and a record
from a newer schema is refused in words, never half read.

The machine is described by what decides speed and can be compared across machines (its CPU
model and widest vector instructions, cores, RAM, measured memory bandwidth, GPUs, the backend
and the llama.cpp build), never by anything that names the person or the host: no host or user
name, no path, no address, no serial or fingerprint, and the day of the measurement, never its
time (a time of day with a time zone narrows down where someone lives).

Version 2 adds what else was measured with the same file and settings: the file's architecture,
the load's time, kernels and peak memory, the first-token time, the drafting speed-ups, a vision
model's picture encoding and the tool-calling check; and the llama.cpp build number and localopen's
version. A version 1 record still reads (those fields then empty).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from enum import Enum
from typing import Any

from localopen.core.errors import LocalopenError
from localopen.core.estimate.verdict import PROMPT_TOKENS, Thresholds, band_for
from localopen.core.machine.hardware import HardwareProfile
from localopen.core.machine.kernels import simd_level
from localopen.core.records import BenchResult

SCHEMA = "localopen.result"
SCHEMA_VERSION = 2


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
class DraftSpeedup:
    """A drafting task's speed against the same task decoded plainly (app/measure/draft_bench)."""

    task: str  # "copy", "code", "chat"
    draft: str  # "lookup", or the draft model's file name
    speedup: float
    same_text: bool | None


@dataclass(frozen=True)
class ToolCheckResult:
    """The "usable as an agent" check: tasks passed of those run, and the tool-call format used."""

    passed: int
    total: int
    format: str


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
    measured_at: str  # the day, UTC (YYYY-MM-DD); version 1 records carry the time too
    version: int = SCHEMA_VERSION
    # Version 2: the file's architecture; the rest of the protocol; what else was measured
    architecture: str = ""
    n_batch: int = 0
    n_ubatch: int = 0
    kernels: tuple[str, ...] = ()  # llama.cpp's CPU weight layouts chosen ("CPU_REPACK", "AMX")
    load_time_ms: float | None = None
    ttft_ms: float | None = None  # the prompt test's time to its first token
    peak_rss_bytes: int | None = None
    decode_bound_tps: float | None = None  # the machine's memory-bandwidth bound for this file
    drafting: tuple[DraftSpeedup, ...] = ()
    image_encode_ms: float | None = None
    tools: ToolCheckResult | None = None
    build_number: int = 0  # llama.cpp's build number, when known
    localopen: str = ""  # localopen's version

    @property
    def id(self) -> str:
        """The record's content hash: the same measurement sent twice is one record."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:32]

    @property
    def band(self) -> Band:
        """At the default thresholds, for a 512-token prompt (a reader may apply its own)."""
        ttft = PROMPT_TOKENS / self.pp_ts if self.pp_ts else None
        return Band(band_for(self.tg_ts, ttft, Thresholds()))

    @classmethod
    def of(
        cls,
        pp: BenchResult,
        tg: BenchResult,
        machine: MachineClass,
        drafting: tuple[DraftSpeedup, ...] = (),
        image_encode_ms: float | None = None,
        tools: ToolCheckResult | None = None,
        localopen: str = "",
    ) -> ResultRecord:
        """One model's prompt and generation tests, measured together on `machine`, with what else
        was measured of the same file there."""
        peaks = [r.peak_rss_bytes for r in (pp, tg) if r.peak_rss_bytes]
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
            measured_at=max(pp.test_time, tg.test_time)[:10],
            architecture=tg.model_type.split(" ")[0] if tg.model_type else "",
            n_batch=tg.n_batch,
            n_ubatch=tg.n_ubatch,
            kernels=tuple(tg.kernels),
            load_time_ms=_rounded(tg.load_time_ms or pp.load_time_ms, 1),
            ttft_ms=_rounded(pp.ttft_ms, 1),
            peak_rss_bytes=max(peaks) if peaks else None,
            decode_bound_tps=_rounded(tg.decode_bound_tps, 2),
            drafting=drafting,
            image_encode_ms=_rounded(image_encode_ms, 1),
            tools=tools,
            build_number=tg.build_number,
            localopen=localopen,
        )

    def to_dict(self) -> dict[str, Any]:
        fields = dataclasses.asdict(self)
        fields.pop("version")
        fields["machine"]["gpus"] = list(self.machine.gpus)
        fields["kernels"] = list(self.kernels)
        fields["drafting"] = [dataclasses.asdict(d) for d in self.drafting]
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
            fields = {
                f.name: data[f.name]
                for f in dataclasses.fields(cls)
                if f.name not in ("machine", "version") and (f.name in _VERSION_1 or f.name in data)
            }
            fields["basis"] = Basis(fields["basis"])
            fields["kernels"] = tuple(str(k) for k in fields.get("kernels", ()))
            fields["drafting"] = tuple(DraftSpeedup(**d) for d in fields.get("drafting", ()))
            if fields.get("tools") is not None:
                fields["tools"] = ToolCheckResult(**fields["tools"])
            record = cls(**fields, machine=MachineClass(**machine), version=version)
        except (KeyError, TypeError, ValueError) as exc:
            raise RecordError(f"A result record with a missing or wrong field: {exc}.") from exc
        _check_types(record)
        return record


# The fields every version has (those without a default): a later field may be missing from an older record.
_VERSION_1 = frozenset(f.name for f in dataclasses.fields(ResultRecord) if f.default is dataclasses.MISSING)


def _rounded(value: float | None, digits: int) -> float | None:
    return round(value, digits) if value is not None else None


def _schema_of(data: Any) -> Any:
    return data.get("schema") if isinstance(data, dict) else type(data).__name__


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_types(record: ResultRecord) -> None:
    """Numbers are finite numbers and texts are texts, as the fields say (a record may come from anyone)."""
    parts: list[Any] = [record, record.machine, *record.drafting, *([record.tools] if record.tools else [])]
    for part in parts:
        for f in dataclasses.fields(part):
            value, kind = getattr(part, f.name), str(f.type)
            ok = {
                "str": isinstance(value, str),
                "int": isinstance(value, int) and not isinstance(value, bool),
                "int | None": value is None or (isinstance(value, int) and not isinstance(value, bool)),
                "float": _number(value),
                "float | None": value is None or _number(value),
                "bool | None": value is None or isinstance(value, bool),
            }.get(kind, True)
            if not ok:
                raise RecordError(f"A result record whose {f.name} is {value!r}, not a {kind}.")
