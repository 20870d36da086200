"""The OpenAI Responses API: POST /v1/responses, streamed (typed events) or not, as the openai
client's `responses.create` and the AI SDK's default provider call it. Input as text or items
(messages, function calls and their outputs), instructions, function tools, text.format (a JSON
schema), reasoning (the template's thinking switch); output items: reasoning, message,
function_call. Nothing is stored: `previous_response_id` is refused in words.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from localopen.api.answer_channel import ClientGone
from localopen.api.answer_run import AnswerRun, event_stream
from localopen.api.host import ApiHost, answered
from localopen.api.openai_api import error_response, plain_tool_choice, serving_error
from localopen.api.request_body import (
    IMAGE_HERE,
    bad,
    boolean,
    check_image_count,
    image_part,
    number,
    read_json,
    whole_number,
    with_images,
)
from localopen.app.serving import MAX_TOKENS, ApiCall, ServingError
from localopen.core.options import SamplingParams
from localopen.core.records import AnswerPiece, AnswerStats

log = logging.getLogger("localopen.server")


def _content_text(content: Any) -> str:
    text = _content(content, images=False)
    assert isinstance(text, str)
    return text


def _content(content: Any, images: bool) -> str | list[dict[str, Any]]:
    """A message's content: text, or (a user's, with input_image parts) text and images in order."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts: list[str] = []
        pictures: list[dict[str, Any]] = []
        for part in content:
            kind = part.get("type") if isinstance(part, dict) else None
            if kind in ("input_text", "output_text", "text") and isinstance(part.get("text"), str):
                parts.append(part["text"])
            elif kind == "input_image" and images:
                source = part.get("image_url")
                url = source.get("url") if isinstance(source, dict) else source
                pictures.append(image_part(url, f"Image {len(pictures) + 1}"))
                parts.append(IMAGE_HERE)
            elif kind in ("input_image", "input_file", "input_audio"):
                raise bad(f"'{kind}' content is not supported here (images go in a user's message).", "invalid_content")
            else:
                raise bad(f"Unsupported content part '{kind}'.", "invalid_content")
        return with_images("".join(parts), pictures)
    raise bad("A message's 'content' must be a string or a list of content parts.", "invalid_content")


def _conversation(body: dict[str, Any]) -> list[dict[str, Any]]:
    """instructions and input (text or items) as the conversation's messages."""
    out: list[dict[str, Any]] = []
    instructions = body.get("instructions")
    if instructions is not None:
        if not isinstance(instructions, str):
            raise bad("'instructions' must be a string.", "invalid_value")
        out.append({"role": "system", "content": instructions})
    items = body.get("input")
    if isinstance(items, str):
        return [*out, {"role": "user", "content": items}]
    if not isinstance(items, list) or not items:
        raise bad("'input' must be a string or a non-empty list of items.", "invalid_input")
    reasoning = ""
    for item in items:
        if not isinstance(item, dict):
            raise bad("Each input item must be an object.", "invalid_input")
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            if role not in ("system", "developer", "user", "assistant"):
                raise bad("A message item needs a 'role' of system, developer, user or assistant.", "invalid_input")
            message: dict[str, Any] = {"role": "system" if role == "developer" else role}
            message["content"] = _content(item.get("content"), images=message.get("role") == "user")
            if role == "assistant" and reasoning:
                message["reasoning_content"], reasoning = reasoning, ""
            out.append(message)
        elif kind == "reasoning":
            reasoning += "".join(str(c.get("text", "")) for c in item.get("content") or [] if isinstance(c, dict))
        elif kind == "function_call":
            if not isinstance(item.get("name"), str) or not isinstance(item.get("call_id"), str):
                raise bad("A function_call item needs a 'name' and a 'call_id'.", "invalid_input")
            call = {"id": item["call_id"], "type": "function"}
            call["function"] = {"name": item["name"], "arguments": item.get("arguments") or "{}"}
            last = out[-1] if out else None
            if last is not None and last["role"] == "assistant" and not last.get("content") and "tool_calls" in last:
                last["tool_calls"].append(call)  # parallel calls: one assistant turn
            else:
                message = {"role": "assistant", "content": "", "tool_calls": [call]}
                if reasoning:
                    message["reasoning_content"], reasoning = reasoning, ""
                out.append(message)
        elif kind == "function_call_output":
            if not isinstance(item.get("call_id"), str):
                raise bad("A function_call_output item needs the 'call_id' of its call.", "invalid_input")
            output = item.get("output")
            text = output if isinstance(output, str) else _content_text(output)
            out.append({"role": "tool", "tool_call_id": item["call_id"], "content": text})
        else:
            raise bad(f"Unsupported input item type '{kind}'.", "invalid_input")
    check_image_count(out)
    return out


def _tools(body: dict[str, Any]) -> tuple[list[dict[str, Any]] | None, str]:
    tools = body.get("tools") or None
    if tools is not None:
        if not isinstance(tools, list) or not all(
            isinstance(t, dict) and t.get("type") == "function" and isinstance(t.get("name"), str) for t in tools
        ):
            raise bad("Only function tools are supported, each with a 'name' and 'parameters'.", "invalid_tools")
        tools = [
            {
                "type": "function",
                "function": {
                    "name": t["name"],
                    "description": str(t.get("description") or ""),
                    "parameters": t.get("parameters") or {"type": "object", "properties": {}},
                },
            }
            for t in tools
        ]
    choice = body.get("tool_choice", "auto")
    if isinstance(choice, dict):
        name = choice.get("name")
        if choice.get("type") != "function" or not tools or name not in {t["function"]["name"] for t in tools}:
            raise bad("A named 'tool_choice' must name one of the function 'tools'.", "invalid_value")
        return tools, str(name)
    return tools, plain_tool_choice(choice, tools)


def _schema(body: dict[str, Any]) -> dict[str, Any] | None:
    text = body.get("text") or {}
    spec = text.get("format") if isinstance(text, dict) else None
    kind = spec.get("type") if isinstance(spec, dict) else None
    if spec is None or kind == "text":
        return None
    if kind == "json_object":
        return {"type": "object"}
    if kind == "json_schema" and isinstance(spec.get("schema"), dict):
        return dict(spec["schema"])
    raise bad("'text.format' must be text, json_object or json_schema with a 'schema'.", "invalid_value")


def _thinking(body: dict[str, Any]) -> bool | None:
    reasoning = body.get("reasoning")
    if reasoning is None:
        return None
    effort = reasoning.get("effort") if isinstance(reasoning, dict) else None
    if effort is None:
        return None
    if effort not in ("none", "minimal", "low", "medium", "high", "xhigh"):
        raise bad("'reasoning.effort' must be none, minimal, low, medium or high.", "invalid_value")
    return effort not in ("none", "minimal")


def parse_response_call(body: dict[str, Any]) -> tuple[ApiCall, bool]:
    if body.get("previous_response_id"):
        raise bad(
            "'previous_response_id' is not supported: nothing is stored here; send the whole conversation in 'input'.",
            "unsupported_previous_response_id",
        )
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise bad("'model' must be a string.", "invalid_value")
    d = SamplingParams()
    max_tokens = whole_number(body, "max_output_tokens")
    sampling = SamplingParams(
        temperature=number(body, "temperature", d.temperature, 0, 2),
        top_p=number(body, "top_p", d.top_p, 0, 1),
        top_k=d.top_k,
        min_p=d.min_p,
        repeat_penalty=d.repeat_penalty,
        max_tokens=min(max_tokens or MAX_TOKENS, MAX_TOKENS),
    )
    tools, choice = _tools(body)
    call = ApiCall(
        model or None,
        _conversation(body),
        sampling,
        thinking=_thinking(body),
        endpoint="/v1/responses",
        tools=tools,
        tool_choice=choice,
        json_schema=_schema(body),
        parallel_calls=boolean(body, "parallel_tool_calls", None),
    )
    return call, bool(boolean(body, "stream", False))


class _Response:
    """The response object as it grows: its output items, and the fields every event repeats."""

    def __init__(self, run: AnswerRun, body: dict[str, Any]) -> None:
        self.id = f"resp_{uuid.uuid4().hex}"
        self.run, self.body = run, body
        self.created = int(time.time())
        self.output: list[dict[str, Any]] = []

    def object(self, status: str, stats: AnswerStats | None = None) -> dict[str, Any]:
        out = {
            "id": self.id,
            "object": "response",
            "created_at": self.created,
            "status": status,
            "model": self.run.model_id,
            "output": self.output,
            "instructions": self.body.get("instructions"),
            "max_output_tokens": self.body.get("max_output_tokens"),
            "parallel_tool_calls": self.body.get("parallel_tool_calls", True),
            "temperature": self.body.get("temperature"),
            "top_p": self.body.get("top_p"),
            "tool_choice": self.body.get("tool_choice", "auto"),
            "tools": self.body.get("tools") or [],
            "text": self.body.get("text") or {"format": {"type": "text"}},
            "store": False,
            "error": None,
            "incomplete_details": None,
            "usage": None,
        }
        if stats is not None:
            if stats.finish_reason == "length":
                out["status"], out["incomplete_details"] = "incomplete", {"reason": "max_output_tokens"}
            out["usage"] = {
                "input_tokens": stats.prompt_tokens,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": stats.completion_tokens,
                "output_tokens_details": {"reasoning_tokens": stats.reasoning_tokens},
                "total_tokens": stats.prompt_tokens + stats.completion_tokens,
            }
        return out


def _item(piece: AnswerPiece) -> dict[str, Any]:
    if piece.tool_call is not None:
        call = piece.tool_call
        return {"type": "function_call", "id": f"fc_{uuid.uuid4().hex}", "call_id": call.id, "name": call.name} | {
            "arguments": call.arguments,
            "status": "completed",
        }
    if piece.reasoning:
        return {"type": "reasoning", "id": f"rs_{uuid.uuid4().hex}", "summary": [], "content": []}
    message = {"type": "message", "id": f"msg_{uuid.uuid4().hex}", "status": "in_progress", "role": "assistant"}
    return message | {"content": []}


class ResponsesFace:
    """The /v1/responses route of one ApiHost."""

    def error_response(self, error: ServingError) -> Response:
        return serving_error(error)

    def __init__(self, app: ApiHost) -> None:
        self.app, self.server = app, app.server

    def routes(self) -> list[Route]:
        return [Route("/v1/responses", self.responses, methods=["POST"])]

    @answered
    async def responses(self, request: Request) -> Response:
        if not self.app.authorized(request):
            return error_response("Incorrect API key provided.", 401, code="invalid_api_key")
        body = await read_json(request)
        call, stream = parse_response_call(body)
        run = await AnswerRun.start(self.server, request, call)
        response = _Response(run, body)
        if stream:
            return event_stream(self._events(response))
        pieces = await run.collect()
        if run.error is not None:
            return serving_error(run.error)
        for piece in pieces:
            kind = "function_call" if piece.tool_call is not None else "reasoning" if piece.reasoning else "message"
            last = response.output[-1] if response.output else None
            if kind == "function_call" or last is None or last["type"] != kind:
                response.output.append(_item(piece))
                last = response.output[-1]
            if kind == "reasoning":
                _append(last["content"], "reasoning_text", piece.text)
            elif kind == "message":
                _append(last["content"], "output_text", piece.text)
        for item in response.output:
            if item["type"] == "message":
                item["status"] = "completed"
        return JSONResponse(response.object("completed", run.stats))

    async def _events(self, response: _Response) -> AsyncIterator[str]:
        """The typed event stream: response.created, then per output item its added / deltas / done
        events, then response.completed with the whole response."""
        run = response.run
        sequence = 0
        finished = False

        def event(kind: str, **data: Any) -> str:
            nonlocal sequence
            sequence += 1
            return f"event: {kind}\ndata: {json.dumps({'type': kind, 'sequence_number': sequence} | data)}\n\n"

        open_item: dict[str, Any] | None = None
        text = ""

        def close() -> list[str]:
            nonlocal open_item, text
            if open_item is None:
                return []
            item, index, out = open_item, len(response.output) - 1, []
            if item["type"] == "message":
                part = {"type": "output_text", "text": text, "annotations": []}
                done = {"item_id": item["id"], "output_index": index, "content_index": 0}
                out.append(event("response.output_text.done", **done, text=text))
                out.append(event("response.content_part.done", **done, part=part))
                item["content"], item["status"] = [part], "completed"
            elif item["type"] == "reasoning":
                part = {"type": "reasoning_text", "text": text}
                done = {"item_id": item["id"], "output_index": index, "content_index": 0}
                out.append(event("response.reasoning_text.done", **done, text=text))
                item["content"] = [part]
            out.append(event("response.output_item.done", output_index=index, item=item))
            open_item, text = None, ""
            return out

        try:
            yield event("response.created", response=response.object("in_progress"))
            yield event("response.in_progress", response=response.object("in_progress"))
            async for piece in run.pieces():
                kind = "function_call" if piece.tool_call is not None else "reasoning" if piece.reasoning else "message"
                if open_item is None or open_item["type"] != kind or kind == "function_call":
                    for line in close():
                        yield line
                    open_item = _item(piece)
                    response.output.append(open_item)
                    index = len(response.output) - 1
                    added = open_item | ({"arguments": ""} if kind == "function_call" else {})
                    yield event("response.output_item.added", output_index=index, item=added)
                    if kind == "message":
                        part = {"type": "output_text", "text": "", "annotations": []}
                        ids = {"item_id": open_item["id"], "output_index": index, "content_index": 0}
                        yield event("response.content_part.added", **ids, part=part)
                index = len(response.output) - 1
                ids = {"item_id": open_item["id"], "output_index": index}
                if kind == "function_call":
                    assert piece.tool_call is not None
                    args = piece.tool_call.arguments
                    yield event("response.function_call_arguments.delta", **ids, delta=args)
                    yield event("response.function_call_arguments.done", **ids, arguments=args)
                elif kind == "reasoning":
                    text += piece.text
                    yield event("response.reasoning_text.delta", **ids, content_index=0, delta=piece.text)
                else:
                    text += piece.text
                    yield event("response.output_text.delta", **ids, content_index=0, delta=piece.text)
            finished = True
            for line in close():
                yield line
            if run.error is not None:
                failed = response.object("failed") | {"error": {"code": run.error.code or "server_error"}}
                failed["error"]["message"] = str(run.error)
                yield event("response.failed", response=failed)
                return
            whole = response.object("completed", run.stats)
            yield event(
                "response.incomplete" if whole["status"] == "incomplete" else "response.completed", response=whole
            )
        except ClientGone:
            log.info("Request %s: the client went away; its answer stops", run.job.record.id)
        finally:
            run.end(finished)


def _append(content: list[dict[str, Any]], kind: str, text: str) -> None:
    if content and content[-1]["type"] == kind:
        content[-1]["text"] += text
    else:
        content.append({"type": kind, "text": text} | ({"annotations": []} if kind == "output_text" else {}))
