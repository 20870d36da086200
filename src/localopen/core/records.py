"""Typed records for what crosses the engine's process boundary and what the output formats print.

LoadInfo (a model loaded), AnswerStats (one chat answer) and BenchResult (one llama-bench test)
are plain picklable dataclasses. Each has `to_dict()` for JSON and SQLite, and `from_dict()`
that ignores keys it does not know (records saved by older versions still read).
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from dataclasses import dataclass, field
from typing import Any, TypeVar

_R = TypeVar("_R")


def _from_dict(cls: type[_R], data: dict[str, Any]) -> _R:
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class MemoryFigures:
    """Bytes by kind: llama.cpp's own buffer report, or localopen's estimate of it."""

    weights: int = 0
    kv_cache: int = 0
    compute: int = 0
    output: int = 0
    by_device: dict[str, int] = field(default_factory=dict)
    # Weights llama.cpp copied into its CPU extra buffer types (CPU_REPACK, AMX: laid out for
    # their kernels), part of `weights`. With mmap the file's pages of these tensors were read once
    # and are never used again: clean page cache the OS drops first, so not counted in `total`.
    extra_buffers: dict[str, int] = field(default_factory=dict)
    mapped: bool = False  # the weights are mapped from the file (llama.cpp's "CPU_Mapped")

    @property
    def total(self) -> int:
        """What the loaded model holds in memory: weights (a repacked tensor once), cache, compute."""
        return self.weights + self.kv_cache + self.compute + self.output - self.mapped_repacked

    @property
    def unmapped(self) -> int:
        """What the loaded model holds outside the file's page cache (the OS counts mapped pages
        as available memory): everything, or with mmap the cache, buffers and repacked copies."""
        if not self.mapped:
            return self.total
        return self.kv_cache + self.compute + self.output + sum(self.extra_buffers.values())

    @property
    def mapped_repacked(self) -> int:
        """The file's pages of repacked tensors, in `weights` twice when mapped."""
        return sum(self.extra_buffers.values()) if self.mapped else 0

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "total": self.total}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MemoryFigures:
        return _from_dict(cls, data)


@dataclass
class LoadInfo:
    """What the engine reports once a model is loaded."""

    path: str
    name: str
    architecture: str
    quantization: str
    n_params: int
    weights_bytes: int
    split_parts: int
    n_ctx: int
    n_ctx_train: int | None
    n_threads: int
    n_gpu_layers: int
    gpu_layers_offloaded: str  # "17/17", or "0"
    backend: str  # "CPU", "CUDA", "Vulkan,CUDA" ...
    gpu_warning: str | None
    gpu_assist: bool  # a GPU build runs large prompt batches on the GPU at 0 layers
    load_time_ms: float
    has_chat_template: bool
    template_suggestion: str  # for a file without a template: the likeliest known one…
    template_options: list[str]
    memory_actual: MemoryFigures
    memory_estimate: MemoryFigures
    llama_cpp_version: str
    system_info: str = ""
    template_suggestion_reason: str = ""  # …and which metadata points to it
    special_tokens: dict[str, str] = field(default_factory=dict)  # bos_token, eos_token… as templates name them
    thinking_switch: str | None = None  # the template variable that turns thinking on/off, if any
    threadpool_threads: int = 0  # the context's persistent threadpool; 0: ggml's pool per graph
    # The vision projector loaded beside the model (core/gguf/projector's facts, its path and
    # compute buffer): the model takes images. None: text only.
    vision: dict[str, Any] | None = None
    # llama.cpp's CPU extra buffer types that hold weights of this load ("CPU_REPACK", "AMX"…), and
    # a sentence when a kernel crashed and the model was loaded again without it.
    kernels: list[str] = field(default_factory=list)
    kernel_notice: str | None = None
    cpu_variant: str = ""  # the CPU backend's variant in a build with one per CPU generation ("" linked in)

    @property
    def estimate_error(self) -> float | None:
        """How far the estimate was from llama.cpp's report (+ means over)."""
        actual = self.memory_actual.total
        return round((self.memory_estimate.total - actual) / actual, 4) if actual else None

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["memory_actual"] = self.memory_actual.to_dict()
        out["memory_estimate"] = self.memory_estimate.to_dict()
        out["estimate_error"] = self.estimate_error
        return out


def new_tool_call_id() -> str:
    """An id for a call the model made, in OpenAI's shape (the model's own format seldom has one)."""
    return f"call_{uuid.uuid4().hex[:24]}"


@dataclass(frozen=True)
class ToolCall:
    """A call of a tool the model asked for, parsed from its own format: `arguments` is JSON text
    (as OpenAI sends it), an object."""

    id: str
    name: str
    arguments: str

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}

    @property
    def arguments_object(self) -> dict[str, Any]:
        """The arguments as an object (what the Anthropic and Ollama APIs send); {} when not one."""
        try:
            value = json.loads(self.arguments or "{}")
        except json.JSONDecodeError:
            return {}
        return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class AnswerPiece:
    """A piece of a streamed answer: text of the answer proper, or of the model's reasoning, or a
    whole tool call (its text is then empty: a call is never shown as answer text)."""

    text: str
    reasoning: bool = False
    tool_call: ToolCall | None = None
    # The log probabilities of the tokens that produced this piece, when asked (OpenAI's shape:
    # token, logprob, bytes, top_logprobs).
    logprobs: list[dict[str, Any]] | None = None


@dataclass
class AnswerStats:
    """How one chat answer went: tokens, how it ended, speeds."""

    finish_reason: str  # stop (the model ended its turn) | tool_calls (it ended it calling tools) | length | cancelled
    prompt_tokens: int = 0
    prompt_tokens_evaluated: int = 0
    completion_tokens: int = 0  # reasoning and answer together
    ttft_ms: float | None = None  # to the first token of the stream (reasoning or answer)
    prompt_tps: float | None = None
    gen_tps: float | None = None  # the whole stream
    total_ms: float = 0.0
    template: str = ""
    dropped_messages: int = 0
    n_ctx: int = 0
    max_tokens: int = 0
    reasoning_tokens: int = 0
    tool_calls: int = 0  # tools the model called in this answer
    loose_tool_calls: int = 0  # of them, calls written outside the template's format (bare JSON, a fence)
    reasoning_ms: float | None = None  # from the first reasoning token to the first answer token (or the end)
    answer_ttft_ms: float | None = None  # to the first token of the answer proper
    answer_tps: float | None = None  # the answer's tokens alone
    # Speculative decoding: tokens drafted and checked, and how many the model kept (None: no drafts)
    draft_proposed: int | None = None
    draft_accepted: int | None = None
    # What the engine had to do to give this answer, in words (a kernel that crashed, left off).
    notice: str | None = None

    @property
    def answer_tokens(self) -> int:
        return self.completion_tokens - self.reasoning_tokens

    @property
    def context_used(self) -> float | None:
        """Share of the context the conversation now fills (0..1)."""
        return (self.prompt_tokens + self.completion_tokens) / self.n_ctx if self.n_ctx else None

    def describe(self) -> list[str]:
        """The line under an answer: tokens, how it ended, first-token time, speed, context trimming."""
        tokens = f"{self.completion_tokens} tokens"
        if self.reasoning_tokens:
            tokens += f" ({self.reasoning_tokens} thinking, {self.answer_tokens} answer)"
        parts = [tokens, self.ending]
        if self.ttft_ms is not None:
            parts.append(f"first token {self.ttft_ms:.0f} ms")
        if self.reasoning_tokens and self.answer_ttft_ms is not None:
            ms = self.answer_ttft_ms
            parts.append(f"answer after {ms:.0f} ms" if ms < 1000 else f"answer after {ms / 1000:.1f} s")
        if self.gen_tps:
            parts.append(f"{self.gen_tps:.1f} tokens/s")
        if self.reasoning_tokens and self.answer_tps:
            parts.append(f"answer {self.answer_tps:.1f} tokens/s")
        if self.draft_proposed:
            parts.append(f"{self.draft_accepted} of {self.draft_proposed} drafted tokens kept")
        if self.dropped_messages:
            parts.append(f"{self.dropped_messages} oldest messages dropped to fit the context")
        if self.notice:
            parts.append(self.notice)
        return parts

    @property
    def ending(self) -> str:
        """How the answer ended, in words: the model, the token limit, or the user."""
        if self.finish_reason == "length":
            limit = f"the {self.max_tokens}-token" if self.max_tokens else "the"
            return f"cut off at {limit} limit (not by the model): raise Max tokens for longer answers"
        if self.finish_reason == "cancelled":
            return "stopped by you"
        return "complete"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AnswerStats:
        return _from_dict(cls, {"finish_reason": "stop", **data})


# llama-bench's own JSON field names, in its order; then localopen's additions.
LLAMA_BENCH_FIELDS = (
    "build_commit", "build_number", "cpu_info", "gpu_info", "backends", "model_filename", "model_type",
    "model_size", "model_n_params", "n_batch", "n_ubatch", "n_threads", "type_k", "type_v", "n_gpu_layers",
    "flash_attn", "n_prompt", "n_gen", "n_depth", "test_time", "avg_ns", "stddev_ns", "avg_ts", "stddev_ts",
    "samples_ns", "samples_ts",
)  # fmt: skip
LOCALOPEN_FIELDS = (
    "test", "load_time_ms", "ttft_ms", "peak_rss_bytes", "sha256", "grade", "quantization", "machine",
    "llama_cpp_version", "model_name", "decode_bound_tps", "basis", "repo", "task", "draft", "same_text",
    "draft_kept", "memory", "image_encode_ms", "image_tokens", "kernels",
)  # fmt: skip


@dataclass
class BenchResult:
    """One llama-bench test (pp or tg) of one model, with what localopen adds to it."""

    # llama-bench's fields
    model_filename: str
    model_type: str
    model_size: int
    model_n_params: int
    n_prompt: int
    n_gen: int
    avg_ns: int
    stddev_ns: int
    avg_ts: float
    stddev_ts: float
    samples_ns: list[int]
    samples_ts: list[float]
    test_time: str
    n_batch: int = 2048
    n_ubatch: int = 512
    n_threads: int = 1
    type_k: str = "f16"
    type_v: str = "f16"
    n_gpu_layers: int = 0
    flash_attn: str = "auto"
    n_depth: int = 0
    build_commit: str = ""
    build_number: int = 0
    cpu_info: str = ""
    gpu_info: str = ""
    backends: str = "CPU"
    poll: int | None = None  # the persistent threadpool's polling level; None: ggml's pool per graph
    # localopen's
    test: str = ""  # "pp512" or "tg128"
    load_time_ms: float | None = None
    ttft_ms: float | None = None  # a prompt test: the time to first token of an n_prompt-token prompt
    peak_rss_bytes: int | None = None
    sha256: str = ""
    grade: str = "?"
    quantization: str = ""
    machine: str = "unknown"
    llama_cpp_version: str = ""
    model_name: str = ""
    decode_bound_tps: float | None = None  # this machine's memory-bandwidth bound for this file
    # "measured": the real file; "probed": a zero-data replica of a Hub file, before any download
    basis: str = "measured"
    repo: str = ""  # probed: the Hub repository (model_filename is then "hub:REPO/FILE")
    # A drafting test (app/benchmark's run_drafting): greedy generation of a task's text, plainly
    # ("" draft) or with a drafter ("lookup" or the draft model's file name); the tg speed is the
    # clock's after the first token. same_text: the drafted text equalled the plain one.
    task: str = ""
    draft: str = ""
    same_text: bool | None = None
    draft_kept: float | None = None  # the share of drafted tokens the model kept
    # llama.cpp's buffer report for the test's context, in bytes (weights, kv_cache, compute,
    # output, by_device, total), as the probe's JSON carries it
    memory: dict[str, Any] | None = None
    # A vision model (its projector loaded): the time to encode one 896x896 picture, the median of
    # the test's repetitions, and the tokens it became (engine/vision's BENCH_IMAGE_SIDE)
    image_encode_ms: float | None = None
    image_tokens: int | None = None
    kernels: list[str] = field(default_factory=list)  # the load's CPU weight layouts (LoadInfo.kernels)
    id: int | None = None  # the row id once saved

    @property
    def is_prompt_test(self) -> bool:
        return self.n_prompt > 0

    def stamp_load(self, load: LoadInfo) -> None:
        """The facts of the load the test ran on: its time, backend, offload and llama.cpp build."""
        self.load_time_ms = load.load_time_ms
        self.backends = load.backend
        self.n_gpu_layers = load.n_gpu_layers
        self.llama_cpp_version = load.llama_cpp_version
        self.build_commit = f"llama-cpp-python {load.llama_cpp_version}"
        self.kernels = list(load.kernels)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchResult:
        return _from_dict(cls, data)
