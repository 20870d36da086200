"""The small typed protocol between the app and the engine process (picklable dataclasses).

Events travel as bytes (`event_bytes` / `event_from_bytes`): pickled, except the one event sent
per generated token, a text Token, which is three fields packed by hand (pickling a dataclass cost
the engine ~15 µs a token, on its critical path between two decodes).

Every request carries an id chosen by the client; every event the worker sends for it carries the
same id, so an event is always tied to the request that caused it (a late event of an abandoned
request is dropped, never taken for the answer to the next one).
"""

from __future__ import annotations

import pickle
import struct
from dataclasses import dataclass, field
from typing import Any

from localopen.core.options import AnswerOptions, BenchParams, LoadOptions, SamplingParams
from localopen.core.records import AnswerStats, BenchResult, LoadInfo, ToolCall


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
class PromptRead(Event):
    """How much of a long prompt the engine has evaluated (sent after each batch, before the
    first token): what the Chat view shows while the answer has not begun."""

    done: int
    total: int


@dataclass
class Done(Event):
    stats: AnswerStats


@dataclass
class BenchProgress(Event):
    message: str
    result: BenchResult | None = None  # a test that just finished (a face shows it at once)


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
class MemoryShort(Event):
    """llama.cpp said it could not allocate memory: sent as it is said, since ggml may abort the
    process right after (then the client says the engine ran out of memory, not only that it died)."""

    line: str


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
