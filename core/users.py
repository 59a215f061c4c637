"""Who is using the app: the built-in user list, its salted password hashes, and the CLI
that makes a hash to paste into ``.streamlit/secrets.toml``.

With logins off (``KBA_AUTH=none``, the default) everyone is :data:`LOCAL`, an administrator
with no name: the app behaves as it always has for one person on localhost.

With ``KBA_AUTH=users`` the users are listed in ``.streamlit/secrets.toml``::

    [kba_users.alice]
    password_hash = "scrypt$16384$8$1$<salt>$<hash>"
    role = "admin"

Run ``python -m core.users hash`` to make a ``password_hash`` line.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import getpass
import hashlib
import hmac
import secrets
import sys
import time
from collections.abc import Mapping
from typing import Any, Literal

Role = Literal["admin", "user"]
ROLES: tuple[str, ...] = ("admin", "user")

# scrypt cost: about 16 MiB and a few tens of milliseconds per check.
_N, _R, _P, _DKLEN = 2**14, 8, 1, 32
_SALT_BYTES = 16
# A failed login waits this long (a little longer after each failure in a row, at most
# ``FAILED_LOGIN_MAX_S``) so that passwords cannot be tried quickly.
FAILED_LOGIN_DELAY_S = 1.0
FAILED_LOGIN_MAX_S = 5.0


@dataclasses.dataclass(frozen=True)
class User:
    """The acting user. ``name`` is empty only for :data:`LOCAL` (logins off)."""

    name: str
    role: Role = "user"

    @property
    def is_admin(self) -> bool:
        """Whether this user may manage models, servers, settings and every knowledge base."""
        return self.role == "admin"

    @property
    def is_local(self) -> bool:
        """Whether logins are off and this is the one person on the box."""
        return not self.name


LOCAL = User("", "admin")


def hash_password(password: str, salt: bytes | None = None) -> str:
    """``password`` hashed with scrypt and a fresh random salt, as ``scrypt$n$r$p$salt$hash``."""
    salt = salt if salt is not None else secrets.token_bytes(_SALT_BYTES)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=_N, r=_R, p=_P, dklen=_DKLEN)
    return "$".join(["scrypt", str(_N), str(_R), str(_P), _b64(salt), _b64(digest)])


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored`` (from :func:`hash_password`); compared in
    constant time. A malformed ``stored`` matches nothing.
    """
    try:
        scheme, n, r, p, salt, expected = stored.split("$")
        if scheme != "scrypt":
            return False
        n_, r_, p_ = int(n), int(r), int(p)
        if not (2 <= n_ <= 2**20 and 1 <= r_ <= 32 and 1 <= p_ <= 16):
            return False
        want = _unb64(expected)
        digest = hashlib.scrypt(
            password.encode("utf-8"), salt=_unb64(salt), n=n_, r=r_, p=p_, dklen=len(want), maxmem=2**27
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(digest, want)


class UserList:
    """The built-in users, read from the ``kba_users`` table of the secrets."""

    def __init__(self, entries: Mapping[str, Mapping[str, Any]]) -> None:
        self._entries: dict[str, tuple[str, Role]] = {}
        for name, entry in entries.items():
            role = str(entry.get("role", "user"))
            if role not in ROLES:
                raise ValueError(f"user {name!r}: role must be one of {', '.join(ROLES)}, not {role!r}")
            password_hash = str(entry.get("password_hash", ""))
            if not password_hash.startswith("scrypt$"):
                raise ValueError(f"user {name!r}: password_hash must come from: python -m core.users hash")
            self._entries[str(name)] = (password_hash, role)  # type: ignore[assignment]
        # Compared against when the name is unknown, so that a wrong name takes as long as a wrong password.
        self._decoy = hash_password(secrets.token_hex(8))

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> list[str]:
        """The user names, sorted."""
        return sorted(self._entries)

    def authenticate(self, name: str, password: str) -> User | None:
        """The user ``name`` if ``password`` is theirs, else None (the caller slows down)."""
        stored, role = self._entries.get(name, (self._decoy, "user"))
        matched = verify_password(password, stored)
        return User(name, role) if matched and name in self._entries else None


def failed_login_delay(failures: int) -> float:
    """Seconds to wait after the ``failures``-th failed login in a row."""
    return min(FAILED_LOGIN_DELAY_S * max(failures, 1), FAILED_LOGIN_MAX_S)


def slow_down(failures: int) -> None:
    """Wait after a failed login (see :func:`failed_login_delay`)."""
    _sleep(failed_login_delay(failures))


_sleep = time.sleep  # tests record the waits instead


def secrets_entry(name: str, password_hash: str, role: str = "user") -> str:
    """The lines to paste into ``.streamlit/secrets.toml`` for one user."""
    return f'[kba_users.{_toml_key(name)}]\npassword_hash = "{password_hash}"\nrole = "{role}"\n'


def _toml_key(name: str) -> str:
    if name and all(ch.isalnum() or ch in "-_" for ch in name) and name.isascii():
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def main(argv: list[str] | None = None) -> int:
    """``python -m core.users hash [--user NAME] [--role admin|user]``: prompt for a password
    (twice, not echoed) and print the lines for ``.streamlit/secrets.toml``.
    """
    parser = argparse.ArgumentParser(prog="python -m core.users", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser("hash", help="hash a password for the [kba_users] table of .streamlit/secrets.toml")
    make.add_argument("--user", help="the user name (asked for when left out)")
    make.add_argument("--role", choices=ROLES, default="user")
    args = parser.parse_args(argv)
    name = args.user or input("User name: ").strip()
    if not name:
        sys.stderr.write("A user name is needed.\n")
        return 2
    password = getpass.getpass("Password: ")
    if not password or password != getpass.getpass("Password again: "):
        sys.stderr.write("The passwords were empty or did not match; nothing was printed.\n")
        return 1
    sys.stdout.write(secrets_entry(name, hash_password(password), args.role))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
