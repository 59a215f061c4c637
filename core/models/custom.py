"""Catalog rows made by users: a local folder, a hub repository, or an OpenAI-compatible server."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import urlparse

from core.credentials import address_without_credentials
from core.errors import InvalidEndpoint, InvalidModelFolder, ModelFolderNotFound
from core.models.memory import estimate
from core.models.prompt_formats import PROMPT_FORMATS
from core.models.spec import GenerationDefaults, ModelSpec

_BYTES_PER_PARAM = {"float32": 4, "float16": 2, "bfloat16": 2}


def slug(text: str) -> str:
    """A catalog key made from a name or repository id.

    >>> slug("Qwen/Qwen2.5-3B-Instruct")
    'qwen2.5-3b-instruct'
    """
    tail = text.rstrip("/").rsplit("/", 1)[-1]
    return re.sub(r"[^a-z0-9._-]+", "-", tail.lower()).strip("-") or "model"


def row_from_folder(folder: Path, name: str | None = None, prompt_format: str | None = None) -> ModelSpec:
    """A row for a model folder on this machine, read from its own config files."""
    folder = folder.expanduser()
    if not folder.is_dir():
        raise ModelFolderNotFound(path=str(folder))
    config = _read_json(folder / "config.json")
    if config is None:
        raise InvalidModelFolder(
            path=str(folder),
            reason="it has no readable config.json (a model folder holds config.json, the weights and the tokenizer)",
            reason_zh="其中没有可读取的 config.json（模型文件夹应包含 config.json、权重和分词器文件）",
        )
    tokenizer_config = _read_json(folder / "tokenizer_config.json") or {}
    has_template = bool(tokenizer_config.get("chat_template")) or (folder / "chat_template.jinja").is_file()
    if not has_template and prompt_format not in PROMPT_FORMATS:
        formats = ", ".join(PROMPT_FORMATS)
        raise InvalidModelFolder(
            path=str(folder),
            reason=f"its tokenizer has no chat template; choose a prompt format ({formats})",
            reason_zh=f"其分词器没有对话模板；请选择一种提示格式（{formats}）",
        )
    generation = _read_json(folder / "generation_config.json") or {}
    dtype = str(config.get("torch_dtype") or config.get("dtype") or "bfloat16")
    weights = sum(p.stat().st_size for p in folder.glob("*.safetensors")) or sum(
        p.stat().st_size for p in folder.glob("*.bin")
    )
    params_b = round(weights / _BYTES_PER_PARAM.get(dtype, 2) / 1e9, 2)
    return ModelSpec(
        key=slug(name or folder.name),
        name=name or folder.name,
        family=str(config.get("model_type", "unknown")),
        source="local",
        params_b=params_b,
        local_path=str(folder.resolve()),
        download_gb=round(weights / 1e9, 1),
        dtype=dtype,
        trust_remote_code="auto_map" in config,
        prompt_format=None if has_template else prompt_format,
        defaults=GenerationDefaults(
            temperature=float(generation.get("temperature", 0.7)),
            top_p=float(generation.get("top_p", 0.9)),
            repetition_penalty=float(generation.get("repetition_penalty", 1.0)),
        ),
        licence="see the model's own files",
        **estimate(params_b),
    )


def row_from_hub(repo_id: str, name: str | None = None, trust_remote_code: bool = False) -> ModelSpec:
    """A row for a repository id that ModelScope and Hugging Face share (e.g. Qwen/Qwen2.5-3B-Instruct).

    Sizes are unknown until the download lists the files; stop tokens come from the model's
    generation_config.json when it loads.
    """
    repo_id = repo_id.strip().strip("/")
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", repo_id):
        raise InvalidModelFolder(
            path=repo_id, reason="a repository id looks like owner/name", reason_zh="仓库名的形式应为 所有者/名称"
        )
    return ModelSpec(
        key=slug(repo_id),
        name=name or repo_id.split("/")[-1],
        family="unknown",
        source="hub",
        params_b=0.0,
        modelscope_id=repo_id,
        hf_id=repo_id,
        trust_remote_code=trust_remote_code,
        licence="see the model's page",
    )


def row_for_endpoint(base_url: str, model: str, name: str | None = None, api_key_env: str | None = None) -> ModelSpec:
    """A row for a model served by vLLM, lmdeploy, Ollama, Xinference or any OpenAI-compatible server.

    Its API key comes from the variables the ``server_keys`` setting allows for the server
    (``api_key_env`` picks one of them), never from the address.
    """
    shown = address_without_credentials(base_url.strip())
    parsed = urlparse(base_url.strip())
    if parsed.scheme not in {"http", "https"} or not parsed.netloc:
        raise InvalidEndpoint(url=shown, reason="only http:// and https:// URLs are accepted")
    if shown != base_url.strip():
        raise InvalidEndpoint(
            url=shown,
            reason="it holds a user name or key, which would be stored and shown (keys go in KBA_SERVER_KEYS)",
        )
    if not model.strip():
        raise InvalidEndpoint(url=shown, reason="the served model's name is missing")
    return ModelSpec(
        key=slug(name or model) + "-remote",
        name=name or f"{model} @ {parsed.netloc}",
        family="remote",
        source="remote",
        params_b=0.0,
        base_url=base_url.strip().rstrip("/"),
        api_model=model.strip(),
        api_key_env=api_key_env or None,
        licence="set by the server",
    )


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
