"""What each API face needs of the application that hosts it (api/server.py's ApiApp): the model
server, the key check and the queue for requests answered whole; and the error and disconnect
handling every route shares. The faces name this, not the server module, so the server imports
them and nothing imports it back."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import Response

from localopen.api.answer_channel import ClientGone
from localopen.app.serving import EmbedCall, LoadCall, ModelServer, ServerRequest, ServingError


class ApiHost(Protocol):
    server: ModelServer

    def authorized(self, request: Request) -> bool: ...

    async def run_job(self, call: EmbedCall | LoadCall) -> ServerRequest: ...


class Face(Protocol):
    def error_response(self, error: ServingError) -> Response: ...


Route = Callable[[Any, Request], Awaitable[Response]]


def answered(route: Route) -> Route:
    """A face's route: a ServingError raised anywhere in it becomes the face's own error response,
    a client that went away before its answer was written a 499 (the handling every route shares)."""

    @functools.wraps(route)
    async def run(face: Face, request: Request) -> Response:
        try:
            return await route(face, request)
        except ServingError as exc:
            return face.error_response(exc)
        except ClientGone:
            return Response(status_code=499)

    return run
