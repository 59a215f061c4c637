"""Fused q/k/v and gate/up projections give the model's own results, eagerly and compiled."""

import pytest
import torch
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM

from core.models.fused_projections import fuse_projections

SHAPE = {
    "hidden_size": 64,
    "intermediate_size": 96,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "vocab_size": 300,
    "max_position_embeddings": 256,
}


def _model(kind):
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(AutoConfig.for_model(kind, **SHAPE)).eval()


def _logits(model, ids):
    with torch.no_grad():
        return model(ids).logits


@pytest.mark.parametrize("kind", ["qwen2", "llama", "gemma2", "mistral"])
def test_a_fused_model_gives_the_same_logits_and_keeps_its_parameters(kind):
    model = _model(kind)
    ids = torch.randint(0, SHAPE["vocab_size"], (1, 12), generator=torch.Generator().manual_seed(1))
    before = _logits(model, ids)
    names = {name: tuple(p.shape) for name, p in model.named_parameters()}
    size = sum(p.numel() for p in model.parameters())

    assert fuse_projections(model) == 2 * SHAPE["num_hidden_layers"]  # q/k/v and gate/up per layer

    torch.testing.assert_close(_logits(model, ids), before, rtol=1e-5, atol=1e-5)
    assert "Linear" in repr(model)
    assert {name: tuple(p.shape) for name, p in model.named_parameters()} == names
    assert sum(p.numel() for p in model.parameters()) == size
    # One product per group: k and v are parts of q's.
    attention = model.model.layers[0].self_attn
    assert attention.k_proj.weight.untyped_storage().data_ptr() == attention.q_proj.weight.untyped_storage().data_ptr()


def test_a_fused_model_compiles_into_one_graph_with_one_product_per_group_and_the_same_logits():
    model = _model("qwen2")
    ids = torch.randint(0, SHAPE["vocab_size"], (1, 9), generator=torch.Generator().manual_seed(2))
    before = _logits(model, ids)
    fuse_projections(model)
    products = []

    def counting(graph, example_inputs):
        products.append(sum("linear" in str(node.target) for node in graph.graph.nodes if node.op == "call_function"))
        return graph.forward

    compiled = torch.compile(model, backend=counting, fullgraph=True)
    with torch.inference_mode():
        torch.testing.assert_close(compiled(ids).logits, before, rtol=1e-5, atol=1e-5)
    # Per layer q/k/v, o, gate/up and down; then the head: 3 products fewer per layer than unfused.
    assert products == [4 * SHAPE["num_hidden_layers"] + 1]
    group = model.model.layers[0].self_attn.q_proj.group
    assert group.input is None  # no activation held after the step


class _KeysFirst(nn.Module):
    """A layer that calls its projections out of order and on different inputs."""

    def __init__(self, bias):
        super().__init__()
        self.q_proj, self.k_proj, self.v_proj = (nn.Linear(8, 8, bias=bias) for _ in range(3))

    def forward(self, x, y):
        return self.k_proj(x) + self.q_proj(x) * 2 + self.v_proj(y) * 3


@pytest.mark.parametrize("bias", [True, False])
def test_projections_called_in_another_order_or_on_another_input_compute_their_own_part(bias):
    torch.manual_seed(0)
    layer = _KeysFirst(bias)
    x, y = torch.randn(2, 8), torch.randn(2, 8)
    unfused = _KeysFirst(bias)
    unfused.load_state_dict(layer.state_dict())
    assert fuse_projections(layer) == 1
    for _ in range(2):
        with torch.no_grad():
            torch.testing.assert_close(layer(x, y), unfused(x, y))
            # The same tensor changed in place: a product stored by the call before is not reused.
            x.mul_(2)


def test_linears_that_differ_are_left_alone():
    layer = _KeysFirst(bias=True)
    layer.v_proj = nn.Linear(4, 8)  # another input size
    assert fuse_projections(layer) == 0
    assert type(layer.q_proj) is nn.Linear
