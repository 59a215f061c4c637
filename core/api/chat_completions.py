"""An OpenAI-compatible chat endpoint whose model names are knowledge bases.

``POST /v1/chat/completions`` with ``model`` set to a knowledge base's name answers the last
user message with the app's answer pipeline (earlier turns are the history it rewrites
follow-ups with; system messages are left out, the pipeline has its own prompt). The reply's
text ends with its numbered sources, and the response carries them as ``sources``, with
``answered_by`` and ``note`` saying who wrote the answer. Streaming sends the answer as it is
written and the sources in the last chunk.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from core.api import operations
from core.rag.answer import Turn
from core.services import Services


class ChatMessage(BaseModel):
    """One message; ``content`` is text or OpenAI's list of parts (only text parts are read)."""

    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        """The message's text."""
        if isinstance(self.content, list):
            return "".join(str(part.get("text", "")) for part in self.content if part.get("type") == "text")
        return self.content or ""


class ChatRequest(BaseModel):
    """The fields of OpenAI's chat request that apply here; the rest are accepted and ignored."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(description="A knowledge base's name (GET /v1/models lists them).")
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    mode: Literal["auto", "generate", "quick", "sources"] = Field(
        "auto", description="Not OpenAI's: how to answer (see POST /v1/answer)."
    )
    k: int | None = Field(None, ge=1, le=operations.MAX_K, description="Not OpenAI's: passages to retrieve.")


def models(services: Services) -> dict[str, Any]:
    """The knowledge bases as OpenAI models."""
    return {
        "object": "list",
        "data": [
            {"id": kb.name, "object": "model", "created": int(kb.created), "owned_by": kb.owner or "local"}
            for kb in services.knowledge.all()
        ],
    }


def prepare(services: Services, request: ChatRequest) -> operations.Prepared:
    """Search the knowledge base the request names and decide who answers; errors come here,
    before any byte of a stream is sent.
    """
    *earlier, last = request.messages
    if last.role != "user" or not last.text().strip():
        raise operations.InvalidArgument(name="messages", reason="the last message must be the user's question")
    history = [Turn(m.role, m.text()) for m in earlier if m.role in {"user", "assistant"}]  # type: ignore[arg-type]
    generation = {
        "temperature": request.temperature,
        "top_p": request.top_p,
        "max_new_tokens": request.max_completion_tokens or request.max_tokens,
    }
    return operations.prepare(
        services,
        last.text(),
        [request.model],
        mode=request.mode,
        k=request.k,
        history=history,
        generation={key: value for key, value in generation.items() if value is not None},
    )


def _base(model: str, kind: str) -> dict[str, Any]:
    return {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": kind, "created": int(time.time()), "model": model}


def _extras(result: dict[str, Any]) -> dict[str, Any]:
    return {"sources": result["sources"], "answered_by": result["answered_by"], "note": result["note"]}


def completion(prepared: operations.Prepared, model: str) -> dict[str, Any]:
    """The whole answer as one ``chat.completion``."""
    result = prepared.result("".join(prepared.stream()))
    content = result["answer"] + operations.sources_block(result["sources"], prepared.lang)
    return {
        **_base(model, "chat.completion"),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        **_extras(result),
    }


def chunks(prepared: operations.Prepared, model: str) -> Iterator[str]:
    """The answer as Server-Sent Events of ``chat.completion.chunk``, as OpenAI streams them: the
    role, the text as it is written, then the sources (in the text and as ``sources``), then [DONE].
    """
    base = _base(model, "chat.completion.chunk")

    def event(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        body = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    yield event({"role": "assistant", "content": ""})
    pieces = []
    for piece in prepared.stream():
        if piece:
            pieces.append(piece)
            yield event({"content": piece})
    result = prepared.result("".join(pieces))
    tail = operations.sources_block(result["sources"], prepared.lang)
    yield event({"content": tail} if tail else {}, "stop", answer=result["answer"], **_extras(result))
    yield "data: [DONE]\n\n"
