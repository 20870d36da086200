"""Terminal commands of the local server: `serve` (the OpenAI, Anthropic and Ollama APIs) and `ps`
(what a running server has loaded)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from localopen.cli.flags import (
    engine_flags,
    load_options_from,
    load_overrides,
    option_flags,
)
from localopen.cli.output import table
from localopen.core.errors import LocalopenError
from localopen.core.estimate.memory import human_bytes

if TYPE_CHECKING:  # the engine client and sessions load only for the commands that run a model
    from localopen.app.context import AppContext


def cmd_ps(ctx: AppContext, args: argparse.Namespace) -> int:
    """What a running local server has loaded: who uses each model, its memory, when it unloads."""
    import urllib.error
    import urllib.request

    host = f"[{args.host}]" if ":" in args.host else args.host
    url = f"http://{host}:{args.port}/api/ps"
    request = urllib.request.Request(url)
    if args.api_key:
        request.add_header("Authorization", f"Bearer {args.api_key}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            models = json.loads(response.read())["models"]
    except (urllib.error.URLError, OSError, ValueError, KeyError) as exc:
        reason = getattr(exc, "reason", exc)
        raise LocalopenError(
            f"No localopen server answers at {host}:{args.port} ({reason}). Start one with `localopen serve`, "
            "or name its address with --host and --port."
        ) from exc
    if args.json:
        print(json.dumps(models, indent=2))
        return 0
    if not models:
        print("No model is loaded.")
        return 0
    rows = [
        [
            m["model"],
            ", ".join(m.get("held_by") or []) or ("answering" if m.get("busy") else "idle"),
            human_bytes(m["size"]),
            str(m.get("context_length", "")),
            m["expires_at"] or "when memory is needed",
        ]
        for m in models
    ]
    print(table(rows, ["model", "held by", "memory", "context", "unloads at"]))
    return 0


def cmd_serve(ctx: AppContext, args: argparse.Namespace) -> int:
    """The local server (OpenAI, Anthropic and Ollama APIs) on this machine, until Ctrl+C."""
    from localopen.api.server import ApiApp, ServerConfig, serve_forever
    from localopen.app.serving import ModelServer

    port = args.port if args.port is not None else 11434 if args.ollama else 8080
    config = ServerConfig(
        args.host,
        port,
        args.api_key or None,
        tuple(args.cors or ()),
        tuple(ctx.settings.allowed_hosts) + tuple(args.allow_host or ()),
    )
    config.check()
    config.check_port_free()
    server = ModelServer(ctx, load_options_from(ctx, args), default_model=None, template=args.template)
    server.overrides = load_overrides(ctx, args)  # each model loads with its preset, these flags over it
    try:
        if args.model:
            model = server.resolve_name(args.model)
            server.default_model = model.id
            print(f"Loading {model.id}…", file=sys.stderr)
            server.preload()
        api = ApiApp(server, config)
        models = ", ".join(m.id for m in server.models()) or "none yet: download one with `localopen pull`"
        root = config.base_url.removesuffix("/v1")
        print(
            f"Serving the OpenAI and Anthropic APIs at {config.base_url} and the Ollama API at {root} "
            f"(models: {models}). Models load on demand and stay loaded as memory allows "
            f"({ctx.models.budget.percent}% of the free memory, {human_bytes(ctx.models.room())} now); "
            "an idle one unloads after "
            f"{ctx.settings.keep_alive_s} s."
            f"{' Clients must send the API key.' if config.api_key else ''} Ctrl+C stops.",
            file=sys.stderr,
        )
        serve_forever(api)
    finally:
        server.close()
        ctx.close_models()
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    from localopen.core.chat.template import template_options

    p = sub.add_parser(
        "serve", help="serve the library's models over the OpenAI, Anthropic and Ollama APIs (Ctrl+C stops)"
    )
    p.add_argument("model", nargs="?", help="load this model now (others load on demand, as memory allows)")
    option_flags(p, ["draft"])
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (beyond 127.0.0.1 needs --api-key)")
    p.add_argument("--port", type=int, help="default 8080 (11434 with --ollama)")
    p.add_argument("--ollama", action="store_true", help="listen on Ollama's port, 11434, for tools that assume it")
    p.add_argument("--api-key", help="clients must send it (Authorization: Bearer KEY, or x-api-key)")
    p.add_argument("--cors", action="append", help="allow browser pages from this origin (repeatable)")
    p.add_argument(
        "--allow-host",
        action="append",
        help="also answer requests that name this server by this host name (repeatable; loopback names always)",
    )
    p.add_argument(
        "--template",
        choices=template_options(),
        help="chat template for models whose file has none (never guessed; without it they answer "
        "/v1/completions only)",
    )
    engine_flags(p)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("ps", help="what a running local server has loaded: users, memory, when it unloads")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--api-key", help="the server's key, if it has one")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_ps)
