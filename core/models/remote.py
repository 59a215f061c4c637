"""Models served elsewhere through an OpenAI-compatible API (vLLM, lmdeploy, Ollama, Xinference)."""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any

import requests
from langchain_core.language_models import BaseChatModel

from core.errors import EndpointUnreachable
from core.models.spec import ModelSpec

_NO_KEY = "not-needed"  # local servers ignore the key, but the client insists on one


@dataclasses.dataclass(eq=False)
class RemoteModel:
    """A catalog row whose model runs on a server; "loading" it checks that the server answers."""

    spec: ModelSpec
    load_seconds: float
    device: str = "remote"
    dtype: str = ""


def _api_key(spec: ModelSpec) -> str:
    return (os.environ.get(spec.api_key_env) if spec.api_key_env else None) or _NO_KEY


def connect(spec: ModelSpec, timeout_s: float = 5.0) -> RemoteModel:
    """Check that the server lists its models; raises :class:`EndpointUnreachable` within ``timeout_s``."""
    started = time.perf_counter()
    try:
        reply = requests.get(
            f"{spec.base_url}/models", headers={"Authorization": f"Bearer {_api_key(spec)}"}, timeout=timeout_s
        )
        reply.raise_for_status()
    except requests.RequestException as exc:
        raise EndpointUnreachable(url=spec.base_url, detail=type(exc).__name__) from exc
    return RemoteModel(spec, time.perf_counter() - started)


def chat_model(spec: ModelSpec, **generation: Any) -> BaseChatModel:
    """A streaming LangChain chat model for the server in ``spec``."""
    from langchain_openai import ChatOpenAI

    defaults = spec.defaults
    body = {"max_tokens": generation.get("max_new_tokens") or defaults.max_new_tokens}
    penalty = generation.get("repetition_penalty") or defaults.repetition_penalty
    if penalty != 1.0:
        # Not in the OpenAI API; vLLM, lmdeploy and Xinference read it from the request body.
        body["repetition_penalty"] = penalty
    return ChatOpenAI(
        base_url=spec.base_url,
        model=spec.api_model,
        api_key=_api_key(spec),
        streaming=True,
        temperature=defaults.temperature if generation.get("temperature") is None else generation["temperature"],
        top_p=generation.get("top_p") or defaults.top_p,
        # max_tokens goes in the body as is: ChatOpenAI would rename it max_completion_tokens,
        # which older vLLM, lmdeploy and Ollama servers ignore.
        extra_body=body,
        timeout=120,
        max_retries=1,
    )
