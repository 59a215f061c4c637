"""Attention for one new token that reads each key/value head once (grouped-query models).

Why not transformers' ``sdpa``: under ``torch.compile`` it copies every key/value head once per
query head before attending (``repeat_kv``; its own packing is off while compiling), so a decode
step of Qwen2-7B over an 8,192-token static cache moved ~3.3 GB a token to attend, measured on an
H200 at ~2.1 ms of a 7.5 ms step. Here the query heads that share a key/value head become rows
of one query (``[batch, kv_heads, groups, dim]``), so the cache is read once, by two batched
matrix products (the fused kernels gave only a few blocks of work to a GPU of 132 SMs for this
shape: 160 us a layer with cuDNN). Everything else (prompts, models without grouped heads,
soft-capping, position biases) goes to ``sdpa``.

A decode step also attends only to the cache's first places, its *reach* (see
:mod:`core.models.decoder`): a static cache has room for 8,192 tokens, a chat answer's usually
fills two thousand, and reading all of it cost ~0.6 ms of a 5.2 ms step of Qwen2-7B on an H200.
"""

from __future__ import annotations

from typing import Any

NAME = "kba_grouped_sdpa"


def grouped_decode_attention(
    module: Any,
    query: Any,
    key: Any,
    value: Any,
    attention_mask: Any,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[Any, None]:
    """Attention in transformers' signature for attention functions; out: ``[batch, 1, heads, dim]``.

    ``decode_reach`` (a keyword the decoder passes through the model): a tensor whose length is
    how many of the cache's first places a one-token query attends to; the places past it are
    empty. Its length, not its content, is read, so a compiled step takes it as a dynamic size.
    """
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    reach = kwargs.pop("decode_reach", None)
    # A sliding window's cache holds the window, not the text's first places: read it whole; a
    # position bias spans the whole cache, so its keys stay whole too.
    whole = kwargs.get("sliding_window") is not None or kwargs.get("position_bias") is not None
    if reach is not None and query.shape[2] == 1 and not whole:
        places = reach.shape[0]
        key, value = key[:, :, :places], value[:, :, :places]
        if attention_mask is not None:
            attention_mask = attention_mask[..., :places]
    groups = getattr(module, "num_key_value_groups", 1)
    plain = kwargs.get("softcap") is not None or kwargs.get("position_bias") is not None
    if query.shape[2] != 1 or groups == 1 or plain:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout, scaling, **kwargs)
    batch, heads, _, dim = query.shape
    out = grouped_attention(query.reshape(batch, heads // groups, groups, dim), key, value, attention_mask, scaling)
    return out.reshape(batch, heads, 1, dim).transpose(1, 2).contiguous(), None


def grouped_attention(query: Any, key: Any, value: Any, mask: Any, scaling: float | None = None) -> Any:
    """Attention of ``query`` ``[batch, kv_heads, rows, dim]`` over ``key``/``value``
    ``[batch, kv_heads, keys, dim]``; ``mask`` (boolean, True where a key may be seen) is
    ``[batch, 1, 1, keys]`` or None. Softmax in float32, as transformers' eager attention.
    """
    import torch

    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    scores = torch.matmul(query, key.transpose(-1, -2)).float() * scale
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask
    return torch.matmul(scores.softmax(dim=-1).to(value.dtype), value)


def use_grouped_decode_attention(model: Any) -> bool:
    """Switch ``model`` to :func:`grouped_decode_attention` when it uses ``sdpa``; whether it did."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    if getattr(model.config, "_attn_implementation", None) != "sdpa":
        return False
    AttentionInterface.register(NAME, grouped_decode_attention)
    AttentionMaskInterface.register(NAME, sdpa_mask)
    model.set_attn_implementation(NAME)
    return True
