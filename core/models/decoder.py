"""The fast path's decode loop: a static KV cache and one compiled step per token.

Why our own loop and not ``generate`` with a static cache and ``compile_config``: measured on an
H200 (Qwen2-7B shape, bf16), ``generate``'s compiled path decodes at ~105 tok/s, about 37% of the
memory-bandwidth bound, because each token runs its Python loop (logits processors, stopping
criteria, the streamer) between two GPU steps while the GPU waits. Here one CUDA graph does the
model's step *and* picks the token (repetition penalty, temperature, top-k, top-p, or argmax),
and the host reads token *n* while the GPU already computes token *n + 1*, as PyTorch's
reference decoder (gpt-fast) does. Each layer's q/k/v and gate/up projections run as one
product each (:mod:`core.models.fused_projections`), and each step attends only to the cache's
first places that can be filled at its position (its *reach*). It implements exactly the sampling
``generate`` applies for the parameters the chat model passes; anything else uses ``generate``.
"""

from __future__ import annotations

import bisect
import dataclasses
import inspect
import threading
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

from core.models.decode_attention import grouped_attention, use_grouped_decode_attention
from core.models.fused_projections import fuse_projections

# sdpa's kernels tried at warm-up (flash attention takes no mask, so it is not among them).
ATTENTION_BACKENDS = ("CUDNN_ATTENTION", "EFFICIENT_ATTENTION", "MATH")

# A step attends to the smallest reach (512, 1,024, 2,048, … places, each shorter than the
# cache) that holds its position, else to the whole cache. One compiled graph serves every reach
# (its length is a dynamic size; one CUDA graph is recorded per reach) and one the whole cache.
# Why the whole cache keeps a graph of its own, of fixed size: measured on an H200 (Qwen2-7B
# shape), the dynamic graph decoded 179 tok/s over 8,192 places against 190 for the fixed one,
# and 204 over 2,048 places; a fixed graph per reach would compile the model once per reach.
REACH_START = 512


def reach_sizes(max_cache_len: int) -> tuple[int, ...]:
    """The reaches of a cache of ``max_cache_len`` places, shortest first (the whole cache is
    not one of them).

    >>> reach_sizes(8192), reach_sizes(1024), reach_sizes(512)
    ((512, 1024, 2048, 4096), (512,), ())
    """
    sizes = []
    size = REACH_START
    while size < max_cache_len:
        sizes.append(size)
        size *= 2
    return tuple(sizes)


@dataclasses.dataclass
class Request:
    """One generation: the prompt's ids (shape ``[1, n]``, on the model's device) and how to go on.

    ``temperature`` 0 means greedy. ``on_tokens`` gets each new token id as it is known;
    ``cancel`` ends generation at the next token once set.
    """

    input_ids: Any
    max_new_tokens: int
    stop_ids: tuple[int, ...]
    temperature: float = 0.0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    on_token: Callable[[int], None] | None = None
    cancel: threading.Event | None = None


def pick(logits: Any, seen: Any, penalty: Any, temperature: Any, top_p: Any, top_k: int) -> Any:
    """The next token from ``logits`` (shape ``[1, vocab]``, float32), as ``generate`` picks it.

    In ``generate``'s order: the repetition penalty on every token already in the text, then
    (when ``temperature`` > 0) temperature, top-k and top-p, and a draw; else the argmax.
    Branch-free on tensors, so one compiled graph serves greedy and sampled requests alike.
    """
    import torch

    logits = torch.where(seen, torch.where(logits < 0, logits * penalty, logits / penalty), logits)
    greedy = logits.argmax(dim=-1)
    scaled = logits / torch.clamp(temperature, min=1e-5)
    # After top-k only k tokens are left, so top-p sorts those k and not the whole vocabulary.
    if top_k:
        candidates, ids = torch.topk(scaled, top_k, dim=-1)
    else:
        candidates, ids = torch.sort(scaled, descending=True, dim=-1)
    # generate's TopPLogitsWarper, on the candidates in descending order: drop the tokens whose
    # ascending cumulative probability stays <= 1 - top_p, always keeping the most likely one.
    ascending = candidates.flip(-1).softmax(dim=-1).cumsum(dim=-1).flip(-1)
    drop = ascending <= 1 - top_p
    drop[..., :1] = False
    candidates = candidates.masked_fill(drop, float("-inf"))
    # A draw from softmax(candidates) without a host sync: argmax of p / Exp(1) (the Gumbel trick).
    noise = torch.empty_like(candidates).exponential_(1)
    sampled = ids.gather(-1, (candidates.softmax(dim=-1) / noise).argmax(dim=-1, keepdim=True)).squeeze(-1)
    return torch.where(temperature > 0, sampled, greedy)


def sampling_top_k(generation_config: Any, vocab: int) -> int:
    """The top-k ``generate`` samples with for this model (0: none): the model's own, else
    transformers' default (50), as ``generate`` fills an unset one.

    >>> from transformers import GenerationConfig
    >>> [sampling_top_k(GenerationConfig(top_k=k), 1000) for k in (None, 20, 0, 5000)]
    [50, 20, 0, 0]
    """
    from transformers import GenerationConfig

    top_k = getattr(generation_config, "top_k", None)
    if top_k is None:
        top_k = GenerationConfig._get_default_generation_params().get("top_k") or 0
    return top_k if top_k < vocab else 0


class StaticDecoder:
    """A model's static cache, its compiled decode step and the loop that runs them on CUDA."""

    def __init__(self, model: Any, max_cache_len: int) -> None:
        import torch
        from transformers import StaticCache

        self.model = model
        self.max_cache_len = max_cache_len
        self.cache = StaticCache(config=model.config, max_cache_len=max_cache_len)
        device = model.device
        vocab = model.config.vocab_size
        self.top_k = sampling_top_k(getattr(model, "generation_config", None), vocab)
        # The step's inputs live at fixed addresses, so the recorded graph reads them in place.
        self.token = torch.zeros((1, 1), dtype=torch.long, device=device)
        self.position = torch.zeros((1,), dtype=torch.long, device=device)
        self.seen = torch.zeros((1, vocab), dtype=torch.bool, device=device)
        self.knobs = torch.ones((3,), dtype=torch.float32, device=device)  # penalty, temperature, top_p
        # Only their lengths are read: how many places of the cache a step attends to.
        sizes = reach_sizes(max_cache_len)
        self.reaches = {size: torch.empty((size,), dtype=torch.int8, device=device) for size in sizes}
        for tensor in (self.token, self.position, self.seen, self.knobs, *self.reaches.values()):
            torch._dynamo.mark_static_address(tensor)
        for tensor in self.reaches.values():
            # "maybe": should the compiler need a reach's length fixed, that reach gets a graph
            # of its own rather than a failed warm-up.
            torch._dynamo.maybe_mark_dynamic(tensor, 0)
        self.host = torch.empty((max_cache_len,), dtype=torch.long, pin_memory=device.type == "cuda")
        self.backend = "SDPA_DEFAULT"
        self.fused_groups = fuse_projections(model)
        self.grouped = use_grouped_decode_attention(model)
        # The reach reaches the attention through the model's keywords, as transformers' own
        # attention keywords do; a model whose forward takes none reads the whole cache.
        keywords = inspect.signature(model.forward).parameters.values()
        self._forward_passes_keywords = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in keywords)
        self._step = torch.compile(self._decode_step, mode="reduce-overhead", fullgraph=True, dynamic=False)

    @property
    def uses_reach(self) -> bool:
        """Whether decode steps attend only to their reach (our attention function reads it)."""
        return self.grouped and self._forward_passes_keywords and bool(self.reaches)

    def reach_for(self, places: int) -> Any:
        """The reach tensor of a step that may see the cache's first ``places`` places; None
        for the whole cache.
        """
        if not self.uses_reach:
            return None
        sizes = tuple(self.reaches)
        at = bisect.bisect_left(sizes, places)
        return self.reaches[sizes[at]] if at < len(sizes) else None

    def reach_openers(self, new_tokens: int) -> tuple[int, ...]:
        """Prompt lengths whose ``new_tokens`` steps cross from each reach into the next (from
        the last into the whole cache), so a warm-up with them records every graph before a
        user's answer needs it.
        """
        if not self.uses_reach:
            return ()
        # Half the steps on each side of the boundary; or, near the cache's end, as many as fit.
        half = new_tokens // 2
        return tuple(min(size - half, self.max_cache_len - new_tokens) for size in self.reaches)

    def _forward(self, input_ids: Any, positions: Any, reach: Any = None) -> Any:
        keywords = {} if reach is None else {"decode_reach": reach}
        out = self.model(
            input_ids=input_ids,
            position_ids=positions.view(1, -1),
            cache_position=positions,
            past_key_values=self.cache,
            use_cache=True,
            logits_to_keep=1,
            **keywords,
        )
        return out.logits[:, -1, :].float()

    def _decode_step(self, token: Any, position: Any, seen: Any, knobs: Any, reach: Any) -> Any:
        logits = self._forward(token, position, reach)
        return pick(logits, seen, knobs[0], knobs[1], knobs[2], self.top_k)

    def choose_attention(self, repeats: int = 20) -> str:
        """Time one decode step's attention each available way; keep the fastest.

        The ways: :func:`~core.models.decode_attention.grouped_attention` (each key/value head
        read once) and transformers' ``sdpa`` (heads repeated) with each attention kernel
        PyTorch has switched on. Decided by measurement because it depends on the GPU and the
        PyTorch build: with the cuDNN kernel switched off, ``sdpa``'s step fell from ~114 to
        ~55 tok/s on an H200.
        """
        import torch

        config = self.model.config
        implementation = getattr(config, "_attn_implementation", None)
        if not self.grouped and implementation != "sdpa":
            self.backend = str(implementation).upper()  # e.g. Gemma-2's eager attention: nothing to choose
            return self.backend
        heads = config.num_attention_heads
        timings = attention_timings(
            heads=heads,
            kv_heads=getattr(config, "num_key_value_heads", None) or heads,
            head_dim=getattr(config, "head_dim", None) or config.hidden_size // heads,
            keys=self.max_cache_len,
            dtype=self.model.dtype,
            grouped=self.grouped,
            repeats=repeats,
        )
        self.backend = min(timings, key=timings.get) if timings else "SDPA_DEFAULT"
        if self.backend != "GROUPED" and self.grouped:
            self.model.set_attn_implementation("sdpa")
            self.grouped = False
        torch.cuda.empty_cache()
        return self.backend

    def _attention(self) -> Any:
        from torch.nn.attention import SDPBackend, sdpa_kernel

        name = self.backend.removeprefix("SDPA_")
        if name in ATTENTION_BACKENDS:
            return sdpa_kernel([getattr(SDPBackend, name)])
        return nullcontext()

    def run(self, request: Request) -> list[int]:
        """Generate for ``request``; the new token ids, the stop token included when one came."""
        import torch

        with torch.no_grad():
            return self._run(request)

    def _run(self, request: Request) -> list[int]:
        import torch

        prompt = request.input_ids
        length = prompt.shape[1]
        limit = min(request.max_new_tokens, self.max_cache_len - length)
        if limit <= 0:
            return []
        self.cache.reset()  # in place: the recorded graph keeps reading the same tensors
        self.seen.zero_()
        self.seen[0, prompt[0]] = True
        self.knobs.copy_(
            torch.tensor(
                [request.repetition_penalty, request.temperature, request.top_p if request.temperature > 0 else 1.0]
            )
        )
        positions = torch.arange(length, device=prompt.device)
        first = pick(self._forward(prompt, positions), self.seen, *self.knobs, self.top_k)
        self.position.fill_(length)
        pending = self._record(first, 0)
        stops = set(request.stop_ids)
        new: list[int] = []
        while True:
            # The next step goes to the GPU before the host waits for this token.
            following = self._launch(len(new) + 1, length) if len(new) + 1 < limit else None
            pending.synchronize()
            token = int(self.host[len(new)])
            new.append(token)
            if request.on_token is not None:
                request.on_token(token)
            if token in stops or len(new) >= limit or (request.cancel is not None and request.cancel.is_set()):
                if following is not None:
                    following.synchronize()  # its cache write must land before the next reset
                return new
            pending = following

    def _launch(self, index: int, prompt_length: int) -> Any:
        """Run the compiled step for new token ``index`` of an answer to a prompt of
        ``prompt_length`` tokens; the event that says the token is on the host.
        """
        # The step writes place prompt_length + index - 1 and attends to every place up to it.
        reach = self.reach_for(prompt_length + index)
        # The measured kernel is fixed when the step is compiled (and if it is compiled again);
        # the prompt's pass runs eagerly with every kernel PyTorch allows.
        with self._attention():
            token = self._step(self.token, self.position, self.seen, self.knobs, reach)
        return self._record(token, index)

    def _record(self, token: Any, index: int) -> Any:
        """Feed ``token`` to the next step and copy it to the host; the event that says it is there."""
        import torch

        self.token.copy_(token.view(1, 1))
        self.seen.index_fill_(1, token.view(-1), True)
        if index:
            self.position.add_(1)
        self.host[index : index + 1].copy_(token.view(-1), non_blocking=True)
        done = torch.cuda.Event()
        done.record()
        return done


def has_sliding_window_layers(config: Any) -> bool:
    """Whether a static cache for ``config`` has sliding-window layers (Gemma-2, Mistral).

    Why it matters: transformers 5.23 keeps such a layer's length as a Python number, so the
    compiled step would compile again at every token (seen on a CPU) until dynamo's limit, each
    time a whole compile (~30 s for a 7B step on an H200), and then take plain generation anyway.
    Asked of transformers' own cache (its layers are made empty: nothing is allocated here).
    """
    from transformers import StaticCache

    return any(getattr(layer, "is_sliding", False) for layer in StaticCache(config=config, max_cache_len=1).layers)


def attention_timings(
    heads: int, kv_heads: int, head_dim: int, keys: int, dtype: Any, grouped: bool, repeats: int = 20
) -> dict[str, float]:
    """Milliseconds of ``repeats`` decode-step attentions on CUDA, each way that runs here.

    Each way is recorded as a CUDA graph and replayed, as the compiled step runs it: timed
    eagerly, the many small kernels of the grouped way paid their launches and lost to cuDNN,
    which the compiled step then ran at 135 tok/s against the grouped way's 172.
    """
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel

    cache = [torch.randn(1, kv_heads, keys, head_dim, dtype=dtype, device="cuda") for _ in range(2)]
    query = torch.randn(1, heads, 1, head_dim, dtype=dtype, device="cuda")
    mask = torch.ones(1, 1, 1, keys, dtype=torch.bool, device="cuda")

    def repeated() -> Any:
        key, value = (c.repeat_interleave(heads // kv_heads, dim=1) for c in cache)
        return torch.nn.functional.scaled_dot_product_attention(query, key, value, attn_mask=mask)

    # A kernel switched off in PyTorch stays off (sdpa_kernel would switch it on).
    enabled = {
        "CUDNN_ATTENTION": torch.backends.cuda.cudnn_sdp_enabled(),
        "EFFICIENT_ATTENTION": torch.backends.cuda.mem_efficient_sdp_enabled(),
        "MATH": torch.backends.cuda.math_sdp_enabled(),
    }
    ways = {"SDPA_" + name: (repeated, [getattr(SDPBackend, name)]) for name in ATTENTION_BACKENDS if enabled[name]}
    if grouped:
        packed = query.reshape(1, kv_heads, heads // kv_heads, head_dim)
        ways["GROUPED"] = (lambda: grouped_attention(packed, *cache, mask), None)
    timings = {}
    for name, (attend, backends) in ways.items():
        try:
            with sdpa_kernel(backends) if backends else nullcontext():
                side = torch.cuda.Stream()
                side.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(side):
                    for _ in range(3):
                        attend()
                torch.cuda.current_stream().wait_stream(side)
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph):
                    for _ in range(repeats):
                        attend()
            graph.replay()
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            graph.replay()
            end.record()
            end.synchronize()
        except RuntimeError:  # this kernel is switched off, or does not take these shapes here
            continue
        timings[name] = start.elapsed_time(end)
        del graph
    return timings
