"""One matrix product for the projections a layer applies to the same input (q/k/v, gate/up).

Why: decoding one token, each projection is a matrix-vector product, and the small ones cannot
use the GPU's bandwidth: on an H200 (Qwen2-7B shape, bf16) a k or v projection (3.7 MB) took
~6 µs, as long as the 26 MB q projection. With q/k/v and gate/up each done as one product, the
compiled decode step went from ~176 to ~196 tok/s. transformers keeps the projections apart and
its models' code is not ours to change, so the layer keeps its modules: the group's first
projection computes the whole group and the others hand back their part when they are called
on the very tensor the first one saw, in the same call of the module that holds them (a hook
forgets the product when that call ends, however it ends). Otherwise (another order, another
input) each computes its own part as before. The results are the model's up to rounding (one
wider product instead of three).

The weights move into one tensor per group; each projection's ``weight``/``bias`` stays a
parameter under its own name, a view into it, so the model's size and state dict do not change
and writing into a weight in place writes into the group. Limits, none of which the app meets:
fuse once the model is where it runs (the fast path fuses on CUDA, after loading), since a
later ``model.to(...)`` or ``load_state_dict(..., assign=True)`` replaces the parameters and
leaves the groups behind; and run a fused model from one thread at a time (the app generates
on one thread), since a group holds its last product between its projections' calls.
"""

from __future__ import annotations

import functools
from typing import Any

# Projections that the models of our catalog apply to one input, first one first.
GROUPS = (("q_proj", "k_proj", "v_proj"), ("gate_proj", "up_proj"))


def fuse_projections(model: Any) -> int:
    """Fuse each group of :data:`GROUPS` that ``model``'s layers hold; how many were fused."""
    fused = 0
    for module in list(model.modules()):
        for names in GROUPS:
            linears = [getattr(module, name, None) for name in names]
            if _fusable(linears):
                _fuse(module, names, linears)
                fused += 1
    return fused


def _fusable(linears: list[Any]) -> bool:
    from torch import nn

    if not all(type(linear) is nn.Linear for linear in linears):  # a subclass may change forward
        return False
    first = linears[0].weight
    return (
        first.device.type != "meta"
        and all(linear.weight.dtype == first.dtype and linear.weight.device == first.device for linear in linears)
        and len({linear.in_features for linear in linears}) == 1
        and len({linear.bias is None for linear in linears}) == 1
        and not any(linear._forward_hooks or linear._forward_pre_hooks for linear in linears)
        and not any(hasattr(linear, "_hf_hook") for linear in linears)  # accelerate's offloading
    )


def _fuse(module: Any, names: tuple[str, ...], linears: list[Any]) -> None:
    import torch
    from torch import nn

    group = _Group(
        weight=torch.cat([linear.weight.detach() for linear in linears]),
        bias=None if linears[0].bias is None else torch.cat([linear.bias.detach() for linear in linears]),
        sizes=[linear.out_features for linear in linears],
    )
    module.register_forward_hook(group.forget, always_call=True)
    start = 0
    for index, (name, linear) in enumerate(zip(names, linears, strict=True)):
        end = start + linear.out_features
        part = _part_class()(group, index, linear.in_features, linear.out_features)
        part.weight = nn.Parameter(group.weight[start:end], requires_grad=False)
        if group.bias is not None:
            part.bias = nn.Parameter(group.bias[start:end], requires_grad=False)
        setattr(module, name, part)
        start = end


class _Group:
    """The fused weight of one group, and the last product the first projection computed."""

    def __init__(self, weight: Any, bias: Any, sizes: list[int]) -> None:
        self.weight, self.bias, self.sizes = weight, bias, sizes
        self.input: Any = None
        self.outputs: tuple[Any, ...] = ()

    def forget(self, *_: Any) -> None:
        """Drop the stored product (a forward hook of the module holding the projections)."""
        self.input, self.outputs = None, ()


@functools.cache  # made on first use: importing torch is not work for import time
def _part_class() -> type:
    from torch import nn
    from torch.nn import functional

    class Part(nn.Linear):
        """One projection of a fused group: an ``nn.Linear`` whose weight is a view of the group's."""

        def __init__(self, group: _Group, index: int, in_features: int, out_features: int) -> None:
            nn.Module.__init__(self)  # the weights are the group's views, set by _fuse
            self.register_parameter("bias", None)  # as nn.Linear without a bias
            self.in_features, self.out_features = in_features, out_features
            self.group, self.index = group, index

        def forward(self, x: Any) -> Any:
            group = self.group
            if self.index == 0:
                group.input = x
                group.outputs = functional.linear(x, group.weight, group.bias).split(group.sizes, dim=-1)
                return group.outputs[0]
            if group.input is x:
                return group.outputs[self.index]
            return functional.linear(x, self.weight, self.bias)

    return Part
