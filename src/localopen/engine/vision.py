"""Images into a model's context, inside the engine, through llama.cpp's libmtmd (the projector).

A prompt with images is rendered with libmtmd's marker where each image goes; libmtmd splits it
into text and image chunks (each image becomes the tokens its projector makes, between the
model's own image delimiters), the text is evaluated as tokens and each image as embeddings. In
llama-cpp-python's record of the context an image's positions hold -1, a token no text has, so
a later prompt reuses the cache only up to the first image.
"""

from __future__ import annotations

import ctypes
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import llama_cpp
import llama_cpp.mtmd_cpp as mtmd
import numpy as np

from localopen.engine import llama_log
from localopen.engine.errors import BadRequestError, ModelLoadError

log = logging.getLogger("localopen.engine.vision")

MARKER = mtmd.mtmd_default_marker().decode()
IMAGE_POSITION = -1  # what an image's positions hold among the context's tokens
BENCH_IMAGE_SIDE = 896  # the benchmark's standard image (Gemma 3's and SigLIP's input size)


class Vision:
    """A loaded projector beside a loaded model."""

    def __init__(self, llm: Any, projector: Path, threads: int, flash_attn: bool, log_lines: list[str]) -> None:
        llama_log.install_vision()
        params = mtmd.mtmd_context_params_default()
        params.use_gpu = True  # where the build has a GPU; a CPU build ignores it
        params.print_timings = False
        params.n_threads = threads
        params.flash_attn_type = (
            llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED if flash_attn else llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
        )
        seen = len(log_lines)
        self.ctx = mtmd.mtmd_init_from_file(str(projector).encode(), llm.model, params)
        if not self.ctx:
            raise ModelLoadError(_why(log_lines[seen:], projector, Path(llm.model_path)), settings=True)
        if not mtmd.mtmd_support_vision(self.ctx):
            self.close()
            raise ModelLoadError(f"{projector.name} is not a vision projector (it encodes no images).", settings=True)
        self.projector = projector

    def close(self) -> None:
        if self.ctx:
            mtmd.mtmd_free(self.ctx)
            self.ctx = None

    # -- a prompt with images -------------------------------------------------------------------
    def tokens(self, prompt: str, images: list[bytes], special: Special) -> list[int]:
        """The prompt's tokens as the context will hold them (an image's as IMAGE_POSITION), for
        its length; nothing is evaluated."""
        chunks = self._chunks(prompt, images, special)
        try:
            out: list[int] = []
            for i in range(mtmd.mtmd_input_chunks_size(chunks)):
                chunk = mtmd.mtmd_input_chunks_get(chunks, i)
                out += _chunk_tokens(chunk)
            return out
        finally:
            mtmd.mtmd_input_chunks_free(chunks)

    def evaluate(self, llm: Any, prompt: str, images: list[bytes], special: Special, check: Any) -> list[int]:
        """Evaluate the prompt, its images encoded, into the model's context from the start; the
        tokens as llama-cpp-python now records them (generate() then samples at once). check()
        between chunks raises to stop."""
        chunks = self._chunks(prompt, images, special)
        try:
            llm.reset()
            llm._ctx.kv_cache_clear()  # noqa: SLF001 - the context starts over with the images
            n = mtmd.mtmd_input_chunks_size(chunks)
            for i in range(n):
                check()
                chunk = mtmd.mtmd_input_chunks_get(chunks, i)
                if mtmd.mtmd_input_chunk_get_type(chunk) == mtmd.MTMD_INPUT_CHUNK_TYPE_TEXT:
                    llm.eval(_chunk_tokens(chunk))
                    continue
                start = llm.n_tokens
                n_past = llama_cpp.llama_pos(0)
                result = mtmd.mtmd_helper_eval_chunk_single(
                    self.ctx,
                    llm._ctx.ctx,
                    chunk,
                    start,
                    0,
                    llm.n_batch,
                    i == n - 1,
                    ctypes.byref(n_past),  # noqa: SLF001
                )
                if result != 0:
                    check()  # stopped: the abort callback ended the image's decoding
                    which = _image_index(chunks, i)
                    raise BadRequestError(f"The model could not read image {which} (libmtmd {result}).")
                llm.input_ids[start : n_past.value] = IMAGE_POSITION
                llm.n_tokens = n_past.value
            return [int(t) for t in llm.input_ids[: llm.n_tokens]]
        finally:
            mtmd.mtmd_input_chunks_free(chunks)

    def encode_ms(self, side: int = BENCH_IMAGE_SIDE) -> tuple[float, int]:
        """Encode one side x side image (a gradient): (milliseconds, the image's tokens)."""
        ramp = np.linspace(0, 255, side).astype(np.uint8)
        image = np.stack(np.broadcast_arrays(ramp[None, :], ramp[:, None], ramp[None, ::-1]), axis=-1)
        pixels = np.ascontiguousarray(image, dtype=np.uint8).tobytes()
        bitmap = mtmd.mtmd_bitmap_init(side, side, (ctypes.c_ubyte * len(pixels)).from_buffer_copy(pixels))
        chunks = mtmd.mtmd_input_chunks_init()
        try:
            text = _input_text(MARKER, Special(False, True))
            array = (mtmd.mtmd_bitmap_p_ctypes * 1)(bitmap)
            if mtmd.mtmd_tokenize(self.ctx, chunks, ctypes.byref(text), array, 1) != 0:
                raise BadRequestError("The benchmark image could not be prepared.")
            for i in range(mtmd.mtmd_input_chunks_size(chunks)):
                chunk = mtmd.mtmd_input_chunks_get(chunks, i)
                if mtmd.mtmd_input_chunk_get_type(chunk) == mtmd.MTMD_INPUT_CHUNK_TYPE_IMAGE:
                    start = time.perf_counter()
                    if mtmd.mtmd_encode_chunk(self.ctx, chunk) != 0:
                        raise BadRequestError("The projector could not encode the benchmark image.")
                    return (time.perf_counter() - start) * 1000, mtmd.mtmd_input_chunk_get_n_tokens(chunk)
            raise BadRequestError("The projector made no image of the benchmark image.")
        finally:
            mtmd.mtmd_input_chunks_free(chunks)
            mtmd.mtmd_bitmap_free(bitmap)

    def _chunks(self, prompt: str, images: list[bytes], special: Special) -> Any:
        bitmaps = []
        try:
            for i, data in enumerate(images, 1):
                buffer = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
                bitmap = mtmd.mtmd_helper_bitmap_init_from_buf(self.ctx, buffer, len(data), False)
                if not bitmap:
                    raise BadRequestError(
                        f"Image {i} could not be read: send a PNG, JPEG, GIF or BMP picture (its bytes, "
                        "or a data: URL with them)."
                    )
                bitmaps.append(bitmap)
            chunks = mtmd.mtmd_input_chunks_init()
            text = _input_text(prompt, special)
            array = (mtmd.mtmd_bitmap_p_ctypes * max(1, len(bitmaps)))(*bitmaps)
            result = mtmd.mtmd_tokenize(self.ctx, chunks, ctypes.byref(text), array, len(bitmaps))
            if result != 0:
                mtmd.mtmd_input_chunks_free(chunks)
                raise BadRequestError(
                    "The images could not be placed in the prompt (the chat template dropped an image's place)."
                    if result == 1
                    else f"The images could not be prepared (libmtmd {result})."
                )
            return chunks
        finally:
            for bitmap in bitmaps:
                mtmd.mtmd_bitmap_free(bitmap)


@dataclass(frozen=True)
class Special:
    """How the prompt's text is tokenized, as for a prompt without images: add the model's BOS
    (where the rendering has none), and read special tokens' text as those tokens."""

    add: bool
    parse: bool


def _input_text(prompt: str, special: Special) -> Any:
    text = mtmd.mtmd_input_text()
    data = prompt.encode("utf-8")
    text.text = data
    text.text_len = len(data)
    text.add_special = special.add
    text.parse_special = special.parse
    return text


def _chunk_tokens(chunk: Any) -> list[int]:
    if mtmd.mtmd_input_chunk_get_type(chunk) == mtmd.MTMD_INPUT_CHUNK_TYPE_TEXT:
        count = ctypes.c_size_t()
        pointer = mtmd.mtmd_input_chunk_get_tokens_text(chunk, ctypes.byref(count))
        return [pointer[j] for j in range(count.value)]
    return [IMAGE_POSITION] * mtmd.mtmd_input_chunk_get_n_tokens(chunk)


def _image_index(chunks: Any, upto: int) -> int:
    images = 0
    for i in range(upto + 1):
        if mtmd.mtmd_input_chunk_get_type(mtmd.mtmd_input_chunks_get(chunks, i)) != mtmd.MTMD_INPUT_CHUNK_TYPE_TEXT:
            images += 1
    return images


def _why(lines: list[str], projector: Path, model: Path) -> str:
    """libmtmd's reason for refusing a projector, in words naming both files."""
    text = "\n".join(lines)
    if "mismatch between text model" in text:
        return (
            f"The vision projector {projector.name} does not fit {model.name}: its embeddings are another width "
            "(it was made for another model). Use the projector (mmproj file) published with this model."
        )
    if "unknown projector type" in text:
        return f"{projector.name} is a projector of a kind this llama.cpp build does not know: update llama-cpp-python."
    return (
        f"llama.cpp could not load the vision projector {projector.name} for {model.name} (damaged, or not a "
        "projector): download it again, or use the one published with this model."
    )
