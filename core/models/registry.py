"""The catalog as the app sees it: built-in rows plus rows users added, saved as JSON."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from core.errors import UnknownModel
from core.models.catalog import BUILTIN_MODELS
from core.models.spec import GenerationDefaults, ModelSpec


class ModelRegistry:
    """Built-in catalog rows and the user's own, looked up by key."""

    def __init__(self, user_file: Path) -> None:
        self._file = user_file

    def all(self) -> list[ModelSpec]:
        """Every row, built-in first."""
        return [*BUILTIN_MODELS, *self._user_rows()]

    def get(self, key: str) -> ModelSpec:
        """The row ``key``; raises :class:`UnknownModel`."""
        for spec in self.all():
            if spec.key == key:
                return spec
        raise UnknownModel(key=key)

    def add(self, spec: ModelSpec) -> None:
        """Save a user row, replacing a user row with the same key."""
        if any(s.key == spec.key for s in BUILTIN_MODELS):
            raise ValueError(f"'{spec.key}' is a built-in model key")
        rows = [s for s in self._user_rows() if s.key != spec.key] + [spec]
        self._write(rows)

    def remove(self, key: str) -> None:
        """Forget a user row (its files are left alone)."""
        self._write([s for s in self._user_rows() if s.key != key])

    def _user_rows(self) -> list[ModelSpec]:
        if not self._file.is_file():
            return []
        rows = json.loads(self._file.read_text(encoding="utf-8"))
        return [_from_dict(row) for row in rows]

    def _write(self, rows: list[ModelSpec]) -> None:
        self._file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._file.with_suffix(".tmp")
        tmp.write_text(json.dumps([dataclasses.asdict(s) for s in rows], ensure_ascii=False, indent=1), "utf-8")
        os.replace(tmp, self._file)


def _from_dict(row: dict) -> ModelSpec:
    row = dict(row)
    row["defaults"] = GenerationDefaults(**row.get("defaults", {}))
    row["stop_tokens"] = tuple(row.get("stop_tokens", ()))
    return ModelSpec(**row)
