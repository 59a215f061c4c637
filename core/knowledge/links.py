"""Links to the exact lines of a chunk in the web view of its git repository."""

from __future__ import annotations

import re

_SCP = re.compile(r"^(?:[\w.-]+@)?([\w.-]+):(.+)$")


def web_url(repository: str) -> str | None:
    """The browsable https address of a clone URL, or None when it cannot be told.

    >>> web_url("git@github.com:InternLM/lmdeploy.git")
    'https://github.com/InternLM/lmdeploy'
    >>> web_url("https://gitee.com/org/repo.git")
    'https://gitee.com/org/repo'
    """
    url = repository.strip()
    if url.startswith(("https://", "http://")):
        base = url
    elif url.startswith("ssh://"):
        rest = url.removeprefix("ssh://").split("@")[-1]
        host, _, path = rest.partition("/")
        base = f"https://{host.split(':')[0]}/{path}"
    elif match := _SCP.match(url):
        base = f"https://{match.group(1)}/{match.group(2)}"
    else:
        return None
    return base.removesuffix("/").removesuffix(".git")


def line_url(repository: str, commit: str | None, path: str, start: int, end: int) -> str | None:
    """A link to lines ``start``-``end`` of ``path`` at ``commit`` (GitHub's and GitLab's forms).

    >>> line_url("https://github.com/InternLM/lmdeploy.git", "6ea5558", "docs/quant.md", 3, 9)
    'https://github.com/InternLM/lmdeploy/blob/6ea5558/docs/quant.md#L3-L9'
    >>> line_url("https://gitlab.com/g/p.git", "abc", "a.md", 1, 2)
    'https://gitlab.com/g/p/-/blob/abc/a.md#L1-2'
    """
    base = web_url(repository)
    if not base or not commit:
        return None
    if "gitlab" in base:
        return f"{base}/-/blob/{commit}/{path}#L{start}-{end}"
    lines = f"#L{start}-L{end}" if "github.com" in base else f"#L{start}-{end}"
    return f"{base}/blob/{commit}/{path}{lines}"
