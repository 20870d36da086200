"""The engine process embeds: the context switched to embeddings for one request, pooled and normalised."""

from __future__ import annotations

import logging
import math
from pathlib import Path

from localopen.engine.errors import ContextTooLongError, EmbeddingsUnsupportedError
from localopen.engine.protocol import Embed, Embedded
from localopen.engine.worker_state import WorkerState, utf8

log = logging.getLogger("localopen.engine")


class Embedding(WorkerState):
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
                tokens = llm.tokenize(utf8(text), add_bos=True, special=False)
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
