"""The small typed protocol between the app and the engine process (picklable dataclasses).

Events travel as bytes (`event_bytes` / `event_from_bytes`): pickled, except the one event sent
per generated token, a text Token, which is three fields packed by hand (pickling a dataclass cost
the engine ~15 µs a token, on its critical path between two decodes).

Every request carries an id chosen by the client; every event the worker sends for it carries the
same id, so an event is always tied to the request that caused it (a late event of an abandoned
request is dropped, never taken for the answer to the next one).
"""

from __future__ import annotations

import dataclasses
import pickle
import struct
from dataclasses import dataclass, field
from typing import Any

from localopen.core.defaults import DEFAULT_CTX
from localopen.core.estimate.budget import DEFAULT_PERCENT
from localopen.core.records import AnswerStats, BenchResult, LoadInfo, ToolCall


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
    draft_tokens: int = 10  # tokens drafted at a time
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


# --- requests ---------------------------------------------------------------------------------
@dataclass
class Request:
    request_id: int = field(default=0, kw_only=True)


@dataclass
class Load(Request):
    path: str
    options: LoadOptions = field(default_factory=LoadOptions)


@dataclass
class Chat(Request):
    messages: list[dict[str, Any]]  # role, content, and for past answers their reasoning
    sampling: SamplingParams = field(default_factory=SamplingParams)
    template: str | None = None  # None/"model": the GGUF's own; else a known name or "completion"
    options: AnswerOptions = field(default_factory=AnswerOptions)


@dataclass
class Render(Request):
    """The prompt a Chat with these messages would feed the model, without answering it."""

    messages: list[dict[str, Any]]
    template: str | None = None
    options: AnswerOptions = field(default_factory=AnswerOptions)
    add_generation_prompt: bool = True


@dataclass
class Check(Request):
    """Whether llama.cpp's own loader takes this file (its tensors mapped, not read; no context)."""

    path: str


@dataclass
class Embed(Request):
    """Embedding vectors of texts (each at most one batch of tokens, or cut to it when truncate)."""

    texts: list[str]
    truncate: bool = False


@dataclass
class Bench(Request):
    params: BenchParams = field(default_factory=BenchParams)


@dataclass
class Shutdown(Request):
    pass


# --- events -----------------------------------------------------------------------------------
@dataclass
class Event:
    request_id: int = field(default=0, kw_only=True)


@dataclass
class Loaded(Event):
    info: LoadInfo


@dataclass
class Token(Event):
    text: str
    reasoning: bool = False  # part of the model's thinking, not of its answer
    tool_call: ToolCall | None = None  # a whole tool call the model made (text is then empty)
    logprobs: list[dict[str, Any]] | None = None  # asked for: the tokens' log probabilities


@dataclass
class Done(Event):
    stats: AnswerStats


@dataclass
class BenchProgress(Event):
    message: str


@dataclass
class BenchDone(Event):
    results: list[BenchResult]
    aborted: bool = False  # stopped by the user: results holds the tests that finished


@dataclass
class Error(Event):
    message: str
    kind: str = "error"  # error | no_template | template | load | context | died | timeout | unavailable
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Checked(Event):
    message: str


@dataclass
class Embedded(Event):
    vectors: list[list[float]]  # one per text, L2-normalised (as OpenAI's and llama-server's)
    tokens: int  # the texts' tokens, all together


@dataclass
class Rendered(Event):
    prompt: str
    tokens: int


FINAL_EVENTS = (Loaded, Done, BenchDone, Rendered, Embedded, Checked)


# A text token: kind byte, request id, then the UTF-8 text. A pickle starts with 0x80 (protocol 2+).
_TEXT_TOKEN = struct.Struct("<BI")
_ANSWER_TEXT, _REASONING_TEXT = 1, 2


def event_bytes(event: Event) -> bytes:
    if isinstance(event, Token) and event.tool_call is None and event.logprobs is None:
        kind = _REASONING_TEXT if event.reasoning else _ANSWER_TEXT
        return _TEXT_TOKEN.pack(kind, event.request_id) + event.text.encode("utf-8", "surrogatepass")
    return pickle.dumps(event, protocol=pickle.HIGHEST_PROTOCOL)


def event_from_bytes(data: bytes) -> Event:
    if data[0] in (_ANSWER_TEXT, _REASONING_TEXT):
        kind, request_id = _TEXT_TOKEN.unpack_from(data)
        text = data[_TEXT_TOKEN.size :].decode("utf-8", "surrogatepass")
        return Token(text, kind == _REASONING_TEXT, request_id=request_id)
    event = pickle.loads(data)
    if not isinstance(event, Event):
        raise TypeError(f"not an engine event: {type(event).__name__}")
    return event
