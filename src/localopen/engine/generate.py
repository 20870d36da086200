"""The engine process answers: a conversation rendered by its template and fitted to the context,
its tokens evaluated (images through the projector), sampled under a grammar where one is asked,
streamed as answer, reasoning and tool-call pieces, with the answer's statistics."""

from __future__ import annotations

import codecs
import contextlib
import ctypes
import logging
import random
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from localopen.core.chat import template as chat_template
from localopen.core.chat import tool_calls
from localopen.core.chat.answer_stream import AnswerStream, reasoning_opened_by
from localopen.core.chat.tool_calls import ToolCallStream
from localopen.core.errors import LocalopenError
from localopen.core.options import AnswerOptions
from localopen.core.records import AnswerPiece, AnswerStats
from localopen.engine import backend_sampling, grammar
from localopen.engine.errors import (
    BadRequestError,
    ContextTooLongError,
    EngineError,
    NoTemplateError,
    TemplateError,
    TemplateOffer,
    ToolsUnsupportedError,
    VisionUnsupportedError,
)
from localopen.engine.protocol import Chat, PromptRead, Token
from localopen.engine.worker_state import WorkerState, utf8

log = logging.getLogger("localopen.engine")


def _tool_stream(fmt: str | None, tools: list[dict[str, Any]] | None) -> ToolCallStream | None:
    """The parser of this template's tool calls, when tools are offered (gpt-oss's harmony calls are
    read by the answer stream itself). Tools a template cannot offer are refused in words."""
    if not tools:
        return None
    problem = tool_calls.name_problem(tools)
    if problem is not None:
        raise BadRequestError(problem)
    if fmt is None:
        raise ToolsUnsupportedError(
            "This model's chat template does not offer tools to the model (it was not trained to call "
            "them): send no 'tools', or use a model whose template renders them."
        )
    if fmt == tool_calls.UNSUPPORTED:
        raise ToolsUnsupportedError(
            "This model's chat template offers tools in a call format localopen cannot read yet, so its "
            "calls would arrive as text: send no 'tools' to this model."
        )
    return None if fmt == tool_calls.HARMONY else ToolCallStream(tool_calls.FORMATS[fmt], tools)


def _check_grammar(gbnf: str, vocab: Any) -> None:
    """llama.cpp's parser on a grammar first: one it rejects is a BadRequestError, never a crash
    (module-level: `grammar` is also a local name in _chat)."""
    grammar.check(vocab, gbnf)


def _grammar(
    options: AnswerOptions, fmt: str | None, tools: list[dict[str, Any]] | None, vocab: Any, prompt: str
) -> Any:
    """A llama.cpp grammar for a JSON answer or a required tool call (after the reasoning the
    prompt opened, if it did), parsed by llama.cpp first; None to decode freely."""
    from llama_cpp import LlamaGrammar

    if options.json_schema is not None:
        gbnf = grammar.schema_gbnf(options.json_schema)
    elif tools and fmt is not None and options.tool_choice not in ("auto", "none"):
        gbnf = grammar.tool_call_gbnf(fmt, tools, options.tool_choice, options.parallel_calls)
    elif options.words_only:
        gbnf = grammar.WORDS_ONLY
    else:
        return None
    opened = reasoning_opened_by(prompt) if not options.raw else None
    if opened is not None:
        gbnf = grammar.after_reasoning(gbnf, opened[1])
    _check_grammar(gbnf, vocab)
    return LlamaGrammar.from_string(gbnf, verbose=False)


class _TimeUp(Exception):
    """A rendering ran past its limit."""


@contextlib.contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    """Interrupt pure-Python work that runs too long (a template's endless loop) with a timer signal,
    where the platform has one and this is the engine's main thread; elsewhere no limit applies."""
    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expired(_signum: int, _frame: Any) -> None:
        raise _TimeUp

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _lazy_grammar(
    options: AnswerOptions, fmt: str | None, tools: list[dict[str, Any]] | None, calls: ToolCallStream | None
) -> str | None:
    """tool_choice 'auto': the grammar a call is finished under once its opening marker is written."""
    if not tools or fmt is None or calls is None or options.tool_choice != "auto" or options.json_schema is not None:
        return None
    marker = next(iter(calls.fmt.start), "")
    return grammar.lazy_tool_call_gbnf(fmt, marker, tools)


def _reopened(fmt: str | None, marker: str, tools: list[dict[str, Any]] | None) -> str | None:
    """The lazy grammar from the marker a call was actually opened with (None: no grammar for it)."""
    return grammar.lazy_tool_call_gbnf(fmt or "", marker, tools or [])


def _loose_grammar(calls: ToolCallStream, tools: list[dict[str, Any]], vocab: Any) -> Any:
    """tool_choice 'auto': the grammar a call written as bare JSON (or in a ```json fence) is
    finished under once its opening names the start of an offered tool; None: not (yet) one."""
    from llama_cpp import LlamaGrammar

    opening = calls.loose_opening()
    try:
        gbnf = grammar.loose_call_gbnf(opening[0], opening[1], tools) if opening is not None else None
        if gbnf is None:
            return None
        _check_grammar(gbnf, vocab)
    except (BadRequestError, ToolsUnsupportedError):  # a schema no grammar expresses: read as written
        log.info("A call written outside the format is decoded without a grammar", exc_info=True)
        return None
    return LlamaGrammar.from_string(gbnf, verbose=False)


def _logit_bias(bias: dict[int, float], n_vocab: int) -> Any:
    """OpenAI's logit_bias as a logits processor (None without one); an unknown token id is refused."""
    if not bias:
        return None
    import numpy as np
    from llama_cpp import LogitsProcessorList

    wrong = [t for t in bias if not 0 <= t < n_vocab]
    if wrong:
        raise BadRequestError(f"logit_bias names token ids this model does not have: {wrong[:5]} (it has {n_vocab}).")
    ids = np.array(list(bias), dtype=np.intp)
    values = np.array(list(bias.values()), dtype=np.float32)

    def add_bias(_input_ids: Any, scores: Any) -> Any:
        scores[ids] += values
        return scores

    return LogitsProcessorList([add_bias])


def _token_logprobs(llm: Any, vocab: Any, token: int, top: int) -> dict[str, Any]:
    """OpenAI's logprobs entry for a generated token: its log probability under the model's
    distribution (before temperature and truncation), and the `top` likeliest tokens'."""
    import llama_cpp
    import numpy as np

    n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
    logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(n_vocab,))
    peak = float(logits.max())
    log_total = peak + float(np.log(np.exp(logits - peak).sum()))

    def entry(token_id: int) -> dict[str, Any]:
        raw = _piece(vocab, token_id)
        text = raw.decode("utf-8", errors="replace")
        return {"token": text, "logprob": float(logits[token_id]) - log_total, "bytes": list(raw)}

    out = entry(token)
    best = np.argpartition(-logits, top)[:top] if 0 < top < n_vocab else np.arange(0)
    out["top_logprobs"] = [entry(int(t)) for t in sorted(best, key=lambda t: -logits[t])]
    return out


def _piece(vocab: Any, token: int) -> bytes:
    """A token's bytes, control tokens included (AnswerStream decides what is shown)."""
    import llama_cpp

    size = 64
    while True:
        buf = ctypes.create_string_buffer(size)
        n = llama_cpp.llama_token_to_piece(vocab, token, buf, size, 0, True)
        if n >= 0:
            return buf.raw[:n]
        size = -n


class _AnswerClock:
    """When the stream's first token, its reasoning and its answer came, and how many tokens each had."""

    def __init__(self, start: float) -> None:
        self.start = start
        self.first: float | None = None
        self.first_reasoning: float | None = None
        self.first_answer: float | None = None
        self.last = start
        self.reasoning_tokens = 0
        self.answer_tokens_after_first = 0  # answer tokens after the first one that showed text

    def token(self, now: float) -> None:
        if self.first is None:
            self.first = now

    def attribute(self, pieces: list[AnswerPiece], in_reasoning: bool) -> None:
        """Count the last token: the kind of text it produced, or (none shown) the stream's state."""
        texts = [p for p in pieces if p.text]
        answer = any(not p.reasoning for p in texts) if texts else not in_reasoning
        if answer:
            if self.first_answer is not None:
                self.answer_tokens_after_first += 1
            elif texts:
                self.first_answer = self.last
        else:
            self.reasoning_tokens += 1
            if self.first_reasoning is None:
                self.first_reasoning = self.last

    def ms(self, moment: float | None) -> float | None:
        return round((moment - self.start) * 1000, 1) if moment is not None else None

    def reasoning_ms(self) -> float | None:
        if self.first_reasoning is None:
            return None
        return round(((self.first_answer or self.last) - self.first_reasoning) * 1000, 1)

    def stream_tps(self, n_tokens: int) -> float | None:
        """Tokens per second after the first, by the clock."""
        if self.first is None or self.last <= self.first or n_tokens < 2:
            return None
        return round((n_tokens - 1) / (self.last - self.first), 2)

    def answer_tps(self) -> float | None:
        if self.first_answer is None or self.last <= self.first_answer or not self.answer_tokens_after_first:
            return None
        return round(self.answer_tokens_after_first / (self.last - self.first_answer), 2)


class Generating(WorkerState):
    def _report_prompt(self, llm: Any) -> None:
        """The prompt's next evaluation (what the cache does not hold of it) done a batch at a time
        with a PromptRead after each, so a long prompt's wait can be shown; one batch says nothing."""
        evaluate = type(llm).eval.__get__(llm)

        def eval_reporting(tokens: list[int]) -> None:
            step = max(1, llm.n_batch)
            if len(tokens) <= step:
                evaluate(tokens)
                return
            for start in range(0, len(tokens), step):
                evaluate(tokens[start : start + step])
                self.send(PromptRead(min(len(tokens), start + step), len(tokens)))

        llm.eval = eval_reporting

    def _chat(self, request: Chat) -> AnswerStats:
        import llama_cpp
        from llama_cpp import LlamaGrammar

        self._require_model()
        llm = self.llm
        options = request.options
        choice, traits, switches, tools = self._prepare(request.template, options)
        calls = _tool_stream(traits.tool_format, tools)
        sampling = request.sampling
        n_ctx = llm.n_ctx()
        dropped, tokens, prompt, images = self._fit_messages(
            request.messages, choice, switches, sampling.max_tokens, n_ctx, options.drop_oldest, tools
        )
        rendered = prompt if choice.source is not None else ""
        grammar = _grammar(options, traits.tool_format, tools, llm._model.vocab, rendered)  # noqa: SLF001
        max_tokens = max(1, min(sampling.max_tokens, n_ctx - len(tokens)))
        stream = AnswerStream(
            [*sampling.stop, *choice.stop, *traits.end_markers],
            rendered,
            traits.harmony,
            reasoning=not options.raw,
            keep=calls.fmt.markers if calls is not None else (),
        )
        self._calls, self._n_calls = calls, 0
        self._logprobs = []
        llm.set_seed(sampling.seed if sampling.seed is not None else random.randrange(2**31))
        llama_cpp.llama_perf_context_reset(llm.ctx)  # the client cleared stop_event before sending
        drafter = llm.draft_model  # engine/drafting's Drafter, or None
        if drafter is not None:
            drafter.reset()
        vocab = llm._model.vocab  # noqa: SLF001 - token attributes and pieces
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        # Tokens whose text is never part of an answer (AnswerStream still sees reasoning tags among them).
        hidden = llama_cpp.LLAMA_TOKEN_ATTR_UNKNOWN | llama_cpp.LLAMA_TOKEN_ATTR_CONTROL
        clock = _AnswerClock(time.perf_counter())
        finish = "stop"
        n_gen = 0
        lazy = _lazy_grammar(options, traits.tool_format, tools, calls) if grammar is None else None
        if lazy is not None:
            _check_grammar(lazy, llm._model.vocab)  # noqa: SLF001
        # A call written outside the format may be finished under a grammar too (until one is used).
        loose = bool(tools) and calls is not None and grammar is None and options.tool_choice == "auto"
        loose = loose and options.json_schema is None
        generated: list[int] = []

        processors = _logit_bias(sampling.logit_bias, llama_cpp.llama_vocab_n_tokens(vocab))
        if sampling.seed is not None:
            # The same seed gives the same text whatever came before: the prompt is evaluated whole,
            # not partly from the cache (a split evaluation rounds differently).
            self._clear_cache()

        def generate(prefix: list[int], constraint: Any) -> Any:
            # The vocabulary cut in the graph where the host would choose the same (engine/backend_sampling).
            exact = constraint is None and processors is None and llm.draft_model is None
            cut = backend_sampling.candidates_needed(sampling, llm.last_n_tokens_size) if exact else None
            self.backend_sampler.use(llm.ctx, cut)
            return llm.generate(
                prefix,
                top_k=sampling.top_k,
                top_p=sampling.top_p,
                min_p=sampling.min_p,
                temp=sampling.temperature,
                repeat_penalty=sampling.repeat_penalty,
                frequency_penalty=sampling.frequency_penalty,
                presence_penalty=sampling.presence_penalty,
                logits_processor=processors,
                grammar=constraint,
            )

        try:
            self._abortable(True)
            if images:
                assert self.vision is not None
                special = self._special(prompt, choice.source is not None)
                tokens = self.vision.evaluate(llm, prompt, images, special, self._check_stop)
            self._report_prompt(llm)
            generator = generate(tokens, grammar)
            prompt_in = False
            while (token := next(generator, None)) is not None:
                if not prompt_in:
                    self._abortable(False)  # from here one token at a time
                    llm.__dict__.pop("eval", None)  # the class's own again: one token (or a draft) at a time
                    prompt_in = True
                # A stop request drops the token in hand: the stream ends within one token.
                if self.stop_event.is_set():
                    break
                clock.token(time.perf_counter())
                self._beat()
                if llama_cpp.llama_vocab_is_eog(vocab, token):
                    break  # the model ended its turn; the end token itself is never shown
                clock.last = time.perf_counter()
                n_gen += 1
                control = bool(llama_cpp.llama_vocab_get_attr(vocab, token) & hidden)
                if sampling.logprobs is not None and not control:
                    self._logprobs.append(_token_logprobs(llm, vocab, token, sampling.logprobs))
                pieces = stream.feed(decoder.decode(_piece(vocab, token)), control)
                self._send_pieces(pieces, stream, clock)
                if stream.stopped:
                    break
                if n_gen >= max_tokens:
                    finish = "length"
                    break
                generated.append(token)
                if lazy is not None and calls is not None and calls.state == "call":
                    # The model opened a call: the rest decodes under its grammar (the cache is reused),
                    # from the marker it wrote (a format may open a call in more than one way).
                    if calls.opened != calls.fmt.start[0]:
                        lazy = _reopened(traits.tool_format, calls.opened, tools)
                    if lazy is not None:
                        generator.close()
                        generator = generate(tokens + generated, LlamaGrammar.from_string(lazy, verbose=False))
                    lazy, loose = None, False
                elif loose and calls is not None and tools and calls.state == "loose":
                    finish_under = _loose_grammar(calls, tools, vocab)
                    if finish_under is not None:
                        generator.close()
                        generator = generate(tokens + generated, finish_under)
                        lazy, loose = None, False
            generator.close()
            self._send_pieces(stream.feed(decoder.decode(b"", final=True)) + stream.finish(), stream, clock)
            if calls is not None:
                self._send_pieces(calls.finish(), stream, clock, split=False)
            if self._logprobs:  # tokens whose text the stream held back (and then dropped)
                self.send(Token("", logprobs=self._logprobs))
                self._logprobs = []
        except RuntimeError as exc:
            if not self.stop_event.is_set():
                raise EngineError(f"Generation failed: {exc}") from exc
            self._clear_cache()  # llama_decode was aborted mid-prompt by the abort callback
        finally:
            llm.__dict__.pop("eval", None)
        if self.stop_event.is_set():
            finish = "cancelled"
        elif self._n_calls and finish == "stop":
            finish = "tool_calls"
        perf = llama_cpp.llama_perf_context(llm.ctx)
        prompt_tps = round(perf.n_p_eval / (perf.t_p_eval_ms / 1000), 2) if perf.t_p_eval_ms > 0 else None
        gen_tps = round(perf.n_eval / (perf.t_eval_ms / 1000), 2) if perf.t_eval_ms > 0 else None
        if llm.draft_model is not None:
            # llama.cpp counts a batch of drafts checked as prompt: the speeds come from the clock.
            prompt_tps, gen_tps = None, clock.stream_tps(n_gen)
        return AnswerStats(
            finish_reason=finish,
            prompt_tokens=len(tokens),
            prompt_tokens_evaluated=perf.n_p_eval if llm.draft_model is None else len(tokens),
            completion_tokens=n_gen,
            ttft_ms=clock.ms(clock.first),
            prompt_tps=prompt_tps,
            gen_tps=gen_tps,
            total_ms=clock.ms(time.perf_counter()) or 0.0,
            template=choice.name,
            dropped_messages=dropped,
            n_ctx=n_ctx,
            max_tokens=max_tokens,
            reasoning_tokens=clock.reasoning_tokens,
            tool_calls=self._n_calls,
            loose_tool_calls=calls.loose_count if calls is not None else 0,
            reasoning_ms=clock.reasoning_ms(),
            answer_ttft_ms=clock.ms(clock.first_answer),
            answer_tps=clock.answer_tps(),
            draft_proposed=drafter.proposed if drafter is not None else None,
            draft_accepted=drafter.accepted if drafter is not None else None,
            notice=drafter.stopped_why if drafter is not None else None,
        )

    def _prepare(
        self, template: str | None, options: AnswerOptions
    ) -> tuple[chat_template.TemplateChoice, chat_template.TemplateTraits, dict[str, Any], list[dict[str, Any]] | None]:
        """The template an answer uses, what it supports, its switches, and the tools it offers."""
        header, info = self.header, self.load_info
        assert header is not None and info is not None
        suggestion = chat_template.Suggestion(info.template_suggestion, info.template_suggestion_reason)
        try:
            choice = chat_template.choose(header.chat_template, template, suggestion)
        except chat_template.TemplateNotChosenError as exc:
            raise NoTemplateError(
                str(exc), TemplateOffer(chat_template.template_options(), suggestion.name, suggestion.reason)
            ) from exc
        except LocalopenError as exc:
            raise TemplateError(str(exc)) from exc
        traits = chat_template.traits(choice.source)
        switches = {}
        if traits.thinking_switch and options.thinking is not None:
            switches[traits.thinking_switch] = options.thinking
        tools = options.tools if options.tools and options.tool_choice != "none" and not options.raw else None
        if tools and traits.tool_format is None:
            _tool_stream(None, tools)  # refused in words
        return choice, traits, switches, tools

    def _send_pieces(
        self, pieces: list[AnswerPiece], stream: AnswerStream, clock: _AnswerClock, split: bool = True
    ) -> None:
        """Send the visible pieces (the answer's text split from its tool calls, when tools are
        offered); the token that produced them counts as reasoning or answer."""
        if split and self._calls is not None:
            pieces = [out for p in pieces for out in ([p] if p.reasoning else self._calls.feed(p.text))]
        for piece in pieces:
            # The log probabilities of the tokens so far (when asked) go with the next piece sent.
            logprobs = None
            if self._logprobs and (piece.text or piece.tool_call is not None):
                logprobs, self._logprobs = self._logprobs, []
            if piece.tool_call is not None:
                self._n_calls += 1
                self.send(Token("", False, piece.tool_call, logprobs))
            elif piece.text:
                self.send(Token(piece.text, piece.reasoning, logprobs=logprobs))
        clock.attribute(pieces, stream.in_reasoning)

    def _tokens_for(
        self,
        messages: list[dict[str, Any]],
        choice: chat_template.TemplateChoice,
        switches: dict[str, Any],
        tools: list[dict[str, Any]] | None = None,
        add_generation_prompt: bool = True,
    ) -> tuple[list[int], str, list[bytes]]:
        """The prompt's tokens (an image's positions as -1), its text and its images in order."""
        llm, info = self.llm, self.load_info
        assert info is not None
        messages, images = self._split_images(messages)
        try:
            with _time_limit(chat_template.RENDER_SECONDS):
                prompt = chat_template.render(
                    choice, messages, info.special_tokens, add_generation_prompt, switches, tools
                )
        except _TimeUp as exc:
            raise TemplateError(
                f"The model's chat template ran for more than {chat_template.RENDER_SECONDS:.0f} s and was "
                "stopped (it loops without end). Choose a known template instead."
            ) from exc
        except chat_template.TemplateRenderError as exc:
            raise TemplateError(str(exc)) from exc
        special = choice.source is not None
        if images:
            assert self.vision is not None
            return self.vision.tokens(prompt, images, self._special(prompt, special)), prompt, images
        with self._beating():  # megabytes of prompt take seconds
            tokens = llm.tokenize(utf8(prompt), add_bos=False, special=special)
        bos = llm.token_bos()
        if llm._model.add_bos_token() and bos >= 0 and (not tokens or tokens[0] != bos):  # noqa: SLF001
            tokens = [bos, *tokens]
        return tokens, prompt, images

    def _special(self, prompt: str, parse: bool) -> Any:
        """How a prompt with images is tokenized by libmtmd, as one without is here: the model's
        BOS added where the rendering does not begin with it."""
        from localopen.engine.vision import Special

        llm = self.llm
        bos = llm.token_bos()
        head = llm.tokenize(utf8(prompt[:64]), add_bos=False, special=parse)
        return Special(bool(llm._model.add_bos_token()) and bos >= 0 and head[:1] != [bos], parse)  # noqa: SLF001

    def _split_images(self, messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[bytes]]:
        """Messages whose content holds images ({"type": "image", "data": bytes} parts) as text
        with libmtmd's marker where each image goes, as llama.cpp's server renders them, and the
        images in order. A model without a projector refuses them in words."""
        if not any(isinstance(m.get("content"), list) for m in messages):
            return messages, []
        images: list[bytes] = []
        flat = []
        for message in messages:
            content = message.get("content")
            if not isinstance(content, list):
                flat.append(message)
                continue
            texts = []
            for part in content:
                if part.get("type") == "image":
                    if self.vision is None:
                        name = Path(self.llm.model_path).name
                        raise VisionUnsupportedError(
                            f"{name} reads text only: it was loaded without a vision projector (mmproj file), so "
                            "it cannot see images. Use a vision model with its projector, or send text."
                        )
                    from localopen.engine.vision import MARKER

                    images.append(part["data"])
                    texts.append(MARKER)
                else:
                    texts.append(str(part.get("text", "")))
            flat.append({**message, "content": "\n".join(texts)})
        return flat, images

    def _fit_messages(
        self,
        messages: list[dict[str, Any]],
        choice: chat_template.TemplateChoice,
        switches: dict[str, Any],
        max_tokens: int,
        n_ctx: int,
        drop_oldest: bool = True,
        tools: list[dict[str, Any]] | None = None,
    ) -> tuple[int, list[int], str, list[bytes]]:
        """Drop the oldest turns (never the system prompt) until prompt + answer fit the context
        (or, not drop_oldest, refuse); returns how many were dropped, the prompt's tokens, text and
        images."""
        kept = [dict(m) for m in messages]
        dropped = 0
        reserve = min(max_tokens, max(16, n_ctx // 4))
        while True:
            tokens, prompt, images = self._tokens_for(kept, choice, switches, tools)
            if len(tokens) + reserve <= n_ctx:
                return dropped, tokens, prompt, images
            removable = [i for i, m in enumerate(kept[:-1]) if m.get("role") != "system" and drop_oldest]
            if not removable:
                raise ContextTooLongError(
                    f"The message is too long for the context: {len(tokens)} tokens, and the context holds "
                    f"{n_ctx} (with room for the answer). Shorten it or load the model with a larger context.",
                    prompt_tokens=len(tokens),
                    n_ctx=n_ctx,
                )
            del kept[removable[0]]
            dropped += 1
