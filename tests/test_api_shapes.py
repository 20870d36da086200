"""The server as a drop-in for other clients: the real anthropic, ollama and openai (Responses,
embeddings) clients on loopback, unmodified, against real llama.cpp and tiny scripted models."""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx2 as httpx
import ollama
import openai
import pytest

from localopen.app.context import AppContext
from localopen.core.options import LoadOptions
from localopen.core.store.library_db import import_file
from test_server import Running
from test_tool_use import CALL_SCRIPT, QWEN, SPECIAL, WEATHER

from tiny_gguf import N_EMBD, REASONING_SCRIPT, REASONING_SPECIAL, tiny_png, write_scripted_llama, write_tiny_llama

pytest.importorskip("llama_cpp")
QUESTION = "What is 2 + 2?"
PROMPT_TOOL = {
    "name": "get_weather",
    "description": "The weather in a city.",
    "input_schema": WEATHER["function"]["parameters"],
}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("shapes")
    return {
        "thinker": write_scripted_llama(folder / "thinker.gguf", REASONING_SCRIPT, REASONING_SPECIAL),
        "caller": write_scripted_llama(
            folder / "caller.gguf", CALL_SCRIPT, SPECIAL, chat_template=QWEN, context_length=4096
        ),
        # An embedding model: the file names a pooling of token vectors (mean), as embedding GGUFs do.
        "embedder": write_tiny_llama(folder / "embedder.gguf", chat_template=None, extra={"llama.pooling_type": 1}),
        "tiny": write_tiny_llama(folder / "tiny.gguf"),
    }


@pytest.fixture(scope="module")
def running(models: dict[str, Path]) -> Iterator[Running]:
    ctx = AppContext()
    for path in models.values():
        import_file(ctx.db, path)
    r = Running(ctx, options=LoadOptions(n_ctx=4096))
    yield r
    r.stop()


def base(running: Running) -> str:
    return f"http://127.0.0.1:{running.config.port}"


@pytest.fixture
def claude(running: Running) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=base(running), api_key="none", max_retries=0)


@pytest.fixture
def llama(running: Running) -> ollama.Client:
    return ollama.Client(host=base(running))


# --- Anthropic Messages ------------------------------------------------------------------------
def test_anthropic_message_has_thinking_then_text_and_usage(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(model="thinker", max_tokens=64, messages=[{"role": "user", "content": QUESTION}])
    assert [block.type for block in message.content] == ["thinking", "text"]
    assert message.content[0].thinking == "Adding two and two"
    assert message.content[1].text == "The answer is four."
    assert message.stop_reason == "end_turn" and message.role == "assistant"
    assert message.usage.output_tokens == 6 and message.usage.input_tokens > 5
    counted = claude.messages.count_tokens(model="thinker", messages=[{"role": "user", "content": QUESTION}])
    assert counted.input_tokens == message.usage.input_tokens


def test_anthropic_stream_sends_blocks_and_deltas_in_order(claude: anthropic.Anthropic) -> None:
    kinds = []
    with claude.messages.stream(
        model="thinker", max_tokens=64, system="Be brief.", messages=[{"role": "user", "content": QUESTION}]
    ) as stream:
        for event in stream:
            kinds.append(event.type)
        final = stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert kinds.count("content_block_start") == 2 and kinds.count("content_block_stop") == 2
    assert final.content[0].thinking == "Adding two and two" and final.content[1].text == "The answer is four."
    assert final.stop_reason == "end_turn" and final.usage.output_tokens == 6


def test_anthropic_max_tokens_ends_the_message_as_max_tokens(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(model="thinker", max_tokens=2, messages=[{"role": "user", "content": QUESTION}])
    assert message.stop_reason == "max_tokens" and message.usage.output_tokens == 2


def test_anthropic_tool_use_round_trip(claude: anthropic.Anthropic) -> None:
    ask = [{"role": "user", "content": "Weather in Paris?"}]
    message = claude.messages.create(model="caller", max_tokens=64, tools=[PROMPT_TOOL], messages=ask)
    assert message.stop_reason == "tool_use"
    use = next(block for block in message.content if block.type == "tool_use")
    assert use.name == "get_weather" and use.input == {"location": "Paris"}
    follow_up = [
        *ask,
        {"role": "assistant", "content": [block.model_dump() for block in message.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "Sunny, 21 °C"}]},
    ]
    again = claude.messages.create(model="caller", max_tokens=64, tools=[PROMPT_TOOL], messages=follow_up)
    # The turn was accepted; the scripted model calls again with the same arguments, a call the
    # conversation already answered: it is not returned (an agent loop would run it forever) and
    # the answer is words.
    assert again.stop_reason == "end_turn"
    assert [block.type for block in again.content] == ["text"]


def test_anthropic_errors_are_anthropic_error_objects(running: Running, claude: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError, match="not in this library"):
        claude.messages.create(model="no-such-model", max_tokens=8, messages=[{"role": "user", "content": "hi"}])
    reply = httpx.post(f"{base(running)}/v1/messages", json={"model": "thinker", "messages": []})
    assert reply.status_code == 400
    assert reply.json()["type"] == "error" and reply.json()["error"]["type"] == "invalid_request_error"
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}
    with pytest.raises(anthropic.BadRequestError, match="not a picture localopen can read"):
        claude.messages.create(model="thinker", max_tokens=8, messages=[{"role": "user", "content": [image]}])
    picture = base64.b64encode(tiny_png()).decode()
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": picture}}
    with pytest.raises(anthropic.BadRequestError, match="reads text only"):  # no projector beside it
        claude.messages.create(model="thinker", max_tokens=8, messages=[{"role": "user", "content": [image]}])


def test_anthropic_key_goes_in_x_api_key(models: dict[str, Path]) -> None:
    ctx = AppContext()
    import_file(ctx.db, models["thinker"])
    r = Running(ctx, api_key="s3cret")
    try:
        url = f"http://127.0.0.1:{r.config.port}"
        ask = {"model": "thinker", "max_tokens": 8, "messages": [{"role": "user", "content": QUESTION}]}
        with pytest.raises(anthropic.AuthenticationError):
            anthropic.Anthropic(base_url=url, api_key="wrong", max_retries=0).messages.create(**ask)
        message = anthropic.Anthropic(base_url=url, api_key="s3cret", max_retries=0).messages.create(**ask)
        assert message.usage.output_tokens > 0
    finally:
        r.stop()


# --- Ollama -------------------------------------------------------------------------------------
def test_ollama_lists_shows_and_reports_what_is_loaded(llama: ollama.Client) -> None:
    names = {m.model: m for m in llama.list().models}
    assert {"thinker:latest", "caller:latest", "embedder:latest", "tiny:latest"} <= set(names)
    assert names["tiny:latest"].details.family == "llama" and names["tiny:latest"].details.format == "gguf"
    shown = llama.show("embedder")
    assert shown.capabilities == ["embedding"] and shown.modelinfo["llama.pooling_type"] == 1
    thinker = llama.show("thinker:latest")
    assert "completion" in thinker.capabilities and "thinking" in thinker.capabilities
    assert "<think>" in thinker.template
    llama.chat(model="thinker", messages=[{"role": "user", "content": QUESTION}])
    running = {m.model: m for m in llama.ps().models}  # several models stay loaded as memory allows
    thinker_ps = running["thinker:latest"]
    assert thinker_ps.context_length == 512  # 4096 asked, capped at the model's training context
    assert thinker_ps.expires_at is not None and thinker_ps.size > 0  # the server's keep-alive runs
    assert names["thinker:latest"].details.parameter_size.endswith("K")  # a tiny model: thousands


def test_ollama_chat_whole_and_streamed(llama: ollama.Client) -> None:
    reply = llama.chat(model="thinker", messages=[{"role": "user", "content": QUESTION}], stream=False)
    assert reply.message.content == "The answer is four." and reply.message.thinking == "Adding two and two"
    assert reply.done and reply.done_reason == "stop" and reply.eval_count == 6 and reply.prompt_eval_count > 5
    parts = list(llama.chat(model="thinker:latest", messages=[{"role": "user", "content": QUESTION}], stream=True))
    assert "".join(p.message.content for p in parts) == "The answer is four."
    assert "".join(p.message.thinking or "" for p in parts) == "Adding two and two"
    assert parts[-1].done and parts[-1].eval_count == 6 and not any(p.done for p in parts[:-1])


def test_ollama_options_and_generate(llama: ollama.Client) -> None:
    short = llama.chat(model="thinker", messages=[{"role": "user", "content": QUESTION}], options={"num_predict": 2})
    assert short.done_reason == "length" and short.eval_count == 2
    raw = llama.generate(model="tiny", prompt="Once upon a time", raw=True, options={"num_predict": 5, "seed": 3})
    assert raw.done and raw.eval_count <= 5 and isinstance(raw.response, str)
    chatted = llama.generate(model="thinker", prompt=QUESTION)
    assert chatted.response == "The answer is four." and chatted.thinking == "Adding two and two"
    loaded = llama.generate(model="thinker")  # no prompt: Ollama's way to load a model
    assert loaded.done and loaded.done_reason == "load"
    with pytest.raises(ollama.ResponseError, match="Unsupported option"):
        llama.chat(model="thinker", messages=[{"role": "user", "content": "hi"}], options={"mirostat": 2})
    with pytest.raises(ollama.ResponseError, match="not found") as found:
        llama.chat(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
    assert found.value.status_code == 404


def test_ollama_tool_calls_carry_arguments_as_objects(llama: ollama.Client) -> None:
    reply = llama.chat(model="caller", messages=[{"role": "user", "content": "Weather in Paris?"}], tools=[WEATHER])
    call = reply.message.tool_calls[0]
    assert call.function.name == "get_weather" and call.function.arguments == {"location": "Paris"}


def test_ollama_embeddings_and_a_model_that_makes_none(llama: ollama.Client) -> None:
    result = llama.embed(model="embedder", input=["first text", "second text"])
    assert len(result.embeddings) == 2 and all(len(v) == N_EMBD for v in result.embeddings)
    assert all(math.isclose(math.hypot(*v), 1.0, rel_tol=1e-4) for v in result.embeddings)
    assert result.embeddings[0] != result.embeddings[1]
    with pytest.raises(ollama.ResponseError, match="makes no embeddings") as refused:
        llama.embed(model="tiny", input="hello")
    assert refused.value.status_code == 400


# --- OpenAI: embeddings and the Responses API -------------------------------------------------------
def test_openai_embeddings_in_both_encodings(running: Running) -> None:
    texts = ["a short text", "another one"]
    default = running.client.embeddings.create(model="embedder", input=texts)  # the client asks for base64
    floats = running.client.embeddings.create(model="embedder", input=texts, encoding_format="float")
    assert [d.index for d in default.data] == [0, 1] and len(default.data[0].embedding) == N_EMBD
    for a, b in zip(default.data, floats.data):
        assert all(math.isclose(x, y, rel_tol=1e-5, abs_tol=1e-7) for x, y in zip(a.embedding, b.embedding))
    assert default.usage.prompt_tokens > len(texts)
    with pytest.raises(openai.BadRequestError, match="makes no embeddings"):
        running.client.embeddings.create(model="tiny", input="hello")


def test_an_embedding_between_answers_leaves_the_chat_intact(running: Running, llama: ollama.Client) -> None:
    running.client.embeddings.create(model="embedder", input="x")
    reply = running.client.chat.completions.create(model="thinker", messages=[{"role": "user", "content": QUESTION}])
    assert reply.choices[0].message.content == "The answer is four."


def test_responses_api_answers_with_reasoning_and_usage(running: Running) -> None:
    response = running.client.responses.create(model="thinker", input=QUESTION, instructions="Be brief.")
    assert response.status == "completed" and response.output_text == "The answer is four."
    assert [item.type for item in response.output] == ["reasoning", "message"]
    assert response.output[0].content[0].text == "Adding two and two"
    assert response.usage.output_tokens == 6 and response.usage.output_tokens_details.reasoning_tokens == 3


def test_responses_api_streams_typed_events(running: Running) -> None:
    events = list(running.client.responses.create(model="thinker", input=QUESTION, stream=True))
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(1, len(events) + 1))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "The answer is four." and events[-1].response.output_text == text


def test_responses_api_function_calls_and_their_outputs(running: Running) -> None:
    tool = {"type": "function", **WEATHER["function"]}
    first = running.client.responses.create(model="caller", input="Weather in Paris?", tools=[tool])
    call = next(item for item in first.output if item.type == "function_call")
    assert call.name == "get_weather" and json.loads(call.arguments) == {"location": "Paris"}
    follow = [
        {"role": "user", "content": "Weather in Paris?"},
        {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": "Sunny, 21 °C"},
    ]
    again = running.client.responses.create(model="caller", input=follow, tools=[tool])
    assert again.status == "completed"
    with pytest.raises(openai.BadRequestError, match="previous_response_id"):
        running.client.responses.create(model="caller", input="hi", previous_response_id=first.id)


def test_each_request_record_names_its_api(running: Running, claude: anthropic.Anthropic, llama: ollama.Client) -> None:
    claude.messages.create(model="thinker", max_tokens=4, messages=[{"role": "user", "content": "hi"}])
    llama.chat(model="thinker", messages=[{"role": "user", "content": "hi"}], options={"num_predict": 2})
    running.client.responses.create(model="thinker", input="hi", max_output_tokens=4)
    assert running.finished_at("/v1/messages", 1)[-1].api == "Anthropic"
    assert running.finished_at("/api/chat", 1)[-1].api == "Ollama"
    assert running.finished_at("/v1/responses", 1)[-1].api == "OpenAI Responses"


@pytest.mark.parametrize(
    ("path", "body", "said"),
    [
        ("/v1/chat/completions", {"chat_template_kwargs": 5}, "'chat_template_kwargs' must be an object"),
        ("/api/chat", {"keep_alive": "nan"}, "'keep_alive' must be seconds"),  # the model then vanished from /api/ps
        ("/api/chat", {"keep_alive": "infs"}, "'keep_alive' must be seconds"),
        ("/api/generate", {"keep_alive": float("inf"), "prompt": "hi"}, "'keep_alive' must be seconds"),
    ],
)
def test_a_value_of_the_wrong_kind_is_a_400_in_words(running: Running, path: str, body: dict, said: str) -> None:
    request = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "stream": False, **body}
    reply = httpx.post(f"{base(running)}{path}", content=json.dumps(request, allow_nan=True))
    assert reply.status_code == 400, reply.text
    assert said in reply.text
    assert httpx.get(f"{base(running)}/api/ps").status_code == 200
