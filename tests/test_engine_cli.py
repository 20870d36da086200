"""`localopen chat`, `bench` and `results` through the entry point, as a user runs them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from cli_helpers import exe, run

from tiny_gguf import write_tiny_llama

pytest.importorskip("llama_cpp")


def test_chat_once_json(tiny_gguf: Path) -> None:
    out = run("chat", str(tiny_gguf), "-p", "hi", "--max-tokens", "6", "--seed", "1", "--ctx", "256", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    for key in ("content", "finish_reason", "prompt_tokens", "completion_tokens", "ttft_ms", "prompt_tps", "gen_tps"):
        assert key in data
    assert data["finish_reason"] in ("length", "stop")
    assert data["completion_tokens"] == 6 if data["finish_reason"] == "length" else data["completion_tokens"] < 6
    assert out.stderr == ""  # nothing from llama.cpp leaks to the terminal


def test_chat_with_a_reasoning_model(tmp_path: Path) -> None:
    from tiny_gguf import REASONING_SCRIPT, REASONING_SPECIAL, write_scripted_llama

    path = write_scripted_llama(tmp_path / "thinker.gguf", REASONING_SCRIPT, REASONING_SPECIAL)
    data = json.loads(run("chat", str(path), "-p", "2+2?", "--ctx", "256", "--json").stdout)
    assert (data["reasoning"], data["content"]) == ("Adding two and two", "The answer is four.")
    assert data["reasoning_tokens"] == 3 and data["finish_reason"] == "stop"
    piped = run("chat", str(path), "-p", "2+2?", "--ctx", "256")
    # Piped: the answer alone on stdout, the thinking on stderr.
    assert piped.stdout.strip() == "The answer is four."
    assert "Adding two and two" in piped.stderr and "3 thinking" in piped.stderr
    quiet = run("chat", str(path), "-p", "2+2?", "--ctx", "256", "--no-thinking")
    assert quiet.stdout.strip() == "The answer is four." and "Adding" not in quiet.stderr


def test_chat_without_template_names_the_choices(tmp_path: Path) -> None:
    path = write_tiny_llama(tmp_path / "plain.gguf", chat_template=None)
    out = run("chat", str(path), "-p", "hi", "--ctx", "256")
    assert out.returncode == 1 and "--template" in out.stderr and "completion" in out.stderr
    assert "Traceback" not in out.stderr
    ok = run("chat", str(path), "-p", "hi", "--ctx", "256", "--template", "completion", "--max-tokens", "3", "--json")
    assert ok.returncode == 0 and json.loads(ok.stdout)["template"] == "completion"


def test_chat_bad_model_is_one_line(tmp_path: Path) -> None:
    fake = tmp_path / "fake.gguf"
    fake.write_text("not a model, just a note that is long enough to look like a file")
    out = run("chat", str(fake), "-p", "hi")
    assert out.returncode == 1 and "not a GGUF file" in out.stderr and "Traceback" not in out.stderr


def test_a_prompt_that_is_not_utf8_is_refused_in_words(tiny_gguf: Path) -> None:
    """Bytes from a terminal set to Latin-1 reach Python as lone surrogates: said, no traceback."""
    out = subprocess.run([*exe(), "chat", str(tiny_gguf), "-p", b"caf\xe9", "--ctx", "256"], capture_output=True)
    err = out.stderr.decode("utf-8", "replace")
    assert out.returncode == 1 and "not valid Unicode" in err and "Traceback" not in err


@pytest.mark.slow
def test_interactive_chat_ctrl_c_stops_answer_not_program(gemma_path: Path) -> None:
    proc = subprocess.Popen(
        [
            *exe(),
            "chat",
            str(gemma_path),
            "--template",
            "gemma",
            "--max-tokens",
            "3000",
            "--temperature",
            "1.0",
            "--seed",
            "0",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        proc.stdin.write("Tell me a long story.\n")
        proc.stdin.flush()
        time.sleep(4)
        os.killpg(proc.pid, signal.SIGINT)  # as a terminal does: the whole process group
        time.sleep(2)
        assert proc.poll() is None, "Ctrl+C must stop the answer, not the program"
        proc.stdin.write("/exit\n")
        proc.stdin.flush()
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert "stopped by you" in err and "Traceback" not in err
    assert out.strip()  # the partial answer was shown


@pytest.mark.slow
def test_bench_saves_results_and_lists_them(gemma_path: Path) -> None:
    out = run("bench", str(gemma_path), "-p", "32", "-n", "8", "-r", "2", "--json", timeout=300)
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert [r["test"] for r in rows] == ["pp32", "tg8"]
    for r in rows:
        for key in (
            "model_filename",
            "model_type",
            "model_size",
            "model_n_params",
            "backends",
            "n_threads",
            "n_batch",
            "n_ubatch",
            "n_gpu_layers",
            "n_prompt",
            "n_gen",
            "avg_ns",
            "stddev_ns",
            "avg_ts",
            "stddev_ts",
            "samples_ts",
            "test_time",
            "load_time_ms",
            "peak_rss_bytes",
            "sha256",
            "grade",
        ):
            assert key in r, key
        assert r["sha256"].startswith("a5fd3b62") and r["grade"] == "D"
        assert len(r["samples_ts"]) == 2 and r["avg_ts"] > 0
    assert rows[0]["ttft_ms"] > 0 and rows[0]["peak_rss_bytes"] > 200 * 2**20
    # Re-running adds results; nothing is overwritten.
    assert run("bench", str(gemma_path), "-p", "16", "-n", "4", "-r", "1", "--csv", timeout=300).returncode == 0
    listed = json.loads(run("results", "--json").stdout)
    assert len(listed) == 4 and len({r["id"] for r in listed}) == 4
    assert json.loads(run("results", "--model", "Gemma", "--json").stdout)
    assert json.loads(run("results", "--model", "nothing-like-this", "--json").stdout) == []
    md = run("results").stdout
    assert "| model |" in md and "pp32" in md and "tg8" in md


def test_serve_ends_cleanly_on_sigterm_with_a_client_waiting(tmp_path: Path) -> None:
    """SIGTERM (systemd, docker stop, kill) with a client still waiting for a long answer: the
    server stops that answer, ends its engine and exits 0 within seconds, with no traceback."""
    import socket

    import httpx2 as httpx

    from tiny_gguf import REASONING_SPECIAL, write_scripted_llama

    path = write_scripted_llama(
        tmp_path / "talker.gguf", [" and", " more"], REASONING_SPECIAL, loop=True, context_length=16384
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [*exe(), "serve", str(path), "--port", str(port), "--ctx", "16384"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        body = {"model": "talker", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16000}
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        answered: list[int] = []
        waiting = threading.Thread(target=lambda: answered.append(_wait_for(url, body)))  # waits for it all
        waiting.start()
        time.sleep(2)
        engines = [p for p in _children(proc.pid)]
        assert engines, "the model's engine runs"
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
        took = time.monotonic() - started
        waiting.join(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and took < 15
    assert "Traceback" not in err and "leaked" not in err
    assert answered == [503]  # the waiting client is told the server stopped, in OpenAI's error shape
    deadline = time.monotonic() + 5  # an engine notices its parent's end within a second
    while any(_alive(pid) for pid in engines) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in engines)


def _wait_for(url: str, body: dict) -> int:
    import httpx2 as httpx

    try:
        return httpx.post(url, json=body, timeout=120).status_code
    except httpx.HTTPError:
        return 0


def _children(pid: int) -> list[int]:
    import psutil

    return [child.pid for child in psutil.Process(pid).children(recursive=True)]


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_a_quantized_kv_cache_with_flash_attention_from_the_command_line(tiny_gguf: Path, tmp_path: Path) -> None:
    """--kv-type and --flash-attn reach the engine; a quantized V cache without flash attention, or
    one whose block does not divide the model's head size, is refused in words as a setting (the
    file is not called damaged, nor the model 'does not fit')."""
    wide = write_tiny_llama(tmp_path / "wide.gguf", n_embd=128, n_head=4, n_head_kv=4)  # heads of 32
    ok = run("chat", str(wide), "-p", "hi", "--max-tokens", "3", "--ctx", "256", "--kv-type", "q8_0",
             "--flash-attn", "on", "--json")  # fmt: skip
    assert ok.returncode == 0 and json.loads(ok.stdout)["completion_tokens"] <= 3, ok.stderr
    refused = run("chat", str(wide), "-p", "hi", "--ctx", "256", "--kv-type", "q4_0", "--flash-attn", "off")
    assert refused.returncode == 1 and "needs flash attention" in refused.stderr and "Traceback" not in refused.stderr
    # A preset carries the same choice for every later command; a flag still wins over it.
    assert run("preset", str(wide), "kv_cache_type", "q4_0").returncode == 0
    preset_refused = run("chat", str(wide), "-p", "hi", "--ctx", "256")
    assert preset_refused.returncode == 1 and "needs flash attention" in preset_refused.stderr
    assert run("chat", str(wide), "-p", "hi", "--ctx", "256", "--max-tokens", "2", "--flash-attn", "on").returncode == 0
    assert run("preset", str(wide), "flash_attn", "on").returncode == 0
    shown = json.loads(run("preset", str(wide), "--json").stdout)
    assert shown["preset"] == {"kv_cache_type": "q4_0", "flash_attn": True}
    assert run("chat", str(wide), "-p", "hi", "--ctx", "256", "--max-tokens", "2").returncode == 0
    narrow = run("chat", str(tiny_gguf), "-p", "hi", "--ctx", "256", "--kv-type", "q8_0", "--flash-attn", "on")
    assert narrow.returncode == 1 and "cannot make a context" in narrow.stderr and "damaged" not in narrow.stderr
    assert "does not divide" in narrow.stderr
    listed = json.loads(run("models", "--json").stdout)
    assert all(m["usable_here"] is None or m["usable_here"]["band"] != "does not fit" for m in listed)
    f16 = json.loads(run("info", str(tiny_gguf), "--ctx", "4096", "--json").stdout)
    q4 = json.loads(
        run("info", str(tiny_gguf), "--ctx", "4096", "--kv-type", "q4_0", "--flash-attn", "on", "--json").stdout
    )
    assert q4["fit"]["memory"]["kv_cache"] / f16["fit"]["memory"]["kv_cache"] == pytest.approx(0.28, abs=0.01)
    assert q4["fit_cache"] == {"type_k": "q4_0", "type_v": "q4_0", "flash_attn": True}
    assert set(q4["largest_context"]) == {"f16", "q8_0", "q4_0"}


@pytest.mark.slow
def test_prompt_lookup_drafting_gives_the_same_greedy_text(gemma_path: Path) -> None:
    """Speculative decoding with prompt lookup (--draft lookup) at temperature 0: the same text as
    plain decoding on a quoting task, where the drafts are long runs of the prompt."""
    prompt = (
        "Repeat this text exactly: The quick brown fox jumps over the lazy dog near the quiet river bank "
        "while the sun sets slowly behind the distant purple mountains and the birds sing their evening songs."
    )
    common = ["chat", str(gemma_path), "--template", "gemma", "--temperature", "0", "--repeat-penalty", "1.0"]
    common += ["--max-tokens", "80", "-p", prompt, "--json"]
    plain = run(*common, "--draft", "off", timeout=300)
    drafted = run(*common, "--draft", "lookup", timeout=300)
    assert plain.returncode == 0 and drafted.returncode == 0, drafted.stderr
    assert json.loads(drafted.stdout)["content"] == json.loads(plain.stdout)["content"]
    assert json.loads(plain.stdout)["completion_tokens"] == 80
