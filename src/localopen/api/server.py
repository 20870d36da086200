"""The OpenAI-compatible HTTP face of the local server (Starlette on uvicorn).

Thin, like the CLI: it checks and parses requests, hands them to app/serving.ModelServer, and
writes OpenAI's response shapes (server-sent events when streaming). GET /v1/models, POST
/v1/chat/completions, POST /v1/completions, GET /health. A reasoning model's thinking goes in
`reasoning_content`, apart from `content`, as llama-server does.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from localopen.api.answer_channel import AnswerChannel, ClientGone
from localopen.api.guard import RequestGuard
from localopen.app.serving import (
    LOOPBACK,
    MAX_TOKENS,
    ApiCall,
    ModelServer,
    ServedModel,
    ServerRequest,
    ServingError,
)
from localopen.core.errors import LocalopenError
from localopen.core.records import AnswerPiece, AnswerStats
from localopen.engine.protocol import SamplingParams

log = logging.getLogger("localopen.server")

MAX_BODY = 8 * 1024 * 1024  # bytes: a long conversation fits; a runaway client gets 413
MAX_DEPTH = 64  # JSON nesting: tool schemas need a few levels, nothing needs more


def _depth(value: Any) -> int:
    """How deeply a JSON value nests (iteratively: a hostile body cannot exhaust the stack here)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, level)
            if level > MAX_DEPTH:
                return level
            stack.extend((v, level + 1) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


def _has_lone_surrogate(value: Any) -> bool:
    """JSON's \\ud800 escapes decode to text no UTF-8 encoder accepts (the engine would fail on it)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    api_key: str | None = None
    cors_origins: tuple[str, ...] = ()  # none: no CORS headers (browsers on other origins are refused)
    allowed_hosts: tuple[str, ...] = ()  # names beyond loopback and the bound address a Host may give (api/guard.py)

    def check(self) -> None:
        """Safe defaults: beyond this machine only with a key; a port that exists and is free."""
        if not 1 <= self.port <= 65535:
            raise LocalopenError(f"The port must be a number from 1 to 65535, not {self.port}.")
        if self.host not in LOOPBACK and not self.api_key:
            raise LocalopenError(
                f"Listening on {self.host} lets other machines use this one's models: pass an API key "
                "(--api-key) that clients must send, or listen on 127.0.0.1."
            )

    def check_port_free(self) -> None:
        """Before saying "Serving…": another program on the port is said in words (uvicorn only exits)."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            try:
                probe.bind((self.host, self.port))
            except OSError as exc:
                raise LocalopenError(
                    f"Cannot listen on {self.host}:{self.port}: {exc.strerror or exc}. Is another program using "
                    "the port? Choose another with --port."
                ) from exc

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/v1"


def error_response(message: str, status: int, kind: str = "invalid_request_error", code: str | None = None) -> Response:
    """OpenAI's error object."""
    return JSONResponse({"error": {"message": message, "type": kind, "param": None, "code": code}}, status)


def _bad(message: str, code: str | None = None) -> ServingError:
    return ServingError(message, 400, code=code)


def _number(body: dict[str, Any], key: str, default: float, lo: float, hi: float) -> float:
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
        raise _bad(f"'{key}' must be a number from {lo} to {hi}.", "invalid_value")
    return float(value)


def _sampling(body: dict[str, Any]) -> SamplingParams:
    """OpenAI's sampling fields, and llama-server's extras (top_k, min_p, repeat_penalty); the
    sampling defaults are the Chat view's, so the same seed gives the same answer in both."""
    d = SamplingParams()
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1):
        raise _bad("'max_tokens' must be a positive whole number.", "invalid_value")
    stop = body.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    if stop is not None and (not isinstance(stop, list) or not all(isinstance(s, str) for s in stop) or len(stop) > 16):
        raise _bad("'stop' must be a string or a list of up to 16 strings.", "invalid_value")
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise _bad("'seed' must be a whole number.", "invalid_value")
    return SamplingParams(
        temperature=_number(body, "temperature", d.temperature, 0, 2),
        top_p=_number(body, "top_p", d.top_p, 0, 1),
        top_k=int(_number(body, "top_k", d.top_k, 0, 1000)),
        min_p=_number(body, "min_p", d.min_p, 0, 1),
        repeat_penalty=_number(body, "repeat_penalty", d.repeat_penalty, 0.5, 2),
        seed=seed,
        # None: until the model ends its turn or the context is full (OpenAI's meaning).
        max_tokens=min(max_tokens or MAX_TOKENS, MAX_TOKENS),
        stop=list(stop or []),
    )


def _text(content: Any) -> str:
    """A message's content: a string, or OpenAI's list of parts (text parts only)."""
    if isinstance(content, str):
        return content
    if content is None:
        return ""
    if isinstance(content, list):
        parts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise _bad("Only text content parts are supported by local models here.", "invalid_content")
            parts.append(part["text"])
        return "".join(parts)
    raise _bad("A message's 'content' must be a string or a list of text parts.", "invalid_content")


def _tool_calls(calls: Any) -> list[dict[str, Any]]:
    """An assistant message's tool calls, as OpenAI sends them (arguments as JSON text)."""
    if not isinstance(calls, list):
        raise _bad("'tool_calls' must be a list.", "invalid_messages")
    out = []
    for call in calls:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise _bad("Each tool call needs a 'function' with a 'name'.", "invalid_messages")
        arguments = function.get("arguments", "{}")
        if not isinstance(arguments, (str, dict)):
            raise _bad("A tool call's 'arguments' must be JSON text.", "invalid_messages")
        out.append(
            {
                "id": str(call.get("id") or ""),
                "type": "function",
                "function": {"name": function["name"], "arguments": arguments},
            }
        )
    return out


def _messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _bad("'messages' must be a non-empty list.", "invalid_messages")
    out = []
    for m in messages:
        if not isinstance(m, dict) or m.get("role") not in ("system", "developer", "user", "assistant", "tool"):
            raise _bad("Each message needs a 'role' of system, user, assistant or tool.", "invalid_messages")
        message: dict[str, Any] = {
            "role": "system" if m["role"] == "developer" else m["role"],
            "content": _text(m.get("content")),
        }
        reasoning = m.get("reasoning_content")
        if isinstance(reasoning, str) and reasoning:
            message["reasoning_content"] = reasoning
        if m["role"] == "assistant" and m.get("tool_calls"):
            message["tool_calls"] = _tool_calls(m["tool_calls"])
        if m["role"] == "tool":
            if not isinstance(m.get("tool_call_id"), str):
                raise _bad("A 'tool' message needs the 'tool_call_id' of the call it answers.", "invalid_messages")
            message["tool_call_id"] = m["tool_call_id"]
            if isinstance(m.get("name"), str):
                message["name"] = m["name"]
        out.append(message)
    return out


def _tools(body: dict[str, Any]) -> tuple[list[dict[str, Any]] | None, str]:
    """'tools' and 'tool_choice' (auto | none | required | a named function), checked."""
    tools = body.get("tools")
    if tools is None or tools == []:
        tools = None
    elif not isinstance(tools, list) or not all(
        isinstance(t, dict)
        and t.get("type", "function") == "function"
        and isinstance(t.get("function"), dict)
        and isinstance(t["function"].get("name"), str)
        and isinstance(t["function"].get("parameters", {}), dict)
        for t in tools
    ):
        raise _bad(
            "'tools' must be a list of functions, each with a 'name' and JSON-schema 'parameters'.", "invalid_tools"
        )
    choice = body.get("tool_choice", "auto")
    if isinstance(choice, dict):
        function = choice.get("function")
        name = function.get("name") if isinstance(function, dict) else None
        if not isinstance(name, str):
            raise _bad('A named \'tool_choice\' is {"type": "function", "function": {"name": …}}.', "invalid_value")
        if not tools or name not in {t["function"]["name"] for t in tools}:
            raise _bad(f"'tool_choice' names '{name}', which is not among 'tools'.", "invalid_value")
        return tools, name
    if choice not in ("auto", "none", "required"):
        raise _bad("'tool_choice' must be auto, none, required or a named function.", "invalid_value")
    if choice == "required" and not tools:
        raise _bad("'tool_choice' required needs 'tools'.", "invalid_value")
    return tools, choice


def _json_schema(body: dict[str, Any]) -> dict[str, Any] | None:
    """response_format: text (none), json_object (any JSON object) or json_schema (that schema)."""
    response_format = body.get("response_format")
    if response_format is None:
        return None
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "object"}
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise _bad("'response_format' json_schema needs a 'json_schema' with a 'schema' object.", "invalid_value")
        return schema
    raise _bad("'response_format' type must be text, json_object or json_schema.", "invalid_value")


def _refuse_unsupported(body: dict[str, Any]) -> None:
    """What this server does not do is said, never silently ignored (a client would trust it)."""
    if isinstance(body.get("n"), int) and body["n"] > 1:
        raise _bad("Only one choice per request ('n': 1) is supported.", "unsupported_n")
    if body.get("logprobs"):
        raise _bad("Log probabilities are not supported by localopen's server.", "unsupported_logprobs")


def parse_call(body: Any, endpoint: str) -> tuple[ApiCall, bool, bool]:
    """(the call, stream?, include usage in the stream?) from a request body."""
    if not isinstance(body, dict):
        raise _bad("The request body must be a JSON object.", "invalid_json")
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise _bad("'model' must be a string.", "invalid_value")
    _refuse_unsupported(body)
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise _bad("'stream' must be true or false.", "invalid_value")
    options = body.get("stream_options") or {}
    include_usage = bool(isinstance(options, dict) and options.get("include_usage"))
    if endpoint == "/v1/completions":
        prompt = body.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
            prompt = prompt[0]
        if not isinstance(prompt, str) or not prompt:
            raise _bad("'prompt' must be a non-empty string.", "invalid_prompt")
        messages = [{"role": "user", "content": prompt}]
        thinking = None
        raw = True
        if body.get("tools"):
            raise _bad("'tools' apply to /v1/chat/completions, not to plain completions.", "invalid_value")
        tools, choice, schema = None, "none", _json_schema(body)  # a JSON completion, under a grammar
    else:
        messages = _messages(body)
        thinking = body.get("enable_thinking")
        kwargs = body.get("chat_template_kwargs")
        if isinstance(kwargs, dict) and "enable_thinking" in kwargs:
            thinking = kwargs["enable_thinking"]
        if thinking is not None and not isinstance(thinking, bool):
            raise _bad("'enable_thinking' must be true or false.", "invalid_value")
        raw = False
        tools, choice = _tools(body)
        schema = _json_schema(body)
    parallel = body.get("parallel_tool_calls")
    if parallel is not None and not isinstance(parallel, bool):
        raise _bad("'parallel_tool_calls' must be true or false.", "invalid_value")
    call = ApiCall(model or None, messages, _sampling(body), raw, thinking, endpoint, tools, choice, schema, parallel)
    return call, stream, include_usage


def _usage(stats: AnswerStats) -> dict[str, Any]:
    return {
        "prompt_tokens": stats.prompt_tokens,
        "completion_tokens": stats.completion_tokens,
        "total_tokens": stats.prompt_tokens + stats.completion_tokens,
        "completion_tokens_details": {"reasoning_tokens": stats.reasoning_tokens},
    }


def _finish_reason(stats: AnswerStats) -> str:
    return stats.finish_reason if stats.finish_reason in ("length", "tool_calls") else "stop"


def _disconnected(request: Request) -> asyncio.Future[None]:
    """Done when the client disconnects (the body is read already: the next message is that)."""

    async def wait() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    return asyncio.ensure_future(wait())


class ApiApp:
    """The Starlette application around one ModelServer."""

    def __init__(self, server: ModelServer, config: ServerConfig) -> None:
        self.server, self.config = server, config
        middleware = [
            Middleware(
                RequestGuard,
                bound_host=config.host,
                allowed_hosts=config.allowed_hosts,
                allowed_origins=config.cors_origins,
            )
        ]
        if config.cors_origins:
            middleware.append(
                Middleware(
                    CORSMiddleware,
                    allow_origins=list(config.cors_origins),
                    allow_methods=["GET", "POST"],
                    allow_headers=["Authorization", "Content-Type"],
                )
            )
        self.app = Starlette(
            routes=[
                Route("/v1/models", self.list_models, methods=["GET"]),
                Route("/v1/models/{model_id:path}", self.get_model, methods=["GET"]),
                Route("/v1/chat/completions", self.chat_completions, methods=["POST"]),
                Route("/v1/completions", self.completions, methods=["POST"]),
                Route("/health", self.health, methods=["GET"]),
            ],
            middleware=middleware,
            exception_handlers={404: self._not_found, 405: self._not_allowed},
        )

    async def _not_found(self, _request: Request, _exc: Exception) -> Response:
        return error_response("No such endpoint.", 404, code="not_found")

    async def _not_allowed(self, _request: Request, _exc: Exception) -> Response:
        return error_response("Method not allowed here.", 405, code="method_not_allowed")

    def _authorized(self, request: Request) -> bool:
        if not self.config.api_key:
            return True
        given = request.headers.get("authorization", "")
        expected = f"Bearer {self.config.api_key}"
        return hmac.compare_digest(given.encode(), expected.encode())

    def _unauthorized(self) -> Response:
        return error_response("Incorrect API key provided.", 401, code="invalid_api_key")

    async def health(self, _request: Request) -> Response:
        if self.server.loading:
            return JSONResponse({"status": "loading model"}, 503)
        return JSONResponse({"status": "ok"})

    def _model_object(self, m: ServedModel) -> dict[str, Any]:
        loaded = self.server.loaded
        return {
            "id": m.id,
            "object": "model",
            "created": 0,
            "owned_by": (m.repo or "local").split("/")[0],
            "openness_grade": m.grade,
            "quantization": m.quant,
            "size_bytes": m.size,
            "loaded": loaded is not None and loaded.id == m.id,
        }

    async def list_models(self, request: Request) -> Response:
        if not self._authorized(request):
            return self._unauthorized()
        models = await asyncio.to_thread(self.server.models)
        data = [self._model_object(m) for m in models]
        return JSONResponse({"object": "list", "data": data, "models_loaded_at_once": 1})

    async def get_model(self, request: Request) -> Response:
        """One model by its exact id (OpenAI's models.retrieve): 404 in OpenAI's words otherwise."""
        if not self._authorized(request):
            return self._unauthorized()
        wanted = request.path_params["model_id"]
        models = await asyncio.to_thread(self.server.models)
        found = next((m for m in models if m.id == wanted), None)
        if found is None:
            return error_response(f"The model '{wanted}' does not exist.", 404, code="model_not_found")
        return JSONResponse(self._model_object(found))

    async def chat_completions(self, request: Request) -> Response:
        return await self._complete(request, "/v1/chat/completions")

    async def completions(self, request: Request) -> Response:
        return await self._complete(request, "/v1/completions")

    async def _body(self, request: Request) -> Any:
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > MAX_BODY:
            raise ServingError(f"The request is larger than {MAX_BODY // (1024 * 1024)} MiB.", 413)
        raw = bytearray()
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > MAX_BODY:
                raise ServingError(f"The request is larger than {MAX_BODY // (1024 * 1024)} MiB.", 413)
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise _bad(
                f"The request body is not valid JSON ({exc.msg if hasattr(exc, 'msg') else exc}).", "invalid_json"
            ) from exc
        except ValueError as exc:  # a number beyond Python's digit limit
            raise _bad(f"The request body has a number too large to read ({exc}).", "invalid_json") from exc
        except RecursionError as exc:
            raise _bad("The request body nests JSON too deeply.", "invalid_json") from exc
        if _depth(body) > MAX_DEPTH:
            raise _bad(f"The request body nests JSON deeper than {MAX_DEPTH} levels.", "invalid_json")
        if _has_lone_surrogate(body):
            raise _bad("The request body has text that is not valid Unicode (a lone surrogate).", "invalid_json")
        return body

    async def _complete(self, request: Request, endpoint: str) -> Response:
        if not self._authorized(request):
            return self._unauthorized()
        try:
            call, stream, include_usage = parse_call(await self._body(request), endpoint)
            pieces = AnswerChannel(asyncio.get_running_loop())
            # on_done comes after the last piece, from the same thread
            job = await asyncio.to_thread(self.server.submit, call, pieces.put, pieces.close)
        except ServingError as exc:
            return error_response(str(exc), exc.status, exc.kind, exc.code)
        gone = _disconnected(request)
        try:
            # The status line waits for the first piece: a request that fails before it (the model
            # cannot load, the prompt is too long) gets an HTTP error status, not a 200 stream.
            first = await pieces.next(gone)
        except BaseException as exc:  # the client left (or the task was cancelled): free the server
            gone.cancel()
            self.server.cancel(job)
            if not isinstance(exc, ClientGone):
                raise
            log.info("Request %s: the client went away before its answer began", job.record.id)
            return Response(status_code=499)
        if first is None and job.error is not None:
            gone.cancel()
            return error_response(str(job.error), job.error.status, job.error.kind, job.error.code)
        if stream:
            return StreamingResponse(
                self._events(job, first, pieces, include_usage, gone),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        return await self._whole(job, first, pieces, gone)

    async def _whole(
        self,
        job: ServerRequest,
        first: AnswerPiece | None,
        pieces: AnswerChannel,
        gone: asyncio.Future[None],
    ) -> Response:
        """One JSON body. A client that leaves before it is written frees the server at once: its
        answer stops within one token, as a streamed one does."""
        content: list[str] = []
        reasoning: list[str] = []
        calls: list[dict[str, Any]] = []
        piece = first
        try:
            while piece is not None:
                if piece.tool_call is not None:
                    calls.append(piece.tool_call.to_dict())
                else:
                    (reasoning if piece.reasoning else content).append(piece.text)
                piece = await pieces.next(gone)
        except BaseException as exc:  # the client left (or the task was cancelled): free the server
            self.server.cancel(job)
            if not isinstance(exc, ClientGone):
                raise
            log.info("Request %s: the client went away; its answer stops", job.record.id)
            return Response(status_code=499)
        finally:
            gone.cancel()
        if job.error is not None:
            return error_response(str(job.error), job.error.status, job.error.kind, job.error.code)
        assert job.stats is not None and job.model is not None
        created, reason = int(job.record.received), _finish_reason(job.stats)
        if job.call.raw:
            choice: dict[str, Any] = {"index": 0, "text": "".join(reasoning + content), "finish_reason": reason}
            body: dict[str, Any] = {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion"}
        else:
            message: dict[str, Any] = {"role": "assistant", "content": "".join(content)}
            if reasoning:
                message["reasoning_content"] = "".join(reasoning)
            if calls:
                if job.call.parallel_calls is False:
                    calls = calls[:1]
                message["tool_calls"] = calls
                message["content"] = message["content"] or None  # OpenAI: no text beside the calls
            choice = {"index": 0, "message": message, "finish_reason": reason}
            body = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion"}
        body |= {"created": created, "model": job.model.id, "choices": [choice], "usage": _usage(job.stats)}
        return JSONResponse(body)

    async def _events(
        self,
        job: ServerRequest,
        first: AnswerPiece | None,
        pieces: AnswerChannel,
        include_usage: bool,
        gone: asyncio.Future[None],
    ) -> AsyncIterator[str]:
        """Server-sent events. When the client goes away (`gone`), the answer stops within one token:
        uvicorn drops writes to a closed connection silently, so the disconnect is watched for."""
        assert job.model is not None
        raw = job.call.raw
        ident = f"{'cmpl' if raw else 'chatcmpl'}-{uuid.uuid4().hex}"
        base = {
            "id": ident,
            "object": "text_completion" if raw else "chat.completion.chunk",
            "created": int(job.record.received),
            "model": job.model.id,
        }

        def chunk(choice: dict[str, Any] | None, **extra: Any) -> str:
            return f"data: {json.dumps(base | {'choices': [choice] if choice else []} | extra)}\n\n"

        finished = False
        try:
            if not raw:
                yield chunk({"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None})
            piece = first
            n_calls = 0
            while piece is not None:
                if piece.tool_call is not None:
                    if n_calls == 0 or job.call.parallel_calls is not False:
                        # As OpenAI streams a call: its index, id and name first, then its arguments.
                        call = piece.tool_call
                        head = {"index": n_calls, "id": call.id, "type": "function"}
                        head["function"] = {"name": call.name, "arguments": ""}
                        yield chunk({"index": 0, "delta": {"tool_calls": [head]}, "finish_reason": None})
                        args = {"index": n_calls, "function": {"arguments": call.arguments}}
                        yield chunk({"index": 0, "delta": {"tool_calls": [args]}, "finish_reason": None})
                        n_calls += 1
                elif raw:
                    yield chunk({"index": 0, "text": piece.text, "finish_reason": None})
                else:
                    key = "reasoning_content" if piece.reasoning else "content"
                    yield chunk({"index": 0, "delta": {key: piece.text}, "finish_reason": None})
                piece = await pieces.next(gone)
            finished = True
            if job.error is not None:
                error = {"message": str(job.error), "type": job.error.kind, "code": job.error.code}
                yield f"data: {json.dumps({'error': error})}\n\n"
            elif job.stats is not None:
                reason = _finish_reason(job.stats)
                if raw:
                    yield chunk({"index": 0, "text": "", "finish_reason": reason})
                else:
                    yield chunk({"index": 0, "delta": {}, "finish_reason": reason})
                if include_usage:
                    yield chunk(None, usage=_usage(job.stats))
            yield "data: [DONE]\n\n"
        except ClientGone:
            log.info("Request %s: the client went away; its answer stops", job.record.id)
        finally:
            # Here also when Starlette cancels this generator on a disconnect: no await (a
            # cancelled scope cancels every await), and cancel() only sets flags.
            gone.cancel()
            if not finished:
                self.server.cancel(job)


def _uvicorn(app: ApiApp) -> Any:
    import uvicorn

    config = uvicorn.Config(
        app.app,
        host=app.config.host,
        port=app.config.port,
        log_config=None,  # localopen's logging, not uvicorn's
        access_log=False,  # our own request log: no paths, no keys
        lifespan="off",
    )
    return uvicorn.Server(config)


def serve_forever(app: ApiApp) -> None:
    """Serve in this thread until Ctrl+C (uvicorn handles the signal and shuts down cleanly)."""
    _uvicorn(app).run()


class ServerThread:
    """uvicorn serving an ApiApp on its own thread (the app's UI never waits on it)."""

    def __init__(self, app: ApiApp) -> None:
        self.server = _uvicorn(app)
        self.thread = threading.Thread(target=self.server.run, name="api-http", daemon=True)

    def start(self, timeout: float = 10.0) -> None:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive():
                raise LocalopenError(
                    f"The server could not listen on {self.server.config.host}:{self.server.config.port}: "
                    "is the port in use by another program?"
                )
            if time.monotonic() > deadline:
                raise LocalopenError("The server did not start in time; see the log.")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
