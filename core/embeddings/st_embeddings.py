"""LangChain adapter for sentence-transformers models, tuned for the machine it runs on."""

from __future__ import annotations

import contextlib
import copy
import functools
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.embeddings import Embeddings

# Threads for embedding one search query on the CPU. A question is 10-60 tokens: split over all
# cores, each thread gets a sliver of work and the OpenMP threads spend their time spinning at
# barriers, waiting for each other, the worse the busier the machine. Measured with
# multilingual-e5-small in bfloat16 on a busy 2-core machine (load 4-7), median of 50 questions:
# 1 thread 19-34 ms wall and 19-24 ms CPU per question; 2 threads (the default there) 52-1170 ms
# wall, 54-340 ms CPU, p90 1-2 s. So a query gets 1 thread; batches of passages (ingestion) keep
# the process default, which limiting a query does not touch (see cpu_threads).
QUERY_THREADS = 1
GPU_MIN_BATCH = 128
_threads_lock = threading.Lock()


@functools.cache
def cpu_has_native_bf16() -> bool:
    """Whether the CPU computes bfloat16 in hardware (AVX512-BF16 or AMX).

    There bf16 encodes 2-3x faster than float32, with vectors within cosine 0.998 of float32's.
    Linux reports it in /proc/cpuinfo; elsewhere PyTorch's own CPU check answers, if it has one.
    """
    if sys.platform.startswith("linux"):
        try:
            flags = Path("/proc/cpuinfo").read_text().split()
        except OSError:
            flags = []
        if flags:
            return "avx512_bf16" in flags or "amx_bf16" in flags
    try:
        import torch

        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except (ImportError, AttributeError, RuntimeError):
        return False


def gpu_batch_size(batch_size: int, device: str) -> int:
    """Texts per forward pass: at least ``GPU_MIN_BATCH`` on a GPU, where a small batch leaves it
    idle between launches (measured on an H200 with multilingual-e5-small in the ingestion job:
    the model's share 7.4-9.4 s at 32 a batch, 4.4 s at 128, 5.0 s at 256, for 12,422 chunks).

    >>> gpu_batch_size(32, "cpu"), gpu_batch_size(32, "cuda:0"), gpu_batch_size(512, "cuda")
    (32, 128, 512)
    """
    return max(batch_size, GPU_MIN_BATCH) if str(device).startswith("cuda") else batch_size


def embedding_dtype(device: str) -> str:
    """The precision an embedding model runs in on ``device``: float16 on a CUDA GPU (closer
    to float32 than bfloat16, and every CUDA GPU has it), bfloat16 on a CPU that computes it in
    hardware, float32 elsewhere (other CPUs, where bf16 is emulated and slower, and MPS).
    """
    if device.startswith("cuda"):
        return "float16"
    if device == "cpu" and cpu_has_native_bf16():
        return "bfloat16"
    return "float32"


@contextlib.contextmanager
def cpu_threads(count: int, default: int) -> Iterator[None]:
    """Run the block with ``count`` intra-op threads in this thread, then go back to ``default``.

    ``torch.set_num_threads`` sets the calling thread's OpenMP team size and the process-wide
    value that threads not yet started in PyTorch will take. A thread that already ran torch
    code (an ingestion job) keeps its own size, so limiting a query here does not starve it;
    the lock keeps two queries from restoring each other's value too early, and the process
    value is put back to ``default`` (captured when the model was built), not to whatever this
    thread saw. :meth:`SentenceTransformerEmbeddings.embed_documents` re-asserts ``default`` in
    its thread, in case that thread first met torch during a query.
    """
    import torch

    if count >= default:
        yield
        return
    with _threads_lock:
        torch.set_num_threads(count)
        try:
            yield
        finally:
            torch.set_num_threads(default)


class SentenceTransformerEmbeddings(Embeddings):
    """A sentence-transformers model with L2-normalised vectors.

    It runs on the GPU in float16 when there is one, else on the CPU, in bfloat16 where the
    CPU supports it natively. ``max_tokens`` (the catalog row's) caps the model's own limit.
    """

    backend = "torch"
    backend_reason = ""
    backend_note = ""

    def __init__(
        self,
        source: str,
        batch_size: int = 32,
        device: str | None = None,
        query_prefix: str = "",
        passage_prefix: str = "",
        max_tokens: int | None = None,
    ) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = getattr(torch, embedding_dtype(device))
        kwargs = {"model_kwargs": {"dtype": dtype}} if dtype != torch.float32 else {}
        self._model: Any = SentenceTransformer(source, device=device, **kwargs)
        limit = self._model.max_seq_length
        if max_tokens and (limit is None or max_tokens < limit):
            self._model.max_seq_length = max_tokens
        with _threads_lock:  # not while a query has lowered the process value
            self._threads = torch.get_num_threads()
        # Batches padded to a multiple of 64 tokens come in a handful of shapes, so the CPU
        # kernels compiled per shape are reused: without it memory grows with every new
        # length (0.8 GB more per 3,000 chunks) and encoding is a little slower.
        first = self._model[0]
        if hasattr(first, "processing_kwargs"):
            text = {**first.processing_kwargs.get("text", {}), "pad_to_multiple_of": 64}
            first.processing_kwargs = {**first.processing_kwargs, "text": text}
        # A fast tokenizer is not safe to share between threads (encoding switches its padding
        # on and off), and ingestion counts tokens in its reading thread while it embeds: counting
        # uses its own copy, made on first use.
        self._counter: Any = None
        self._counter_lock = threading.Lock()
        self.batch_size = gpu_batch_size(batch_size, device)
        self.query_prefix = query_prefix
        self.passage_prefix = passage_prefix
        self.device = device
        self.dtype = str(dtype).removeprefix("torch.")

    @property
    def max_tokens(self) -> int:
        """The longest input the model reads, special tokens included."""
        return int(self._model.max_seq_length)

    def count_tokens(self, text: str) -> int:
        """Tokens the model reads for ``text`` as a passage, special tokens included."""
        with self._counter_lock:
            if self._counter is None:
                self._counter = copy.deepcopy(self._model.tokenizer)
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

    def _full_threads(self) -> None:
        """Give this thread the process's default thread count back, should it have first run
        torch code while a query had lowered the process value (see :func:`cpu_threads`).
        """
        import torch

        if not self.device.startswith("cuda") and torch.get_num_threads() != self._threads:
            torch.set_num_threads(self._threads)

    def _query_threads(self) -> contextlib.AbstractContextManager[None]:
        if self.device.startswith("cuda"):
            return contextlib.nullcontext()
        return cpu_threads(QUERY_THREADS, self._threads)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed passages (sentence-transformers sorts them by length within the call)."""
        self._full_threads()
        return self._encode(texts, self.passage_prefix)

    def embed_query(self, text: str) -> list[float]:
        """Embed a search query, on few CPU threads (see ``QUERY_THREADS``)."""
        with self._query_threads():
            return self._encode([text], self.query_prefix)[0]
