"""The engine process: llama.cpp loaded and driven here, never in the app's process.

A malformed GGUF can abort the C++ side and memory only truly returns when a process ends,
so the app talks to this process through a pipe and survives whatever happens here.
"""

from __future__ import annotations

import codecs
import contextlib
import ctypes
import dataclasses
import logging
import math
import platform
import random
import re
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil

from localopen.core.chat import template as chat_template
from localopen.core.chat import tool_calls
from localopen.core.chat.answer_stream import AnswerStream
from localopen.core.chat.tool_calls import ToolCallStream
from localopen.core.errors import LocalopenError
from localopen.core.estimate.memory import ModelShape, estimate_memory
from localopen.core.gguf.files import parts_of
from localopen.core.gguf.header import GGUFHeader, read_header
from localopen.core.gguf.projector import pairing_problem, read_projector
from localopen.core.machine.hardware import physical_cores
from localopen.core.options import AnswerOptions, LoadOptions
from localopen.core.records import AnswerPiece, AnswerStats, LoadInfo, MemoryFigures
from localopen.core.store.library_db import read_part_headers
from localopen.engine import cpu_kernels, cpu_variants, grammar, llama_log
from localopen.engine.bench_runner import ggml_type, run_bench
from localopen.engine.errors import (
    BadRequestError,
    ContextTooLongError,
    EmbeddingsUnsupportedError,
    EngineError,
    ModelLoadError,
    NoTemplateError,
    TemplateError,
    TemplateOffer,
    ToolsUnsupportedError,
    VisionUnsupportedError,
)
from localopen.engine.protocol import (
    Bench,
    BenchDone,
    BenchProgress,
    Chat,
    Check,
    Checked,
    Done,
    Embed,
    Embedded,
    Error,
    Event,
    Load,
    Loaded,
    Render,
    Rendered,
    Request,
    Shutdown,
    Token,
    event_bytes,
)
from localopen.engine.threadpool import Threadpool, threadpool_for

log = logging.getLogger("localopen.engine")


# The special tokens GGUF names (tokenizer.ggml.<key>_token_id), by the names templates use.
SPECIAL_TOKEN_KEYS = {
    "unk_token": "unknown",
    "pad_token": "padding",
    "sep_token": "seperator",  # GGUF's spelling
    "cls_token": "cls",
    "mask_token": "mask",
}


def peak_rss() -> int | None:
    """This process's peak resident memory in bytes (VmHWM on Linux)."""
    try:
        if platform.system() == "Linux":
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        info = psutil.Process().memory_info()
        peak = getattr(info, "peak_wset", None)  # Windows
        if peak:
            return int(peak)
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # macOS: bytes
    except (OSError, ValueError, ImportError):
        return None


def _load_error(lines: list[str], path: Path) -> ModelLoadError:
    """What llama.cpp's log says of a failed load: damaged (the file itself is rejected), or this
    machine (memory) or this build (an architecture it does not know) cannot run it."""
    for line in reversed(lines):
        m = re.search(r"unknown model architecture: '([^']+)'", line)
        if m:
            return ModelLoadError(
                f"This llama.cpp build does not know the model architecture '{m.group(1)}' of {path.name}. "
                "Updating llama-cpp-python may add support."
            )
    for line in reversed(lines):
        low = line.lower()
        if "failed to allocate" in low or "unable to allocate" in low or "out of memory" in low:
            return ModelLoadError(f"Not enough memory to load {path.name}: {line.strip()}")
        if "not within the file bounds" in low or "tensor data" in low and "file" in low:
            return ModelLoadError(
                f"{path.name} is damaged: it is truncated or corrupt (its tensor data runs past the end of the file).",
                damaged=True,
            )
    # The weights loaded and the context could not be made: these settings, not the file (a
    # quantized cache whose block does not divide the head size, say).
    made = [ln.strip() for ln in lines if ln.strip().startswith("llama_init_from_model:")]
    if made and any(ln.strip().startswith("load_tensors:") for ln in lines):
        reason = made[-1].split(": ", 1)[-1]
        return ModelLoadError(
            f"llama.cpp loaded {path.name} but cannot make a context for it with these settings ({reason}). "
            "Change the setting it names (a KV-cache type, the context), then load again.",
            settings=True,
        )
    # llama.cpp's own words for what is wrong, not its generic last lines ("failed to load model").
    marks = ("error", "failed", "invalid", "duplicate", "wrong", "unknown", "unsupported", "mismatch")
    generic = ("failed to load model", "failed to read tensor info", "error loading model")
    said = [ln.strip() for ln in lines if any(m in ln.lower() for m in marks)]
    specific = [ln for ln in said if not any(g in ln.lower() for g in generic)]
    reason = (specific[-1] if specific else said[-1] if said else "no reason given").split(": ", 1)[-1]
    return ModelLoadError(f"{path.name} is damaged: llama.cpp rejects it ({reason}).", damaged=True)


class Worker:
    def __init__(self, conn: Any, stop_event: Any, pulse: Any = None) -> None:
        self.conn = conn
        self.stop_event = stop_event
        self.pulse = pulse  # time.monotonic() of the last progress, read by the parent (a stuck engine)
        self.llm: Any = None
        self.vision: Any = None  # engine/vision's Vision: the loaded model's projector, if any
        self.header: GGUFHeader | None = None
        self.path: Path | None = None
        self.load_info: LoadInfo | None = None
        self.capture = llama_log.install()
        self._abort_cb: Any = None  # the ctypes callback, kept alive while the context uses it
        self._pool: Threadpool | None = None  # the loaded context's threadpool
        self._request_id = 0
        self._calls: ToolCallStream | None = None  # the answer in progress's tool-call parser
        self._logprobs: list[dict[str, Any]] = []  # asked for: tokens' log probabilities not sent yet
        self._n_calls = 0

    def _beat(self) -> None:
        if self.pulse is not None:
            self.pulse.value = time.monotonic()

    def send(self, event: Event) -> None:
        """Send an event tied to the request being handled."""
        event.request_id = self._request_id
        self.conn.send_bytes(event_bytes(event))

    # -- loop ------------------------------------------------------------------------------------
    def serve(self) -> None:
        while True:
            try:
                request = self.conn.recv()
            except (EOFError, OSError):
                return  # the app went away: end quietly
            if isinstance(request, Shutdown):
                self._unload()
                return
            self._request_id = getattr(request, "request_id", 0)
            self._beat()
            try:
                self.handle(request)
            except (BrokenPipeError, ConnectionResetError):
                return  # the app went away while this answered: nobody is left to tell
            except EngineError as exc:
                self.send(Error(str(exc), exc.kind, exc.details()))
            except LocalopenError as exc:
                self.send(Error(str(exc), "error"))
            except Exception as exc:  # noqa: BLE001 - report, keep serving
                log.exception("Unexpected engine error while handling %s", type(request).__name__)
                self.send(Error(f"Unexpected engine error: {type(exc).__name__}: {exc}", "error"))

    def handle(self, request: Request) -> None:
        if isinstance(request, Load):
            self.send(Loaded(self._load(request)))
        elif isinstance(request, Chat):
            self.send(Done(self._chat(request)))
        elif isinstance(request, Render):
            self._require_model()
            choice, traits, switches, tools = self._prepare(request.template, request.options)
            add = request.add_generation_prompt
            tokens, prompt, _ = self._tokens_for(request.messages, choice, switches, tools, add)
            self.send(Rendered(prompt, len(tokens)))
        elif isinstance(request, Check):
            self.send(self._check(Path(request.path)))
        elif isinstance(request, Embed):
            self._require_model()
            self.send(self._embed(request))
        elif isinstance(request, Bench):
            self._require_model()
            assert self.load_info is not None
            results, aborted = run_bench(
                self.llm,
                request.params,
                self.stop_event,
                progress=lambda msg: self.send(BenchProgress(msg)),
                log_lines=self.capture.lines,
                # the weights as the load holds them (a repacked tensor's mapped pages once)
                weights=self.load_info.memory_actual.weights - self.load_info.memory_actual.mapped_repacked,
            )
            encoded = self._image_encode(request.params.reps) if results and not aborted else None
            for r in results:
                if encoded is not None:
                    r.image_encode_ms, r.image_tokens = encoded
                r.stamp_load(self.load_info)
                r.peak_rss_bytes = peak_rss()
            self.send(BenchDone(results, aborted))
        else:
            raise EngineError(f"Unknown request {type(request).__name__}.")

    # -- load ------------------------------------------------------------------------------------
    def _unload(self) -> None:
        if self._pool is not None:
            self._pool.detach()  # while the context still exists
        if self.vision is not None:
            self.vision.close()  # before the model it encodes for
            self.vision = None
        if self.llm is not None:
            try:
                _close(self.llm)
            except Exception:  # noqa: BLE001 - unloading must not fail; the process may end anyway
                log.exception("Closing the model failed")
        if self._pool is not None:
            self._pool.free()
        self.llm, self.header, self.path, self.load_info, self._pool = None, None, None, None, None

    def _require_model(self) -> None:
        if self.llm is None:
            raise ModelLoadError("No model is loaded.")

    def _load(self, request: Load) -> LoadInfo:
        import llama_cpp

        self._unload()
        path = Path(request.path).expanduser()
        # Clear errors for a missing file, a folder, not a GGUF, a truncated one; each part has its own header.
        part_headers = read_part_headers(path)
        header = part_headers[0]
        parts = parts_of(path)
        missing = [p.name for p in parts if not p.exists()]
        if missing:
            raise ModelLoadError(
                f"{path.name} is one part of a split model, and parts are missing: {', '.join(missing)}."
            )
        total_bytes = sum(h.tensor_bytes for h in part_headers)
        n_params = sum(h.n_params for h in part_headers)
        opts = request.options
        if header.context_length and opts.n_ctx > header.context_length:
            # Beyond its training context a model degrades; llama.cpp only warns, we cap.
            opts = dataclasses.replace(opts, n_ctx=header.context_length)
        shape = ModelShape.from_header(header, total_bytes)
        if opts.type_v not in ("f16", "f32", "bf16") and not opts.flash_attn:
            raise ModelLoadError(
                f"A {opts.type_v} V cache needs flash attention (llama.cpp quantizes V only with it): "
                "turn flash attention on, or keep the V cache at f16.",
                settings=True,
            )
        estimate = estimate_memory(shape, opts.n_ctx, **opts.memory_args())
        threads = opts.n_threads or physical_cores()
        self.capture.clear()
        _skip_llama_cpp_formatters()
        variant = cpu_variants.load(opts.cpu_variant)  # before anything asks llama.cpp for its devices
        allowed = cpu_kernels.restrict(opts.kernels)
        start = time.perf_counter()
        try:
            llm = _new_llama(path, opts, threads)
        except (ValueError, RuntimeError, OSError) as exc:
            raise _load_error(self.capture.lines, path) from exc
        try:
            llm.draft_model = self._drafter(llm, opts, threads)
            if llm.draft_model is not None:
                from localopen.engine.drafting import check_drafts

                check_drafts(llm, 1 + opts.draft_tokens)
            vision = self._projector(llm, header, opts, threads)
        except BaseException:
            _close(llm)
            raise
        load_ms = (time.perf_counter() - start) * 1000
        self.llm, self.header, self.path = llm, header, path
        self.vision, vision_facts = vision if vision is not None else (None, None)
        self._pool = threadpool_for(llm.ctx, max(threads, opts.n_threads_batch or threads))

        actual = llama_log.parse_memory(self.capture.lines)
        # GPU devices that hold buffers ("CUDA_Host" is pinned host memory, not the GPU).
        devices = [d for d in actual.by_device if not d.startswith("CPU") and not d.endswith("_Host")]
        offloaded = re.search(r"offloaded (\d+)/(\d+) layers to GPU", "\n".join(self.capture.lines))
        layers_on_gpu = int(offloaded.group(1)) if offloaded else 0
        gpu_kinds = sorted({re.sub(r"\d+$", "", d) for d in devices})
        backend = ",".join(gpu_kinds) if layers_on_gpu and gpu_kinds else "CPU"
        warning = None
        if opts.n_gpu_layers != 0 and not layers_on_gpu:
            warning = (
                "GPU offload was asked for, but this llama.cpp build has no GPU backend: running on the CPU."
                if not llama_cpp.llama_supports_gpu_offload()
                else "GPU offload was asked for, but no GPU device took any layer: running on the CPU."
            )
        suggestion = chat_template.suggest(
            header.architecture, str(header.get("tokenizer.ggml.pre", "")), lambda text: self._is_one_token(llm, text)
        )
        self.load_info = LoadInfo(
            path=str(path),
            name=header.name,
            architecture=header.architecture,
            quantization=header.quantization,
            n_params=n_params,
            weights_bytes=total_bytes,
            split_parts=len(parts),
            n_ctx=llm.n_ctx(),
            n_ctx_train=header.context_length,
            n_threads=threads,
            n_gpu_layers=opts.n_gpu_layers,
            gpu_layers_offloaded=f"{offloaded.group(1)}/{offloaded.group(2)}" if offloaded else "0",
            backend=backend,
            gpu_warning=warning,
            gpu_assist=bool(devices) and not layers_on_gpu,
            load_time_ms=round(load_ms, 1),
            has_chat_template=bool(header.chat_template),
            template_suggestion=suggestion.name,
            template_suggestion_reason=suggestion.reason,
            template_options=chat_template.template_options(),
            memory_actual=actual,
            memory_estimate=MemoryFigures(estimate.weights, estimate.kv_cache, estimate.compute, estimate.output),
            llama_cpp_version=getattr(llama_cpp, "__version__", "?"),
            system_info=llama_cpp.llama_print_system_info().decode(errors="replace").strip(),
            special_tokens=self._special_tokens(llm, header),
            thinking_switch=chat_template.traits(header.chat_template).thinking_switch,
            threadpool_threads=self._pool.n_threads if self._pool is not None else 0,
            vision=vision_facts,
            kernels=[name for name in allowed if name in actual.extra_buffers],
            cpu_variant=variant or "",
        )
        return self.load_info

    def _image_encode(self, reps: int) -> tuple[float, int] | None:
        """A vision model's time to encode the benchmark's picture: the median of reps encodings
        after one warm-up, and its tokens; None for a text model."""
        if self.vision is None:
            return None
        self.vision.encode_ms()  # warm-up: the first encoding allocates
        times, tokens = [], 0
        for _ in range(max(1, reps)):
            if self.stop_event.is_set():
                return None
            ms, tokens = self.vision.encode_ms()
            times.append(ms)
        times.sort()
        return round(times[len(times) // 2], 2), tokens

    def _projector(self, llm: Any, header: GGUFHeader, opts: LoadOptions, threads: int) -> Any:
        """The model's vision projector loaded beside it (engine/vision) with its facts, or None:
        the pairing is checked from both headers first (a wrong projector answers nonsense, not an
        error); its log lines are kept apart from the model's memory report."""
        if opts.mmproj is None:
            return None
        from localopen.engine.vision import Vision

        projector_path = Path(opts.mmproj)
        try:
            projector = read_projector(read_header(projector_path))
        except LocalopenError as exc:
            raise ModelLoadError(f"The vision projector: {exc}", settings=True) from exc
        problem = pairing_problem(projector, header, projector_path.name, Path(llm.model_path).name)
        if problem is not None:
            raise ModelLoadError(problem, settings=True)
        lines = list(self.capture.lines)
        try:
            vision = Vision(llm, projector_path, threads, opts.flash_attn, self.capture.lines)
            buffers = llama_log.parse_memory(self.capture.lines[len(lines) :])
        finally:
            self.capture.lines[:] = lines
        facts = {**projector.to_dict(), "projector": str(projector_path), "compute_bytes": buffers.compute}
        return vision, facts

    def _drafter(self, llm: Any, opts: LoadOptions, threads: int) -> Any:
        """Speculative decoding's drafter for this load (engine/drafting), or None: plain decoding.
        A draft model loads as the model does (context, threads, GPU layers, cache); its log
        lines are kept apart from the model's memory report."""

        from localopen.engine.drafting import make_drafter

        def load_draft(path: Path) -> Any:
            lines = list(self.capture.lines)
            self.capture.clear()
            try:
                return _new_llama(path, opts, threads)
            except (ValueError, RuntimeError, OSError) as exc:
                error = _load_error(self.capture.lines, path)
                raise ModelLoadError(f"The draft model: {error}", settings=True) from exc
            finally:
                self.capture.lines[:] = lines

        return make_drafter(opts.draft, opts.draft_tokens, llm, load_draft)

    @staticmethod
    def _special_tokens(llm: Any, header: GGUFHeader) -> dict[str, str]:
        """The special tokens a template may name, as transformers passes them (bos_token, …)."""
        import llama_cpp

        vocab = llm._model.vocab  # noqa: SLF001
        ids = {"bos_token": llm.token_bos(), "eos_token": llm.token_eos()}
        for name, key in SPECIAL_TOKEN_KEYS.items():
            value = header.get(f"tokenizer.ggml.{key}_token_id")
            if isinstance(value, int) and not isinstance(value, bool):
                ids.setdefault(name, value)
        n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
        out = {}
        for name, token in ids.items():
            if 0 <= token < n_vocab:
                raw = llama_cpp.llama_vocab_get_text(vocab, token)
                out[name] = raw.decode("utf-8", errors="replace") if raw else ""
        return out

    @staticmethod
    def _is_one_token(llm: Any, text: str) -> bool:
        return len(llm.tokenize(text.encode(), add_bos=False, special=True)) == 1

    def _check_stop(self) -> None:
        """Between pieces of a prompt: a stop asked ends it as an aborted evaluation does."""
        self._beat()
        if self.stop_event.is_set():
            raise RuntimeError("stopped while the prompt was evaluated")

    def _abortable(self, on: bool) -> None:
        """llama.cpp's abort callback, on while a prompt is evaluated (Stop ends a long prompt at
        once), off while tokens are generated: ggml calls it after every node of the graph, some
        400 Python calls a token, and between tokens the answer loop looks at the stop flag itself."""
        import llama_cpp

        if on and self._abort_cb is None:
            stop, beat = self.stop_event, self._beat

            @llama_cpp.ggml_abort_callback
            def _abort(_data: ctypes.c_void_p) -> bool:
                beat()  # a long prompt is progress too
                return bool(stop.is_set())

            self._abort_cb = _abort  # kept alive while the context may call it
        callback = self._abort_cb if on else llama_cpp.ggml_abort_callback()
        llama_cpp.llama_set_abort_callback(self.llm.ctx, callback, ctypes.c_void_p(0))

    def _check(self, path: Path) -> Checked:
        """llama.cpp's loader on the file, as a load would run it but mapped only (weights are not
        read or repacked, no context): duplicate or overlapping tensors, wrong shapes, unknown types
        and architectures are its to find. The header reader's checks come first, in plain words."""
        import llama_cpp

        read_part_headers(path)
        self.capture.clear()
        params = llama_cpp.llama_model_default_params()
        params.n_gpu_layers = 0
        params.use_mmap = True
        params.use_extra_bufts = False
        model = llama_cpp.llama_model_load_from_file(str(path).encode(), params)
        if not model:
            raise _load_error(self.capture.lines, path)
        llama_cpp.llama_model_free(model)
        return Checked(f"llama.cpp loads {path.name}.")

    # -- embeddings ------------------------------------------------------------------------------
    def _embed(self, request: Embed) -> Embedded:
        """Pooled embeddings, one text at a time, on the chat's own context switched to embeddings
        for the while (its cached prompt is dropped: the next answer evaluates its prompt again)."""
        import llama_cpp

        llm, name = self.llm, Path(self.llm.model_path).name
        pooling = llama_cpp.llama_pooling_type(llm.ctx)
        if pooling in (llama_cpp.LLAMA_POOLING_TYPE_NONE, llama_cpp.LLAMA_POOLING_TYPE_RANK):
            raise EmbeddingsUnsupportedError(
                f"{name} makes no embeddings: it is not an embedding model (its file names no pooling of "
                "token vectors). Use an embedding model, e.g. one whose name says 'embed'."
            )
        limit = min(llm.n_batch, llama_cpp.llama_n_ubatch(llm.ctx))
        n_embd = llm.n_embd()
        vectors, total = [], 0
        self._clear_cache()
        llama_cpp.llama_set_embeddings(llm.ctx, True)
        try:
            for i, text in enumerate(request.texts):
                tokens = llm.tokenize(_utf8(text), add_bos=True, special=False)
                if len(tokens) > limit:
                    if not request.truncate:
                        raise ContextTooLongError(
                            f"Input {i} is {len(tokens)} tokens; {name} embeds at most {limit} tokens at once.",
                            prompt_tokens=len(tokens),
                            n_ctx=limit,
                        )
                    tokens = tokens[:limit]
                total += len(tokens)
                llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(llm.ctx), True)
                llm._batch.reset()  # noqa: SLF001 - llama-cpp-python's own batch, as its embed() fills it
                llm._batch.add_sequence(tokens, 0, True)  # noqa: SLF001 - every token an output
                llm._ctx.decode(llm._batch)  # noqa: SLF001
                self._beat()
                vector = list(llama_cpp.llama_get_embeddings_seq(llm.ctx, 0)[:n_embd])
                norm = math.sqrt(sum(x * x for x in vector)) or 1.0
                vectors.append([x / norm for x in vector])
        finally:
            llama_cpp.llama_set_embeddings(llm.ctx, False)
            self._clear_cache()
        return Embedded(vectors, total)

    # -- chat ------------------------------------------------------------------------------------
    def _chat(self, request: Chat) -> AnswerStats:
        import llama_cpp
        from llama_cpp import LlamaGrammar

        self._require_model()
        llm = self.llm
        options = request.options
        choice, traits, switches, tools = self._prepare(request.template, options)
        calls = _tool_stream(traits.tool_format, tools)
        grammar = _grammar(options, traits.tool_format, tools, llm._model.vocab)  # noqa: SLF001
        sampling = request.sampling
        n_ctx = llm.n_ctx()
        dropped, tokens, prompt, images = self._fit_messages(
            request.messages, choice, switches, sampling.max_tokens, n_ctx, options.drop_oldest, tools
        )
        max_tokens = max(1, min(sampling.max_tokens, n_ctx - len(tokens)))
        stream = AnswerStream(
            [*sampling.stop, *choice.stop, *traits.end_markers],
            prompt if choice.source is not None else "",
            traits.harmony,
            reasoning=not options.raw,
            keep=calls.fmt.markers if calls is not None else (),
        )
        self._calls, self._n_calls = calls, 0
        self._logprobs = []
        llm.set_seed(sampling.seed if sampling.seed is not None else random.randrange(2**31))
        llama_cpp.llama_perf_context_reset(llm.ctx)  # the client cleared stop_event before sending
        drafter = llm.draft_model  # engine/drafting's CountingDrafter, or None
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
        generated: list[int] = []

        processors = _logit_bias(sampling.logit_bias, llama_cpp.llama_vocab_n_tokens(vocab))
        if sampling.seed is not None:
            # The same seed gives the same text whatever came before: the prompt is evaluated whole,
            # not partly from the cache (a split evaluation rounds differently).
            self._clear_cache()

        def generate(prefix: list[int], constraint: Any) -> Any:
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
            generator = generate(tokens, grammar)
            prompt_in = False
            while (token := next(generator, None)) is not None:
                if not prompt_in:
                    self._abortable(False)  # from here one token at a time
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
                    # The model opened a call: the rest decodes under its grammar (the cache is reused).
                    generator.close()
                    generator = generate(tokens + generated, LlamaGrammar.from_string(lazy, verbose=False))
                    lazy = None
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
            reasoning_ms=clock.reasoning_ms(),
            answer_ttft_ms=clock.ms(clock.first_answer),
            answer_tps=clock.answer_tps(),
            draft_proposed=drafter.proposed if drafter is not None else None,
            draft_accepted=drafter.accepted if drafter is not None else None,
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

    def _clear_cache(self) -> None:
        import llama_cpp

        self.llm.reset()
        llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(self.llm.ctx), True)

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
        tokens = llm.tokenize(_utf8(prompt), add_bos=False, special=special)
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
        head = llm.tokenize(_utf8(prompt[:64]), add_bos=False, special=parse)
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


def _grammar(options: AnswerOptions, fmt: str | None, tools: list[dict[str, Any]] | None, vocab: Any) -> Any:
    """A llama.cpp grammar for a JSON answer or a required tool call, parsed by llama.cpp first;
    None to decode freely."""
    from llama_cpp import LlamaGrammar

    if options.json_schema is not None:
        gbnf = grammar.schema_gbnf(options.json_schema)
    elif tools and fmt is not None and options.tool_choice not in ("auto", "none"):
        gbnf = grammar.tool_call_gbnf(fmt, tools, options.tool_choice, options.parallel_calls)
    elif options.words_only:
        gbnf = grammar.WORDS_ONLY
    else:
        return None
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


def _skip_llama_cpp_formatters() -> None:
    """localopen renders chat templates itself, sandboxed and with limits; llama-cpp-python would also
    compile every template in the file while loading it, without limits (a hostile template's
    constant, such as 7 ** 100000000, then hangs the load). Its formatters are never used here."""
    import llama_cpp.llama_chat_format as formats

    class _NotCompiled:
        def __init__(self, *_args: Any, **_kwargs: Any) -> None:
            pass

        def to_chat_handler(self) -> Any:
            return None

    formats.Jinja2ChatFormatter = _NotCompiled  # type: ignore[misc,assignment]


def _lazy_grammar(
    options: AnswerOptions, fmt: str | None, tools: list[dict[str, Any]] | None, calls: ToolCallStream | None
) -> str | None:
    """tool_choice 'auto': the grammar a call is finished under once its opening marker is written."""
    if not tools or fmt is None or calls is None or options.tool_choice != "auto" or options.json_schema is not None:
        return None
    marker = next(iter(calls.fmt.start), "")
    return grammar.lazy_tool_call_gbnf(fmt, marker, tools)


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


def _new_llama(path: Path, opts: LoadOptions, threads: int) -> Any:
    """llama-cpp-python's model and context as these options ask (a model, or its draft model)."""
    import llama_cpp

    return llama_cpp.Llama(
        model_path=str(path),
        n_ctx=opts.n_ctx,
        n_threads=threads,
        n_threads_batch=opts.n_threads_batch or threads,
        n_batch=opts.n_batch,
        n_ubatch=opts.n_ubatch,
        n_gpu_layers=opts.n_gpu_layers,
        use_mmap=opts.use_mmap,
        flash_attn=opts.flash_attn,
        type_k=ggml_type(opts.type_k),
        type_v=ggml_type(opts.type_v),
        swa_full=False,
        verbose=False,
    )


def _close(llm: Any) -> None:
    """A model and the draft model loaded beside it (prompt lookup has nothing to close)."""
    close_draft = getattr(llm.draft_model, "close", None)
    if close_draft is not None:
        close_draft()
    llm.close()


def _utf8(text: str) -> bytes:
    """Text as llama.cpp takes it; a lone surrogate (bytes that were not UTF-8, passed on by a
    terminal or a client) is refused in words."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise BadRequestError(
            "The text has characters that are not valid Unicode (bytes that are not UTF-8, such as a terminal "
            "set to another encoding sends): send it as UTF-8."
        ) from exc


def worker_main(conn: Any, stop_event: Any, pulse: Any = None) -> None:
    """Entry point of the engine process (started with the spawn method).

    llama.cpp's log goes to the engine's log file, never to the user's terminal.
    """
    import signal

    from localopen.core.logs import setup_logging
    from localopen.core.paths import app_paths

    # Ctrl+C in a terminal reaches the whole process group: the app decides what it stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    setup_logging(app_paths(), "engine.log")
    Worker(conn, stop_event, pulse).serve()
