"""Agent frameworks end to end against `localopen serve`, in auto tool choice: LangChain's
create_agent, the OpenAI Agents SDK and the AI SDK's multi-step loop, each with one tool whose
answer only the tool knows. A run is grounded when the framework's final answer carries the tool's
result. Run by hand (a model answers for real: a minute or two on two cores):

    python -m venv --system-site-packages /tmp/agents
    /tmp/agents/bin/pip install langchain langchain-openai langgraph openai-agents
    (cd /tmp/aisdk && npm install ai @ai-sdk/openai-compatible zod)
    /tmp/agents/bin/python benchmarks/agent_frameworks.py MODEL.gguf --aisdk /tmp/aisdk [--runs 3]

A framework that is not installed is said so and skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

QUESTION = "What is the weather in Paris right now? Use the tool."
FACT = "18 degrees Celsius, light rain"  # what only the tool knows
MARK = "18"


def get_weather(city: str) -> str:
    return f"{city}: {FACT}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(model: Path, port: int, home: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "LOCALOPEN_HOME": str(home)}
    cmd = [sys.executable, "-m", "localopen", "serve", str(model), "--port", str(port)]
    process = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if json.loads(r.read()).get("status") == "ok":
                    return process
        except OSError:
            pass
        time.sleep(1)
    process.kill()
    raise SystemExit("localopen serve did not come up in 3 minutes")


def langchain_run(base_url: str, model: str) -> tuple[bool, str]:
    from langchain.agents import create_agent
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI

    called: list[str] = []

    @tool
    def weather(city: str) -> str:
        """The current weather in a city."""
        called.append(city)
        return get_weather(city)

    llm = ChatOpenAI(model=model, base_url=base_url, api_key="local", temperature=0)
    agent = create_agent(llm, tools=[weather])
    result = agent.invoke({"messages": [{"role": "user", "content": QUESTION}]})
    return bool(called), str(result["messages"][-1].content)


def agents_sdk_run(base_url: str, model: str) -> tuple[bool, str]:
    from agents import Agent, OpenAIChatCompletionsModel, Runner, function_tool, set_tracing_disabled
    from openai import AsyncOpenAI

    set_tracing_disabled(True)
    called: list[str] = []

    @function_tool
    def weather(city: str) -> str:
        """The current weather in a city."""
        called.append(city)
        return get_weather(city)

    client = AsyncOpenAI(base_url=base_url, api_key="local")
    agent = Agent(
        name="assistant",
        instructions="Answer with the tools' results.",
        tools=[weather],
        model=OpenAIChatCompletionsModel(model=model, openai_client=client),
    )
    result = asyncio.run(Runner.run(agent, QUESTION, max_turns=5))
    return bool(called), str(result.final_output)


AI_SDK = """
import { generateText, tool, stepCountIs } from 'ai';
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { z } from 'zod';
const local = createOpenAICompatible({ name: 'localopen', baseURL: process.argv[2], apiKey: 'local' });
let called = false;
const { text } = await generateText({
  model: local(process.argv[3]),
  temperature: 0,
  tools: { weather: tool({
    description: 'The current weather in a city.',
    inputSchema: z.object({ city: z.string() }),
    execute: async ({ city }) => { called = true; return `${city}: FACT`; },
  }) },
  stopWhen: stepCountIs(5),
  prompt: process.argv[4],
});
console.log(JSON.stringify({ called, text }));
"""


def ai_sdk_run(folder: Path | None) -> Callable[[str, str], tuple[bool, str]] | None:
    if folder is None or not (folder / "node_modules" / "ai").is_dir():
        return None

    def run(base_url: str, model: str) -> tuple[bool, str]:
        script = folder / "agent_run.mjs"
        script.write_text(AI_SDK.replace("FACT", FACT))
        out = subprocess.run(
            ["node", str(script), base_url, model, QUESTION], cwd=folder, capture_output=True, text=True, timeout=600
        )
        if out.returncode != 0:
            raise RuntimeError(out.stderr.strip()[-500:])
        data = json.loads(out.stdout.strip().splitlines()[-1])
        return bool(data["called"]), str(data["text"])

    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path)
    parser.add_argument("--aisdk", type=Path, help="a folder where `npm install ai @ai-sdk/openai-compatible zod` ran")
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    frameworks: dict[str, Callable[[str, str], tuple[bool, str]] | None] = {
        "LangChain create_agent": langchain_run,
        "OpenAI Agents SDK": agents_sdk_run,
        "AI SDK generateText (stepCountIs 5)": ai_sdk_run(args.aisdk),
    }
    port = _free_port()
    with tempfile.TemporaryDirectory() as home:
        server = serve(args.model, port, Path(home))
        base_url, name = f"http://127.0.0.1:{port}/v1", args.model.stem
        try:
            print(f"| framework | run | tool called | grounded | seconds | final answer |\n|{'---|' * 6}")
            for label, run in frameworks.items():
                for i in range(args.runs):
                    if run is None:
                        print(f"| {label} | - | not installed | | | |")
                        break
                    start = time.perf_counter()
                    try:
                        called, text = run(base_url, name)
                    except Exception as exc:  # noqa: BLE001 - a framework's failure is a row, not the end
                        called, text = False, f"failed: {type(exc).__name__}: {exc}"
                    took = time.perf_counter() - start
                    short = " ".join(text.split())[:120].replace("|", "/")
                    print(f"| {label} | {i + 1} | {called} | {MARK in text} | {took:.0f} | {short} |", flush=True)
        finally:
            server.terminate()
            server.wait(30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
