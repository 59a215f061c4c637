"""Runs a loaded model's generation, fast on GPUs: a static KV cache and a compiled decode step.

Plain ``generate`` re-dispatches every layer from Python for each new token and grows its KV
cache as it goes, so a 7B model decodes at a small fraction of what the GPU's memory allows.
On CUDA, for models that support it, the engine keeps one preallocated ``StaticCache`` (fixed
shapes: the decode step is compiled once and replayed as a CUDA graph) and warms it up while
the model loads. Every ``generate`` call of every engine runs on the process's one generation
thread: CUDA graphs recorded by ``torch.compile`` belong to the thread that recorded them, so
with a thread per engine every model after the first failed its warm-up and lost the fast
path; and the static cache serves one request at a time. Anything the
fast path cannot do (CPU, MPS, prompts longer than the cache, an unsupported model, a failed
warm-up) runs as plain dynamic-cache ``generate``.
"""

from __future__ import annotations

import concurrent.futures
import threading
from typing import Any

# Long enough for a grounded prompt (several chunks, a history) plus the answer; the cache
# costs 2 x layers x kv_heads x head_dim x 2 bytes per token (about 0.45 GB for Qwen2-7B).
MAX_CACHE_TOKENS = 8192
WARMUP_PROMPT_LENGTHS = (17, 100)

# Which path generation takes and why, by key (the Models page says it in the user's language:
# ui/text.py "models.engine.<key>"); in English for logs and the benchmark.
REASONS = {
    "fast": "static cache with compiled decoding",
    "not_requested": "not requested",
    "no_cuda": "compiled decoding needs a CUDA GPU (this model is on {detail})",
    "unsupported": "{detail} does not support a compiled static cache",
    "no_static_cache": "no static cache for this model ({detail})",
    "warmup_failed": "warm-up failed ({detail}); plain generation",
}

_thread: concurrent.futures.ThreadPoolExecutor | None = None
_thread_lock = threading.Lock()


def generation_thread() -> concurrent.futures.ThreadPoolExecutor:
    """The process's one generation thread (started on first use, kept for the process's life)."""
    global _thread
    with _thread_lock:
        if _thread is None:
            _thread = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="generate")
        return _thread


class Engine:
    """One model's generation worker; ``fast`` says whether the static-cache path is on, ``why``
    (a key of :data:`REASONS`, with its ``detail``) why or why not.
    """

    def __init__(self, model: Any, fast: bool = True) -> None:
        self.model = model
        self._worker = generation_thread()
        self._count_lock = threading.Lock()
        self._in_flight = 0
        self._cache: Any = None
        self._compile: Any = None
        self.max_cache_len = 0
        self.fast, self.why, self.detail = False, "not_requested", ""
        if fast:
            self._enable_fast_path()

    def _enable_fast_path(self) -> None:
        from transformers import CompileConfig, StaticCache

        model = self.model
        if model.device.type != "cuda":
            self.why, self.detail = "no_cuda", model.device.type
            return
        if not getattr(model, "_can_compile_fullgraph", False) or getattr(model, "hf_quantizer", None) is not None:
            self.why, self.detail = "unsupported", type(model).__name__
            return
        limit = getattr(model.config, "max_position_embeddings", MAX_CACHE_TOKENS) or MAX_CACHE_TOKENS
        self.max_cache_len = min(MAX_CACHE_TOKENS, limit)
        try:
            self._cache = StaticCache(config=model.config, max_cache_len=self.max_cache_len)
        except (ValueError, TypeError, RuntimeError) as exc:
            self.why, self.detail = "no_static_cache", str(exc)
            return
        self._compile = CompileConfig(fullgraph=True, dynamic=False, mode="reduce-overhead")
        self.fast, self.why = True, "fast"

    def submit(self, **kwargs: Any) -> concurrent.futures.Future:
        """Run ``model.generate(**kwargs)`` on the worker; the fast path is used when it fits."""
        with self._count_lock:
            self._in_flight += 1
        future = self._worker.submit(self._generate, kwargs)
        future.add_done_callback(self._finished)
        return future

    def _finished(self, _: concurrent.futures.Future) -> None:
        with self._count_lock:
            self._in_flight -= 1

    @property
    def reason(self) -> str:
        """Why generation takes the path it takes, in English."""
        return REASONS[self.why].format(detail=self.detail)

    @property
    def in_flight(self) -> int:
        """Generations submitted and not finished: the one running and those queued behind it."""
        return self._in_flight

    def _generate(self, kwargs: dict[str, Any]) -> Any:
        prompt = kwargs["input_ids"].shape[1]
        if self.fast and prompt + kwargs.get("max_new_tokens", 0) <= self.max_cache_len:
            self._cache.reset()  # in place: same tensors, so the recorded CUDA graph stays valid
            kwargs.update(past_key_values=self._cache, compile_config=self._compile)
            return self.model.generate(**kwargs)
        import torch

        # generate's own no_grad still tracks tensor versions and views for autograd, each op
        # of each token; inference mode skips that (4-5% of a CPU decode).
        with torch.inference_mode():
            return self.model.generate(**kwargs, disable_compile=True)

    def warm_up(self, vocab_size: int) -> None:
        """Compile and record the decode step now, so the first answer is fast.

        On failure the engine falls back to plain generation.
        """
        if not self.fast:
            return
        import torch

        try:
            for length in WARMUP_PROMPT_LENGTHS:
                ids = torch.randint(0, vocab_size, (1, length), device=self.model.device)
                self.submit(
                    input_ids=ids,
                    attention_mask=torch.ones_like(ids),
                    max_new_tokens=8,
                    min_new_tokens=8,
                    do_sample=False,
                ).result()
        except Exception as exc:  # noqa: BLE001 - any compile failure means: use the plain path
            self.fast, self._cache = False, None
            self.why, self.detail = "warmup_failed", type(exc).__name__
            self._worker.submit(torch._dynamo.reset).result()

    def close(self) -> None:
        """Drop the cache and the compiled code (after any generation already submitted)."""
        if self.fast:
            import torch

            # Compiled graphs and CUDA-graph memory pools belong to this model; without a reset
            # they stay in memory, and after a few model switches dynamo stops compiling.
            self._worker.submit(torch._dynamo.reset).result()
        else:
            self._worker.submit(lambda: None).result()  # wait for this engine's last generation
        self._cache = None
        self.model = None
