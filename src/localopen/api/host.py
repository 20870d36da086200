"""What each API face needs of the application that hosts it (api/server.py's ApiApp): the model
server, the key check and the queue for requests answered whole. The faces name this, not the
server module, so the server imports them and nothing imports it back."""

from __future__ import annotations

from typing import Protocol

from starlette.requests import Request

from localopen.app.serving import EmbedCall, LoadCall, ModelServer, ServerRequest


class ApiHost(Protocol):
    server: ModelServer

    def authorized(self, request: Request) -> bool: ...

    async def run_job(self, call: EmbedCall | LoadCall) -> ServerRequest: ...
