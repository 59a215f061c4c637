"""Decode speed on a CUDA GPU: our chat model's streaming path against plain ``generate``.

A randomly initialised Qwen2-7B-shaped model in bf16 (no download needed) gets a ~1,500-token
prompt and writes 256 tokens. Both paths are measured warm, in the same run:

- plain: ``model.generate`` with the default dynamic cache, no compile, no streamer;
  decode rate = (N - 1) / (t(N) - t(1)).
- ours: ``LocalChatModel.stream`` (chat template, TextIteratorStreamer, stop handling) on the
  engine's static cache with the compiled decode step, warmed up as at load time;
  decode rate = (tokens - 1) / (last chunk - first chunk), TTFT = call to first chunk.

- fallback: the same stream on the dynamic cache (what runs where the fast path cannot), in
  runs interleaved with plain ``generate``; ``fallback_over_plain`` is the median of the
  per-run ratios (target >= 0.95, on CPU and CUDA).

Run: python -m bench.gpu_decode            (needs a CUDA GPU; ~16 GB of GPU memory)
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
    """Warm decode tok/s and first-token time of plain dynamic-cache ``generate``."""
    import torch
    from langchain_core.messages import HumanMessage

    chat = LocalChatModel(loaded=loaded)
    prompt = chat.render_prompt([HumanMessage(text)])
    inputs = loaded.tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(loaded.model.device)
    eos = chat.stop_token_ids()

    def timed(n: int) -> float:
        torch.cuda.synchronize() if torch.cuda.is_available() else None
        started = time.perf_counter()
        with torch.inference_mode():
            out = loaded.model.generate(
                **inputs, max_new_tokens=n, do_sample=False, disable_compile=True, eos_token_id=eos, pad_token_id=eos[0]
            )
        assert out.shape[1] - inputs["input_ids"].shape[1] == n, "the random model stopped early"
        torch.cuda.synchronize() if torch.cuda.is_available() else None
        return time.perf_counter() - started

    timed(4)  # warm-up
    first = statistics.median(timed(1) for _ in range(3))
    full = statistics.median(timed(new_tokens) for _ in range(2))
    return (new_tokens - 1) / (full - first), first


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
        results.append(((tokens - 1) / (stamps[-1] - stamps[0]), stamps[0] - started, tokens))
    rate, ttft, tokens = (statistics.median(r[i] for r in results) for i in range(3))
    return rate, ttft, int(tokens), prompt_tokens


def main() -> None:
    """Measure and print the table and the RESULT line."""
    args = parser(__doc__.splitlines()[0])
    args.add_argument("--prompt-tokens", type=int, default=1500)
    args.add_argument("--new-tokens", type=int, default=256)
    args.add_argument("--runs", type=int, default=3)
    args.add_argument(
        "--shape", choices=["7b", "0.5b", "tiny"], help="model shape (default: 7b on a GPU, tiny elsewhere)"
    )
    options = args.parse_args()
    import torch

    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    shapes = {"7b": QWEN2_7B, "0.5b": QWEN2_0_5B, "tiny": TINY}
    shape = shapes[options.shape or ("tiny" if options.quick or not cuda else "7b")]
    dtype = "float32" if shape is TINY else "bfloat16"
    prompt_len, new_tokens = (64, 32) if options.quick else (options.prompt_tokens, options.new_tokens)
    text = prompt_words(prompt_len - 20)  # the template adds ~20 tokens

    started = time.perf_counter()
    loaded = build(shape, device, dtype, fast=True)
    load_s = time.perf_counter() - started
    ours_tok_s, ttft, tokens, prompt_tokens = stream_rate(loaded, text, new_tokens, options.runs)
    # The fallback (our stream on the dynamic cache) against plain generate, interleaved run by
    # run, so a busy moment of the machine falls on both.
    slow = LoadedModel(**{**loaded.__dict__, "engine": Engine(loaded.model, fast=False)})
    pairs = [
        (plain_rate(loaded, text, new_tokens), stream_rate(slow, text, new_tokens, 1)[0]) for _ in range(options.runs)
    ]
    plain_tok_s = statistics.median(p[0][0] for p in pairs)
    plain_ttft = statistics.median(p[0][1] for p in pairs)
    stream_plain_tok_s = statistics.median(p[1] for p in pairs)
    fallback_ratios = [round(p[1] / p[0][0], 3) for p in pairs]

    result = {
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "model": "tiny" if shape is TINY else f"Qwen2-{options.shape or '7b'} shape, random, {dtype}",
        "prompt_tokens": prompt_tokens,
        "new_tokens": tokens,
        "fast_path": loaded.engine.fast,
        "fast_path_reason": loaded.engine.reason,
        "build_and_warmup_s": round(load_s, 1),
        "plain_tok_s": round(plain_tok_s, 1),
        "plain_ttft_s": round(plain_ttft, 3),
        "stream_dynamic_tok_s": round(stream_plain_tok_s, 1),
        # The fallback over plain generate: median of the per-run ratios, and each run's.
        "fallback_over_plain": statistics.median(fallback_ratios),
        "fallback_over_plain_per_run": fallback_ratios,
        "ours_tok_s": round(ours_tok_s, 1),
        "speedup": round(ours_tok_s / plain_tok_s, 2),
        "ttft_s": round(ttft, 3),
    }
    report(
        "Decode speed (warm, greedy)",
        ["path", "decode tok/s", "first token (s)"],
        [
            ["plain generate, dynamic cache", plain_tok_s, plain_ttft],
            ["chat stream, dynamic cache", stream_plain_tok_s, "-"],
            ["chat stream, static cache + compiled (ours)", ours_tok_s, ttft],
        ],
        result,
    )


if __name__ == "__main__":
    main()
