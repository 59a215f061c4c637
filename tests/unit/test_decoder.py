"""The fast path's token choice and grouped attention, checked against transformers on the CPU.

The decode loop itself needs CUDA (tests/unit/test_engine.py runs it there); what it computes
per token is checked here: the same token as ``generate``'s processors for greedy requests, and
draws only from the tokens ``generate`` would keep, in its proportions, for sampled ones.
"""

import pytest
import torch
from transformers import (
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from core.models.decode_attention import grouped_decode_attention
from core.models.decoder import pick
from core.models.engine import WARMUP_NEW_TOKENS

VOCAB = 500


def _case(seed):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(1, VOCAB, generator=generator) * 3
    history = torch.randint(0, VOCAB, (1, 40), generator=generator)
    seen = torch.zeros(1, VOCAB, dtype=torch.bool)
    seen[0, history[0]] = True
    return logits, history, seen


def _theirs(logits, history, penalty, temperature, top_p, top_k):
    scores = RepetitionPenaltyLogitsProcessor(penalty)(history, logits.clone())
    if temperature == 0:
        return scores
    for warper in (TemperatureLogitsWarper(temperature), TopKLogitsWarper(top_k), TopPLogitsWarper(top_p)):
        scores = warper(history, scores)
    return scores.softmax(dim=-1)


@pytest.mark.parametrize("penalty", [1.0, 1.1, 1.3])
def test_a_greedy_pick_is_generates_argmax_after_the_repetition_penalty(penalty):
    for seed in range(20):
        logits, history, seen = _case(seed)
        mine = pick(logits, seen, torch.tensor(penalty), torch.tensor(0.0), torch.tensor(1.0), 0)
        assert mine.item() == _theirs(logits, history, penalty, 0, 1, 0).argmax().item()


@pytest.mark.parametrize(("top_k", "top_p"), [(50, 0.8), (20, 0.95), (0, 0.7)])
def test_a_sampled_pick_draws_what_generates_warpers_keep_in_their_proportions(top_k, top_p):
    logits, history, seen = _case(7)
    expected = _theirs(logits, history, 1.05, 0.7, top_p, top_k or VOCAB)[0]
    torch.manual_seed(0)
    draws = 4000
    knobs = torch.tensor(1.05), torch.tensor(0.7), torch.tensor(top_p)
    counts = torch.bincount(torch.cat([pick(logits, seen, *knobs, top_k) for _ in range(draws)]), minlength=VOCAB)
    assert set(counts.nonzero().flatten().tolist()) <= set(expected.nonzero().flatten().tolist())
    assert (counts / draws - expected).abs().max() < 0.03


def _one_new_token(places):
    """A layer of 8 query heads over 2 key/value heads, one new token's query, ``places`` cached
    keys and values, of which the first 40 are filled (the mask)."""
    from types import SimpleNamespace

    torch.manual_seed(0)
    module = SimpleNamespace(num_key_value_groups=4, is_causal=True, training=False)
    mask = torch.ones(1, 1, 1, places, dtype=torch.bool)
    mask[..., 40:] = False  # the static cache's empty places
    return module, torch.randn(1, 8, 1, 16), torch.randn(1, 2, places, 16), torch.randn(1, 2, places, 16), mask


def test_grouped_attention_of_one_new_token_equals_transformers_sdpa():
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    module, query, key, value, mask = _one_new_token(64)
    mine, _ = grouped_decode_attention(module, query, key, value, mask, scaling=0.25)
    theirs, _ = sdpa_attention_forward(module, query, key, value, mask, scaling=0.25)
    assert mine.shape == theirs.shape == (1, 1, 8, 16)
    torch.testing.assert_close(mine, theirs, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("kind", "sliding"), [("gemma2", True), ("mistral", True), ("qwen2", False)])
def test_models_with_sliding_window_layers_are_told_apart(kind, sliding):
    from transformers import AutoConfig

    from core.models.decoder import has_sliding_window_layers

    shape = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
    config = AutoConfig.for_model(kind, num_key_value_heads=1, head_dim=16, **shape)
    assert has_sliding_window_layers(config) == sliding


# The reach: a decode step attends only to the cache's first places its position can have filled.


def test_the_attention_reads_only_its_reach_but_a_sliding_window_or_position_bias_whole():
    module, query, key, value, mask = _one_new_token(96)
    whole, _ = grouped_decode_attention(module, query, key, value, mask, scaling=0.25)
    spoiled_key, spoiled_value = key.clone(), value.clone()
    spoiled_key[:, :, 64:], spoiled_value[:, :, 64:] = float("nan"), float("nan")
    reach = torch.empty(64, dtype=torch.int8)
    spoiled = (module, query, spoiled_key, spoiled_value, mask)
    mine, _ = grouped_decode_attention(*spoiled, scaling=0.25, decode_reach=reach)
    torch.testing.assert_close(mine, whole)
    # A sliding layer's cache, and keys with a position bias, are read whole, spoiled places included.
    window, _ = grouped_decode_attention(*spoiled, scaling=0.25, decode_reach=reach, sliding_window=32)
    assert window.isnan().all()
    bias = torch.zeros(1, 8, 1, 96)
    biased, _ = grouped_decode_attention(*spoiled, scaling=0.25, decode_reach=reach, position_bias=bias)
    assert biased.isnan().all()


@pytest.fixture(scope="module", params=[1, 2], ids=["grouped_heads", "one_head_per_key"])
def reach_decoder(request, tmp_path_factory):
    """A decoder of a tiny qwen2 with a 4,096-place cache, on the CPU (its loop needs CUDA; its
    step's forward does not)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from core.models.decoder import StaticDecoder
    from tests.tiny_models import build_tiny_model

    folder = build_tiny_model(tmp_path_factory.mktemp("reach") / "qwen2", "qwen2")
    torch.manual_seed(0)
    config = AutoConfig.from_pretrained(folder, num_key_value_heads=request.param, max_position_embeddings=4096)
    return StaticDecoder(AutoModelForCausalLM.from_config(config).eval(), 4096)


def test_reaches_hold_every_position_and_the_warm_up_crosses_into_each(reach_decoder):
    decoder = reach_decoder
    assert decoder.uses_reach and tuple(decoder.reaches) == (512, 1024, 2048)

    def reach(places):
        tensor = decoder.reach_for(places)
        return "whole" if tensor is None else tensor.shape[0]

    assert [reach(places) for places in (1, 512, 513, 1024, 1025, 2048, 2049, 4096)] == [
        512,
        512,
        1024,
        1024,
        2048,
        2048,
        "whole",
        "whole",
    ]
    # Each reach is run at least twice in the warm-up: a CUDA graph is recorded at the second run.
    runs = {}
    for length in decoder.reach_openers(WARMUP_NEW_TOKENS):
        for index in range(1, WARMUP_NEW_TOKENS):
            runs[reach(length + index)] = runs.get(reach(length + index), 0) + 1
    assert runs.keys() == {512, 1024, 2048, "whole"} and min(runs.values()) >= 2


def test_the_decode_loop_lets_each_step_see_exactly_the_places_filled_through_its_reach(reach_decoder, monkeypatch):
    """The loop itself, on the CPU: CUDA events stubbed, the step run uncompiled. At each step
    the attention is checked: every place the cache has filled is within the reach, the reach
    is the smallest that holds them, and the mask shows exactly those places."""
    from transformers import AttentionInterface

    from core.models import decode_attention
    from core.models.decoder import Request

    decoder = reach_decoder

    class Event:
        def record(self):
            pass

        def synchronize(self):
            pass

    monkeypatch.setattr(torch.cuda, "Event", Event)
    monkeypatch.setattr(decoder, "_step", decoder._decode_step)
    seen = []

    def checked(module, query, key, value, mask, *args, **kwargs):
        if query.shape[2] == 1:
            filled = int(decoder.cache.layers[module.layer_idx].cumulative_length)
            reach = kwargs.get("decode_reach")
            places = key.shape[2] if reach is None else reach.shape[0]
            smallest = decoder.reach_for(filled)
            assert places == (key.shape[2] if smallest is None else smallest.shape[0])
            assert not mask[..., places:].any() and int(mask[..., :places].sum()) == filled
            seen.append(places)
        return decode_attention.grouped_decode_attention(module, query, key, value, mask, *args, **kwargs)

    AttentionInterface.register(decode_attention.NAME, checked)
    try:
        for length in (2, 508, 511, 512, 1020, 2044, 2048, 4096 - 16):  # (a 1-token prompt looks like a step)
            ids = torch.randint(3, 200, (1, length), generator=torch.Generator().manual_seed(length))
            assert len(decoder.run(Request(input_ids=ids, max_new_tokens=16, stop_ids=()))) == 16
    finally:
        AttentionInterface.register(decode_attention.NAME, decode_attention.grouped_decode_attention)
    assert set(seen) == {512, 1024, 2048, 4096} and len(seen) == 8 * 15


def test_a_compiled_step_over_its_reach_gives_the_whole_caches_logits_with_one_graph(reach_decoder):
    """The cache past each reach is spoiled (NaN): a step that read it would give NaN."""
    from torch._dynamo.utils import counters

    decoder = reach_decoder
    torch._dynamo.reset()
    graphs = counters["stats"]["unique_graphs"]
    step = torch.compile(decoder._forward, backend="aot_eager", fullgraph=True, dynamic=False)
    token = torch.tensor([[7]])
    for length in (300, 700, 1500):
        prompt = torch.randint(0, 200, (1, length), generator=torch.Generator().manual_seed(length))
        reach = decoder.reach_for(length + 1)
        answers = []
        for reached in (False, True):
            with torch.no_grad():
                decoder.cache.reset()
                decoder._forward(prompt, torch.arange(length))
                if reached:
                    for layer in decoder.cache.layers:
                        layer.keys[:, :, reach.shape[0] :] = float("nan")
                        layer.values[:, :, reach.shape[0] :] = float("nan")
                    answers.append(step(token, torch.tensor([length]), reach))
                else:
                    answers.append(decoder._forward(token, torch.tensor([length])))
        whole, reached = answers
        assert not reached.isnan().any()
        torch.testing.assert_close(reached, whole)
    assert counters["stats"]["unique_graphs"] == graphs + 1
