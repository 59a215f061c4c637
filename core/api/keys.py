"""API keys: who is calling the HTTP API or the MCP server while logins are on.

With logins off (``KBA_AUTH=none``) every caller is the one local administrator and no key is
needed, as in the app. With logins on, each caller sends ``Authorization: Bearer <key>`` (the
stdio MCP server reads ``KBA_API_KEY``), and acts as the user the key was made for, with that
user's rights on knowledge bases (:mod:`core.access`).

Keys are made by whoever runs the server (``python -m core.api keys add alice``), shown once,
and kept in ``<data>/api_keys.json`` as SHA-256 digests only. A key is 256 random bits, so a
plain digest cannot be reversed or guessed, unlike a password, which needs scrypt.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import secrets
import time
from pathlib import Path
from typing import Any

from core.app_files import write_atomically
from core.errors import AppError
from core.settings import Settings
from core.users import LOCAL, ROLES, User

KEYS_FILE = "api_keys.json"
PREFIX = "kba-"


class KeyRefused(AppError):
    """A request without a valid API key while logins are on."""

    en = (
        "A valid API key is needed: logins are on (KBA_AUTH={mode}). Send 'Authorization: Bearer <key>'; "
        "the server's operator makes keys with: python -m core.api keys add USER"
    )
    zh = "需要有效的 API 密钥：已开启登录（KBA_AUTH={mode}）。请发送 “Authorization: Bearer <密钥>”；服务运行者可用 python -m core.api keys add 用户名 生成密钥。"  # noqa: E501


@dataclasses.dataclass(frozen=True)
class KeyRow:
    """One issued key: whose it is, their role, its digest and when it was made."""

    id: str
    user: str
    role: str
    sha256: str
    created: float


class ApiKeys:
    """The keys of one data folder."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / KEYS_FILE

    def rows(self) -> list[KeyRow]:
        """Every issued key, oldest first."""
        if not self.path.is_file():
            return []
        data = json.loads(self.path.read_text(encoding="utf-8"))
        return [KeyRow(**row) for row in data.get("keys", [])]

    def add(self, user: str, role: str = "user") -> tuple[KeyRow, str]:
        """A new key for ``user``: its row and the key itself, which is not kept anywhere."""
        if not user.strip():
            raise ValueError("a key needs a user name")
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
        key = PREFIX + secrets.token_urlsafe(32)
        row = KeyRow(f"key-{secrets.token_hex(4)}", user.strip(), role, _digest(key), time.time())
        self._write([*self.rows(), row])
        return row, key

    def revoke(self, key_id_or_user: str) -> int:
        """Forget the key with this id, or every key of this user; returns how many."""
        rows = self.rows()
        kept = [r for r in rows if key_id_or_user not in {r.id, r.user}]
        self._write(kept)
        return len(rows) - len(kept)

    def user_for(self, key: str | None) -> User | None:
        """The user ``key`` was made for, or None for a missing or unknown key."""
        if not key:
            return None
        digest = _digest(key)
        for row in self.rows():
            if secrets.compare_digest(row.sha256, digest):
                return User(row.user, row.role)  # type: ignore[arg-type]
        return None

    def _write(self, rows: list[KeyRow]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(self.path, json.dumps({"keys": [dataclasses.asdict(r) for r in rows]}, indent=1))
        self.path.chmod(0o600)


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def caller(settings: Settings, key: str | None) -> User:
    """Who a request with ``key`` acts as: :data:`LOCAL` with logins off; else the key's user,
    or :class:`KeyRefused`.
    """
    if settings.auth == "none":
        return LOCAL
    user = ApiKeys(settings.data_dir).user_for(key)
    if user is None:
        raise KeyRefused(mode=settings.auth)
    return user


def bearer(headers: Any) -> str | None:
    """The key of an ``Authorization: Bearer <key>`` header, if there is one."""
    value = headers.get("authorization") or ""
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None
