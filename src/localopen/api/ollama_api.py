"""The Ollama API on the same server: GET /api/version, /api/tags, /api/ps; POST /api/show,
/api/chat, /api/generate (NDJSON streaming by default, `"stream": false` for one object),
/api/embed and the older /api/embeddings, as the ollama client and Ollama-speaking tools call them.
Models are named as Ollama clients name them: the model's id, with or without a `:tag`.
A thin translation to ApiCalls and EmbedCalls; errors are Ollama's `{"error": "..."}`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import math
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from localopen.api.answer_channel import ClientGone
from localopen.api.answer_run import AnswerRun
from localopen.api.host import ApiHost, answered
from localopen.api.openai_api import parse_tools
from localopen.api.request_body import bad, check_image_count, image_part, read_json, stop_list
from localopen.app.serving import (
    MAX_TOKENS,
    ApiCall,
    EmbedCall,
    LoadCall,
    ModelDescription,
    ServedModel,
    ServingError,
)
from localopen.core.options import SamplingParams
from localopen.core.records import AnswerPiece, AnswerStats

log = logging.getLogger("localopen.server")

OLLAMA_API_VERSION = "0.13.0"  # the Ollama API this face follows (clients gate features on it)
# Options that shape the answer and are applied; others are refused in words, never ignored.
_OPTIONS = {"num_predict", "temperature", "top_k", "top_p", "min_p", "repeat_penalty", "seed", "stop", "num_ctx"}
_OPTIONS |= {"presence_penalty", "frequency_penalty"}


def error_response(message: str, status: int) -> Response:
    """Ollama's error object."""
    return JSONResponse({"error": message}, status)


def _serving_error(exc: ServingError) -> Response:
    return error_response(str(exc), exc.status)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat().replace("+00:00", "Z")


def ollama_name(model: ServedModel) -> str:
    return f"{model.id}:latest"


def _number(options: dict[str, Any], key: str, lo: float, hi: float) -> float | None:
    value = options.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
        raise bad(f"option '{key}' must be a number from {lo} to {hi}.")
    return float(value)


def _options(body: dict[str, Any]) -> tuple[SamplingParams, int | None]:
    """The sampling and the context size (num_ctx) a request's options ask for."""
    options = body.get("options") or {}
    if not isinstance(options, dict):
        raise bad("'options' must be an object.")
    unknown = sorted(set(options) - _OPTIONS)
    if unknown:
        raise bad(f"Unsupported option(s): {', '.join(unknown)}. Supported: {', '.join(sorted(_OPTIONS))}.")
    d = SamplingParams()
    num_predict = options.get("num_predict")
    if num_predict is not None and (isinstance(num_predict, bool) or not isinstance(num_predict, int)):
        raise bad("option 'num_predict' must be a whole number.")
    max_tokens = MAX_TOKENS if num_predict is None or num_predict < 0 else max(1, min(num_predict, MAX_TOKENS))
    seed = options.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise bad("option 'seed' must be a whole number.")
    num_ctx = options.get("num_ctx")
    if num_ctx is not None and (isinstance(num_ctx, bool) or not isinstance(num_ctx, int) or num_ctx < 256):
        raise bad("option 'num_ctx' must be a whole number of at least 256.")

    def pick(key: str, default: float, lo: float, hi: float) -> float:
        value = _number(options, key, lo, hi)
        return default if value is None else value

    sampling = SamplingParams(
        temperature=pick("temperature", d.temperature, 0, 2),
        top_p=pick("top_p", d.top_p, 0, 1),
        top_k=int(pick("top_k", d.top_k, 0, 1000)),
        min_p=pick("min_p", d.min_p, 0, 1),
        repeat_penalty=pick("repeat_penalty", d.repeat_penalty, 0.5, 2),
        seed=seed,
        max_tokens=max_tokens,
        stop=stop_list(options.get("stop"), "stop"),
        presence_penalty=pick("presence_penalty", 0.0, -2, 2),
        frequency_penalty=pick("frequency_penalty", 0.0, -2, 2),
    )
    return sampling, num_ctx


def _format(body: dict[str, Any]) -> dict[str, Any] | None:
    value = body.get("format")
    if value in (None, ""):
        return None
    if value == "json":
        return {"type": "object"}
    if isinstance(value, dict):
        return value
    raise bad("'format' must be \"json\" or a JSON schema.")


def _think(body: dict[str, Any]) -> bool | None:
    value = body.get("think")
    if value is None or isinstance(value, bool):
        return value
    if value in ("low", "medium", "high"):
        return True
    raise bad("'think' must be true, false, low, medium or high.")


def _stream(body: dict[str, Any]) -> bool:
    value = body.get("stream", True)  # Ollama streams unless told not to
    if not isinstance(value, bool):
        raise bad("'stream' must be true or false.")
    return value


_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}


def keep_alive_of(body: dict[str, Any]) -> float | None:
    """Ollama's keep_alive: seconds as a number, or a duration ("30s", "5m", "1h"); 0 unloads the
    model after the request, a negative value keeps it loaded; None: the server's setting."""
    value = body.get("keep_alive")
    if value is None:
        return None
    seconds: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        unit = next((u for u in sorted(_UNITS, key=len, reverse=True) if text.endswith(u)), None)
        try:
            seconds = float(text[: -len(unit)]) * _UNITS[unit] if unit else float(text)
        except ValueError:
            seconds = None
    if seconds is None or not math.isfinite(seconds):  # "nan" and "inf" read as numbers, but are none
        raise bad("'keep_alive' must be seconds or a duration such as \"5m\".")
    return seconds


def _model_name(body: dict[str, Any]) -> str:
    name = body.get("model") or body.get("name")
    if not isinstance(name, str) or not name:
        raise bad("'model' is required.")
    return name


def _arguments(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    if isinstance(value, str):
        try:
            parsed = json.loads(value or "{}")
        except json.JSONDecodeError as exc:
            raise bad("A tool call's 'arguments' must be an object.") from exc
        if isinstance(parsed, dict):
            return parsed
    raise bad("A tool call's 'arguments' must be an object.")


def _with_pictures(text: str, images: Any) -> str | list[dict[str, Any]]:
    """A message's text with Ollama's 'images' (base64 pictures), placed before it as Ollama does."""
    if not images:
        return text
    if not isinstance(images, list):
        raise bad("'images' must be a list of base64-encoded pictures.")
    parts = [image_part(image, f"Image {i}") for i, image in enumerate(images, 1)]
    return [*parts, {"type": "text", "text": text}]


def _messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise bad("'messages' must be a list.")
    out = []
    for m in messages:
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant", "tool"):
            raise bad("Each message needs a 'role' of system, user, assistant or tool.")
        content = m.get("content") or ""
        if not isinstance(content, str):
            raise bad("A message's 'content' must be a string.")
        message: dict[str, Any] = {"role": m["role"], "content": _with_pictures(content, m.get("images"))}
        if isinstance(m.get("thinking"), str) and m["thinking"]:
            message["reasoning_content"] = m["thinking"]
        if m["role"] == "assistant" and m.get("tool_calls"):
            calls = m["tool_calls"]
            if not isinstance(calls, list) or not all(
                isinstance(c, dict)
                and isinstance(c.get("function"), dict)
                and isinstance(c["function"].get("name"), str)
                for c in calls
            ):
                raise bad("Each tool call needs a 'function' with a 'name'.")
            message["tool_calls"] = [
                {
                    "id": str(c.get("id") or ""),
                    "type": "function",
                    "function": {
                        "name": c["function"]["name"],
                        "arguments": _arguments(c["function"].get("arguments")),
                    },
                }
                for c in calls
            ]
        if m["role"] == "tool":
            message["tool_call_id"] = str(m.get("tool_call_id") or "")
            if isinstance(m.get("tool_name"), str):
                message["name"] = m["tool_name"]
        out.append(message)
    check_image_count(out)
    return out


def _details(description: ModelDescription) -> dict[str, Any]:
    n = description.parameters
    size = f"{n / 1e9:.1f}B" if n >= 1e9 else f"{n / 1e6:.0f}M" if n >= 1e6 else f"{n / 1e3:.0f}K"
    arch = description.architecture
    family = {"parent_model": "", "format": "gguf", "family": arch, "families": [arch]}
    return family | {"parameter_size": size, "quantization_level": description.model.quant or ""}


def _durations(stats: AnswerStats) -> dict[str, Any]:
    prompt_s = stats.prompt_tokens_evaluated / stats.prompt_tps if stats.prompt_tps else 0.0
    gen_s = stats.completion_tokens / stats.gen_tps if stats.gen_tps else 0.0
    return {
        "total_duration": int(stats.total_ms * 1e6),
        "load_duration": 0,
        "prompt_eval_count": stats.prompt_tokens,
        "prompt_eval_duration": int(prompt_s * 1e9),
        "eval_count": stats.completion_tokens,
        "eval_duration": int(gen_s * 1e9),
    }


def _done_reason(stats: AnswerStats) -> str:
    return "length" if stats.finish_reason == "length" else "stop"


def _tool_call(piece: AnswerPiece) -> dict[str, Any]:
    assert piece.tool_call is not None
    return {"function": {"name": piece.tool_call.name, "arguments": piece.tool_call.arguments_object}}


class OllamaFace:
    """The /api routes of one ApiHost."""

    def error_response(self, error: ServingError) -> Response:
        return _serving_error(error)

    def __init__(self, app: ApiHost) -> None:
        self.app, self.server = app, app.server

    def routes(self) -> list[Route]:
        return [
            Route("/api/version", self.version, methods=["GET"]),
            Route("/api/tags", self.tags, methods=["GET"]),
            Route("/api/ps", self.ps, methods=["GET"]),
            Route("/api/show", self.show, methods=["POST"]),
            Route("/api/chat", self.chat, methods=["POST"]),
            Route("/api/generate", self.generate, methods=["POST"]),
            Route("/api/embed", self.embed, methods=["POST"]),
            Route("/api/embeddings", self.embeddings, methods=["POST"]),
        ]

    def _resolve(self, name: str) -> ServedModel:
        """A model as Ollama clients name it: 'id', 'id:latest', or 'base:tag' for the id 'base-tag'."""
        base, _, tag = name.partition(":")
        if tag and tag != "latest":
            try:
                return self.server.resolve(f"{base}-{tag}")
            except ServingError:
                pass
        try:
            return self.server.resolve(base)
        except ServingError as exc:
            raise ServingError(f"model '{name}' not found: {exc}", exc.status) from exc

    async def _guard(self, request: Request) -> Response | None:
        return None if self.app.authorized(request) else error_response("unauthorized", 401)

    @answered
    async def version(self, request: Request) -> Response:
        return await self._guard(request) or JSONResponse({"version": OLLAMA_API_VERSION})

    def _listing(self) -> list[dict[str, Any]]:
        out = []
        for model in self.server.models():
            try:
                description = self.server.describe(model.id)
            except ServingError:
                continue  # unreadable: not offered
            modified = dt.datetime.fromtimestamp(model.path.stat().st_mtime, dt.timezone.utc)
            out.append(
                {
                    "name": ollama_name(model),
                    "model": ollama_name(model),
                    "modified_at": modified.isoformat().replace("+00:00", "Z"),
                    "size": model.size or 0,
                    "digest": "",
                    "details": _details(description),
                }
            )
        return out

    @answered
    async def tags(self, request: Request) -> Response:
        return await self._guard(request) or JSONResponse({"models": await asyncio.to_thread(self._listing)})

    def _running(self) -> list[dict[str, Any]]:
        out = []
        for model, view in self.server.resident():
            entry = {"name": ollama_name(model), "model": ollama_name(model), "size": view.size, "digest": ""}
            entry["details"] = _details(self.server.describe(model.id))
            left = view.unloads_in_s
            expires = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=left) if left is not None else None
            entry["expires_at"] = expires.isoformat().replace("+00:00", "Z") if expires else None
            on_gpu = view.info.backend != "CPU"
            entry |= {"size_vram": view.size if on_gpu else 0, "context_length": view.n_ctx}
            out.append(entry | {"held_by": view.held_by, "busy": view.busy})  # localopen's own: who uses it
        return out

    @answered
    async def ps(self, request: Request) -> Response:
        return await self._guard(request) or JSONResponse({"models": await asyncio.to_thread(self._running)})

    @answered
    async def show(self, request: Request) -> Response:
        if denied := await self._guard(request):
            return denied
        name = _model_name(await read_json(request))
        description = await asyncio.to_thread(lambda: self.server.describe(self._resolve(name).id))
        modified = dt.datetime.fromtimestamp(description.model.path.stat().st_mtime, dt.timezone.utc)
        info = dict(description.metadata)
        info["general.parameter_count"] = description.parameters
        body = {
            "modelfile": "",
            "parameters": "",
            "template": description.template or "",
            "license": description.license or "",
            "details": _details(description),
            "model_info": info,
            "capabilities": description.capabilities,
            "modified_at": modified.isoformat().replace("+00:00", "Z"),
        }
        return JSONResponse(body)

    @answered
    async def chat(self, request: Request) -> Response:
        if denied := await self._guard(request):
            return denied
        body = await read_json(request)
        model = self._resolve(_model_name(body))
        sampling, num_ctx = _options(body)
        tools, choice = parse_tools({"tools": body.get("tools")})
        call = ApiCall(
            model.id,
            _messages(body),
            sampling,
            thinking=_think(body),
            endpoint="/api/chat",
            tools=tools,
            tool_choice=choice,
            json_schema=_format(body),
            n_ctx=num_ctx,
            keep_alive=keep_alive_of(body),
        )
        if not call.messages:  # Ollama loads (or, keep_alive 0, unloads) the model and answers nothing
            return await self._load_only(model, "/api/chat", num_ctx, call.keep_alive)
        stream = _stream(body)
        run = await AnswerRun.start(self.server, request, call)
        return await self._respond(run, stream, chat=True)

    @answered
    async def generate(self, request: Request) -> Response:
        if denied := await self._guard(request):
            return denied
        body = await read_json(request)
        model = self._resolve(_model_name(body))
        for key in ("suffix", "template", "context"):
            if body.get(key):
                raise bad(f"'{key}' is not supported by localopen's Ollama API.")
        sampling, num_ctx = _options(body)
        prompt = body.get("prompt") or ""
        if not isinstance(prompt, str):
            raise bad("'prompt' must be a string.")
        if not prompt:
            return await self._load_only(model, "/api/generate", num_ctx, keep_alive_of(body))
        raw = bool(body.get("raw"))
        messages = [{"role": "user", "content": _with_pictures(prompt, body.get("images"))}]
        check_image_count(messages)
        if isinstance(body.get("system"), str) and body["system"] and not raw:
            messages.insert(0, {"role": "system", "content": body["system"]})
        call = ApiCall(
            model.id,
            messages,
            sampling,
            raw=raw,
            thinking=_think(body),
            endpoint="/api/generate",
            tool_choice="none",
            json_schema=_format(body),
            n_ctx=num_ctx,
            keep_alive=keep_alive_of(body),
        )
        stream = _stream(body)
        run = await AnswerRun.start(self.server, request, call)
        return await self._respond(run, stream, chat=False)

    async def _load_only(
        self, model: ServedModel, endpoint: str, num_ctx: int | None, keep_alive: float | None
    ) -> Response:
        """A request without messages or prompt loads the model (Ollama's way to preload it), or
        with keep_alive 0 unloads it (`ollama stop`)."""
        if keep_alive == 0:
            await asyncio.to_thread(self.server.unload, model)
            reason = "unload"
        else:
            await self.app.run_job(LoadCall(model.id, endpoint, num_ctx, keep_alive))
            reason = "load"
        head = {"model": ollama_name(model), "created_at": _now(), "done": True, "done_reason": reason}
        if endpoint == "/api/chat":
            return JSONResponse(head | {"message": {"role": "assistant", "content": ""}})
        return JSONResponse(head | {"response": ""})

    async def _respond(self, run: AnswerRun, stream: bool, chat: bool) -> Response:
        name = f"{run.model_id}:latest"
        if stream:
            return StreamingResponse(self._lines(run, name, chat), media_type="application/x-ndjson")
        pieces = await run.collect()
        if run.error is not None:
            return _serving_error(run.error)
        text = "".join(p.text for p in pieces if not p.reasoning and p.tool_call is None)
        thinking = "".join(p.text for p in pieces if p.reasoning)
        calls = [_tool_call(p) for p in pieces if p.tool_call is not None]
        stats = run.stats
        body: dict[str, Any] = {"model": name, "created_at": _now()}
        if chat:
            message: dict[str, Any] = {"role": "assistant", "content": text}
            message |= {"thinking": thinking} if thinking else {}
            message |= {"tool_calls": calls} if calls else {}
            body["message"] = message
        else:
            body |= {"response": text} | ({"thinking": thinking} if thinking else {})
        body |= {"done": True, "done_reason": _done_reason(stats)} | _durations(stats)
        return JSONResponse(body)

    async def _lines(self, run: AnswerRun, name: str, chat: bool) -> AsyncIterator[str]:
        """NDJSON: one object per piece, then a final one with done and the durations."""
        finished = False
        try:
            async for piece in run.pieces():
                head: dict[str, Any] = {"model": name, "created_at": _now()}
                if chat:
                    message: dict[str, Any] = {"role": "assistant", "content": ""}
                    if piece.tool_call is not None:
                        message["tool_calls"] = [_tool_call(piece)]
                    elif piece.reasoning:
                        message["thinking"] = piece.text
                    else:
                        message["content"] = piece.text
                    head["message"] = message
                elif piece.reasoning:
                    head |= {"response": "", "thinking": piece.text}
                else:
                    head["response"] = piece.text
                yield json.dumps(head | {"done": False}) + "\n"
            finished = True
            if run.error is not None:
                yield json.dumps({"error": str(run.error)}) + "\n"
                return
            stats = run.stats
            last: dict[str, Any] = {"model": name, "created_at": _now()}
            last |= {"message": {"role": "assistant", "content": ""}} if chat else {"response": ""}
            yield json.dumps(last | {"done": True, "done_reason": _done_reason(stats)} | _durations(stats)) + "\n"
        except ClientGone:
            log.info("Request %s: the client went away; its answer stops", run.job.record.id)
        finally:
            run.end(finished)

    async def _embed_texts(self, request: Request, legacy: bool) -> Response:
        if denied := await self._guard(request):
            return denied
        body = await read_json(request)
        model = self._resolve(_model_name(body))
        texts = body.get("prompt") if legacy else body.get("input")
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) and t for t in texts):
            raise bad("'input' must be a non-empty string or a list of non-empty strings.")
        if body.get("dimensions") is not None:
            raise bad("'dimensions' is not supported: local models give their full vectors.")
        truncate = body.get("truncate", True)
        if not isinstance(truncate, bool):
            raise bad("'truncate' must be true or false.")
        call = EmbedCall(model.id, texts, request.url.path, truncate, keep_alive_of(body))
        job = await self.app.run_job(call)
        assert job.vectors is not None and job.stats is not None
        if legacy:
            return JSONResponse({"embedding": job.vectors[0]})
        body = {"model": ollama_name(model), "embeddings": job.vectors}
        return JSONResponse(
            body | {"total_duration": 0, "load_duration": 0, "prompt_eval_count": job.stats.prompt_tokens}
        )

    @answered
    async def embed(self, request: Request) -> Response:
        return await self._embed_texts(request, legacy=False)

    @answered
    async def embeddings(self, request: Request) -> Response:
        return await self._embed_texts(request, legacy=True)
