"""The local server's operations: which models it serves, and answers one request at a time, in
order of arrival, through the chat's own path (ChatSession: the same engine process, template
rendering, reasoning split and ends of turn as the Chat view and `localopen chat`).

No HTTP here (that is api/, a face like the CLI): requests arrive as `ApiCall`s, pieces of
the answer go to a callback, and failures are `ServingError`s carrying the HTTP status and the
OpenAI error type they map to. Messages never carry a local path.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import queue
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localopen.app import engine_options, presets
from localopen.app.context import AppContext
from localopen.app.conversation import capabilities, vision
from localopen.app.conversation.chat import ChatSession, template_for
from localopen.app.conversation.repeats import CLOSING, answered_calls, call_key
from localopen.app.model_store import NoRoomError, ResidentView
from localopen.app.models import library, library_listing
from localopen.core.errors import LocalopenError
from localopen.core.gguf.header import read_header
from localopen.core.options import AnswerOptions, LoadOptions, SamplingParams
from localopen.core.records import AnswerPiece, AnswerStats
from localopen.core.store import library_db as core_library
from localopen.engine.errors import (
    BadRequestError,
    ContextTooLongError,
    EmbeddingsUnsupportedError,
    EngineDied,
    EngineError,
    NoTemplateError,
    TemplateError,
    ToolsUnsupportedError,
    VisionUnsupportedError,
)

log = logging.getLogger("localopen.server")

LOOPBACK = ("127.0.0.1", "::1", "localhost")
MAX_QUEUE = 64  # requests waiting beyond this are refused (503) rather than left to time out
MAX_TOKENS = 32768
# An engine that shows no progress for this long while answering is stuck (a long prompt shows
# progress batch by batch; a template's rendering is stopped by the engine after 10 s).
STUCK_AFTER_S = 60.0


class ServingError(LocalopenError):
    """A request the server cannot answer: the HTTP status and OpenAI's error type and code."""

    def __init__(self, message: str, status: int, kind: str = "invalid_request_error", code: str | None = None):
        super().__init__(public(message))
        self.status, self.kind, self.code = status, kind, code


# An absolute path (POSIX or Windows) of two parts or more; the API's own routes (/v1/…) are no paths.
_PATH = re.compile(r"(?:[A-Za-z]:)?[\\/](?!v1/)(?:[^\s'\"\\/]+[\\/])+([^\s'\"\\/]+)")


def public(message: str) -> str:
    """A message with every local path cut to its last part (no user's folders in a response)."""
    return _PATH.sub(r"\1", message)


@dataclass(frozen=True)
class ServedModel:
    id: str  # what clients name it: the file's name without .gguf (split parts as one)
    path: Path  # never leaves the server
    quant: str | None
    size: int | None
    grade: str | None  # openness grade letter (A–F), None for a damaged file
    repo: str | None
    vision: bool = False  # a projector beside it pairs: it takes images


@dataclass(frozen=True)
class ModelDescription:
    """What an API's "show model" answers: the file's facts, read from its header."""

    model: ServedModel
    architecture: str
    parameters: int
    context_length: int | None
    template: str | None
    license: str | None
    capabilities: list[str]  # completion, tools, thinking, embedding
    metadata: dict[str, Any]  # the header's scalar keys (no token tables)


@dataclass
class ApiCall:
    """One chat or completion request, checked and parsed."""

    model: str | None  # a served model's id; None: the default (the loaded one, or the one named at start)
    messages: list[dict[str, Any]]
    sampling: SamplingParams
    raw: bool = False  # /v1/completions: plain text in, the model's text out
    thinking: bool | None = None
    endpoint: str = "/v1/chat/completions"
    tools: list[dict[str, Any]] | None = None  # OpenAI function schemas
    tool_choice: str = "auto"  # auto | none | required | a tool's name
    json_schema: dict[str, Any] | None = None  # response_format: the answer is JSON of this schema
    parallel_calls: bool | None = None  # parallel_tool_calls: False keeps the first call only
    n_ctx: int | None = None  # a context size the request asks for (Ollama's num_ctx): reloads when different
    keep_alive: float | None = None  # idle seconds the model stays loaded after this (-1: always); None: the setting
    count_only: bool = False  # the prompt's tokens, no answer (Anthropic's count_tokens)


@dataclass
class EmbedCall:
    """One embeddings request: texts to turn into vectors."""

    model: str | None
    texts: list[str]
    endpoint: str = "/v1/embeddings"
    truncate: bool = False  # Ollama's default; OpenAI's is to refuse a text longer than a batch
    keep_alive: float | None = None


@dataclass
class LoadCall:
    """Load a model and answer nothing (Ollama's empty generate or chat: a client preloading it)."""

    model: str | None
    endpoint: str
    n_ctx: int | None = None
    keep_alive: float | None = None


# Which API each endpoint speaks: the live log says which shape a request came through.
API_SHAPES = {"/v1/": "OpenAI", "/v1/responses": "OpenAI Responses", "/v1/messages": "Anthropic", "/api/": "Ollama"}


def api_shape(endpoint: str) -> str:
    matches = [prefix for prefix in API_SHAPES if endpoint.startswith(prefix)]
    return API_SHAPES[max(matches, key=len)] if matches else "?"


@dataclass
class RequestRecord:
    """One line of the server's live log (no prompt or answer text, no path, no key)."""

    id: int
    endpoint: str
    model: str
    received: float  # time.time()
    status: int = 0  # 0 while waiting or running
    prompt_tokens: int = 0
    completion_tokens: int = 0
    tokens_per_s: float | None = None
    duration_ms: float = 0.0
    error: str = ""

    @property
    def api(self) -> str:
        """The API shape the request came through: OpenAI, OpenAI Responses, Anthropic, Ollama."""
        return api_shape(self.endpoint)


@dataclass
class ServerRequest:
    """A request in the queue: the worker fills stats or error and sets done."""

    call: ApiCall | EmbedCall | LoadCall
    on_piece: Callable[[AnswerPiece], None]
    on_done: Callable[[], None]  # called after the last piece, from the same thread
    record: RequestRecord
    model: ServedModel | None = None
    stats: AnswerStats | None = None
    vectors: list[list[float]] | None = None  # an EmbedCall's answer
    error: ServingError | None = None
    done: threading.Event = field(default_factory=threading.Event)
    cancelled: bool = False
    started: float = 0.0  # time.monotonic() when its turn came


@dataclass(frozen=True)
class ServerHealth:
    """What /health says: ok, loading (a model is being loaded) or stuck (an engine answering a
    request has shown no progress for ModelServer.stuck_after_s), with the requests in progress."""

    status: str
    message: str
    running: list[dict[str, Any]]  # model, endpoint, running_s, silent_s


class ModelServer:
    """Serves the library's models: one loaded at a time, loaded on demand by the first request
    that names another; requests run one after another in order of arrival."""

    def __init__(
        self,
        ctx: AppContext,
        load_options: LoadOptions | None = None,
        default_model: str | None = None,
        on_record: Callable[[RequestRecord], None] | None = None,
        template: str | None = None,
    ) -> None:
        self.ctx = ctx
        # For a model whose file has no chat template: the one the person starting the server
        # chose (never a guess); None: such a model answers /v1/completions only.
        self.template = template
        self.load_options = load_options or LoadOptions()
        self.default_model = default_model
        self.on_record = on_record
        self._loading: set[str] = set()  # ids of models being loaded
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._lanes: dict[str, _Lane] = {}
        self._closing = False
        self.stuck_after_s = STUCK_AFTER_S
        # Set: each model loads with its preset over the settings and these over both (the
        # command's flags; None values are not given); unset: with load_options as they are.
        self.overrides: dict[str, Any] | None = None
        self._served: dict[str, ServedModel] = {}  # path -> the model a lane loaded from it

    # -- models -------------------------------------------------------------------------------
    def models(self) -> list[ServedModel]:
        out: dict[str, ServedModel] = {}
        for entry in library_listing.entries(self.ctx):
            m = entry.model
            if m.missing or entry.problem:
                continue
            out.setdefault(
                m.name,
                ServedModel(
                    m.name,
                    m.path,
                    m.quant,
                    m.size,
                    entry.grade.letter if entry.grade else None,
                    m.repo,
                    vision.pairing(m.path).projector is not None,
                ),
            )
        return list(out.values())

    @property
    def loading(self) -> str | None:
        """The ids of models being loaded now (None: none)."""
        return ", ".join(sorted(self._loading)) or None

    def resident(self) -> list[tuple[ServedModel, ResidentView]]:
        """The served models loaded in this process now (by the server, or by a chat: shared)."""
        known = dict(self._served)
        views = self.ctx.models.residents()
        if any(v.path not in known for v in views):  # loaded by another face: named as the library does
            for model in self.models():
                known.setdefault(str(model.path), model)
        return [(known[v.path], v) for v in views if v.path in known]

    @property
    def loaded(self) -> ServedModel | None:
        """The most recently used loaded model (the one a request without 'model' gets)."""
        loaded = sorted(self.resident(), key=lambda pair: pair[1].idle_s)
        return loaded[0][0] if loaded else None

    def resolve(self, model_id: str | None) -> ServedModel:
        """A served model by id (or part of one id or repo); no id: the loaded one, else the
        default. Only library models: a request can never make the server open a file by path."""
        loaded = {m.id: m for m in self._served.values()}
        last = self.loaded if not model_id else None
        wanted = model_id or (last.id if last else None) or self.default_model
        if wanted in loaded and loaded[wanted].path.exists():
            return loaded[wanted]  # the common case: no library listing (headers, grades) per request
        models = {m.id: m for m in self.models()}
        if not wanted:
            if len(models) == 1:
                return next(iter(models.values()))
            raise ServingError("No model named: pass 'model' (see GET /v1/models).", 400, code="model_not_found")
        if wanted in models:
            return models[wanted]
        # A shorter name, as people type it: part of one model's id or repo (case aside).
        needle = wanted.lower()
        matches = [m for m in models.values() if needle in m.id.lower() or needle in (m.repo or "").lower()]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise ServingError(
                f"'{wanted}' matches several models: {', '.join(m.id for m in matches[:6])}.",
                404,
                code="model_not_found",
            )
        raise ServingError(
            f"The model '{wanted}' is not in this library (see GET /v1/models).", 404, code="model_not_found"
        )

    def describe(self, model_id: str) -> ModelDescription:
        """A served model's facts from its header (and the capabilities every face shows)."""
        model = self.resolve(model_id)
        try:
            header = read_header(model.path)
        except LocalopenError as exc:
            raise ServingError(f"The model '{model.id}' cannot be read: {exc}", 500, "server_error") from exc
        found = capabilities.of_template(header.chat_template)
        can = [] if header.embeds_only else ["completion"]  # an embedding model writes no text
        can += ["tools"] if found.tools else []
        can += ["thinking"] if found.reasoning else []
        can += ["embedding"] if header.makes_embeddings else []
        can += ["vision"] if model.vision else []
        scalars = {k: v for k, v in header.metadata.items() if isinstance(v, (str, int, float, bool))}
        scalars.pop("tokenizer.chat_template", None)
        return ModelDescription(
            model,
            header.architecture,
            header.n_params,
            header.context_length,
            header.chat_template,
            header.license,
            can,
            scalars,
        )

    def unload(self, model: ServedModel) -> bool:
        """Unload a model now, unless a request runs on it (Ollama's keep_alive 0)."""
        return self.ctx.models.unload(model.path)

    def resolve_name(self, name: str) -> ServedModel:
        """A model the person at the keyboard named (an id, a file name, part of a name or repo,
        or a path, which is imported into the library first)."""
        path = library.resolve_model(self.ctx, name).resolve()
        if not any(m.path.resolve() == path for m in core_library.list_models(self.ctx.db)):
            core_library.import_file(self.ctx.db, path)
        found = next((m for m in self.models() if m.path.resolve() == path), None)
        if found is None:
            raise LocalopenError(f"{path.name} cannot be served: it is damaged or not a GGUF model.")
        return found

    def preload(self) -> ServedModel:
        """Load the default model now (localopen serve MODEL) instead of at the first request."""
        model = self.resolve(None)
        lane = self._lane(model.id)
        self._ensure_loaded(lane, model)
        lane.session.release()  # loaded; kept for its keep-alive like any the server loads
        return model

    # -- requests -----------------------------------------------------------------------------
    def submit(
        self,
        call: ApiCall | EmbedCall | LoadCall,
        on_piece: Callable[[AnswerPiece], None] = lambda _piece: None,
        on_done: Callable[[], None] = lambda: None,
    ) -> ServerRequest:
        """Queue a request: it runs after every earlier one for its model, beside those of other
        models; refuse it when too many wait."""
        model = self.resolve(call.model)
        record = RequestRecord(next(self._ids), call.endpoint, model.id, time.time())
        with self._lock:
            waiting = sum(lane.jobs.qsize() for lane in self._lanes.values())
        if waiting >= MAX_QUEUE:
            raise ServingError(f"The server is busy: {MAX_QUEUE} requests are waiting.", 503, "server_error")
        job = ServerRequest(call, on_piece, on_done, record, model)
        self._lane(model.id).jobs.put(job)
        self._notify(record)
        return job

    def _lane(self, model_id: str) -> _Lane:
        with self._lock:
            lane = self._lanes.get(model_id)
            if lane is None:
                lane = self._lanes[model_id] = _Lane(self, model_id)
            return lane

    def cancel(self, job: ServerRequest) -> None:
        """The client went away: a waiting job is skipped, a running one stops within one token."""
        with self._lock:
            job.cancelled = True
            lane = self._lanes.get(job.model.id) if job.model is not None else None
            if lane is not None and lane.current is job:
                lane.session.stop()

    def health(self) -> ServerHealth:
        """Whether the server answers: a model loading or an engine stuck on a request is said."""
        now = time.monotonic()
        with self._lock:
            busy = [(lane.current, lane.session) for lane in self._lanes.values() if lane.current is not None]
        silent = {job.record.id: min(session.silent_s, now - job.started) for job, session in busy}
        running: list[dict[str, Any]] = [
            {
                "model": job.record.model,
                "endpoint": job.record.endpoint,
                "running_s": round(now - job.started, 1),
                "silent_s": round(silent[job.record.id], 1),
            }
            for job, _session in busy
        ]
        stuck = [
            (job.record.model, silent[job.record.id])
            for job, _session in busy
            if silent[job.record.id] > self.stuck_after_s and job.record.model not in self._loading
        ]
        if stuck:
            model, seconds = stuck[0]
            return ServerHealth(
                "stuck",
                f"The engine answering '{model}' has shown no progress for {seconds:.0f} s; "
                "other models still answer. Restart the server if it does not recover.",
                running,
            )
        if self.loading:
            return ServerHealth("loading", f"Loading {self.loading}.", running)
        return ServerHealth("ok", "", running)

    def begin_shutdown(self) -> None:
        """The server is stopping: answers in progress stop now and end as 503 "shutting down"
        (their clients get an answer, not a dropped connection), waiting ones are not started."""
        with self._lock:
            self._closing = True
            for lane in self._lanes.values():
                if lane.current is not None:
                    lane.session.stop()

    def close(self) -> None:
        """Stop the answers in progress and those waiting, end the lanes; the models are let go
        (the store unloads them when nobody else holds them)."""
        with self._lock:
            self._closing = True
            lanes = list(self._lanes.values())
            for lane in lanes:
                if lane.current is not None:
                    lane.current.cancelled = True
                    lane.session.stop()
        for lane in lanes:
            lane.jobs.put(None)
        for lane in lanes:
            lane.thread.join(30)
            lane.session.shutdown()
        for model in list(self._served.values()):  # the server's keep-alives end with it
            if not any(v.path == str(model.path) and v.held_by for v in self.ctx.models.residents()):
                self.ctx.models.unload(model.path)

    def _notify(self, record: RequestRecord) -> None:
        if self.on_record is not None:
            try:
                self.on_record(record)
            except Exception:  # noqa: BLE001 - a face's display error must not stop serving
                log.exception("The request-log callback failed")

    def _ensure_loaded(
        self, lane: _Lane, model: ServedModel, n_ctx: int | None = None, keep_alive: float | None = None
    ) -> None:
        """The lane holds the model (loaded now unless this process has it loaded already)."""
        base = self.load_options
        if self.overrides is not None:
            base = engine_options.load_options(
                self.ctx.settings, preset=presets.preset_for(self.ctx, model.path), **self.overrides
            )
        options = dataclasses.replace(base, n_ctx=n_ctx) if n_ctx else base
        if keep_alive is None:  # the model named at start (localopen serve MODEL) stays; others idle out
            keep_alive = -1.0 if model.id == self.default_model else float(self.ctx.settings.keep_alive_s)
        if lane.session.is_loaded(str(model.path), options):
            return
        self._loading.add(model.id)
        try:
            lane.session.load(model.path, options, keep_alive)
            self._served[str(model.path)] = model
        except NoRoomError as exc:
            status = 400 if exc.ever else 503
            raise ServingError(str(exc), status, "invalid_request_error" if exc.ever else "server_error") from exc
        except LocalopenError as exc:
            raise ServingError(f"The model '{model.id}' could not be loaded: {exc}", 500, "server_error") from exc
        finally:
            self._loading.discard(model.id)

    def _run(self, lane: _Lane) -> None:
        while True:
            job = lane.jobs.get()
            if job is None:
                return
            with self._lock:
                if self._closing:
                    job.error = ServingError("The server is shutting down.", 503, "server_error")
                    job.record.status, job.record.error = 503, str(job.error)
                if job.cancelled or self._closing:
                    if not self._closing:
                        job.record.status, job.record.error = 499, "client went away before its turn"
                    self._end(job)
                    continue
                lane.current = job
                job.started = time.monotonic()
            started = time.perf_counter()
            try:
                assert job.model is not None
                call = job.call
                self._ensure_loaded(lane, job.model, getattr(call, "n_ctx", None), getattr(call, "keep_alive", None))
                if job.cancelled:  # the client left while the model loaded
                    pass
                elif isinstance(call, EmbedCall):
                    self._embed(lane, job, call)
                elif isinstance(call, ApiCall):
                    self._answer(lane, job, call)
                job.record.status = 499 if job.cancelled else 200
            except ServingError as exc:
                job.error = exc
                job.record.status, job.record.error = exc.status, str(exc)
            except Exception as exc:  # noqa: BLE001 - one request's failure must not end the server
                log.exception("Request %s failed", job.record.id)
                job.error = ServingError(f"Unexpected server error: {type(exc).__name__}", 500, "server_error")
                job.record.status, job.record.error = 500, str(job.error)
            finally:
                lane.session.release()  # between requests the model keeps its keep-alive
                with self._lock:
                    lane.current = None
                job.record.duration_ms = round((time.perf_counter() - started) * 1000, 1)
                if job.stats is not None:
                    job.record.prompt_tokens = job.stats.prompt_tokens
                    job.record.completion_tokens = job.stats.completion_tokens
                    job.record.tokens_per_s = job.stats.gen_tps
                log.info(
                    "request %s %s model=%s status=%s prompt=%s completion=%s tps=%s ms=%s",
                    job.record.id,
                    job.record.endpoint,
                    job.record.model,
                    job.record.status,
                    job.record.prompt_tokens,
                    job.record.completion_tokens,
                    job.record.tokens_per_s,
                    job.record.duration_ms,
                )
                self._end(job)

    def _end(self, job: ServerRequest) -> None:
        job.done.set()
        try:
            job.on_done()
        except RuntimeError:  # the face that waited is gone (its event loop closed)
            log.info("Request %s ended after its client's face closed", job.record.id)
        self._notify(job.record)

    def _embed(self, lane: _Lane, job: ServerRequest, call: EmbedCall) -> None:
        try:
            job.vectors, tokens = lane.session.embed(call.texts, call.truncate)
        except EngineError as exc:
            raise _engine_error(exc) from exc
        job.stats = AnswerStats(finish_reason="stop", prompt_tokens=tokens, completion_tokens=0)

    def _answer(self, lane: _Lane, job: ServerRequest, call: ApiCall) -> None:
        options = AnswerOptions(
            thinking=call.thinking,
            raw=call.raw,
            drop_oldest=False,
            tools=call.tools,
            tool_choice=call.tool_choice,
            json_schema=call.json_schema,
            parallel_calls=call.parallel_calls is not False,
        )
        session = lane.session
        loaded = session.loaded
        template = "completion" if call.raw else template_for(loaded, self.template) if loaded is not None else None

        if loaded is not None and loaded.vision is None and vision.has_images(call.messages):
            raise ServingError(vision.no_vision(loaded.path), 400, code="images_not_supported")
        if call.count_only:
            try:
                _prompt, tokens = session.render(call.messages, template, options)
            except EngineError as exc:
                raise _engine_error(exc) from exc
            job.stats = AnswerStats(finish_reason="stop", prompt_tokens=tokens)
            return

        # An agent loop over the API (LangChain's, the Agents SDK's…) asks again after each tool
        # result; a small model then often writes the call it just had answered, and the loop runs
        # it forever. Such a call is not returned: the model answers from the results in words.
        answered = answered_calls(call.messages) if call.tools and call.tool_choice == "auto" else {}
        held: list[AnswerPiece] = []  # repeated calls, not sent
        sent_calls = 0

        def on_piece(piece: AnswerPiece) -> None:
            nonlocal sent_calls
            # A cancel that came between the check above and the answer's start was cleared with
            # the engine's stop flag: ask again at the first piece.
            if job.cancelled:
                session.stop()
                return
            if piece.tool_call is not None and call_key(piece.tool_call.name, piece.tool_call.arguments) in answered:
                held.append(piece)
                return
            sent_calls += piece.tool_call is not None
            job.on_piece(piece)

        try:
            job.stats = session.answer(call.messages, call.sampling, template, on_piece, options)
            if held and not sent_calls and not job.cancelled:
                log.info("Request %s: the model repeated a call already answered; it answers in words", job.record.id)
                closing = [*call.messages, {"role": "user", "content": CLOSING}]
                words = dataclasses.replace(options, tool_choice="none", words_only=True)
                job.stats = session.answer(closing, call.sampling, template, on_piece, words)
        except EngineError as exc:
            raise _engine_error(exc) from exc
        if self._closing and not job.cancelled:  # stopped by the shutdown, not finished: say so
            raise ServingError("The server is shutting down: the answer was stopped.", 503, "server_error")


class _Lane:
    """One model's requests, in order, on their own thread and with their own hold on the model:
    lanes of different models answer at once."""

    def __init__(self, server: ModelServer, model_id: str) -> None:
        self.jobs: queue.Queue[ServerRequest | None] = queue.Queue()
        self.session = ChatSession(server.ctx, kind="server")
        self.current: ServerRequest | None = None
        self.thread = threading.Thread(target=server._run, args=(self,), name=f"api-{model_id}", daemon=True)
        self.thread.start()


def _engine_error(exc: EngineError) -> ServingError:
    if isinstance(exc, ContextTooLongError) and exc.prompt_tokens is not None:
        # OpenAI's own words: litellm, LangChain and agents recognise this and shorten the conversation.
        return ServingError(
            f"This model's maximum context length is {exc.n_ctx} tokens. However, your messages resulted in "
            f"{exc.prompt_tokens} tokens. Please reduce the length of the messages. (context_length_exceeded)",
            400,
            code="context_length_exceeded",
        )
    if isinstance(exc, ContextTooLongError):
        # The code in the message too: openai 3.x's str(error) carries only the message, where
        # LangChain and litellm look for it.
        return ServingError(f"{exc} (context_length_exceeded)", 400, code="context_length_exceeded")
    if isinstance(exc, ToolsUnsupportedError):
        return ServingError(str(exc), 400, code="tools_not_supported")
    if isinstance(exc, BadRequestError):
        return ServingError(str(exc), 400, code="invalid_value")
    if isinstance(exc, EmbeddingsUnsupportedError):
        return ServingError(str(exc), 400, code="embeddings_not_supported")
    if isinstance(exc, VisionUnsupportedError):
        return ServingError(str(exc), 400, code="images_not_supported")
    if isinstance(exc, (TemplateError, NoTemplateError)):
        return ServingError(
            f"{exc} Over the API: /v1/completions sends plain text without a template, or start the server "
            "with a template for such models (localopen serve --template NAME, or the Local server section).",
            400,
            code="chat_template",
        )
    if isinstance(exc, EngineDied):
        return ServingError(f"{exc} The next request loads the model again.", 500, "server_error")
    return ServingError(str(exc), 500, "server_error")
