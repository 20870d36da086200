#!/usr/bin/env python3
"""`localopen serve` against llama.cpp's own llama-server: generation speed and first-token time of
the same streamed /v1/completions answer (temperature 0, the same text asserted), same GGUF, threads,
context and prompt, both built from the same llama.cpp source. Run by hand, with nothing else busy:

    python benchmarks/server_compare.py [MODEL] [--rounds 9] [--tokens 128] [-t THREADS] [--build]

MODEL is a GGUF file, or gemma (the Gemma 3 270M test model, the default), mini, 1b or 7b (zero-data
replicas of those shapes). Both servers stay loaded; each round asks one then the other (the order
alternates), so a drift in the machine's speed falls on both alike. Prints the medians and the median
of the per-round ratios (localopen / llama-server). Target: generation >= 0.95x.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from llama_cpp_tools import REPLICA_SHAPES, build_tool, comparison_model, tool_path

# Greedy decoding picks the same text on both sides only where the best token leads clearly: the two
# servers batch the prompt differently, and near-ties (0.03 apart in a story) then go either way.
PROMPT = "Counting from one to a thousand: 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,"


@dataclass
class Answer:
    text: str
    tokens: int  # streamed events with text: one token each
    first_token_ms: float
    gen_tps: float  # tokens after the first, over the time from the first to the last


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(port: int, process: subprocess.Popen[bytes], timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} ended with status {process.returncode}")
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            connection.request("GET", "/health")
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        finally:
            connection.close()
        time.sleep(0.5)
    raise RuntimeError(f"the server on port {port} did not become ready")


def ask(port: int, tokens: int, prompt: str, model: str = "m") -> Answer:
    """One streamed completion; each SSE event carries one token (both servers stream per token)."""
    body = {
        "model": model,  # llama-server answers any name; localopen's is the file's name
        "prompt": prompt,
        "max_tokens": tokens,
        "temperature": 0,
        "repeat_penalty": 1.0,
        "stream": True,
    }
    times: list[float] = []
    text: list[str] = []
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    start = time.perf_counter()
    connection.request("POST", "/v1/completions", json.dumps(body), {"Content-Type": "application/json"})
    response = connection.getresponse()
    if response.status != 200:
        raise RuntimeError(f"port {port}: {response.status} {response.read()[:500]!r}")
    try:
        for raw in response:
            line = raw.decode().strip()
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = json.loads(line[6:])
            piece = "".join(choice.get("text") or "" for choice in event.get("choices", []))
            if piece:
                times.append(time.perf_counter())
                text.append(piece)
    finally:
        connection.close()
    if len(times) < 2:
        raise RuntimeError(f"port {port} streamed {len(times)} tokens")
    return Answer("".join(text), len(times), (times[0] - start) * 1000, (len(times) - 1) / (times[-1] - times[0]))


def start_llama_server(binary: Path, model: Path, port: int, args: argparse.Namespace) -> subprocess.Popen[bytes]:
    cmd = [str(binary), "-m", str(model), "--host", "127.0.0.1", "--port", str(port), "-c", str(args.ctx)]
    cmd += ["-np", "1", "-t", str(args.threads), "-tb", str(args.threads), "-ngl", "0", "--no-warmup"]
    cmd += ["-fa", "off"]  # localopen's engine loads with flash attention off; llama-server's default is auto
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def start_localopen(model: Path, port: int, args: argparse.Namespace, home: str) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "localopen", "serve", str(model), "--port", str(port)]
    cmd += ["--ctx", str(args.ctx), "--threads", str(args.threads)]
    env = {**os.environ, "LOCALOPEN_HOME": home}
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def physical_cores() -> int:
    import psutil

    return psutil.cpu_count(logical=False) or os.cpu_count() or 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", nargs="?", default="gemma", help="a GGUF file, gemma, mini, 1b or 7b")
    parser.add_argument("--build", action="store_true", help="build llama-server if it is not built yet")
    parser.add_argument("--llama-server", help="use this llama-server binary instead")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--ctx", type=int, default=2048)
    parser.add_argument("-t", "--threads", type=int, default=physical_cores())
    args = parser.parse_args()
    if args.llama_server:
        binary = Path(args.llama_server)
    elif args.build or tool_path("llama-server").exists():
        binary = build_tool("llama-server")
    else:
        parser.error("llama-server is not built: pass --build (a few minutes) or --llama-server PATH")
    model = comparison_model(args.model)
    replica = args.model in REPLICA_SHAPES
    servers: dict[str, subprocess.Popen[bytes]] = {}
    ports: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="localopen-server-compare-") as home:
        try:
            for name in ("llama-server", "localopen"):
                port = ports[name] = free_port()
                if name == "llama-server":
                    servers[name] = start_llama_server(binary, model, port, args)
                else:
                    servers[name] = start_localopen(model, port, args, home)
                wait_ready(port, servers[name])
                ask(port, 8, PROMPT, model.stem)  # warm-up: first decode, pages of the file in memory
            answers: dict[str, list[Answer]] = {"llama-server": [], "localopen": []}
            for i in range(args.rounds):
                order = ["llama-server", "localopen"] if i % 2 == 0 else ["localopen", "llama-server"]
                for name in order:
                    answers[name].append(ask(ports[name], args.tokens, PROMPT, model.stem))
                ours, theirs = answers["localopen"][-1], answers["llama-server"][-1]
                # A zero-data replica's logits all tie (0): each side breaks the tie its own way, so
                # there the answers can only have the same number of tokens.
                same = ours.tokens == theirs.tokens if replica else ours.text == theirs.text
                if not same:
                    raise RuntimeError(f"Answers differ:\nllama-server: {theirs.text!r}\nlocalopen: {ours.text!r}")
                print(
                    f"round {i + 1}: llama-server {theirs.gen_tps:6.2f} t/s {theirs.first_token_ms:7.1f} ms | "
                    f"localopen {ours.gen_tps:6.2f} t/s {ours.first_token_ms:7.1f} ms",
                    flush=True,
                )
        finally:
            for process in servers.values():
                process.terminate()
            for process in servers.values():
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    process.kill()
    theirs_list, ours_list = answers["llama-server"], answers["localopen"]
    ratios = sorted(o.gen_tps / t.gen_tps for o, t in zip(ours_list, theirs_list))
    print(f"\n{model.name}, {args.threads} threads, {args.tokens} tokens, {args.rounds} rounds (medians)")
    print(f"{'':24} {'llama-server':>14} {'localopen':>14} {'ratio':>8}")
    gen_t = statistics.median(a.gen_tps for a in theirs_list)
    gen_o = statistics.median(a.gen_tps for a in ours_list)
    ftt_t = statistics.median(a.first_token_ms for a in theirs_list)
    ftt_o = statistics.median(a.first_token_ms for a in ours_list)
    print(f"{'generation (t/s)':24} {gen_t:14.2f} {gen_o:14.2f} {statistics.median(ratios):8.3f}")
    print(f"{'first token (ms)':24} {ftt_t:14.1f} {ftt_o:14.1f} {ftt_o / ftt_t:8.3f}")
    print(f"per-round generation ratios: {', '.join(f'{r:.3f}' for r in ratios)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
