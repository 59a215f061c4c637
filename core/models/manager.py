"""Keeps at most one chat model resident and hands out LangChain chat models over it."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import FakeListChatModel

from core.errors import ModelBusy, NoModelLoaded
from core.models import loader, remote
from core.models.chat import LocalChatModel
from core.models.loader import LoadedModel, LoadOptions, Progress
from core.models.registry import ModelRegistry
from core.models.remote import RemoteModel
from core.settings import Settings

FAKE_REPLY = "This is a canned answer from the fake backend [1]. 这是测试用的固定回答。"

Resident = LoadedModel | RemoteModel


class ModelManager:
    """Loads a catalog model once, however many sessions ask; loading another unloads it first."""

    def __init__(self, settings: Settings, registry: ModelRegistry) -> None:
        self._settings = settings
        self._registry = registry
        self._lock = threading.Lock()
        self._resident: Resident | None = None
        self._options: LoadOptions | None = None

    @property
    def current(self) -> Resident | None:
        """The resident model, if any."""
        return self._resident

    def load(self, key: str, options: LoadOptions | None = None, progress: Progress | None = None) -> Resident:
        """Make ``key`` the resident model; a no-op when it is already loaded the same way."""
        options = options or LoadOptions()
        with self._lock:
            resident = self._resident
            if resident and resident.spec.key == key and self._options == options:
                return resident
            spec = self._registry.get(key)
            self._unload_locked()
            if spec.source == "remote":
                self._resident = remote.connect(spec, self._settings.server_keys)
            elif self._settings.llm_backend == "fake":
                self._resident = LoadedModel(spec, None, None, "cpu", "float32", Path(), 0.0, options)
            else:
                self._resident = loader.load(spec, self._settings, options, progress)
            self._options = options
            return self._resident

    def unload(self) -> None:
        """Free the resident model's memory; :class:`ModelBusy` while it is writing answers."""
        with self._lock:
            self._unload_locked()

    def in_flight(self) -> int:
        """Answers the resident model is writing or has queued (0 for a model server's)."""
        engine = getattr(self._resident, "engine", None)
        return engine.in_flight if engine is not None else 0

    def _unload_locked(self) -> None:
        # Unloading under another session's stream would end it with an error halfway through.
        if busy := self.in_flight():
            raise ModelBusy(name=self._resident.spec.name, count=busy)
        resident, self._resident, self._options = self._resident, None, None
        if isinstance(resident, LoadedModel):
            loader.release(resident)

    def chat_model(self, **generation: Any) -> BaseChatModel:
        """A LangChain chat model over the resident model.

        ``generation`` sets max_new_tokens, temperature, top_p or repetition_penalty; a value
        left out or None keeps the catalog row's default.
        """
        resident = self._resident
        generation = {k: v for k, v in generation.items() if v is not None}
        if isinstance(resident, RemoteModel):
            return remote.chat_model(resident.spec, self._settings.server_keys, **generation)
        if self._settings.llm_backend == "fake":
            return FakeListChatModel(responses=[FAKE_REPLY], sleep=0.01)
        if resident is None:
            raise NoModelLoaded()
        return LocalChatModel(loaded=resident, **generation)
