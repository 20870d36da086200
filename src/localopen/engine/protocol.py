"""The small typed protocol between the app and the engine process (picklable dataclasses)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class LoadOptions:
    n_ctx: int = 4096
    n_threads: int | None = None  # None: physical cores, as llama-bench does
    n_threads_batch: int | None = None
    n_batch: int = 512
    n_ubatch: int = 512
    n_gpu_layers: int = 0
    use_mmap: bool = True
    flash_attn: bool = False


@dataclass
class SamplingParams:
    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    repeat_penalty: float = 1.1
    seed: int | None = None
    max_tokens: int = 512
    stop: list[str] = field(default_factory=list)


@dataclass
class BenchParams:
    n_prompt: int = 512
    n_gen: int = 128
    reps: int = 5
    n_threads: int | None = None
    n_batch: int = 2048  # llama-bench's defaults
    n_ubatch: int = 512
    flash_attn: str = "auto"  # auto | on | off, as llama-bench


# --- requests ---------------------------------------------------------------------------------
@dataclass
class Load:
    path: str
    options: LoadOptions = field(default_factory=LoadOptions)


@dataclass
class Chat:
    messages: list[dict[str, str]]
    sampling: SamplingParams = field(default_factory=SamplingParams)
    template: str | None = None  # None/"model": the GGUF's own; else a known name or "completion"


@dataclass
class Bench:
    params: BenchParams = field(default_factory=BenchParams)


@dataclass
class Unload:
    pass


@dataclass
class Shutdown:
    pass


# --- events -----------------------------------------------------------------------------------
@dataclass
class Loaded:
    info: dict[str, Any]


@dataclass
class Token:
    text: str


@dataclass
class Done:
    stats: dict[str, Any]


@dataclass
class BenchProgress:
    message: str


@dataclass
class BenchDone:
    results: list[dict[str, Any]]
    aborted: bool = False  # stopped by the user: results holds the tests that finished


@dataclass
class Error:
    message: str
    kind: str = "error"  # error | no_template | template | load | context | aborted
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Unloaded:
    pass
