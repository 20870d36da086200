"""The OpenAI-compatible server on loopback, driven by the real `openai` client (and raw HTTP where
a client would never send such a request), with real llama.cpp and tiny models."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import openai
import pytest

from localopen.api.server import ApiApp, ServerConfig, ServerThread
from localopen.app.context import AppContext
from localopen.app.conversation.chat import ChatSession
from localopen.app.serving import ModelServer, RequestRecord
from localopen.core.errors import LocalopenError
from localopen.core.options import LoadOptions, SamplingParams
from localopen.core.store.library_db import import_file

from tiny_gguf import REASONING_SCRIPT, REASONING_SPECIAL, write_scripted_llama, write_tiny_llama

pytest.importorskip("llama_cpp")
USER = [{"role": "user", "content": "What is 2 + 2?"}]
OPTIONS = LoadOptions(n_ctx=512)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Running:
    def __init__(self, ctx: AppContext, api_key: str | None = None, options: LoadOptions = OPTIONS) -> None:
        self.records: list[RequestRecord] = []
        self.lock = threading.Lock()
        self.server = ModelServer(ctx, options, on_record=self._record)
        self.config = ServerConfig("127.0.0.1", free_port(), api_key)
        self.thread = ServerThread(ApiApp(self.server, self.config))
        self.thread.start()
        self.client = openai.OpenAI(base_url=self.config.base_url, api_key=api_key or "none", max_retries=0)

    def _record(self, record: RequestRecord) -> None:
        with self.lock:
            if record.status and record not in self.records:
                self.records.append(record)

    def finished(self) -> list[RequestRecord]:
        with self.lock:
            return list(self.records)

    def finished_at(self, endpoint: str, count: int, timeout: float = 10.0) -> list[RequestRecord]:
        """The records of an endpoint once `count` are in: a stream's record is written after its
        last byte went out, so a client can see its stream end before the server has logged it."""
        deadline = time.monotonic() + timeout
        while True:
            records = [r for r in self.finished() if r.endpoint == endpoint]
            if len(records) >= count or time.monotonic() > deadline:
                return records
            time.sleep(0.02)

    def stop(self) -> None:
        self.thread.stop()
        self.server.close()


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("served")
    return {
        "tiny": write_tiny_llama(folder / "tiny.gguf"),
        "thinker": write_scripted_llama(folder / "thinker.gguf", REASONING_SCRIPT, REASONING_SPECIAL),
    }


@pytest.fixture
def talker(tmp_path: Path) -> Iterator[Running]:
    """A server whose one model never stops talking (a scripted loop, a long context): answers
    last seconds, long enough to walk away from or to kill."""
    words = [" and", " then", " more", " words"]
    path = write_scripted_llama(tmp_path / "talker.gguf", words, REASONING_SPECIAL, loop=True, context_length=16384)
    ctx = AppContext()
    import_file(ctx.db, path)
    r = Running(ctx, options=LoadOptions(n_ctx=16384))
    yield r
    r.stop()


@pytest.fixture
def running(models: dict[str, Path]) -> Iterator[Running]:
    ctx = AppContext()
    for path in models.values():
        import_file(ctx.db, path)
    r = Running(ctx)
    yield r
    r.stop()


def test_models_are_listed_with_their_openness_grade(running: Running) -> None:
    listed = {m.id: m for m in running.client.models.list().data}
    assert set(listed) == {"tiny", "thinker"}
    assert listed["thinker"].model_extra["openness_grade"] in "ABCDEF"
    assert listed["thinker"].model_extra["loaded"] is False  # loaded on demand


def test_one_model_is_retrieved_by_its_id(running: Running) -> None:
    model = running.client.models.retrieve("tiny")
    assert model.id == "tiny" and model.object == "model"
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        running.client.models.retrieve("no-such-model")


def test_a_chat_completion_keeps_reasoning_apart_with_usage(running: Running) -> None:
    reply = running.client.chat.completions.create(model="thinker", messages=USER)
    message = reply.choices[0].message
    assert message.content == "The answer is four."
    assert message.model_extra["reasoning_content"] == "Adding two and two"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage.completion_tokens == 6 and reply.usage.prompt_tokens > 10
    assert reply.usage.completion_tokens_details.reasoning_tokens == 3
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + 6


def test_a_streamed_chat_completion_ends_with_usage(running: Running) -> None:
    stream = running.client.chat.completions.create(
        model="thinker", messages=USER, stream=True, stream_options={"include_usage": True}
    )
    content, reasoning, finish, usage = "", "", None, None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            content += choice.delta.content or ""
            reasoning += (choice.delta.model_extra or {}).get("reasoning_content") or ""
            finish = choice.finish_reason or finish
    assert (reasoning, content, finish) == ("Adding two and two", "The answer is four.", "stop")
    assert usage is not None and usage.completion_tokens == 6


def test_stop_strings_and_max_tokens(running: Running) -> None:
    reply = running.client.chat.completions.create(model="thinker", messages=USER, stop=[" is"])
    assert reply.choices[0].message.content == "The answer"
    cut = running.client.chat.completions.create(model="thinker", messages=USER, max_tokens=2)
    assert cut.choices[0].finish_reason == "length" and cut.usage.completion_tokens == 2


def test_plain_completions(running: Running) -> None:
    reply = running.client.completions.create(model="tiny", prompt="Once upon a time", max_tokens=5, seed=3)
    assert reply.choices[0].finish_reason in ("length", "stop") and reply.usage.completion_tokens <= 5
    assert reply.choices[0].text is not None


def test_the_api_and_the_chat_give_the_same_answer_for_the_same_seed(running: Running, models) -> None:
    reply = running.client.chat.completions.create(model="tiny", messages=USER, seed=11, max_tokens=24, temperature=0.9)
    session = ChatSession(AppContext())
    try:
        session.load(models["tiny"], OPTIONS)
        pieces: list = []
        session.answer(USER, SamplingParams(seed=11, max_tokens=24, temperature=0.9), None, pieces.append)
    finally:
        session.shutdown()
    assert reply.choices[0].message.content == "".join(p.text for p in pieces if not p.reasoning)


def test_errors_use_openais_object_and_status(running: Running) -> None:
    assert running.client.chat.completions.create(model="THINK", messages=USER).model == "thinker"  # part of an id
    with pytest.raises(openai.NotFoundError) as missing:
        running.client.chat.completions.create(model="no-such-model", messages=USER)
    assert missing.value.status_code == 404 and "no-such-model" in missing.value.message
    url = running.config.base_url + "/chat/completions"
    bad = httpx.post(url, content=b"{not json", headers={"Content-Type": "application/json"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_json"
    empty = httpx.post(url, json={"model": "tiny", "messages": []})
    assert empty.status_code == 400 and empty.json()["error"]["type"] == "invalid_request_error"
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    with pytest.raises(openai.BadRequestError, match="does not offer tools"):
        running.client.chat.completions.create(model="tiny", messages=USER, tools=tools)  # type: ignore[arg-type]
    from localopen.api.request_body import MAX_BODY

    huge = httpx.post(url, content=b"x" * (MAX_BODY + 1))
    assert huge.status_code == 413
    too_long = httpx.post(url, json={"model": "tiny", "messages": [{"role": "user", "content": "word " * 4000}]})
    assert too_long.status_code == 400 and too_long.json()["error"]["code"] == "context_length_exceeded"


def test_a_bad_api_key_is_refused(models: dict[str, Path]) -> None:
    ctx = AppContext()
    import_file(ctx.db, models["tiny"])
    r = Running(ctx, api_key="right-key")
    try:
        wrong = openai.OpenAI(base_url=r.config.base_url, api_key="wrong-key", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            wrong.models.list()
        assert [m.id for m in r.client.models.list().data] == ["tiny"]
    finally:
        r.stop()
    with pytest.raises(LocalopenError, match="--api-key"):
        ServerConfig("0.0.0.0", 8080).check()
    ServerConfig("0.0.0.0", 8080, api_key="k").check()


def test_sixteen_concurrent_streams_complete_in_order_of_arrival(running: Running) -> None:
    running.client.chat.completions.create(model="tiny", messages=USER, max_tokens=1)  # loaded
    done: list[int] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def stream(i: int) -> None:
        try:
            chunks = running.client.chat.completions.create(
                model="tiny", messages=USER, max_tokens=48, seed=i, stream=True
            )
            for _ in chunks:
                pass
            with lock:
                done.append(i)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = []
    for i in range(16):
        t = threading.Thread(target=stream, args=(i,))
        t.start()
        threads.append(t)
        time.sleep(0.03)  # a known order of arrival
    for t in threads:
        t.join(120)
    assert errors == [] and sorted(done) == list(range(16))
    served = running.finished_at("/v1/chat/completions", 17)[1:]
    assert [r.status for r in served] == [200] * 16
    # Finished in the order they arrived (ids count arrivals); every client got its whole stream.
    assert [r.id for r in served] == sorted(r.id for r in served)
    assert all(r.completion_tokens >= 1 for r in served)


def test_a_client_that_goes_away_stops_its_generation(talker: Running) -> None:
    running = talker
    url = running.config.base_url + "/chat/completions"
    body = {"model": "talker", "messages": USER, "max_tokens": 16000, "stream": True}
    with httpx.Client(timeout=30) as client, client.stream("POST", url, json=body) as response:
        lines = response.iter_lines()
        for _ in range(6):
            next(lines)
    # The connection is closed: the server stops that answer within a token and serves the next.
    deadline = time.monotonic() + 20
    while not any(r.status == 499 for r in running.finished()) and time.monotonic() < deadline:
        time.sleep(0.05)
    gone = [r for r in running.finished() if r.status == 499]
    assert gone and gone[0].completion_tokens < 16000
    reply = running.client.chat.completions.create(model="talker", messages=USER, max_tokens=3)
    assert reply.usage.completion_tokens == 3


def test_an_engine_killed_mid_request_fails_that_request_and_the_next_reloads(talker: Running) -> None:
    running = talker
    stream = running.client.chat.completions.create(model="talker", messages=USER, max_tokens=16000, stream=True)
    with pytest.raises(openai.APIError) as failed:
        for n, _chunk in enumerate(stream):
            if n == 3:
                os.kill(running.server.ctx.models.residents()[0].pid, signal.SIGKILL)
    assert "exited" in str(failed.value) or "killed" in str(failed.value) or "engine" in str(failed.value)
    reply = running.client.chat.completions.create(model="talker", messages=USER, max_tokens=3)
    assert reply.usage.completion_tokens == 3


def test_responses_never_show_local_paths(running: Running, tmp_path: Path) -> None:
    alien = write_tiny_llama(tmp_path / "alien.gguf", architecture="alienformer")
    import_file(running.server.ctx.db, alien)
    with pytest.raises(openai.InternalServerError) as failed:
        running.client.chat.completions.create(model="alien", messages=USER)
    assert "alien" in failed.value.message and str(tmp_path) not in failed.value.message
    assert "alienformer" in failed.value.message


def test_a_model_without_a_template_uses_the_servers_choice_never_a_guess(tmp_path: Path) -> None:
    plain = write_tiny_llama(tmp_path / "plain.gguf", chat_template=None)
    ctx = AppContext()
    import_file(ctx.db, plain)
    r = Running(ctx)
    try:
        with pytest.raises(openai.BadRequestError) as refused:
            r.client.chat.completions.create(model="plain", messages=USER, max_tokens=2)
        assert "no chat template" in refused.value.message and "--template" in refused.value.message
        assert r.client.completions.create(model="plain", prompt="Hi", max_tokens=2).usage.completion_tokens <= 2
    finally:
        r.stop()
    r = Running(ctx)
    r.server.template = "chatml"
    try:
        assert r.client.chat.completions.create(model="plain", messages=USER, max_tokens=2).choices
    finally:
        r.stop()


def test_a_client_that_leaves_a_non_streamed_request_frees_the_server(talker: Running) -> None:
    """A non-streamed answer whose client gave up stops within a token, as a streamed one does."""
    running = talker
    url = running.config.base_url + "/chat/completions"
    body = {"model": "talker", "messages": USER, "max_tokens": 16000}
    running.client.chat.completions.create(model="talker", messages=USER, max_tokens=1)  # loaded
    with pytest.raises(httpx.ReadTimeout), httpx.Client(timeout=httpx.Timeout(30, read=1.5)) as client:
        client.post(url, json=body)
    deadline = time.monotonic() + 20
    while not any(r.status == 499 for r in running.finished()) and time.monotonic() < deadline:
        time.sleep(0.05)
    gone = [r for r in running.finished() if r.status == 499]
    assert gone and gone[0].completion_tokens < 16000
    started = time.monotonic()
    reply = running.client.chat.completions.create(model="talker", messages=USER, max_tokens=3)
    assert reply.usage.completion_tokens == 3 and time.monotonic() - started < 10


def test_a_stream_that_fails_before_its_first_token_is_an_http_error(running: Running, tmp_path: Path) -> None:
    """No 200 with an error event inside: the status says it, with OpenAI's error object."""
    alien = write_tiny_llama(tmp_path / "alien.gguf", architecture="alienformer")
    import_file(running.server.ctx.db, alien)
    url = running.config.base_url + "/chat/completions"
    failed = httpx.post(url, json={"model": "alien", "messages": USER, "stream": True}, timeout=60)
    assert failed.status_code == 500 and "alienformer" in failed.json()["error"]["message"]
    with pytest.raises(openai.InternalServerError):
        running.client.chat.completions.create(model="alien", messages=USER, stream=True)
    long = [{"role": "user", "content": "word " * 4000}]
    too_long = httpx.post(url, json={"model": "tiny", "messages": long, "stream": True}, timeout=60)
    error = too_long.json()["error"]
    assert too_long.status_code == 400 and error["code"] == "context_length_exceeded"
    # OpenAI's own wording, which litellm and agents read to shorten a conversation.
    assert error["message"].startswith("This model's maximum context length is 512 tokens. However, your messages")


def test_what_a_web_page_could_send_is_refused(running: Running) -> None:
    """DNS rebinding (a foreign Host) and cross-site simple POSTs (text/plain with an Origin)."""
    base = running.config.base_url
    port = running.config.port
    assert httpx.get(base + "/models", headers={"Host": "evil.example"}).status_code == 403
    assert httpx.get(base + "/models", headers={"Host": f"evil.example:{port}"}).status_code == 403
    assert httpx.get(base + "/models", headers={"Host": f"localhost:{port}"}).status_code == 200
    assert httpx.get(base + "/models", headers={"Host": f"[::1]:{port}"}).status_code == 200
    body = b'{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}'
    url = base + "/chat/completions"
    cross = httpx.post(url, content=body, headers={"Origin": "https://evil.example", "Content-Type": "text/plain"})
    assert cross.status_code == 403 and cross.json()["error"]["code"] == "origin_not_allowed"
    as_json = {"Origin": "https://evil.example", "Content-Type": "application/json"}
    assert httpx.post(url, content=body, headers=as_json).status_code == 403
    plain = httpx.post(url, content=body, headers={"Content-Type": "text/plain"})
    assert plain.status_code == 415 and plain.json()["error"]["code"] == "unsupported_media_type"
    form = httpx.post(url, content=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert form.status_code == 415
    local_page = {"Origin": f"http://localhost:{port}", "Content-Type": "application/json"}
    assert httpx.post(url, content=body, headers=local_page).status_code == 200
    assert running.finished_at("/v1/chat/completions", 1)  # only the allowed request reached the model
    assert len(running.finished_at("/v1/chat/completions", 1)) == 1


def test_the_guard_allows_named_hosts_and_cors_origins() -> None:
    from localopen.api.guard import RequestGuard

    async def app(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        pass

    guard = RequestGuard(app, "127.0.0.1", allowed_hosts=["my-box.lan"], allowed_origins=["https://chat.example/"])
    assert guard.host_allowed("my-box.lan:8080") and guard.host_allowed("127.0.0.1:8080")
    assert guard.host_allowed("app.localhost") and not guard.host_allowed("127.0.0.1.evil.example")
    assert not guard.host_allowed(None) and not guard.host_allowed("[::1")
    assert guard.origin_allowed("https://chat.example", "127.0.0.1:8080")
    assert not guard.origin_allowed("null", "127.0.0.1:8080")
    assert not guard.origin_allowed("https://chat.example.evil", "127.0.0.1:8080")
    # Bound to every address (an API key is then required): the server cannot know its names.
    assert RequestGuard(app, "0.0.0.0").host_allowed("192.168.1.20:8080")


def test_hostile_request_bodies_are_400s_in_words(running: Running) -> None:
    url = running.config.base_url + "/chat/completions"
    headers = {"Content-Type": "application/json"}
    cases = {
        "stream": b'{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "stream": "no"}',
        "surrogate": b'{"model": "tiny", "messages": [{"role": "user", "content": "\\ud800"}]}',
        "deep": b"[" * 100_000 + b"]" * 100_000,
        "number": b'{"model": "tiny", "seed": ' + b"9" * 100_000 + b"}",
        "nested": b'{"model": "tiny", "x": ' + b"[" * 100 + b"]" * 100 + b"}",
    }
    for name, body in cases.items():
        reply = httpx.post(url, content=body, headers=headers, timeout=30)
        assert reply.status_code == 400, (name, reply.status_code, reply.text[:200])
        assert reply.json()["error"]["type"] == "invalid_request_error", name


def test_a_port_in_use_or_out_of_range_is_said_before_serving(running: Running) -> None:
    with pytest.raises(LocalopenError, match="1 to 65535"):
        ServerConfig("127.0.0.1", 99999).check()
    with pytest.raises(LocalopenError, match="another program"):
        ServerConfig("127.0.0.1", running.config.port).check_port_free()
    ServerConfig("127.0.0.1", free_port()).check_port_free()


# --- fidelity: nothing accepted and ignored -------------------------------------------------------------
def test_logit_bias_and_penalties_are_applied(running: Running) -> None:
    # Token 100 of the tiny byte vocabulary is "a" (three specials, then bytes): +100 makes it certain.
    biased = running.client.chat.completions.create(
        model="tiny", messages=USER, max_tokens=6, temperature=1.0, logit_bias={"100": 100}
    )
    assert biased.choices[0].message.content == "a" * 6
    with pytest.raises(openai.BadRequestError, match="does not have"):
        running.client.chat.completions.create(model="tiny", messages=USER, max_tokens=2, logit_bias={"99999": 5})
    plain = running.client.completions.create(model="tiny", prompt="abc", max_tokens=40, temperature=0)
    penalised = running.client.completions.create(
        model="tiny", prompt="abc", max_tokens=40, temperature=0, frequency_penalty=2.0, presence_penalty=2.0
    )
    assert plain.choices[0].text != penalised.choices[0].text


def test_a_seed_gives_the_same_answer_whatever_came_before(running: Running) -> None:
    ask = {"model": "tiny", "messages": USER, "max_tokens": 24, "temperature": 1.0, "seed": 5}
    first = running.client.chat.completions.create(**ask).choices[0].message.content
    running.client.completions.create(model="tiny", prompt="Something else entirely", max_tokens=8)
    assert running.client.chat.completions.create(**ask).choices[0].message.content == first


def test_echo_n_and_suffix(running: Running) -> None:
    echoed = running.client.completions.create(model="tiny", prompt="Once upon", max_tokens=4, echo=True)
    assert echoed.choices[0].text.startswith("Once upon")
    two = running.client.chat.completions.create(model="thinker", messages=USER, n=2, seed=1)
    assert [c.index for c in two.choices] == [0, 1]
    assert all(c.message.content == "The answer is four." for c in two.choices)
    assert two.usage.completion_tokens == 12  # both answers counted
    with pytest.raises(openai.BadRequestError, match="stream"):
        running.client.chat.completions.create(model="thinker", messages=USER, n=2, stream=True)
    with pytest.raises(openai.BadRequestError, match="fill-in-the-middle"):
        running.client.completions.create(model="tiny", prompt="def f(", suffix="    return x", max_tokens=4)


def test_log_probabilities_in_chat_and_completions(running: Running) -> None:
    reply = running.client.chat.completions.create(
        model="tiny", messages=USER, max_tokens=6, temperature=0, logprobs=True, top_logprobs=3
    )
    entries = reply.choices[0].logprobs.content
    assert len(entries) == reply.usage.completion_tokens
    assert "".join(e.token for e in entries) == reply.choices[0].message.content
    for e in entries:
        assert e.logprob <= 0 and len(e.top_logprobs) == 3
        assert [t.logprob for t in e.top_logprobs] == sorted((t.logprob for t in e.top_logprobs), reverse=True)
        assert e.token == e.top_logprobs[0].token  # greedy: the likeliest token is the one chosen
        assert bytes(e.bytes).decode("utf-8", "replace") == e.token
    streamed = running.client.chat.completions.create(
        model="tiny", messages=USER, max_tokens=6, temperature=0, logprobs=True, stream=True
    )
    seen = [e for chunk in streamed for c in chunk.choices if c.logprobs for e in c.logprobs.content]
    assert [e.token for e in seen] == [e.token for e in entries]  # the same answer, token by token
    old = running.client.completions.create(model="tiny", prompt="abc", max_tokens=5, temperature=0, logprobs=2)
    legacy = old.choices[0].logprobs
    assert "".join(legacy.tokens) == old.choices[0].text and len(legacy.top_logprobs[0]) == 2
    assert legacy.text_offset[0] == 0 and all(lp <= 0 for lp in legacy.token_logprobs)


def test_health_reports_an_engine_that_stopped_making_progress(talker: Running) -> None:
    """A hung engine (stopped here with SIGSTOP) makes /health a 503 that names the model; the
    requests in progress are shown to a client with the key only; it recovers when the engine does."""
    running = talker
    health = running.config.base_url.removesuffix("/v1") + "/health"
    stream = running.client.chat.completions.create(model="talker", messages=USER, max_tokens=16000, stream=True)
    chunks = iter(stream)
    for _ in range(4):
        next(chunks)
    ok = httpx.get(health, timeout=10)
    assert ok.status_code == 200 and ok.json()["running"][0]["model"] == "talker"
    assert ok.json()["running"][0]["silent_s"] < 5
    running.server.stuck_after_s = 1.0
    pid = running.server.ctx.models.residents()[0].pid
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(2.5)
        stuck = httpx.get(health, timeout=10)
        assert stuck.status_code == 503 and stuck.json()["status"] == "stuck"
        assert "'talker'" in stuck.json()["message"] and "no progress" in stuck.json()["message"]
    finally:
        os.kill(pid, signal.SIGCONT)
    # It answers again: progress, so healthy (the client may still be reading what was buffered).
    deadline = time.monotonic() + 20
    while httpx.get(health, timeout=10).status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert httpx.get(health, timeout=10).status_code == 200
    stream.close()


def test_shutdown_does_not_wait_for_clients_still_waiting(talker: Running) -> None:
    """Two clients wait for long non-streamed answers (one running, one queued): stopping the
    server ends both within seconds, the engine stops its answer, and nothing is left running."""
    running = talker
    url = running.config.base_url + "/chat/completions"
    body = {"model": "talker", "messages": USER, "max_tokens": 16000}
    running.client.chat.completions.create(model="talker", messages=USER, max_tokens=1)  # loaded
    outcomes: list[str] = []

    def wait_for_answer() -> None:
        try:
            outcomes.append(str(httpx.post(url, json=body, timeout=120).status_code))
        except httpx.HTTPError as exc:
            outcomes.append(type(exc).__name__)

    clients = [threading.Thread(target=wait_for_answer) for _ in range(2)]
    for client in clients:
        client.start()
    deadline = time.monotonic() + 20
    while not running.server.health().running and time.monotonic() < deadline:
        time.sleep(0.05)
    assert running.server.health().running
    started = time.monotonic()
    running.stop()
    for client in clients:
        client.join(30)
    assert time.monotonic() - started < 15
    assert len(outcomes) == 2 and "200" not in outcomes
    assert not running.server.ctx.models.residents()


def test_each_served_model_loads_with_its_own_preset(models: dict[str, Path]) -> None:
    """`localopen serve` without flags: a model with a preset loads as its preset says."""
    from localopen.app import presets

    ctx = AppContext()
    import_file(ctx.db, models["tiny"])
    presets.set_value(ctx, "tiny", "n_ctx", "256")
    r = Running(ctx)
    r.server.overrides = {"n_ctx": None, "n_threads": None, "n_gpu_layers": None, "kv_cache_type": None}
    try:
        r.client.chat.completions.create(model="tiny", messages=USER, max_tokens=2)
        assert [v.n_ctx for v in ctx.models.residents()] == [256]
    finally:
        r.stop()


def test_a_long_prompt_being_tokenised_is_progress_and_a_huge_one_is_refused_up_front(qwen_coder_05b: Path) -> None:
    """Megabytes of text take seconds to tokenise: /health stays healthy meanwhile and the count comes
    back (it was a 500 'did not answer in time' and a 503 'stuck'); text beyond what any context
    holds is refused at once with its size."""
    import threading

    ctx = AppContext()
    import_file(ctx.db, qwen_coder_05b)
    served = Running(ctx, options=LoadOptions(n_ctx=2048))
    try:
        base = served.config.base_url.removesuffix("/v1")
        served.server.stuck_after_s = 1.0
        model = served.client.models.list().data[0].id
        text = "words and more words, " * 150_000  # 3.3 million characters
        body = {"model": model, "max_tokens": 8, "messages": [{"role": "user", "content": text}]}
        small = {**body, "messages": [{"role": "user", "content": "hi"}]}
        assert httpx.post(f"{base}/v1/messages/count_tokens", json=small, timeout=120).status_code == 200  # loaded
        seen: list[int] = []
        done = threading.Event()

        def watch() -> None:
            while not done.is_set():
                seen.append(httpx.get(f"{base}/health", timeout=10).status_code)
                time.sleep(0.2)

        watcher = threading.Thread(target=watch)
        watcher.start()
        started = time.monotonic()
        try:
            counted = httpx.post(f"{base}/v1/messages/count_tokens", json=body, timeout=300)
        finally:
            done.set()
            watcher.join()
        took = time.monotonic() - started
        assert counted.status_code == 200, counted.text
        assert counted.json()["input_tokens"] > 500_000
        assert took > 1.0 and 503 not in seen, (took, seen)  # longer than 'stuck' allows, and never stuck
        huge = {**body, "messages": [{"role": "user", "content": "x" * 9_000_000}]}
        refused = httpx.post(f"{base}/v1/messages/count_tokens", json=huge, timeout=30)
        assert refused.status_code == 413 and "9.0 million characters" in refused.text
    finally:
        served.stop()
