"""Keeps at most one chat model resident and hands out LangChain chat models over it."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import FakeListChatModel

from core.errors import NoModelLoaded
from core.models import loader
from core.models.chat import LocalChatModel
from core.models.loader import LoadedModel, LoadOptions, Progress
from core.models.registry import ModelRegistry
from core.settings import Settings

FAKE_REPLY = "This is a canned answer from the fake backend [1]. 这是测试用的固定回答。"


class ModelManager:
    """Loads a catalog model once, however many sessions ask; loading another unloads it first."""

    def __init__(self, settings: Settings, registry: ModelRegistry) -> None:
        self._settings = settings
        self._registry = registry
        self._lock = threading.Lock()
        self._loaded: LoadedModel | None = None

    @property
    def current(self) -> LoadedModel | None:
        """The resident model, if any."""
        return self._loaded

    def load(self, key: str, options: LoadOptions | None = None, progress: Progress | None = None) -> LoadedModel:
        """Make ``key`` the resident model; a no-op when it is already loaded the same way."""
        options = options or LoadOptions()
        with self._lock:
            current = self._loaded
            if current and current.spec.key == key and current.options == options:
                return current
            spec = self._registry.get(key)
            if current:
                self._unload_locked()
            if self._settings.llm_backend == "fake":
                self._loaded = LoadedModel(spec, None, None, "cpu", "float32", Path(), 0.0, options)
            else:
                self._loaded = loader.load(spec, self._settings, options, progress)
            return self._loaded

    def unload(self) -> None:
        """Free the resident model's memory."""
        with self._lock:
            self._unload_locked()

    def _unload_locked(self) -> None:
        if self._loaded:
            loaded, self._loaded = self._loaded, None
            loader.release(loaded)

    def chat_model(self, **generation: Any) -> BaseChatModel:
        """A LangChain chat model over the resident model with ``generation`` parameters."""
        if self._settings.llm_backend == "fake":
            return FakeListChatModel(responses=[FAKE_REPLY], sleep=0.01)
        if not self._loaded:
            raise NoModelLoaded()
        return LocalChatModel(loaded=self._loaded, **generation)
