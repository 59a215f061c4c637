"""The one LangChain chat model that serves every local catalog row."""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Iterator
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel, generate_from_stream
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from pydantic import ConfigDict, Field, InstanceOf

from core.models.decoder import Request
from core.models.loader import LoadedModel

_ROLES = {"system": "system", "human": "user", "ai": "assistant"}


def to_chat_messages(messages: list[BaseMessage], system_role: bool = True) -> list[dict[str, str]]:
    r"""LangChain messages as chat-template dicts.

    For models whose template has no system role (Gemma-2), the system text is folded into
    the first user turn.

    >>> from langchain_core.messages import SystemMessage, HumanMessage
    >>> to_chat_messages([SystemMessage("Be brief."), HumanMessage("Hi")], system_role=False)
    [{'role': 'user', 'content': 'Be brief.\n\nHi'}]
    """
    chat = [{"role": _ROLES.get(m.type, "user"), "content": m.text} for m in messages]
    if system_role:
        return chat
    system = "\n\n".join(m["content"] for m in chat if m["role"] == "system")
    chat = [m for m in chat if m["role"] != "system"]
    if system:
        first_user = next((i for i, m in enumerate(chat) if m["role"] == "user"), None)
        if first_user is None:
            chat.insert(0, {"role": "user", "content": system})
        else:
            chat[first_user] = {"role": "user", "content": f"{system}\n\n{chat[first_user]['content']}"}
    return chat


class _StopText:
    """Cuts streamed text at the first stop string, holding back text that may start one.

    Not transformers' ``generate(stop_strings=...)``: it ends generation, but only after the
    streamer has been given the tokens that spell the stop string (and whatever else the last
    token holds), while LangChain's ``stop`` contract is that none of it reaches the caller.
    The cutting and holding back would stay, so once a stop string is seen the request's
    ``cancel`` event ends generation instead.
    """

    def __init__(self, stops: list[str]) -> None:
        self.stops = [s for s in stops if s]
        self.buffer = ""
        self.stopped = False

    def feed(self, text: str) -> str:
        if not self.stops:
            return text
        self.buffer += text
        hits = [i for i in (self.buffer.find(s) for s in self.stops) if i >= 0]
        if hits:
            self.stopped = True
            out, self.buffer = self.buffer[: min(hits)], ""
            return out
        keep = max(len(s) for s in self.stops) - 1
        cut = max(0, len(self.buffer) - keep)
        out, self.buffer = self.buffer[:cut], self.buffer[cut:]
        return out

    def flush(self) -> str:
        out, self.buffer = self.buffer, ""
        return out


class LocalChatModel(BaseChatModel):
    """A transformers model behind LangChain's chat-model interface.

    Prompts are rendered with the tokenizer's chat template (or the catalog's named format),
    tokens stream through ``TextIteratorStreamer``, and generation stops on the catalog's stop
    tokens. Generation parameters left as None fall back to the catalog row's defaults.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    loaded: InstanceOf[LoadedModel] = Field(exclude=True)
    max_new_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    repetition_penalty: float | None = None

    @property
    def _llm_type(self) -> str:
        return "local-transformers"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model": self.loaded.spec.key, "device": self.loaded.device, **self.sampling_parameters()}

    def sampling_parameters(self, **overrides: Any) -> dict[str, Any]:
        """The generation parameters a call uses: ``overrides``, else this model's, else the row's."""
        defaults = self.loaded.spec.defaults
        params = {
            "max_new_tokens": self.max_new_tokens or defaults.max_new_tokens,
            "temperature": defaults.temperature if self.temperature is None else self.temperature,
            "top_p": self.top_p or defaults.top_p,
            "repetition_penalty": self.repetition_penalty or defaults.repetition_penalty,
        }
        params.update({k: v for k, v in overrides.items() if k in params and v is not None})
        return params

    def render_prompt(self, messages: list[BaseMessage]) -> str:
        """The exact text the model sees for ``messages``."""
        chat = to_chat_messages(messages, self.loaded.spec.system_role)
        return self.loaded.tokenizer.apply_chat_template(
            chat, add_generation_prompt=True, tokenize=False, **self.loaded.spec.template_kwargs
        )

    def stop_token_ids(self) -> list[int]:
        """Token ids that end generation.

        The catalog's stop tokens, the tokenizer's eos and the eos ids of the model's
        generation_config.json.
        """
        tokenizer = self.loaded.tokenizer
        ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
        configured = getattr(getattr(self.loaded.model, "generation_config", None), "eos_token_id", None)
        ids.update([configured] if isinstance(configured, int) else configured or ())
        # Token by token, not get_vocab(): that builds a dict of the whole vocabulary (~85 ms for
        # Qwen2's 152k tokens), before every answer's first token.
        for token in self.loaded.spec.stop_tokens:
            found = tokenizer.convert_tokens_to_ids(token)
            if found is not None and tokenizer.convert_ids_to_tokens(found) == token:
                ids.add(found)
        return sorted(ids)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return generate_from_stream(self._stream(messages, stop=stop, run_manager=run_manager, **kwargs))

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        import torch
        from transformers import TextIteratorStreamer

        loaded = self.loaded
        tokenizer = loaded.tokenizer
        prompt = self.render_prompt(messages)
        # The template already wrote any BOS token; adding another would change the prompt.
        input_ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
        streamer = TextIteratorStreamer(tokenizer, skip_special_tokens=True)
        cancel = threading.Event()
        sampling = self.sampling_parameters(**kwargs)
        request = Request(
            input_ids=input_ids.to(loaded.model.device),
            max_new_tokens=sampling["max_new_tokens"],
            stop_ids=tuple(self.stop_token_ids()),
            temperature=sampling["temperature"],
            top_p=sampling["top_p"],
            repetition_penalty=sampling["repetition_penalty"],
            on_token=lambda token: streamer.put(torch.tensor([token])),
            cancel=cancel,
        )
        future = loaded.engine.submit(request)
        # Ends the stream below when generation ends, however it ends.
        future.add_done_callback(lambda _: streamer.end())
        cutter = _StopText(list(stop or ()))
        try:
            for piece in streamer:
                text = cutter.feed(piece)
                if text:
                    chunk = ChatGenerationChunk(message=AIMessageChunk(content=text))
                    if run_manager:
                        run_manager.on_llm_new_token(text, chunk=chunk)
                    yield chunk
                if cutter.stopped:
                    break
            # Always a last chunk, possibly empty: a model may end its turn at once.
            tail = "" if cutter.stopped else cutter.flush()
            yield ChatGenerationChunk(message=AIMessageChunk(content=tail, chunk_position="last"))
        finally:
            # Reached on normal end, on a stop string, and when the consumer stops reading.
            cancel.set()
            concurrent.futures.wait([future])
        if future.exception():
            raise future.exception()
