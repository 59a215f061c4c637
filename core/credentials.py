"""Secrets kept out of everything the app stores and shows, and sent only where they belong.

A user name, password or token in an address (``https://user:token@host/repo.git``) is taken
out before the address is recorded, shown or written anywhere; git gets it for the one
process that needs it (see :mod:`core.knowledge.git_source`). A key the app sends to a server
comes only from an environment variable that the configuration allows for that server
(``KBA_SERVER_KEYS``, ``KBA_GIT_TOKENS``), and other variables are never read: nobody using
the pages can have the value of some other variable sent to an address of their choosing.
"""

from __future__ import annotations

import base64
import dataclasses
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import unquote, urlsplit

from core.app_files import write_atomically

# Between "scheme://" and the last "@" before the path is the user part: a user name, a
# password or a token (a token may stand in for the user name). The greedy run stops at the
# path, so an "@" in a path or query is left alone; in running text it also stops at a space.
_USER_PART = re.compile(r"(?i)\b(https?|ssh)://([^/\s\"'<>]*)@")
# One whole address, as typed, may be malformed: its user part is anything before the path.
_ADDRESS_USER_PART = re.compile(r"(?i)^\s*(https?|ssh)://([^/]*)@")
# user:password@host:path, a form git does not take, would show its password when refused.
_SCP_PASSWORD = re.compile(r"^\s*([^/@:]*):[^/]*@")
_DEFAULT_PORTS = {"http": 80, "https": 443}

Allowed = Mapping[str, str | Sequence[str]]


@dataclasses.dataclass(frozen=True)
class Credentials:
    """A user name and a password or token, for one request; never shown."""

    username: str
    password: str

    def __repr__(self) -> str:
        return "Credentials(***)"  # tracebacks and logs show the object, never its value

    @classmethod
    def parse(cls, text: str) -> Credentials:
        """``user:token``, or a token alone, which is sent as the user name (as in ``https://token@host/``)."""
        username, _, password = text.strip().partition(":")
        return cls(username, password)

    def basic_auth(self) -> str:
        """The value of an HTTP ``Authorization`` header carrying these credentials."""
        return "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode("ascii")


def without_credentials(text: str) -> str:
    """``text`` with the user part of every http(s) address taken out, and the password of every
    ssh address (an ssh user name such as ``git@`` is kept: it is no secret).

    >>> without_credentials("git could not get https://me:ghp_abc@github.com/o/r.git")
    'git could not get https://github.com/o/r.git'
    >>> without_credentials("ssh://git:pw@host/r.git")
    'ssh://git@host/r.git'
    """
    return _USER_PART.sub(_keep_ssh_user, text)


def _keep_ssh_user(match: re.Match[str]) -> str:
    scheme, user_part = match[1], match[2]
    if scheme.lower() == "ssh":
        return f"{scheme}://{user_part.partition(':')[0]}@"
    return f"{scheme}://"


def address_without_credentials(address: str) -> str:
    """One address as typed, fit to store or show even when it is malformed (say, a space in
    its token): its user part taken out as :func:`without_credentials` does, and a password
    before a ``host:path`` dropped.

    >>> address_without_credentials("https://me:to ken@host/r.git"), address_without_credentials("me:pw@host:r")
    ('https://host/r.git', 'me@host:r')
    """
    cleaned = _ADDRESS_USER_PART.sub(_keep_ssh_user, address)
    if cleaned == address:
        cleaned = _SCP_PASSWORD.sub(r"\1@", address)
    return without_credentials(cleaned)  # an address inside what was typed ("ext::https://…")


def split_credentials(url: str) -> tuple[str, Credentials | None]:
    """The address without its credentials, and the credentials of an http(s) address (None if
    it has none; ssh takes keys, never a password from the address).
    """
    match = _ADDRESS_USER_PART.match(url)
    if not match or match[1].lower() == "ssh":
        return address_without_credentials(url), None
    user, _, password = match[2].partition(":")
    return address_without_credentials(url), Credentials(unquote(user), unquote(password))


def forget_in_file(path: Path) -> None:
    """Take credentials out of a text file written by an earlier version (a job record, a
    conversation, a clone's git config); a file that has none is left untouched.
    """
    text = path.read_text(encoding="utf-8")
    cleaned = without_credentials(text)
    if cleaned != text:
        write_atomically(path, cleaned)


def origin(url: str) -> str | None:
    """``scheme://host[:port]`` of an http(s) address, the part that says which server it is
    (the port left out when it is the scheme's own); None for anything else. A bare host name
    means https.

    >>> origin("https://API.example.com:443/v1"), origin("api.example.com"), origin("http://localhost:8000/v1")
    ('https://api.example.com', 'https://api.example.com', 'http://localhost:8000')
    """
    text = url.strip()
    try:
        parts = urlsplit(text if "://" in text else f"https://{text}")
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    # An IPv6 address keeps its brackets, and the scheme's own port is the same server as none.
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}" if port in (None, _DEFAULT_PORTS[scheme]) else f"{scheme}://{host}:{port}"


def allowed_variables(allowed: Allowed, url: str) -> list[str]:
    """The environment variables the configuration allows for the server of ``url``, in order."""
    server = origin(url)
    names: list[str] = []
    for where, variables in allowed.items():
        if server is not None and origin(where) == server:
            names += [variables] if isinstance(variables, str) else list(variables)
    return names


def configured_secret(allowed: Allowed, url: str, environ: Mapping[str, str] = os.environ) -> tuple[str, str] | None:
    """(variable, value) of the first variable allowed for the server of ``url`` that is set, or
    None. Only allowed variables are read.
    """
    for name in allowed_variables(allowed, url):
        value = environ.get(name)
        if value:
            return name, value
    return None


def key_status(allowed: Allowed, environ: Mapping[str, str] = os.environ) -> dict[str, bool]:
    """Each configured server, and whether one of the variables allowed for it is set (values are not returned)."""
    return {origin(where) or where: configured_secret(allowed, where, environ) is not None for where in allowed}
