"""The OpenAI API: GET /v1/models and /v1/models/{id}, POST /v1/chat/completions, /v1/completions
and /v1/embeddings. A reasoning model's thinking goes in `reasoning_content`, apart from `content`,
as llama-server does. A thin translation: requests become ApiCalls and EmbedCalls for
app/serving.ModelServer, answers come back as pieces (api/answer_run.py).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import logging
import struct
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from localopen.api.answer_channel import ClientGone
from localopen.api.answer_run import AnswerRun, event_stream
from localopen.api.host import ApiHost, answered
from localopen.api.request_body import bad, check_image_count, image_part, number, read_json
from localopen.app.serving import MAX_TOKENS, ApiCall, EmbedCall, ServedModel, ServingError
from localopen.core.options import SamplingParams
from localopen.core.records import AnswerStats

log = logging.getLogger("localopen.server")


def error_response(message: str, status: int, kind: str = "invalid_request_error", code: str | None = None) -> Response:
    """OpenAI's error object."""
    return JSONResponse({"error": {"message": message, "type": kind, "param": None, "code": code}}, status)


def serving_error(exc: ServingError) -> Response:
    return error_response(str(exc), exc.status, exc.kind, exc.code)


def _sampling(body: dict[str, Any]) -> SamplingParams:
    """OpenAI's sampling fields, and llama-server's extras (top_k, min_p, repeat_penalty); the
    sampling defaults are the Chat view's, so the same seed gives the same answer in both."""
    d = SamplingParams()
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1):
        raise bad("'max_tokens' must be a positive whole number.", "invalid_value")
    stop = body.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    if stop is not None and (not isinstance(stop, list) or not all(isinstance(s, str) for s in stop) or len(stop) > 16):
        raise bad("'stop' must be a string or a list of up to 16 strings.", "invalid_value")
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise bad("'seed' must be a whole number.", "invalid_value")
    return SamplingParams(
        temperature=number(body, "temperature", d.temperature, 0, 2),
        top_p=number(body, "top_p", d.top_p, 0, 1),
        top_k=int(number(body, "top_k", d.top_k, 0, 1000)),
        min_p=number(body, "min_p", d.min_p, 0, 1),
        repeat_penalty=number(body, "repeat_penalty", d.repeat_penalty, 0.5, 2),
        seed=seed,
        # None: until the model ends its turn or the context is full (OpenAI's meaning).
        max_tokens=min(max_tokens or MAX_TOKENS, MAX_TOKENS),
        stop=list(stop or []),
        presence_penalty=number(body, "presence_penalty", 0.0, -2, 2),
        frequency_penalty=number(body, "frequency_penalty", 0.0, -2, 2),
        logit_bias=_logit_bias(body),
        logprobs=_logprobs(body),
    )


def _text(content: Any) -> str:
    """A message's content: a string, or OpenAI's list of parts (text parts only)."""
    content = _content(content, images=False)
    assert isinstance(content, str)
    return content


def _content(content: Any, images: bool) -> str | list[dict[str, Any]]:
    """A message's content: a string, or OpenAI's list of parts; with images (a user's message),
    image_url parts become images (data: URLs) and the content a list of parts."""
    if isinstance(content, str):
        return content
    if content is None:
        return ""
    if not isinstance(content, list):
        raise bad("A message's 'content' must be a string or a list of content parts.", "invalid_content")
    parts: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            parts.append({"type": "text", "text": part["text"]})
        elif kind == "image_url" and images:
            source = part.get("image_url")
            url = source.get("url") if isinstance(source, dict) else source
            parts.append(image_part(url, f"Image {sum(p['type'] == 'image' for p in parts) + 1}"))
        elif kind == "image_url":
            raise bad("Images go in a user's message.", "invalid_content")
        else:
            raise bad(f"Unsupported content part '{kind}': text and image_url parts are taken.", "invalid_content")
    if not any(p["type"] == "image" for p in parts):
        return "".join(p["text"] for p in parts)
    return parts


def _tool_calls(calls: Any) -> list[dict[str, Any]]:
    """An assistant message's tool calls, as OpenAI sends them (arguments as JSON text)."""
    if not isinstance(calls, list):
        raise bad("'tool_calls' must be a list.", "invalid_messages")
    out = []
    for call in calls:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise bad("Each tool call needs a 'function' with a 'name'.", "invalid_messages")
        arguments = function.get("arguments", "{}")
        if not isinstance(arguments, (str, dict)):
            raise bad("A tool call's 'arguments' must be JSON text.", "invalid_messages")
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
        raise bad("'messages' must be a non-empty list.", "invalid_messages")
    out = []
    for m in messages:
        if not isinstance(m, dict) or m.get("role") not in ("system", "developer", "user", "assistant", "tool"):
            raise bad("Each message needs a 'role' of system, user, assistant or tool.", "invalid_messages")
        message: dict[str, Any] = {
            "role": "system" if m["role"] == "developer" else m["role"],
            "content": _content(m.get("content"), images=m["role"] == "user"),
        }
        reasoning = m.get("reasoning_content")
        if isinstance(reasoning, str) and reasoning:
            message["reasoning_content"] = reasoning
        if m["role"] == "assistant" and m.get("tool_calls"):
            message["tool_calls"] = _tool_calls(m["tool_calls"])
        if m["role"] == "tool":
            if not isinstance(m.get("tool_call_id"), str):
                raise bad("A 'tool' message needs the 'tool_call_id' of the call it answers.", "invalid_messages")
            message["tool_call_id"] = m["tool_call_id"]
            if isinstance(m.get("name"), str):
                message["name"] = m["name"]
        out.append(message)
    check_image_count(out)
    check_tool_results(out)
    return out


def check_tool_results(messages: list[dict[str, Any]]) -> None:
    """Each tool result answers a call of the assistant turn before it (OpenAI refuses others too):
    a result for no call would otherwise be read by the model as a call it never made."""
    open_calls: set[str] = set()
    for m in messages:
        if m["role"] == "assistant":
            open_calls = {str(c.get("id") or "") for c in m.get("tool_calls") or []}
        elif m["role"] == "tool":
            if m.get("tool_call_id") not in open_calls:
                raise bad(
                    f"The tool message with tool_call_id '{m.get('tool_call_id')}' answers no tool call of the "
                    "assistant message before it: each tool result must follow the assistant message whose "
                    "'tool_calls' has that id.",
                    "invalid_messages",
                )
        elif m["role"] == "user":
            open_calls = set()


def parse_tools(body: dict[str, Any]) -> tuple[list[dict[str, Any]] | None, str]:
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
        raise bad(
            "'tools' must be a list of functions, each with a 'name' and JSON-schema 'parameters'.", "invalid_tools"
        )
    choice = body.get("tool_choice", "auto")
    if isinstance(choice, dict):
        function = choice.get("function")
        name = function.get("name") if isinstance(function, dict) else None
        if not isinstance(name, str):
            raise bad('A named \'tool_choice\' is {"type": "function", "function": {"name": …}}.', "invalid_value")
        if not tools or name not in {t["function"]["name"] for t in tools}:
            raise bad(f"'tool_choice' names '{name}', which is not among 'tools'.", "invalid_value")
        return tools, name
    return tools, plain_tool_choice(choice, tools)


def plain_tool_choice(choice: Any, tools: list[dict[str, Any]] | None) -> str:
    """auto, none or required (the named form is each shape's own), checked against the tools."""
    if choice not in ("auto", "none", "required"):
        raise bad("'tool_choice' must be auto, none, required or a named function.", "invalid_value")
    if choice == "required" and not tools:
        raise bad("'tool_choice' required needs 'tools'.", "invalid_value")
    return str(choice)


def json_schema_of(body: dict[str, Any]) -> dict[str, Any] | None:
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
            raise bad("'response_format' json_schema needs a 'json_schema' with a 'schema' object.", "invalid_value")
        return schema
    raise bad("'response_format' type must be text, json_object or json_schema.", "invalid_value")


def _refuse_unsupported(body: dict[str, Any]) -> None:
    """What this server does not do is said, never silently ignored (a client would trust it)."""
    if body.get("suffix"):
        raise bad(
            "'suffix' (fill-in-the-middle) is not supported by localopen's server yet: send the text before "
            "the cursor as 'prompt' alone.",
            "unsupported_suffix",
        )


def _choices(body: dict[str, Any], stream: bool) -> int:
    """n: that many answers, one after another (answered whole; a stream has one)."""
    n = body.get("n", 1)
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 8:
        raise bad("'n' must be a whole number from 1 to 8.", "invalid_value")
    if n > 1 and stream:
        raise bad("'n' above 1 is answered whole here: send it with 'stream': false.", "unsupported_n")
    return n


def _logprobs(body: dict[str, Any]) -> int | None:
    """How many likeliest tokens to report beside each token's log probability; None: no logprobs.
    Chat: logprobs true with top_logprobs 0-20; completions: logprobs 0-5 (the older shape)."""
    value, top = body.get("logprobs"), body.get("top_logprobs")
    if value is None or value is False:
        if top is not None:
            raise bad("'top_logprobs' needs 'logprobs': true.", "invalid_value")
        return None
    if value is True:
        if top is not None and (isinstance(top, bool) or not isinstance(top, int) or not 0 <= top <= 20):
            raise bad("'top_logprobs' must be a whole number from 0 to 20.", "invalid_value")
        return top or 0
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 5:
        raise bad(
            "'logprobs' must be true or false (chat), or a whole number from 0 to 5 (completions).", "invalid_value"
        )
    return value


def legacy_logprobs(entries: list[dict[str, Any]], start: int = 0) -> dict[str, Any]:
    """/v1/completions' older logprobs shape, from OpenAI's per-token entries."""
    offsets, at = [], start
    for e in entries:
        offsets.append(at)
        at += len(e["token"])
    return {
        "tokens": [e["token"] for e in entries],
        "token_logprobs": [e["logprob"] for e in entries],
        "top_logprobs": [{t["token"]: t["logprob"] for t in e["top_logprobs"]} for e in entries],
        "text_offset": offsets,
    }


def _logit_bias(body: dict[str, Any]) -> dict[int, float]:
    bias = body.get("logit_bias") or {}
    if not isinstance(bias, dict) or len(bias) > 1024:
        raise bad("'logit_bias' must map token ids to numbers (at most 1024).", "invalid_value")
    out = {}
    for key, value in bias.items():
        if not str(key).isdigit() or isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad("'logit_bias' must map token ids to numbers from -100 to 100.", "invalid_value")
        if not -100 <= value <= 100:
            raise bad("'logit_bias' values must be from -100 to 100.", "invalid_value")
        out[int(key)] = float(value)
    return out


@dataclass(frozen=True)
class Shape:
    """How the answer is written back: streamed, with usage, n answers, the prompt echoed."""

    stream: bool = False
    include_usage: bool = False
    n: int = 1
    echo: str = ""  # /v1/completions' echo: the prompt, written before the answer


def parse_call(body: Any, endpoint: str) -> tuple[ApiCall, Shape]:
    """(the call, how to write its answer) from a request body."""
    if not isinstance(body, dict):
        raise bad("The request body must be a JSON object.", "invalid_json")
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise bad("'model' must be a string.", "invalid_value")
    _refuse_unsupported(body)
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise bad("'stream' must be true or false.", "invalid_value")
    options = body.get("stream_options") or {}
    include_usage = bool(isinstance(options, dict) and options.get("include_usage"))
    if endpoint == "/v1/completions":
        prompt = body.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
            prompt = prompt[0]
        if not isinstance(prompt, str) or not prompt:
            raise bad("'prompt' must be a non-empty string.", "invalid_prompt")
        messages = [{"role": "user", "content": prompt}]
        thinking = None
        raw = True
        if body.get("tools"):
            raise bad("'tools' apply to /v1/chat/completions, not to plain completions.", "invalid_value")
        tools, choice, schema = None, "none", json_schema_of(body)  # a JSON completion, under a grammar
    else:
        messages = _messages(body)
        thinking = body.get("enable_thinking")
        kwargs = body.get("chat_template_kwargs")
        if kwargs is not None and not isinstance(kwargs, dict):
            raise bad("'chat_template_kwargs' must be an object of the template's switches.", "invalid_value")
        if isinstance(kwargs, dict) and "enable_thinking" in kwargs:
            thinking = kwargs["enable_thinking"]
        if thinking is not None and not isinstance(thinking, bool):
            raise bad("'enable_thinking' must be true or false.", "invalid_value")
        raw = False
        tools, choice = parse_tools(body)
        schema = json_schema_of(body)
    parallel = body.get("parallel_tool_calls")
    if parallel is not None and not isinstance(parallel, bool):
        raise bad("'parallel_tool_calls' must be true or false.", "invalid_value")
    call = ApiCall(model or None, messages, _sampling(body), raw, thinking, endpoint, tools, choice, schema, parallel)
    ttl = body.get("ttl")  # LM Studio's: idle seconds before the model unloads
    if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int)):
        raise bad("'ttl' must be a whole number of seconds (-1: keep it loaded).", "invalid_value")
    call.keep_alive = float(ttl) if ttl is not None else None
    echo = body.get("echo", False)
    if not isinstance(echo, bool) or (echo and endpoint != "/v1/completions"):
        raise bad("'echo' is true or false, for /v1/completions.", "invalid_value")
    shape = Shape(stream, include_usage, _choices(body, stream), call.messages[0]["content"] if echo else "")
    return call, shape


def usage(stats: AnswerStats) -> dict[str, Any]:
    return {
        "prompt_tokens": stats.prompt_tokens,
        "completion_tokens": stats.completion_tokens,
        "total_tokens": stats.prompt_tokens + stats.completion_tokens,
        "completion_tokens_details": {"reasoning_tokens": stats.reasoning_tokens},
    }


def finish_reason(stats: AnswerStats) -> str:
    return stats.finish_reason if stats.finish_reason in ("length", "tool_calls") else "stop"


def parse_embed(body: dict[str, Any]) -> tuple[EmbedCall, str]:
    """(the call, the encoding: float or base64) from an embeddings request."""
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise bad("'model' must be a string.", "invalid_value")
    texts = body.get("input")
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) and t for t in texts):
        raise bad("'input' must be a non-empty string or a list of non-empty strings.", "invalid_input")
    if len(texts) > 2048:
        raise bad("'input' may hold at most 2048 texts.", "invalid_input")
    encoding = body.get("encoding_format", "float")
    if encoding not in ("float", "base64"):
        raise bad("'encoding_format' must be float or base64.", "invalid_value")
    if body.get("dimensions") is not None:
        raise bad("'dimensions' is not supported: local models give their full vectors.", "unsupported_dimensions")
    return EmbedCall(model or None, texts), encoding


class OpenAIFace:
    """The OpenAI routes of one ApiHost."""

    def error_response(self, error: ServingError) -> Response:
        return serving_error(error)

    def __init__(self, app: ApiHost) -> None:
        self.app, self.server = app, app.server

    def routes(self) -> list[Route]:
        return [
            Route("/v1/models", self.list_models, methods=["GET"]),
            Route("/v1/models/{model_id:path}", self.get_model, methods=["GET"]),
            Route("/v1/chat/completions", self.chat_completions, methods=["POST"]),
            Route("/v1/completions", self.completions, methods=["POST"]),
            Route("/v1/embeddings", self.embeddings, methods=["POST"]),
        ]

    @staticmethod
    def unauthorized() -> Response:
        return error_response("Incorrect API key provided.", 401, code="invalid_api_key")

    def _model_object(self, m: ServedModel, loaded: set[str]) -> dict[str, Any]:
        return {
            "id": m.id,
            "object": "model",
            "created": 0,
            "owned_by": (m.repo or "local").split("/")[0],
            "openness_grade": m.grade,
            "quantization": m.quant,
            "size_bytes": m.size,
            "loaded": m.id in loaded,
            "input_modalities": ["text", "image"] if m.vision else ["text"],  # images: a projector pairs
        }

    @answered
    async def list_models(self, request: Request) -> Response:
        if not self.app.authorized(request):
            return self.unauthorized()
        models = await asyncio.to_thread(self.server.models)
        loaded = {m.id for m, _view in self.server.resident()}
        data = [self._model_object(m, loaded) for m in models]
        return JSONResponse({"object": "list", "data": data})

    @answered
    async def get_model(self, request: Request) -> Response:
        """One model by its exact id (OpenAI's models.retrieve): 404 in OpenAI's words otherwise."""
        if not self.app.authorized(request):
            return self.unauthorized()
        wanted = request.path_params["model_id"]
        models = await asyncio.to_thread(self.server.models)
        found = next((m for m in models if m.id == wanted), None)
        if found is None:
            return error_response(f"The model '{wanted}' does not exist.", 404, code="model_not_found")
        return JSONResponse(self._model_object(found, {m.id for m, _view in self.server.resident()}))

    @answered
    async def chat_completions(self, request: Request) -> Response:
        return await self._complete(request, "/v1/chat/completions")

    @answered
    async def completions(self, request: Request) -> Response:
        return await self._complete(request, "/v1/completions")

    @answered
    async def embeddings(self, request: Request) -> Response:
        if not self.app.authorized(request):
            return self.unauthorized()
        call, encoding = parse_embed(await read_json(request))
        job = await self.app.run_job(call)
        assert job.vectors is not None and job.stats is not None and job.model is not None
        data = []
        for index, vector in enumerate(job.vectors):
            value: Any = vector
            if encoding == "base64":  # little-endian float32, as OpenAI sends it
                value = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": value})
        tokens = job.stats.prompt_tokens
        body = {"object": "list", "data": data, "model": job.model.id}
        return JSONResponse(body | {"usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    async def _complete(self, request: Request, endpoint: str) -> Response:
        if not self.app.authorized(request):
            return self.unauthorized()
        call, shape = parse_call(await read_json(request), endpoint)
        run = await AnswerRun.start(self.server, request, call)
        if shape.stream:
            return event_stream(self._events(run, shape))
        choices, total = [], None
        for index in range(shape.n):
            if index:  # the next answer: another seed when one was given, so the answers differ
                seed = call.sampling.seed
                sampling = dataclasses.replace(call.sampling, seed=seed + index if seed is not None else None)
                run = await AnswerRun.start(self.server, request, dataclasses.replace(call, sampling=sampling))
            written = await self._choice(run, index, shape.echo)
            if isinstance(written, Response):
                return written
            choices.append(written)
            stats = run.stats
            total = (
                stats
                if total is None
                else dataclasses.replace(
                    total,
                    completion_tokens=total.completion_tokens + stats.completion_tokens,
                    reasoning_tokens=total.reasoning_tokens + stats.reasoning_tokens,
                )
            )
        assert total is not None
        kind = ("cmpl", "text_completion") if call.raw else ("chatcmpl", "chat.completion")
        body = {"id": f"{kind[0]}-{uuid.uuid4().hex}", "object": kind[1], "created": int(run.job.record.received)}
        return JSONResponse(body | {"model": run.model_id, "choices": choices, "usage": usage(total)})

    async def _choice(self, run: AnswerRun, index: int, echo: str) -> dict[str, Any] | Response:
        """One answer written whole. A client that leaves before it is written frees the server at
        once: its answer stops within one token, as a streamed one does."""
        pieces = await run.collect()
        if run.error is not None:
            return serving_error(run.error)
        stats, call = run.stats, run.call
        content = "".join(p.text for p in pieces if not p.reasoning and p.tool_call is None)
        reasoning = "".join(p.text for p in pieces if p.reasoning)
        calls = [p.tool_call.to_dict() for p in pieces if p.tool_call is not None]
        reason = finish_reason(stats)
        entries = [e for p in pieces for e in p.logprobs or []]
        if call.raw:
            choice: dict[str, Any] = {"index": index, "text": echo + reasoning + content, "finish_reason": reason}
            if call.sampling.logprobs is not None:
                choice["logprobs"] = legacy_logprobs(entries, len(echo))
            return choice
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if reasoning:
            message["reasoning_content"] = reasoning
        if calls:
            if call.parallel_calls is False:
                calls = calls[:1]
            message["tool_calls"] = calls
            message["content"] = message["content"] or None  # OpenAI: no text beside the calls
        answer: dict[str, Any] = {"index": index, "message": message, "finish_reason": reason}
        if call.sampling.logprobs is not None:
            answer["logprobs"] = {"content": entries, "refusal": None}
        return answer

    async def _events(self, run: AnswerRun, shape: Shape) -> AsyncIterator[str]:
        """Server-sent events. When the client goes away, the answer stops within one token:
        uvicorn drops writes to a closed connection silently, so the disconnect is watched for."""
        call = run.call
        raw = call.raw
        ident = f"{'cmpl' if raw else 'chatcmpl'}-{uuid.uuid4().hex}"
        base = {
            "id": ident,
            "object": "text_completion" if raw else "chat.completion.chunk",
            "created": int(run.job.record.received),
            "model": run.model_id,
        }

        def chunk(choice: dict[str, Any] | None, **extra: Any) -> str:
            return f"data: {json.dumps(base | {'choices': [choice] if choice else []} | extra)}\n\n"

        finished = False
        offset = len(shape.echo)  # completions' text_offset of the next token
        try:
            if not raw:
                yield chunk({"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None})
            elif shape.echo:
                yield chunk({"index": 0, "text": shape.echo, "finish_reason": None})
            n_calls = 0
            async for piece in run.pieces():
                if piece.tool_call is not None:
                    if n_calls == 0 or call.parallel_calls is not False:
                        # As OpenAI streams a call: its index, id and name first, then its arguments.
                        tool_call = piece.tool_call
                        head = {"index": n_calls, "id": tool_call.id, "type": "function"}
                        head["function"] = {"name": tool_call.name, "arguments": ""}
                        yield chunk({"index": 0, "delta": {"tool_calls": [head]}, "finish_reason": None})
                        args = {"index": n_calls, "function": {"arguments": tool_call.arguments}}
                        yield chunk({"index": 0, "delta": {"tool_calls": [args]}, "finish_reason": None})
                        n_calls += 1
                elif raw:
                    part: dict[str, Any] = {"index": 0, "text": piece.text, "finish_reason": None}
                    if piece.logprobs:
                        part["logprobs"] = legacy_logprobs(piece.logprobs, offset)
                        offset += sum(len(e["token"]) for e in piece.logprobs)
                    yield chunk(part)
                else:
                    key = "reasoning_content" if piece.reasoning else "content"
                    part = {"index": 0, "delta": {key: piece.text}, "finish_reason": None}
                    if piece.logprobs:
                        part["logprobs"] = {"content": piece.logprobs, "refusal": None}
                    yield chunk(part)
            finished = True
            if run.error is not None:
                error = {"message": str(run.error), "type": run.error.kind, "code": run.error.code}
                yield f"data: {json.dumps({'error': error})}\n\n"
            else:
                reason = finish_reason(run.stats)
                if raw:
                    yield chunk({"index": 0, "text": "", "finish_reason": reason})
                else:
                    yield chunk({"index": 0, "delta": {}, "finish_reason": reason})
                if shape.include_usage:
                    yield chunk(None, usage=usage(run.stats))
            yield "data: [DONE]\n\n"
        except ClientGone:
            log.info("Request %s: the client went away; its answer stops", run.job.record.id)
        finally:
            run.end(finished)
