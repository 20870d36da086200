"""Every option a model loads with, written once: the option types every face builds (LoadOptions,
SamplingParams, BenchParams, AnswerOptions) and the table of load options, one row each, from
which the settings, the presets, the command-line flags and LoadOptions are built (app/
engine_options.py, app/presets.py, cli/flags.py). Adding an option is one row here and its field
in LoadOptions (llama.cpp's common/arg.cpp is the example: one table row per option)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from localopen.core.defaults import DEFAULT_CTX
from localopen.core.estimate.budget import DEFAULT_PERCENT
from localopen.core.estimate.memory import KV_TYPES, kv_type


@dataclass(frozen=True)
class LoadOptions:
    n_ctx: int = DEFAULT_CTX
    n_threads: int | None = None  # None: physical cores, as llama-bench does
    n_threads_batch: int | None = None
    n_batch: int = 512
    n_ubatch: int = 512
    n_gpu_layers: int = 0
    use_mmap: bool = True
    flash_attn: bool = False
    type_k: str = "f16"  # the KV cache's types (core/estimate/memory.KV_TYPES); a quantized V needs flash attention
    type_v: str = "f16"
    # Speculative decoding: "lookup" drafts from the conversation itself (prompt lookup: text the
    # answer repeats, as quoting or editing code does), a path: that small model (the same
    # vocabulary) drafts; None: plain decoding.
    draft: str | None = None
    draft_tokens: int = 10  # tokens drafted at a time, at most
    mmproj: str | None = None  # the vision projector loaded beside the model (its images are read)
    # llama.cpp's CPU extra buffer types this load may use (engine/cpu_kernels.py): None, as this
    # machine's kernel canary allows (the engine's client fills it in); () none: plain kernels.
    kernels: tuple[str, ...] | None = None
    # In a build with one CPU backend per CPU generation (engine/cpu_variants.py): the one to load,
    # as the canary chose (the client fills it in); None: llama.cpp's own pick.
    cpu_variant: str | None = None
    # The share of free memory models may take (core/estimate/budget.py): the client refuses a
    # load on the CPU beyond it, naming the context that fits.
    memory_percent: int = DEFAULT_PERCENT

    @property
    def draft_model(self) -> str | None:
        """The draft model's path, when a model drafts (not prompt lookup)."""
        return self.draft if self.draft not in (None, "lookup") else None

    def draft_options(self) -> LoadOptions:
        """How the draft model loads: the model's context, cache and threads, drafting nothing itself."""
        return dataclasses.replace(self, draft=None, mmproj=None)

    def memory_args(self) -> dict[str, Any]:
        """What the memory estimate needs of these options (the fit, the store's budget, the engine)."""
        return {
            "n_ubatch": self.n_ubatch,
            "flash_attn": self.flash_attn,
            "type_k": self.type_k,
            "type_v": self.type_v,
            "output_rows": 1 + self.draft_tokens if self.draft is not None else 1,
        }


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
    presence_penalty: float = 0.0  # OpenAI's: subtracted once from a token already in the answer
    frequency_penalty: float = 0.0  # OpenAI's: subtracted per time the token already appeared
    logit_bias: dict[int, float] = field(default_factory=dict)  # token id -> added to its logit
    logprobs: int | None = None  # None: none; k: each token's log probability and the k likeliest


@dataclass
class BenchParams:
    n_prompt: int = 512
    n_gen: int = 128
    reps: int = 5
    n_threads: int | None = None
    n_batch: int = 2048  # llama-bench's defaults
    n_ubatch: int = 512
    flash_attn: str = "auto"  # auto | on | off, as llama-bench
    type_k: str = "f16"  # the KV cache's types (llama-bench's -ctk / -ctv)
    type_v: str = "f16"
    # Tokens of the warm-up prompt: None is the whole n_prompt, as llama-bench. Any prompt pass
    # touches every weight, so a probe warms up with a short one and spends its time on the test.
    warmup_prompt: int | None = None


@dataclass(frozen=True)
class AnswerOptions:
    """How an answer is asked for, beyond sampling: the same for the Chat view, the CLI and the API."""

    thinking: bool | None = None  # turn thinking on/off where the template has a switch; None: its default
    raw: bool = False  # plain text completion: no reasoning split (the text comes back as the model wrote it)
    drop_oldest: bool = True  # a conversation too long for the context loses its oldest turns (else: an error)
    tools: list[dict[str, Any]] | None = None  # OpenAI function schemas the model may call
    # auto: the model decides; none: tools are not offered; required: at least one call; else a tool's
    # name: that tool is called. required and a name decode under a grammar (well-formed by construction).
    tool_choice: str = "auto"
    json_schema: dict[str, Any] | None = None  # the answer is JSON satisfying this schema (under a grammar)
    # The answer is words, never opened as a call (a JSON object or list, a code fence): an agent
    # loop's answer after its tools ran, which small models otherwise write as one more call.
    words_only: bool = False
    # A required call may be several (OpenAI's parallel_tool_calls, on unless a client turns it off).
    parallel_calls: bool = True


# --- the table of load options ----------------------------------------------------------------
@dataclass(frozen=True)
class Option:
    """One load option: its key (the same for the setting and the preset), its default (its kind
    too), what it is in words, where it may be set, its flags and the llama.cpp field it becomes."""

    key: str
    default: Any
    words: str
    setting: bool  # a global setting (`localopen settings`, the Settings dialog)
    preset: bool  # a model's own value (`localopen preset`, the Chat view)
    flags: tuple[str, ...]  # the commands' flags (chat, serve, bench, info…); () none
    llama: str  # what llama.cpp (or llama-cpp-python) takes it as
    choices: tuple[str, ...] = ()  # the values a flag takes (a yes/no option: on, off)
    bounds: tuple[int, int] | None = None  # the range a whole-number value must be in, where it is set

    @property
    def dest(self) -> str:
        """The flag's attribute on argparse's namespace."""
        return self.flags[-1].lstrip("-").replace("-", "_")


# The largest context any model here is trained for is far below this (llama.cpp takes a 32-bit
# count); a value beyond it is a typing slip, not a wish.
MAX_CTX = 1 << 24

OPTIONS: tuple[Option, ...] = (
    Option(
        "n_ctx", DEFAULT_CTX, "context size in tokens", True, True, ("--ctx",), "llama_context_params.n_ctx",
        bounds=(0, MAX_CTX),
    ),
    Option(
        "n_threads", 0, "CPU threads, 0: physical cores", True, True, ("-t", "--threads"),
        "llama_context_params.n_threads", bounds=(0, 1024),
    ),
    Option(
        "n_gpu_layers", 0, "layers offloaded to the GPU, -1: all", True, True, ("--ngl",),
        "llama_model_params.n_gpu_layers", bounds=(-1, 100_000),
    ),
    Option(
        "kv_cache_type", "f16", "KV-cache type for K and V: f16, q8_0 (about half the memory), q4_0…", True, True,
        ("--kv-type",), "llama_context_params.type_k and type_v", tuple(KV_TYPES),
    ),
    Option(
        "flash_attn", False, "flash attention (a quantized V cache needs it)", True, True, ("--flash-attn",),
        "llama_context_params.flash_attn_type", ("on", "off"),
    ),
    Option(
        "n_batch", 512, "logical batch size for the prompt", False, True, (), "llama_context_params.n_batch",
        bounds=(1, MAX_CTX),
    ),
    Option(
        "n_ubatch", 512, "physical (micro-)batch size", False, True, (), "llama_context_params.n_ubatch",
        bounds=(1, MAX_CTX),
    ),
    Option(
        "use_mmap", True, "map the file instead of reading it into memory", False, True, (),
        "llama_model_params.use_mmap",
    ),
    Option(
        "draft", "off",
        "speculative decoding: lookup (drafts from the conversation's own text), a draft model (a small "
        "model of the same family), or off", False, True, ("--draft",), "llama-cpp-python's draft_model",
    ),
    Option(
        "models_memory_percent", DEFAULT_PERCENT,
        "the share of free memory (RAM, or a GPU's) models may take, in percent", True, False, (),
        "localopen's check before a load (core/estimate/budget.py)", bounds=(10, 100),
    ),
)  # fmt: skip
BY_KEY = {o.key: o for o in OPTIONS}


def from_values(values: dict[str, Any], **engine: Any) -> LoadOptions:
    """LoadOptions from one value per option key (what is missing: its default); `engine`: the
    fields no person sets (kernels, the projector…). A draft is given resolved: None, lookup or a
    draft model's path."""
    v = {o.key: o.default for o in OPTIONS} | values
    cache = kv_type(str(v["kv_cache_type"]))
    return LoadOptions(
        n_ctx=int(v["n_ctx"]),
        n_threads=int(v["n_threads"]) or None,  # 0: physical cores
        n_gpu_layers=int(v["n_gpu_layers"]),
        type_k=cache,
        type_v=cache,
        flash_attn=bool(v["flash_attn"]),
        n_batch=int(v["n_batch"]),
        n_ubatch=int(v["n_ubatch"]),
        use_mmap=bool(v["use_mmap"]),
        draft=None if v["draft"] in (None, "off") else str(v["draft"]),
        memory_percent=int(v["models_memory_percent"]),
        **engine,
    )


def values_of(options: LoadOptions) -> dict[str, Any]:
    """The option values a LoadOptions carries, by key: from_values' inverse."""
    return {
        "n_ctx": options.n_ctx,
        "n_threads": options.n_threads or 0,
        "n_gpu_layers": options.n_gpu_layers,
        "kv_cache_type": options.type_k,
        "flash_attn": options.flash_attn,
        "n_batch": options.n_batch,
        "n_ubatch": options.n_ubatch,
        "use_mmap": options.use_mmap,
        "draft": options.draft or "off",
        "models_memory_percent": options.memory_percent,
    }
