"""Models served elsewhere through an OpenAI-compatible API (vLLM, lmdeploy, Ollama, Xinference).

The API key comes only from an environment variable the configuration allows for that server
(``KBA_SERVER_KEYS``, see :mod:`core.credentials`), and is sent to that server alone.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Mapping
from typing import Any

import requests
from langchain_core.language_models import BaseChatModel

from core.credentials import Allowed, allowed_variables, configured_secret, origin
from core.errors import EndpointUnreachable, ServerKeyNotAllowed
from core.models.spec import ModelSpec

_NO_KEY = "not-needed"  # local servers ignore the key, but the client insists on one


@dataclasses.dataclass(eq=False)
class RemoteModel:
    """A catalog row whose model runs on a server; "loading" it checks that the server answers."""

    spec: ModelSpec
    load_seconds: float
    device: str = "remote"
    dtype: str = ""


def api_key(spec: ModelSpec, allowed: Allowed, environ: Mapping[str, str] = os.environ) -> str:
    """The key to send to the server of ``spec``: the first variable set among those ``allowed``
    for that server, or only the one the row names. A row naming a variable not allowed there
    raises :class:`ServerKeyNotAllowed`; no variable other than these is read.
    """
    if spec.api_key_env:
        if spec.api_key_env not in allowed_variables(allowed, spec.base_url):
            raise ServerKeyNotAllowed(
                variable=spec.api_key_env, url=spec.base_url, server=origin(spec.base_url) or spec.base_url
            )
        allowed = {spec.base_url: spec.api_key_env}
    found = configured_secret(allowed, spec.base_url, environ)
    return found[1] if found else _NO_KEY


def connect(spec: ModelSpec, allowed: Allowed, timeout_s: float = 5.0) -> RemoteModel:
    """Check that the server lists its models; raises :class:`EndpointUnreachable` within ``timeout_s``.

    ``allowed`` (the ``server_keys`` setting) says which variable may hold which server's key.
    """
    key = api_key(spec, allowed)
    started = time.perf_counter()
    try:
        reply = requests.get(f"{spec.base_url}/models", headers={"Authorization": f"Bearer {key}"}, timeout=timeout_s)
        reply.raise_for_status()
    except requests.RequestException as exc:
        raise EndpointUnreachable(url=spec.base_url, detail=type(exc).__name__) from exc
    return RemoteModel(spec, time.perf_counter() - started)


def chat_model(spec: ModelSpec, allowed: Allowed, **generation: Any) -> BaseChatModel:
    """A streaming LangChain chat model for the server in ``spec``, with the key ``allowed`` gives it."""
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
        api_key=api_key(spec, allowed),
        streaming=True,
        temperature=defaults.temperature if generation.get("temperature") is None else generation["temperature"],
        top_p=generation.get("top_p") or defaults.top_p,
        # max_tokens goes in the body as is: ChatOpenAI would rename it max_completion_tokens,
        # which older vLLM, lmdeploy and Ollama servers ignore.
        extra_body=body,
        timeout=120,
        max_retries=1,
    )
