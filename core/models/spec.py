"""The shape of one catalog row: everything that differs between chat models is data here."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal

ModelSource = Literal["embedded", "hub", "local", "remote"]


@dataclasses.dataclass(frozen=True)
class GenerationDefaults:
    """Sampling settings a model's authors publish in its generation_config.json."""

    max_new_tokens: int = 512
    temperature: float = 0.7
    top_p: float = 0.9
    repetition_penalty: float = 1.0


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """One chat model the app knows how to fetch, load and prompt.

    ``prompt_format`` is None when the tokenizer carries its own chat template, otherwise the
    name of a format in :mod:`core.models.prompt_formats`; ``template_kwargs`` go to the
    template (e.g. Qwen3's ``enable_thinking``). ``stop_tokens`` are the special tokens that
    end an assistant turn, beyond the eos tokens the model's own configs name.
    """

    key: str
    name: str
    family: str
    source: ModelSource
    params_b: float
    modelscope_id: str | None = None
    hf_id: str | None = None
    revision: str | None = None
    download_gb: float = 0.0
    mem_bf16_gb: float = 0.0
    mem_int8_gb: float = 0.0
    mem_int4_gb: float = 0.0
    dtype: str = "bfloat16"
    trust_remote_code: bool = False
    prompt_format: str | None = None
    stop_tokens: tuple[str, ...] = ()
    system_role: bool = True
    template_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    defaults: GenerationDefaults = GenerationDefaults()
    licence: str = ""
    notes: str = ""
    local_path: str | None = None
    base_url: str | None = None
    api_model: str | None = None
    api_key_env: str | None = None

    def hub_id(self, hub: str) -> str | None:
        """The repository id on ``hub`` ("modelscope" or "huggingface")."""
        return self.modelscope_id if hub == "modelscope" else self.hf_id

    @property
    def folder_name(self) -> str:
        """Name of the model's folder under the models directory."""
        return self.key
