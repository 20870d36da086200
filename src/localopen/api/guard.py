"""What a web page could send is refused before any route runs (DNS rebinding, cross-site POSTs).

A server bound to 127.0.0.1 is still reachable from the user's browser: a page can rebind its own
name to 127.0.0.1 (the request then carries `Host: evil.example`), or send a "simple" cross-site
POST (`Content-Type: text/plain`, no preflight) that runs the model even though the page cannot
read the answer. llama.cpp's server and Ollama check Host and Origin for this reason; so does this.

- Host must name this server: a loopback address, `localhost` (or a name under `.localhost`), the
  address it is bound to, or a name the user allowed (`--allow-host`, the `allowed_hosts` setting).
  A server bound to all addresses (which needs an API key) cannot know its names: Host is not checked.
- Origin, when a browser sends one, must be the server's own, a loopback page, or one allowed with
  `--cors`; otherwise 403, whatever the content type.
- A POST to a JSON endpoint must say `application/json` (or say nothing): other types are 415.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

LOOPBACK_NAMES = ("localhost",)
ANY_ADDRESS = ("0.0.0.0", "::", "")


def host_name(value: str) -> str | None:
    """The name in a Host header or an origin's netloc, without port or brackets; None if malformed."""
    try:
        name = urlsplit(f"//{value}").hostname
    except ValueError:
        return None
    return name.lower().rstrip(".") if name else None


def _is_loopback(name: str) -> bool:
    if name in LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class RequestGuard:
    """Pure ASGI middleware: refuses a request by its headers before Starlette routes it."""

    def __init__(
        self,
        app: ASGIApp,
        bound_host: str,
        allowed_hosts: Iterable[str] = (),
        allowed_origins: Iterable[str] = (),
    ) -> None:
        self.app = app
        self.check_host = bound_host not in ANY_ADDRESS
        self.hosts = {h for h in (host_name(x) for x in (bound_host, *allowed_hosts)) if h}
        self.origins = {o.rstrip("/").lower() for o in allowed_origins}

    def host_allowed(self, host: str | None) -> bool:
        if not self.check_host:
            return True
        name = host_name(host or "")
        return name is not None and (_is_loopback(name) or name in self.hosts)

    def origin_allowed(self, origin: str, host: str | None) -> bool:
        origin = origin.rstrip("/").lower()
        if "*" in self.origins or origin in self.origins:
            return True
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return False  # "null" (sandboxed frames, file pages) and other schemes: only when allowed
        if host is not None and parts.netloc == host.lower():
            return True  # the server's own page
        name = host_name(parts.netloc)
        return name is not None and _is_loopback(name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host")
        refusal = None
        if not self.host_allowed(host):
            refusal = (
                403,
                f"The Host '{host or ''}' is not this server's name; a web page may be trying to reach it "
                "(DNS rebinding). Allow a name with --allow-host or the allowed_hosts setting.",
                "host_not_allowed",
            )
        elif "origin" in headers and not self.origin_allowed(headers["origin"], host):
            refusal = (
                403,
                f"Requests from web pages at {headers['origin']} are refused; allow that origin with --cors.",
                "origin_not_allowed",
            )
        elif scope["method"] == "POST" and not _json_type(headers.get("content-type")):
            refusal = (
                415,
                f"The body must be JSON sent as 'Content-Type: application/json', not '{headers['content-type']}'.",
                "unsupported_media_type",
            )
        if refusal is None:
            await self.app(scope, receive, send)
            return
        status, message, code = refusal
        body = json.dumps({"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}})
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body.encode()})


def _json_type(content_type: str | None) -> bool:
    if content_type is None:
        return True  # nothing said (a bare HTTP client); a browser always says one for a body it builds
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))
