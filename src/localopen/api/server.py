"""The local server's HTTP application (Starlette on uvicorn): the API shapes clients already speak,
each a thin translation over one app/serving.ModelServer:

- OpenAI (api/openai_api.py): /v1/models, /v1/chat/completions, /v1/completions, /v1/embeddings;
- OpenAI Responses (api/responses_api.py): /v1/responses;
- Anthropic Messages (api/anthropic_api.py): /v1/messages, /v1/messages/count_tokens;
- Ollama (api/ollama_api.py): /api/tags, /api/ps, /api/show, /api/chat, /api/generate, /api/embed…

Here: the configuration, the request guard and CORS, the API key (a bearer token, or Anthropic's
x-api-key header), /health, errors for unknown routes in the shape their path speaks, and uvicorn.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import signal
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from localopen.api import anthropic_api, ollama_api, openai_api, responses_api
from localopen.api.guard import RequestGuard
from localopen.app.serving import LOOPBACK, EmbedCall, LoadCall, ModelServer, ServerRequest
from localopen.core.errors import LocalopenError

log = logging.getLogger("localopen.server")


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
                    allow_headers=["Authorization", "Content-Type", "x-api-key", "anthropic-version"],
                )
            )
        routes = [Route("/health", self.health, methods=["GET"])]
        routes += openai_api.OpenAIFace(self).routes()
        routes += responses_api.ResponsesFace(self).routes()
        routes += anthropic_api.AnthropicFace(self).routes()
        routes += ollama_api.OllamaFace(self).routes()
        self.app = Starlette(
            routes=routes,
            middleware=middleware,
            exception_handlers={404: self._not_found, 405: self._not_allowed},
        )

    @staticmethod
    def _error(request: Request, message: str, status: int, code: str) -> Response:
        """An error for a route that does not exist, in the shape its path speaks."""
        path = request.url.path
        if path.startswith("/api/"):
            return ollama_api.error_response(message, status)
        if path.startswith("/v1/messages"):
            return anthropic_api.error_response(message, status)
        return openai_api.error_response(message, status, code=code)

    async def _not_found(self, request: Request, _exc: Exception) -> Response:
        return self._error(request, "No such endpoint.", 404, "not_found")

    async def _not_allowed(self, request: Request, _exc: Exception) -> Response:
        return self._error(request, "Method not allowed here.", 405, "method_not_allowed")

    def authorized(self, request: Request) -> bool:
        """The key as a bearer token (OpenAI, Ollama) or in x-api-key (Anthropic); any request
        when no key is set."""
        if not self.config.api_key:
            return True
        expected = self.config.api_key.encode()
        bearer = request.headers.get("authorization", "")
        given = bearer[7:] if bearer.lower().startswith("bearer ") else request.headers.get("x-api-key", "")
        return hmac.compare_digest(given.encode(), expected)

    async def run_job(self, call: EmbedCall | LoadCall) -> ServerRequest:
        """Queue a request answered whole (embeddings, a load) and wait for it; its error is raised."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def finish() -> None:
            if not done.done():
                done.set_result(None)

        def on_done() -> None:
            loop.call_soon_threadsafe(finish)

        job = await asyncio.to_thread(self.server.submit, call, lambda _piece: None, on_done)
        try:
            await done
        except BaseException:  # the client left: a waiting job is skipped
            self.server.cancel(job)
            raise
        if job.error is not None:
            raise job.error
        return job

    async def health(self, request: Request) -> Response:
        """ok (200), or loading or stuck (503, as llama.cpp's server answers while loading); the
        requests in progress are shown to a client with the key only (they name models)."""
        health = self.server.health()
        body: dict[str, Any] = {"status": "loading model" if health.status == "loading" else health.status}
        if health.message:
            body["message"] = health.message
        if self.authorized(request):
            body["running"] = health.running
        return JSONResponse(body, 200 if health.status == "ok" else 503)


SHUTDOWN_GRACE_S = 3


def _uvicorn(app: ApiApp) -> Any:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server that tells the model server at once when it is asked to stop: answers
        in progress end as 503 "shutting down" instead of waiting out the grace period."""

        def handle_exit(self, sig: int, frame: Any) -> None:
            app.server.begin_shutdown()
            super().handle_exit(sig, frame)

    config = uvicorn.Config(
        app.app,
        host=app.config.host,
        port=app.config.port,
        log_config=None,  # localopen's logging, not uvicorn's
        # Shutting down, requests still running after this are cancelled (their answers stop):
        # a client that never reads its answer cannot hold the server open.
        timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
        access_log=False,  # our own request log: no paths, no keys
        lifespan="off",
    )
    return Server(config)


class Terminated(SystemExit):
    """SIGTERM arrived: the server has shut down; the caller's cleanup runs (exit status 0)."""


def serve_forever(app: ApiApp) -> None:
    """Serve in this thread until Ctrl+C or SIGTERM. uvicorn shuts down on either, then raises the
    signal again for the handler it found: SIGTERM's default would end the process there, before
    the caller's cleanup (answers stopped, engines ended), so that handler raises Terminated."""

    def terminated(_signum: int, _frame: object) -> None:
        raise Terminated(0)

    previous = signal.signal(signal.SIGTERM, terminated)
    try:
        _uvicorn(app).run()
    finally:
        signal.signal(signal.SIGTERM, previous)


class ServerThread:
    """uvicorn serving an ApiApp on its own thread (the app's UI never waits on it)."""

    def __init__(self, app: ApiApp) -> None:
        self.app = app
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
        self.app.server.begin_shutdown()  # answers in progress end now, as 503 "shutting down"
        self.server.should_exit = True
        self.thread.join(10)
