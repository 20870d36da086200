"""The Anthropic Messages API: POST /v1/messages (streamed or not) and /v1/messages/count_tokens,
as the anthropic SDK and Claude-compatible agents call them. A thin translation to ApiCalls: system,
text, tool_use and tool_result blocks, thinking (the template's reasoning switch), stop sequences;
the key in x-api-key; errors as Anthropic's error objects. Images are refused in words.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from localopen.api.answer_channel import ClientGone
from localopen.api.answer_run import AnswerRun, event_stream
from localopen.api.host import ApiHost, answered
from localopen.api.request_body import (
    IMAGE_HERE,
    bad,
    check_image_count,
    image_part,
    number,
    read_json,
    stop_list,
    whole_number,
    with_images,
)
from localopen.app.serving import MAX_TOKENS, ApiCall, ServingError
from localopen.core.options import SamplingParams
from localopen.core.records import AnswerPiece, AnswerStats

log = logging.getLogger("localopen.server")

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
}
_STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "cancelled": "end_turn"}


def error_response(message: str, status: int) -> Response:
    """Anthropic's error object."""
    kind = _ERROR_TYPES.get(status, "api_error")
    return JSONResponse({"type": "error", "error": {"type": kind, "message": message}}, status)


def _serving_error(exc: ServingError) -> Response:
    return error_response(str(exc), exc.status)


def _block_text(blocks: Any, where: str) -> str:
    """Text of a string or of a list of text blocks (system prompts, tool results)."""
    if isinstance(blocks, str):
        return blocks
    if isinstance(blocks, list) and all(isinstance(b, dict) and b.get("type") == "text" for b in blocks):
        return "".join(str(b.get("text", "")) for b in blocks)
    raise bad(f"{where} must be a string or a list of text blocks.", "invalid_content")


def _message(m: Any) -> list[dict[str, Any]]:
    """One Anthropic message as the conversation's messages (a user turn's tool results become
    tool messages, before its text)."""
    if not isinstance(m, dict) or m.get("role") not in ("user", "assistant"):
        raise bad("Each message needs a 'role' of user or assistant.", "invalid_messages")
    role, content = m["role"], m.get("content")
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    if not isinstance(content, list):
        raise bad("A message's 'content' must be a string or a list of content blocks.", "invalid_content")
    text: list[str] = []
    reasoning: list[str] = []
    calls: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    images: list[dict[str, Any]] = []
    for block in content:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            text.append(str(block.get("text", "")))
        elif kind == "thinking" and role == "assistant":
            reasoning.append(str(block.get("thinking", "")))
        elif kind == "redacted_thinking" and role == "assistant":
            continue  # encrypted by another service: nothing a local model can read
        elif kind == "tool_use" and role == "assistant":
            if not isinstance(block.get("name"), str) or not isinstance(block.get("input", {}), dict):
                raise bad("A tool_use block needs a 'name' and an 'input' object.", "invalid_content")
            function = {"name": block["name"], "arguments": block.get("input", {})}
            calls.append({"id": str(block.get("id") or ""), "type": "function", "function": function})
        elif kind == "tool_result" and role == "user":
            if not isinstance(block.get("tool_use_id"), str):
                raise bad("A tool_result block needs the 'tool_use_id' of the call it answers.", "invalid_content")
            output = _block_text(block.get("content", ""), "A tool_result's 'content'")
            if block.get("is_error"):
                output = f"Error: {output}"
            results.append({"role": "tool", "tool_call_id": block["tool_use_id"], "content": output})
        elif kind == "image" and role == "user":
            source = block.get("source") if isinstance(block.get("source"), dict) else {}
            if source.get("type") == "url":
                url = source.get("url")
            elif source.get("type") == "base64":
                url = source.get("data")
            else:
                raise bad("An image block's 'source' must be base64 (or a url, which is refused).", "invalid_content")
            images.append(image_part(url, f"Image {len(images) + 1}"))
            text.append(IMAGE_HERE)
        elif kind == "document":
            raise bad("Document blocks are not supported by local models here yet.", "invalid_content")
        else:
            raise bad(f"Unsupported content block type '{kind}' in a {role} message.", "invalid_content")
    out = list(results)
    if text or reasoning or calls or not results:
        message: dict[str, Any] = {"role": role, "content": with_images("".join(text), images)}
        if reasoning:
            message["reasoning_content"] = "".join(reasoning)
        if calls:
            message["tool_calls"] = calls
        out.append(message)
    return out


def _tools(body: dict[str, Any]) -> tuple[list[dict[str, Any]] | None, str]:
    tools = body.get("tools")
    if not tools:
        tools = None
    elif not isinstance(tools, list) or not all(
        isinstance(t, dict) and isinstance(t.get("name"), str) and isinstance(t.get("input_schema", {}), dict)
        for t in tools
    ):
        raise bad("'tools' must be a list of tools, each with a 'name' and an 'input_schema'.", "invalid_tools")
    else:
        tools = [
            {
                "type": "function",
                "function": {
                    "name": t["name"],
                    "description": str(t.get("description", "")),
                    "parameters": t.get("input_schema", {"type": "object"}),
                },
            }
            for t in tools
        ]
    choice = body.get("tool_choice") or {"type": "auto"}
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind == "tool":
        name = choice.get("name")
        if not tools or name not in {t["function"]["name"] for t in tools}:
            raise bad(f"'tool_choice' names '{name}', which is not among 'tools'.", "invalid_value")
        return tools, str(name)
    mapping = {"auto": "auto", "any": "required", "none": "none"}
    if kind not in mapping:
        raise bad("'tool_choice' type must be auto, any, tool or none.", "invalid_value")
    if kind == "any" and not tools:
        raise bad("'tool_choice' any needs 'tools'.", "invalid_value")
    return tools, mapping[kind]


def _thinking(body: dict[str, Any]) -> bool | None:
    spec = body.get("thinking")
    if spec is None:
        return None
    kind = spec.get("type") if isinstance(spec, dict) else None
    if kind not in ("enabled", "disabled", "adaptive"):
        raise bad("'thinking' type must be enabled, disabled or adaptive.", "invalid_value")
    return {"enabled": True, "disabled": False, "adaptive": None}[kind]


def parse_messages(body: dict[str, Any], count_only: bool = False) -> tuple[ApiCall, bool]:
    """(the call, stream?) from a Messages request."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad("'model' is required.", "invalid_value")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad("'messages' must be a non-empty list.", "invalid_messages")
    conversation: list[dict[str, Any]] = []
    if body.get("system") is not None:
        conversation.append({"role": "system", "content": _block_text(body["system"], "'system'")})
    for m in messages:
        conversation += _message(m)
    check_image_count(conversation)
    max_tokens = whole_number(body, "max_tokens")
    if max_tokens is None and not count_only:
        raise bad("'max_tokens' is required.", "invalid_value")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise bad("'stream' must be true or false.", "invalid_value")
    d = SamplingParams()
    sampling = SamplingParams(
        temperature=number(body, "temperature", d.temperature, 0, 1),
        top_p=number(body, "top_p", d.top_p, 0, 1),
        top_k=int(number(body, "top_k", d.top_k, 0, 1000)),
        min_p=d.min_p,
        repeat_penalty=d.repeat_penalty,
        max_tokens=min(max_tokens or MAX_TOKENS, MAX_TOKENS),
        stop=stop_list(body.get("stop_sequences"), "stop_sequences"),
    )
    tools, choice = _tools(body)
    call = ApiCall(
        model,
        conversation,
        sampling,
        thinking=_thinking(body),
        endpoint="/v1/messages/count_tokens" if count_only else "/v1/messages",
        tools=tools,
        tool_choice=choice,
        count_only=count_only,
    )
    return call, stream


def _usage(stats: AnswerStats) -> dict[str, int]:
    return {"input_tokens": stats.prompt_tokens, "output_tokens": stats.completion_tokens}


def _tool_use(piece: AnswerPiece) -> dict[str, Any]:
    call = piece.tool_call
    assert call is not None
    block = {"type": "tool_use", "id": f"toolu_{call.id.removeprefix('call_')}", "name": call.name}
    return block | {"input": call.arguments_object}


def _sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


class AnthropicFace:
    """The Messages routes of one ApiHost."""

    def error_response(self, error: ServingError) -> Response:
        return _serving_error(error)

    def __init__(self, app: ApiHost) -> None:
        self.app, self.server = app, app.server

    def routes(self) -> list[Route]:
        return [
            Route("/v1/messages", self.messages, methods=["POST"]),
            Route("/v1/messages/count_tokens", self.count_tokens, methods=["POST"]),
        ]

    @staticmethod
    def _unauthorized() -> Response:
        return error_response("invalid x-api-key", 401)

    @answered
    async def count_tokens(self, request: Request) -> Response:
        if not self.app.authorized(request):
            return self._unauthorized()
        call, _stream = parse_messages(await read_json(request), count_only=True)
        run = await AnswerRun.start(self.server, request, call)
        await run.collect()
        return JSONResponse({"input_tokens": run.stats.prompt_tokens})

    @answered
    async def messages(self, request: Request) -> Response:
        if not self.app.authorized(request):
            return self._unauthorized()
        call, stream = parse_messages(await read_json(request))
        run = await AnswerRun.start(self.server, request, call)
        ident = f"msg_{uuid.uuid4().hex[:24]}"
        if stream:
            return event_stream(self._events(run, ident))
        pieces = await run.collect()
        if run.error is not None:
            return _serving_error(run.error)
        content: list[dict[str, Any]] = []
        reasoning = "".join(p.text for p in pieces if p.reasoning)
        if reasoning:
            content.append({"type": "thinking", "thinking": reasoning, "signature": ""})
        text = "".join(p.text for p in pieces if not p.reasoning and p.tool_call is None)
        if text:
            content.append({"type": "text", "text": text})
        content += [_tool_use(p) for p in pieces if p.tool_call is not None]
        stats = run.stats
        body: dict[str, Any] = {"id": ident, "type": "message", "role": "assistant", "model": run.model_id}
        body["content"] = content
        body |= {"stop_reason": _STOP_REASONS.get(stats.finish_reason, "end_turn"), "stop_sequence": None}
        return JSONResponse(body | {"usage": _usage(stats)})

    async def _events(self, run: AnswerRun, ident: str) -> AsyncIterator[str]:
        """Anthropic's stream: message_start, then for each block (thinking, text, tool_use) its
        start, deltas and stop, then message_delta (stop reason, usage) and message_stop."""
        message: dict[str, Any] = {"id": ident, "type": "message", "role": "assistant", "model": run.model_id}
        message["content"] = []
        message |= {"stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 0, "output_tokens": 0}}
        finished = False
        index, open_kind = -1, None
        try:
            yield _sse("message_start", {"type": "message_start", "message": message})
            async for piece in run.pieces():
                kind = "tool_use" if piece.tool_call is not None else "thinking" if piece.reasoning else "text"
                if kind != open_kind or kind == "tool_use":
                    if open_kind is not None:
                        yield _sse("content_block_stop", {"type": "content_block_stop", "index": index})
                    index, open_kind = index + 1, kind
                    if kind == "tool_use":
                        block = _tool_use(piece) | {"input": {}}
                    elif kind == "thinking":
                        block = {"type": "thinking", "thinking": "", "signature": ""}
                    else:
                        block = {"type": "text", "text": ""}
                    start = {"type": "content_block_start", "index": index, "content_block": block}
                    yield _sse("content_block_start", start)
                if kind == "tool_use":
                    assert piece.tool_call is not None
                    delta: dict[str, Any] = {"type": "input_json_delta", "partial_json": piece.tool_call.arguments}
                elif kind == "thinking":
                    delta = {"type": "thinking_delta", "thinking": piece.text}
                else:
                    delta = {"type": "text_delta", "text": piece.text}
                yield _sse("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
            finished = True
            if open_kind is not None:
                yield _sse("content_block_stop", {"type": "content_block_stop", "index": index})
            if run.error is not None:
                error = {"type": _ERROR_TYPES.get(run.error.status, "api_error"), "message": str(run.error)}
                yield _sse("error", {"type": "error", "error": error})
                return
            stats = run.stats
            end = {"stop_reason": _STOP_REASONS.get(stats.finish_reason, "end_turn"), "stop_sequence": None}
            yield _sse("message_delta", {"type": "message_delta", "delta": end, "usage": _usage(stats)})
            yield _sse("message_stop", {"type": "message_stop"})
        except ClientGone:
            log.info("Request %s: the client went away; its answer stops", run.job.record.id)
        finally:
            run.end(finished)
