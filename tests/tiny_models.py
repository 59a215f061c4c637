"""Tiny random-weight chat models with real tokenizers, built offline in a temporary folder."""

from __future__ import annotations

from pathlib import Path

SMOLLM2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def tiny_spec(folder: Path, **overrides):
    """A catalog row for a tiny model in ``folder``; ``overrides`` replace any field."""
    from core.models.spec import GenerationDefaults, ModelSpec

    fields = {
        "key": "tiny",
        "name": "Tiny",
        "family": "llama",
        "source": "local",
        "params_b": 0.0001,
        "local_path": str(folder),
        "stop_tokens": ("<|im_end|>",),
        "defaults": GenerationDefaults(max_new_tokens=12, temperature=0.0),
    }
    return ModelSpec(**{**fields, **overrides})


def build_tiny_model(
    folder: Path,
    arch: str = "llama",
    specials: tuple[str, ...] = ("<|im_end|>", "<|im_start|>", "<|endoftext|>"),
    eos: str = "<|im_end|>",
    bos: str | None = None,
    chat_template: str | None = SMOLLM2_TEMPLATE,
    silent: bool = False,
) -> Path:
    """Save a 1-layer model of ``arch`` (llama, qwen2, gemma2) and a byte-level tokenizer.

    The special tokens get the first ids, in order. With ``silent`` every logit is zero, so
    greedy decoding always picks token 0: the first special token.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {token: i for i, token in enumerate([*specials, *alphabet])}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    core.add_special_tokens(list(specials))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, eos_token=eos, bos_token=bos, pad_token=eos)
    if chat_template:
        tokenizer.chat_template = chat_template

    config = AutoConfig.for_model(
        arch,
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        max_position_embeddings=1024,
        eos_token_id=vocab[eos],
        bos_token_id=vocab[bos] if bos else None,
        pad_token_id=vocab[eos],
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    if silent:
        with torch.no_grad():
            model.lm_head.weight.zero_()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
