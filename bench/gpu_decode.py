"""Decode speed on a CUDA GPU: our chat model's streaming path against plain ``generate``.

A randomly initialised Qwen2-7B-shaped model in bf16 (no download needed) gets a ~1,500-token
prompt and writes 256 tokens. Both paths are measured warm, in the same run:

- plain: ``model.generate`` with the default dynamic cache, no compile, greedy with the catalog
  row's repetition penalty (the same work as the stream's), timed as the stream is: a streamer
  that only notes when each token comes; decode rate = (N - 1) / (last token - first token).
- ours: ``LocalChatModel.stream`` (chat template, TextIteratorStreamer, stop handling) on the
  engine's static cache with the compiled decode step, warmed up as at load time;
  the streamer holds a word back until the next one starts, so the first chunk (the first word)
  comes with the second token: decode rate = (tokens - 2) / (last chunk - first chunk), TTFT =
  call to first chunk (one token's time more than the first token's).

- fallback: the same stream on the dynamic cache (what runs where the fast path cannot), in
  pairs of runs with plain ``generate`` (at least six, each order in turn);
  ``fallback_over_plain`` is the median of the per-pair ratios (target >= 0.95, on CPU and CUDA).
- reach: on the same model, the fast path again with its steps reading the whole cache (as
  before steps read only their reach), run by run in turn with the reach on, for this prompt
  and a ~6,000-token one (``whole_cache_tok_s``, ``reach_over_whole_cache``, ``long_*``).
- bound: the model's bytes over the device's measured copy rate (bytes read and written per
  second by a 4 GiB device-to-device copy), as the issue defines it: ``bound_tok_s`` and
  ``fraction_of_bound`` = ours / bound (target >= 0.70 for 7B on an H200). A token reads every
  weight but the input embedding table (one row of it; all of it when tied to the output
  layer), so the strict bound no decoder beats is ``bound_read_tok_s`` (``fraction_of_read_bound``).

On CUDA the bench then loads two more models in the same process, as a user switching models
would: the 0.5B shape (its own figures, ``small_*``), then the first shape again with PyTorch's
cuDNN attention switched off (``third_*``; ``fast_path_after_switch`` is true when that third
model is on the fast path at >= 0.9 of the first one's rate).

Run: python -m bench.gpu_decode            (needs a CUDA GPU; ~40 GB of GPU memory)
     python -m bench.gpu_decode --shape 0.5b [--prompt-tokens N --new-tokens N]   (any device)
     python -m bench.gpu_decode --quick    (a tiny model; runs anywhere, for a smoke test)
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from bench.harness import parser, report
from core.models.catalog import builtin_spec
from core.models.chat import LocalChatModel
from core.models.engine import Engine
from core.models.loader import LoadedModel, LoadOptions

QWEN2_7B = {
    "hidden_size": 3584,
    "intermediate_size": 18944,
    "num_hidden_layers": 28,
    "num_attention_heads": 28,
    "num_key_value_heads": 4,
    "vocab_size": 152064,
    "max_position_embeddings": 32768,
    "rope_theta": 1e6,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": False,
}
QWEN2_0_5B = {
    "hidden_size": 896,
    "intermediate_size": 4864,
    "num_hidden_layers": 24,
    "num_attention_heads": 14,
    "num_key_value_heads": 2,
    "vocab_size": 151936,
    "max_position_embeddings": 32768,
    "rope_theta": 1e6,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": True,
}
TINY = {
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 152064,
    "max_position_embeddings": 4096,
    "tie_word_embeddings": False,
}
# Pairs of fallback and plain runs at least (even: each order as often): with three, one busy
# moment of the machine moved the median ratio by a third on the H200 (0.71 and 1.08 in one run).
PAIRS = 6
# A prompt whose answer is read past the longest reach (4,096 places): the whole cache's graph.
LONG_PROMPT_TOKENS = 6000
SPECIALS = {151643: "<|endoftext|>", 151644: "<|im_start|>", 151645: "<|im_end|>"}


def word_tokenizer(vocab_size: int, chat_template: str):
    """A word-level tokenizer over the whole vocabulary ("w0" … "wN"), with Qwen2's specials."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {SPECIALS.get(i, f"w{i}"): i for i in range(vocab_size)}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="w0"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    core.add_special_tokens(list(SPECIALS.values()))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    tokenizer.chat_template = chat_template
    return tokenizer


def build(shape: dict, device: str, dtype: str, fast: bool) -> LoadedModel:
    """The random model wrapped exactly as the loader wraps a downloaded one."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    template = (Path(__file__).resolve().parents[1] / "tests/data/chat_templates/qwen2-7b-instruct.jinja").read_text()
    config = AutoConfig.for_model("qwen2", **shape)
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype))
    model.eval()
    spec = builtin_spec("qwen2-7b-instruct")
    engine = Engine(model, fast=fast)
    engine.warm_up(shape["vocab_size"])
    tokenizer = word_tokenizer(shape["vocab_size"], template)
    return LoadedModel(spec, model, tokenizer, device, dtype, Path(), 0.0, LoadOptions(), engine)


def prompt_words(count: int) -> str:
    """A user message of ``count`` words, each one token."""
    import random

    rng = random.Random(0)
    return " ".join(f"w{rng.randrange(1, 150000)}" for _ in range(count))


def plain_rate(loaded: LoadedModel, text: str, new_tokens: int) -> tuple[float, float]:
    """Decode tok/s and first-token time of one plain dynamic-cache ``generate`` call, timed as
    the stream is: (tokens - 1) over the seconds from the first new token to the last, each
    token's time taken when ``generate`` hands it to a streamer that only notes the time.
    """
    import torch
    from langchain_core.messages import HumanMessage
    from transformers.generation.streamers import BaseStreamer

    chat = LocalChatModel(loaded=loaded)
    prompt = chat.render_prompt([HumanMessage(text)])
    inputs = loaded.tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(loaded.model.device)
    eos = chat.stop_token_ids()

    class Stamps(BaseStreamer):
        def __init__(self) -> None:
            self.times: list[float] = []

        def put(self, value) -> None:  # the prompt first, then each new token
            self.times.append(time.perf_counter())

        def end(self) -> None:
            pass

    stamps = Stamps()
    started = time.perf_counter()
    with torch.inference_mode():
        out = loaded.model.generate(
            **inputs,
            max_new_tokens=new_tokens,
            do_sample=False,
            # The same work as the chat stream's: greedy with the row's repetition penalty.
            repetition_penalty=chat.sampling_parameters()["repetition_penalty"],
            disable_compile=True,
            eos_token_id=eos,
            pad_token_id=eos[0],
            streamer=stamps,
        )
    assert out.shape[1] - inputs["input_ids"].shape[1] == new_tokens, "the random model stopped early"
    first, last = stamps.times[1], stamps.times[-1]
    return (new_tokens - 1) / (last - first), first - started


def stream_rate(loaded: LoadedModel, text: str, new_tokens: int, runs: int) -> tuple[float, float, int, int]:
    """Warm decode tok/s, time to first chunk, tokens and prompt tokens through ``LocalChatModel.stream``."""
    from langchain_core.messages import HumanMessage

    chat = LocalChatModel(loaded=loaded, max_new_tokens=new_tokens, temperature=0.0)
    messages = [HumanMessage(text)]
    prompt_tokens = len(loaded.tokenizer(chat.render_prompt(messages), add_special_tokens=False)["input_ids"])
    list(chat.stream(messages, max_new_tokens=8))  # warm
    results = []
    for _ in range(runs):
        started = time.perf_counter()
        stamps, pieces = [], []
        for chunk in chat.stream(messages):
            if chunk.content:
                stamps.append(time.perf_counter())
                pieces.append(chunk.content)
        tokens = len("".join(pieces).split())
        results.append(((tokens - 2) / (stamps[-1] - stamps[0]), stamps[0] - started, tokens))
    rate, ttft, tokens = (statistics.median(r[i] for r in results) for i in range(3))
    return rate, ttft, int(tokens), prompt_tokens


def reach_rates(loaded: LoadedModel, text: str, new_tokens: int, runs: int) -> tuple[float, float]:
    """Median decode tok/s of the fast path with its steps reading their reach, and reading
    the whole cache, on the same model; each run of one beside a run of the other, in turn."""
    decoder = loaded.engine.decoder
    reaches = decoder.reaches
    rates: dict[bool, list[float]] = {True: [], False: []}
    try:
        for run in range(2 * runs):
            on = run % 4 in (0, 3)  # on, off, off, on, …: neither goes first more often
            decoder.reaches = reaches if on else {}  # no reaches: every step reads the whole cache
            rates[on].append(stream_rate(loaded, text, new_tokens, 1)[0])
    finally:
        decoder.reaches = reaches
    return statistics.median(rates[True]), statistics.median(rates[False])


def copy_rate() -> float:
    """Bytes read plus written per second by a 4 GiB device-to-device copy (median of 3)."""
    import torch

    size = 4 * 1024**3
    source, target = (torch.empty(size, dtype=torch.uint8, device="cuda") for _ in range(2))
    rates = []
    for _ in range(4):
        torch.cuda.synchronize()
        started = time.perf_counter()
        target.copy_(source)
        torch.cuda.synchronize()
        rates.append(2 * size / (time.perf_counter() - started))
    del source, target
    torch.cuda.empty_cache()
    return statistics.median(rates[1:])


def bytes_read_per_token(model) -> int:
    """Bytes of weights one decode step reads: all but an untied input embedding table."""
    total = sum(p.numel() * p.element_size() for p in model.parameters())
    embedding, output = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    if embedding.data_ptr() == output.data_ptr():
        return total
    return total - embedding.numel() * embedding.element_size()


def measure(shape: dict, device: str, dtype: str, prompt_len: int, new_tokens: int, runs: int, plain: bool) -> dict:
    """One model built, warmed up and measured: ours, and (``plain``) plain generate and the fallback."""
    from core.models.loader import release

    text = prompt_words(prompt_len - 20)  # the template adds ~20 tokens
    started = time.perf_counter()
    loaded = build(shape, device, dtype, fast=True)
    figures = {
        "fast_path": loaded.engine.fast,
        "fast_path_reason": loaded.engine.reason,
        "attention": loaded.engine.attention,
        # Projection groups run as one product (q/k/v and gate/up: two per Qwen2 layer).
        "fused_groups": loaded.engine.decoder.fused_groups if loaded.engine.decoder is not None else 0,
        # Decode steps attend only to the cache's first places their position can have filled.
        "attends_to_reach": loaded.engine.decoder is not None and loaded.engine.decoder.uses_reach,
        "build_and_warmup_s": round(time.perf_counter() - started, 1),
        "model_bytes": sum(p.numel() * p.element_size() for p in loaded.model.parameters()),
        "read_bytes": bytes_read_per_token(loaded.model),
    }
    ours_tok_s, ttft, tokens, prompt_tokens = stream_rate(loaded, text, new_tokens, runs)
    figures.update(ours_tok_s=round(ours_tok_s, 1), ttft_s=round(ttft, 3), new_tokens=tokens)
    figures["prompt_tokens"] = prompt_tokens
    if plain and loaded.engine.decoder is not None and loaded.engine.decoder.uses_reach:
        reach, whole = reach_rates(loaded, text, new_tokens, runs)
        figures.update(reach_tok_s=round(reach, 1), whole_cache_tok_s=round(whole, 1))
        figures["reach_over_whole_cache"] = round(reach / whole, 3)
        long_text = prompt_words(LONG_PROMPT_TOKENS - 20)
        reach, whole = reach_rates(loaded, long_text, new_tokens, runs)
        figures.update(long_reach_tok_s=round(reach, 1), long_whole_cache_tok_s=round(whole, 1))
    if plain:
        # transformers' own attention for the baseline (the fast path may have switched it).
        loaded.model.set_attn_implementation("sdpa")
        # The fallback (our stream on the dynamic cache) against plain generate, interleaved run
        # by run, so a busy moment of the machine falls on both.
        slow = LoadedModel(**{**loaded.__dict__, "engine": Engine(loaded.model, fast=False)})
        plain_rate(loaded, text, 8)  # warm
        pairs = []
        count = max(runs, PAIRS)
        for run in range(count + count % 2):
            # Each order in turn, so a drift of the machine's speed favours neither.
            if run % 2:
                fallback, plain = stream_rate(slow, text, new_tokens, 1)[0], plain_rate(loaded, text, new_tokens)
            else:
                plain, fallback = plain_rate(loaded, text, new_tokens), stream_rate(slow, text, new_tokens, 1)[0]
            pairs.append((plain, fallback))
        ratios = [round(p[1] / p[0][0], 3) for p in pairs]
        plain_tok_s = statistics.median(p[0][0] for p in pairs)
        figures.update(
            plain_tok_s=round(plain_tok_s, 1),
            plain_ttft_s=round(statistics.median(p[0][1] for p in pairs), 3),
            stream_dynamic_tok_s=round(statistics.median(p[1] for p in pairs), 1),
            # The fallback over plain generate: median of the per-run ratios, and each run's.
            fallback_over_plain=statistics.median(ratios),
            fallback_over_plain_per_run=ratios,
            speedup=round(ours_tok_s / plain_tok_s, 2),
        )
    release(loaded)
    return figures


def main() -> None:
    """Measure and print the table and the RESULT line."""
    args = parser(__doc__.splitlines()[0])
    args.add_argument("--prompt-tokens", type=int, default=1500)
    args.add_argument("--new-tokens", type=int, default=256)
    args.add_argument("--runs", type=int, default=3)
    args.add_argument(
        "--shape", choices=["7b", "0.5b", "tiny"], help="model shape (default: 7b on a GPU, tiny elsewhere)"
    )
    args.add_argument("--no-switch", action="store_true", help="on CUDA, measure one model only")
    options = args.parse_args()
    import torch

    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    shapes = {"7b": QWEN2_7B, "0.5b": QWEN2_0_5B, "tiny": TINY}
    name = options.shape or ("tiny" if options.quick or not cuda else "7b")
    shape = shapes[name]
    dtype = "float32" if shape is TINY else "bfloat16"
    prompt_len, new_tokens = (64, 32) if options.quick else (options.prompt_tokens, options.new_tokens)
    rate = copy_rate() if cuda else None

    first = measure(shape, device, dtype, prompt_len, new_tokens, options.runs, plain=True)
    result = {
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "model": "tiny" if shape is TINY else f"Qwen2-{name} shape, random, {dtype}",
        **{k: v for k, v in first.items() if k not in {"model_bytes", "read_bytes"}},
    }
    rows = [
        ["plain generate, dynamic cache", first["plain_tok_s"], first["plain_ttft_s"]],
        ["chat stream, dynamic cache", first["stream_dynamic_tok_s"], "-"],
        [f"chat stream, fast path ({first['attention']})", first["ours_tok_s"], first["ttft_s"]],
    ]
    if "whole_cache_tok_s" in first:
        # The same model, runs in turn: steps reading their reach, then the whole cache.
        for label, prefix in (("", ""), (f"{LONG_PROMPT_TOKENS}-token prompt, ", "long_")):
            rows.append([f"{label}fast path, steps read their reach", first[f"{prefix}reach_tok_s"], "-"])
            rows.append([f"{label}fast path, steps read the whole cache", first[f"{prefix}whole_cache_tok_s"], "-"])
    if rate:
        bound = rate / first["model_bytes"]
        result.update(
            copy_rate_tb_s=round(rate / 1e12, 2),
            model_gb=round(first["model_bytes"] / 1e9, 2),
            bound_tok_s=round(bound, 1),
            fraction_of_bound=round(first["ours_tok_s"] / bound, 3),
            read_gb=round(first["read_bytes"] / 1e9, 2),
            bound_read_tok_s=round(rate / first["read_bytes"], 1),
            fraction_of_read_bound=round(first["ours_tok_s"] / (rate / first["read_bytes"]), 3),
        )
        rows.append(["memory-bandwidth bound", round(bound, 1), "-"])
    if cuda and not options.no_switch:
        small = measure(QWEN2_0_5B, device, dtype, prompt_len, new_tokens, options.runs, plain=True)
        result.update(
            small_ours_tok_s=small["ours_tok_s"],
            small_plain_tok_s=small["plain_tok_s"],
            small_speedup=small["speedup"],
            small_ttft_s=small["ttft_s"],
            small_attention=small["attention"],
            small_fraction_of_bound=round(small["ours_tok_s"] / (rate / small["model_bytes"]), 3),
        )
        rows.append(["0.5B shape: plain generate", small["plain_tok_s"], small["plain_ttft_s"]])
        rows.append(["0.5B shape: fast path", small["ours_tok_s"], small["ttft_s"]])
        torch.backends.cuda.enable_cudnn_sdp(False)
        third = measure(shape, device, dtype, prompt_len, new_tokens, options.runs, plain=False)
        result.update(
            third_ours_tok_s=third["ours_tok_s"],
            third_ttft_s=third["ttft_s"],
            third_attention=third["attention"],
            third_cudnn_attention=False,
            third_fraction_of_bound=round(third["ours_tok_s"] / (rate / third["model_bytes"]), 3),
            fast_path_after_switch=third["fast_path"] and third["ours_tok_s"] >= 0.9 * first["ours_tok_s"],
        )
        rows.append([f"third load, cuDNN attention off ({third['attention']})", third["ours_tok_s"], third["ttft_s"]])
    report("Decode speed (warm, greedy)", ["path", "decode tok/s", "first token (s)"], rows, result)


if __name__ == "__main__":
    main()
