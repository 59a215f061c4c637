"""LangChain adapter for sentence-transformers models, tuned for the machine it runs on."""

from __future__ import annotations

import copy
import functools
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.embeddings import Embeddings


@functools.cache
def cpu_has_native_bf16() -> bool:
    """Whether the CPU computes bfloat16 in hardware (AVX512-BF16 or AMX).

    There bf16 encodes 2-3x faster than float32, with vectors within cosine 0.998 of float32's.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


class SentenceTransformerEmbeddings(Embeddings):
    """A sentence-transformers model with L2-normalised vectors.

    It runs on the GPU in float16 when there is one, else on the CPU, in bfloat16 where the
    CPU supports it natively.
    """

    def __init__(
        self,
        source: str,
        batch_size: int = 32,
        device: str | None = None,
        query_prefix: str = "",
        passage_prefix: str = "",
    ) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = torch.float16 if device.startswith("cuda") else (torch.bfloat16 if cpu_has_native_bf16() else None)
        kwargs = {"model_kwargs": {"dtype": dtype}} if dtype else {}
        self._model: Any = SentenceTransformer(source, device=device, **kwargs)
        # Batches padded to a multiple of 64 tokens come in a handful of shapes, so the CPU
        # kernels compiled per shape are reused: without it memory grows with every new
        # length (0.8 GB more per 3,000 chunks) and encoding is a little slower.
        first = self._model[0]
        if hasattr(first, "processing_kwargs"):
            text = {**first.processing_kwargs.get("text", {}), "pad_to_multiple_of": 64}
            first.processing_kwargs = {**first.processing_kwargs, "text": text}
        # A fast tokenizer is not safe to share between threads (encoding switches its padding
        # on and off), and ingestion counts tokens in its reading thread while it embeds.
        self._counter = copy.deepcopy(self._model.tokenizer)
        self._counter_lock = threading.Lock()
        self.batch_size = batch_size
        self.query_prefix = query_prefix
        self.passage_prefix = passage_prefix
        self.device = device
        self.dtype = str(dtype or torch.float32).removeprefix("torch.")

    @property
    def max_tokens(self) -> int:
        """The longest input the model reads, special tokens included."""
        return int(self._model.max_seq_length)

    def count_tokens(self, text: str) -> int:
        """Tokens the model reads for ``text`` as a passage, special tokens included."""
        with self._counter_lock:
            encoded = self._counter(self.passage_prefix + text, add_special_tokens=True, verbose=False)
        return len(encoded["input_ids"])

    def _encode(self, texts: list[str], prefix: str) -> list[list[float]]:
        vectors = self._model.encode(
            [prefix + t for t in texts],
            batch_size=self.batch_size,
            convert_to_numpy=True,
            show_progress_bar=False,
        ).astype("float32")
        # Normalised in float32: a bf16 norm is only good to about three digits.
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return vectors.tolist()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed passages (sentence-transformers sorts them by length within the call)."""
        return self._encode(texts, self.passage_prefix)

    def embed_query(self, text: str) -> list[float]:
        """Embed a search query."""
        return self._encode([text], self.query_prefix)[0]
