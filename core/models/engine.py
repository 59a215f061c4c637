"""Runs a loaded model's generation, fast on GPUs: a static KV cache and a compiled decode step.

Plain ``generate`` re-dispatches every layer from Python for each new token and grows its KV
cache as it goes, so a 7B model decodes at a small fraction of what the GPU's memory allows.
On CUDA, for models that support it, the engine runs :class:`~core.models.decoder.StaticDecoder`
(a preallocated static cache and one compiled step per token, replayed as a CUDA graph) and
warms it up while the model loads. Every request of every engine runs on the process's one
generation thread: CUDA graphs recorded by ``torch.compile`` belong to the thread that recorded
them, so with a thread per engine every model after the first failed its warm-up and lost the
fast path; and the static cache serves one request at a time. Anything the fast path cannot do
(CPU, MPS, prompts longer than the cache, an unsupported model, a failed warm-up) runs as plain
dynamic-cache ``generate``.
"""

from __future__ import annotations

import concurrent.futures
import threading
from typing import Any

from core.models.decoder import Request, StaticDecoder, has_sliding_window_layers

# Long enough for a grounded prompt (several chunks, a history) plus the answer; the cache
# costs 2 x layers x kv_heads x head_dim x 2 bytes per token (about 0.45 GB for Qwen2-7B).
MAX_CACHE_TOKENS = 8192
WARMUP_PROMPT_LENGTHS = (17, 100)
WARMUP_NEW_TOKENS = 8

# Which path generation takes and why, by key (the Models page says it in the user's language:
# ui/text.py "models.engine.<key>"); in English for logs and the benchmark.
REASONS = {
    "fast": "static cache with compiled decoding",
    "not_requested": "not requested",
    "no_cuda": "compiled decoding needs a CUDA GPU (this model is on {detail})",
    "unsupported": "{detail} does not support a compiled static cache",
    "no_static_cache": "no static cache for this model ({detail})",
    "sliding_window": "its sliding-window layers would compile the decode step again at every token",
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
    (a key of :data:`REASONS`, with its ``detail``) why or why not; ``attention`` names the
    way of attending the fast path measured fastest at warm-up.
    """

    def __init__(self, model: Any, fast: bool = True) -> None:
        self.model = model
        self._worker = generation_thread()
        self._count_lock = threading.Lock()
        self._in_flight = 0
        self.decoder: StaticDecoder | None = None
        self.max_cache_len = 0
        self.fast, self.why, self.detail = False, "not_requested", ""
        if fast:
            self._enable_fast_path()

    def _enable_fast_path(self) -> None:
        model = self.model
        if model.device.type != "cuda":
            self.why, self.detail = "no_cuda", model.device.type
            return
        if not getattr(model, "_can_compile_fullgraph", False) or getattr(model, "hf_quantizer", None) is not None:
            self.why, self.detail = "unsupported", type(model).__name__
            return
        if has_sliding_window_layers(model.config):
            self.why = "sliding_window"
            return
        limit = getattr(model.config, "max_position_embeddings", MAX_CACHE_TOKENS) or MAX_CACHE_TOKENS
        self.max_cache_len = min(MAX_CACHE_TOKENS, limit)
        try:
            self.decoder = StaticDecoder(model, self.max_cache_len)
        except (ValueError, TypeError, RuntimeError) as exc:
            self.why, self.detail = "no_static_cache", str(exc)
            return
        self.fast, self.why = True, "fast"

    @property
    def attention(self) -> str:
        """How the fast path attends ("GROUPED", "SDPA_CUDNN_ATTENTION", …; "none" without it)."""
        return self.decoder.backend if self.decoder is not None else "none"

    def submit(self, request: Request) -> concurrent.futures.Future:
        """Run ``request`` on the worker; the future's result is the new token ids."""
        with self._count_lock:
            self._in_flight += 1
        future = self._worker.submit(self._generate, request)
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

    def _generate(self, request: Request) -> list[int]:
        prompt = request.input_ids.shape[1]
        if self.fast and prompt + request.max_new_tokens <= self.max_cache_len:
            return self.decoder.run(request)
        return plain_generate(self.model, request)

    def warm_up(self, vocab_size: int) -> None:
        """Choose the attention kernel, compile and record the decode step now (each reach's
        graph too), so the first answer is fast. On failure the engine falls back to plain
        generation.
        """
        if not self.fast:
            return
        import torch

        try:
            self._worker.submit(self.decoder.choose_attention).result()
            for length in WARMUP_PROMPT_LENGTHS + self.decoder.reach_openers(WARMUP_NEW_TOKENS):
                ids = torch.randint(0, vocab_size, (1, length), device=self.model.device)
                self.submit(Request(input_ids=ids, max_new_tokens=WARMUP_NEW_TOKENS, stop_ids=())).result()
        except Exception as exc:  # noqa: BLE001 - any compile failure means: use the plain path
            if self.decoder.grouped:
                self.model.set_attn_implementation("sdpa")  # the plain path as transformers runs it
            self.fast, self.decoder = False, None
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
        self.decoder = None
        self.model = None


class _TokenSink:
    """``generate``'s streamer interface, passing each new token id to ``on_token``."""

    def __init__(self, on_token: Any) -> None:
        self.on_token = on_token
        self.prompt = True

    def put(self, value: Any) -> None:
        if self.prompt:  # generate's first put is the prompt
            self.prompt = False
            return
        for token in value.reshape(-1).tolist():
            self.on_token(token)

    def end(self) -> None:
        pass


def plain_generate(model: Any, request: Request) -> list[int]:
    """``request`` through ``model.generate`` on a dynamic cache, uncompiled."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    cancel = request.cancel

    class _Cancelled(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **_: Any) -> Any:
            stop = cancel is not None and cancel.is_set()
            return torch.full((input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device)

    stops = list(request.stop_ids)
    params: dict[str, Any] = {
        "input_ids": request.input_ids,
        "attention_mask": torch.ones_like(request.input_ids),
        "max_new_tokens": request.max_new_tokens,
        "do_sample": request.temperature > 0,
        "repetition_penalty": request.repetition_penalty,
        # An empty list would fall back to the model's own eos; warm-ups and benches ask for none.
        "eos_token_id": stops or None,
        "pad_token_id": stops[0] if stops else 0,
        "stopping_criteria": StoppingCriteriaList([_Cancelled()]),
        "disable_compile": True,
    }
    if request.temperature > 0:
        params.update(temperature=request.temperature, top_p=request.top_p)
    else:
        params.update(temperature=None, top_p=None, top_k=None)
    if request.on_token is not None:
        params["streamer"] = _TokenSink(request.on_token)
    if not stops:
        params["min_new_tokens"] = request.max_new_tokens
    # generate's own no_grad still tracks tensor versions and views for autograd, each op
    # of each token; inference mode skips that (4-5% of a CPU decode).
    with torch.inference_mode():
        out = model.generate(**params)
    return out[0, request.input_ids.shape[1] :].tolist()
