"""The engine process loads a model: the header's checks first, the kernels the canary kept and
the CPU variant, llama.cpp's own load, its draft model and vision projector beside it, and what
llama.cpp reported (buffers per device, offloaded layers, kernels used)."""

from __future__ import annotations

import dataclasses
import logging
import platform
import re
import time
from pathlib import Path
from typing import Any

import psutil

from localopen.core.chat import template as chat_template
from localopen.core.errors import LocalopenError
from localopen.core.estimate.memory import ModelShape, estimate_memory
from localopen.core.gguf.files import parts_of
from localopen.core.gguf.header import GGUFHeader, read_header
from localopen.core.gguf.projector import pairing_problem, read_projector
from localopen.core.machine.hardware import physical_cores
from localopen.core.options import LoadOptions
from localopen.core.records import LoadInfo, MemoryFigures
from localopen.core.store.library_db import read_part_headers
from localopen.engine import cpu_kernels, cpu_variants, llama_log
from localopen.engine.bench_runner import ggml_type
from localopen.engine.errors import ModelLoadError
from localopen.engine.protocol import Checked, Load
from localopen.engine.threadpool import threadpool_for
from localopen.engine.worker_state import WorkerState

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
        if llama_log.is_memory_failure(line):  # "mmap failed: Cannot allocate memory" too: memory, never damage
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
    # Not the metadata llama.cpp lists as it reads (print_info: rope_finetuned = unknown is no error).
    listed = ("print_info:", "llama_model_loader: -", "load:")
    said = [ln.strip() for ln in lines if any(m in ln.lower() for m in marks) and not ln.strip().startswith(listed)]
    # "error loading model: REASON" carries the reason after its generic words.
    said = [ln.split("error loading model: ", 1)[1] if "error loading model: " in ln else ln for ln in said]
    specific = [ln for ln in said if ln and not any(g in ln.lower() for g in generic)]
    reason = (specific[-1] if specific else said[-1] if said else "no reason given").split(": ", 1)[-1]
    return ModelLoadError(f"{path.name} is damaged: llama.cpp rejects it ({reason}).", damaged=True)


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


class Loading(WorkerState):
    def _unload(self) -> None:
        if self._pool is not None:
            self._pool.detach()  # while the context still exists
        if self.vision is not None:
            self.vision.close()  # before the model it encodes for
            self.vision = None
        if self.llm is not None:
            self.backend_sampler.use(self.llm.ctx, None)  # detached and freed before its context goes
            self.backend_sampler.forget()
            try:
                _close(self.llm)
            except Exception:  # noqa: BLE001 - unloading must not fail; the process may end anyway
                log.exception("Closing the model failed")
        if self._pool is not None:
            self._pool.free()
        self.llm, self.header, self.path, self.load_info, self._pool = None, None, None, None, None

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
