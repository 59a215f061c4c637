"""Tiny models with real tokenizers, built offline in a temporary folder: random-weight chat
models, and a cross-encoder (reranker) trained in a second to score given passages."""

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


def build_tiny_cross_encoder(
    folder: Path, examples: list[tuple[str, str, float]], steps: int = 150, seed: int = 0
) -> Path:
    """Train and save a tiny BERT cross-encoder (``num_labels=1``) with a word-level tokenizer.

    ``examples`` are (query, passage, label) with labels 1.0 (relevant) or 0.0; the model is
    trained on them for ``steps`` full-batch steps, so it scores the passages it was shown as
    labelled. Words it never saw are [UNK]. Deterministic for a ``seed``; about a second on a CPU.
    """
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    normalizer = normalizers.BertNormalizer(lowercase=True)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    words = sorted(
        {
            word
            for query, passage, _ in examples
            for text in (query, passage)
            for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text))
        }
    )
    vocab = {token: i for i, token in enumerate([*specials, *words])}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    core.normalizer = normalizer
    core.pre_tokenizer = pre_tokenizer
    core.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=256,
    )

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=256,
        num_labels=1,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    model = BertForSequenceClassification(config)
    queries, passages, labels = zip(*examples, strict=True)
    batch = tokenizer(list(queries), list(passages), padding=True, truncation=True, return_tensors="pt")
    target = torch.tensor(labels, dtype=torch.float32)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a model this small trains many times slower on threads that wait for busy cores
    try:
        for _ in range(steps):
            optimizer.zero_grad()
            logits = model(**batch).logits.squeeze(-1)
            torch.nn.functional.binary_cross_entropy_with_logits(logits, target).backward()
            optimizer.step()
    finally:
        torch.set_num_threads(threads)
    model.eval()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
