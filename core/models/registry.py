"""The catalog as the app sees it: built-in rows plus the user's rows, saved as JSON.

A user row with a built-in row's key replaces it; that is how "use a folder I already have"
points a catalog model at a folder downloaded by hand.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from pathlib import Path

from core.app_files import write_atomically
from core.errors import UnknownModel
from core.models.catalog import BUILTIN_MODELS
from core.models.spec import GenerationDefaults, ModelSpec, PypiPieces


class ModelRegistry:
    """Built-in catalog rows and the user's own, looked up by key."""

    def __init__(self, user_file: Path) -> None:
        self._file = user_file
        self._lock = threading.Lock()

    def all(self) -> list[ModelSpec]:
        """Every row: built-in rows (or the user's replacements) first, then the user's own."""
        user = {spec.key: spec for spec in self._user_rows()}
        builtin_keys = {spec.key for spec in BUILTIN_MODELS}
        rows = [user.get(spec.key, spec) for spec in BUILTIN_MODELS]
        return rows + [spec for key, spec in user.items() if key not in builtin_keys]

    def get(self, key: str) -> ModelSpec:
        """The row ``key``; raises :class:`UnknownModel`."""
        for spec in self.all():
            if spec.key == key:
                return spec
        raise UnknownModel(key=key)

    def is_builtin(self, key: str) -> bool:
        """Whether ``key`` is one of the app's own rows."""
        return any(spec.key == key for spec in BUILTIN_MODELS)

    def add(self, spec: ModelSpec) -> None:
        """Save a user row, replacing any user row with the same key."""
        with self._lock:
            self._write([s for s in self._user_rows() if s.key != spec.key] + [spec])

    def use_folder(self, key: str, folder: Path) -> ModelSpec:
        """Point row ``key`` at a folder the user already has."""
        spec = dataclasses.replace(self.get(key), local_path=str(folder.expanduser().resolve()))
        self.add(spec)
        return spec

    def remove(self, key: str) -> None:
        """Forget a user row (files are left alone); a built-in row returns to its defaults."""
        with self._lock:
            self._write([s for s in self._user_rows() if s.key != key])

    def _user_rows(self) -> list[ModelSpec]:
        if not self._file.is_file():
            return []
        rows = json.loads(self._file.read_text(encoding="utf-8"))
        return [_from_dict(row) for row in rows]

    def _write(self, rows: list[ModelSpec]) -> None:
        self._file.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(self._file, json.dumps([dataclasses.asdict(s) for s in rows], ensure_ascii=False, indent=1))


def _from_dict(row: dict) -> ModelSpec:
    row = dict(row)
    row["defaults"] = GenerationDefaults(**row.get("defaults", {}))
    row["stop_tokens"] = tuple(row.get("stop_tokens", ()))
    row["pieces"] = PypiPieces(**row["pieces"]) if row.get("pieces") else None
    return ModelSpec(**row)
