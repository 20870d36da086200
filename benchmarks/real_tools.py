#!/usr/bin/env python3
"""Tool calls of real tool-trained models through `localopen serve`, and through llama.cpp's own
llama-server (--jinja, built from the same vendored source) side by side: the same prompts, tools
and temperature 0. Run by hand, a few minutes a model on two cores:

    python benchmarks/real_tools.py MODEL.gguf [MODEL.gguf…] [--build] [--llama-server PATH]

For each server it counts, of the prompts that need a tool: the answers that came back as
`tool_calls`, and those naming the right tool with the right values; of the prompts that need
none: the answers without a call. Without a llama-server (not built, no --build) only localopen
is measured. On an AMX Xeon, llama-server runs with --no-repack (its AMX kernels crash there).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import openai
from llama_cpp_tools import build_tool, tool_path
from server_compare import free_port, wait_ready

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from real_tool_prompts import NEEDS_NO_TOOL, NEEDS_TOOL, TOOLS, right_call  # noqa: E402


def measure(client: openai.OpenAI, model: str) -> dict[str, Any]:
    called = right = plain = 0
    wrong: list[str] = []
    for request, tool, expect in NEEDS_TOOL:
        reply = client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": request}],
            tools=TOOLS,  # type: ignore[arg-type]
            temperature=0,
            max_tokens=160,
        )
        calls = reply.choices[0].message.tool_calls or []
        called += bool(calls)
        first = calls[0].function if calls else None  # type: ignore[union-attr]
        ok = first is not None and right_call(first.name, json.loads(first.arguments or "{}"), tool, expect)
        right += ok
        if not ok:
            said = f"{first.name}{first.arguments}" if first else repr(reply.choices[0].message.content)
            wrong.append(f"{request} -> {said}")
    for request in NEEDS_NO_TOOL:
        messages = [{"role": "user", "content": request}]
        reply = client.chat.completions.create(
            model=model, messages=messages, tools=TOOLS, temperature=0, max_tokens=96
        )  # type: ignore[arg-type]
        plain += not reply.choices[0].message.tool_calls
    return {"called": called, "right": right, "plain": plain, "wrong": wrong}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--build", action="store_true", help="build llama-server if it is not built yet")
    parser.add_argument("--llama-server", type=Path, help="use this llama-server binary")
    args = parser.parse_args()
    binary = args.llama_server
    if binary is None and (args.build or tool_path("llama-server").exists()):
        binary = build_tool("llama-server")
    n, m = len(NEEDS_TOOL), len(NEEDS_NO_TOOL)
    print(f"| model | server | calls returned (of {n}) | right tool and values | no call when none needed (of {m}) |")
    print("|---|---|---|---|---|")
    for model in args.models:
        servers: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
        with tempfile.TemporaryDirectory() as home:
            port = free_port()
            env = {**os.environ, "LOCALOPEN_HOME": home}
            cmd = [sys.executable, "-m", "localopen", "serve", str(model), "--port", str(port), "--ctx", "4096"]
            quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
            servers["localopen"] = (subprocess.Popen(cmd, env=env, **quiet), port)  # type: ignore[call-overload]
            if binary is not None:
                port = free_port()
                cmd = [str(binary), "-m", str(model), "--jinja", "--port", str(port), "-c", "4096", "--no-repack"]
                servers["llama-server"] = (subprocess.Popen(cmd, **quiet), port)  # type: ignore[call-overload]
            try:
                for name, (process, port) in servers.items():
                    wait_ready(port, process)
                    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0)
                    served = client.models.list().data[0].id
                    got = measure(client, served)
                    print(f"| {model.name} | {name} | {got['called']} | {got['right']} | {got['plain']} |", flush=True)
                    for line in got["wrong"]:
                        print(f"|   | {name} wrong: {line[:160]} | | | |")
            finally:
                for process, _ in servers.values():
                    process.terminate()
                    process.wait(10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
