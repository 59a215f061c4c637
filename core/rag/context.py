"""Render retrieved chunks as the numbered sources a prompt shows the model."""

from __future__ import annotations

import re

from langchain_core.documents import Document


def source_label(doc: Document) -> str:
    """Where a chunk comes from, e.g. ``docs/quant.md:12-30``.

    >>> source_label(Document("x", metadata={"path": "a.md", "start_line": 3, "end_line": 5}))
    'a.md:3-5'
    >>> source_label(Document("x", metadata={"path": "a.pdf", "start_line": 40, "end_line": 52, "page": 12}))
    'a.pdf, p. 12'

    Where another chunk spans the same lines (long lines), columns tell the two apart:

    >>> source_label(Document("x", metadata={"path": "a.md", "start_line": 3, "end_line": 3,
    ...                                      "start_col": 481, "end_col": 960}))
    'a.md:3:481-3:960'
    """
    meta = doc.metadata
    path, start = meta.get("path", "?"), meta.get("start_line")
    if meta.get("page"):  # PDFs and images: the page is what a reader finds again
        return f"{path}, p. {meta['page']}"
    if start is None:
        return path
    end = meta.get("end_line") or start
    first, last = meta.get("start_col"), meta.get("end_col")
    if first is not None and last is not None:
        return f"{path}:{start}:{first}-{end}:{last}"
    return f"{path}:{start}-{end}" if end != start else f"{path}:{start}"


def format_context(docs: list[Document]) -> str:
    """Number the chunks [1], [2], … in rank order, each with its origin.

    >>> print(format_context([Document("Paris.", metadata={"path": "fr.md", "start_line": 1})]))
    [1] fr.md:1
    Paris.
    """
    return "\n\n".join(f"[{i}] {source_label(doc)}\n{doc.page_content}" for i, doc in enumerate(docs, 1))


_JOINERS = frozenset("_-./")
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
# Letters, digits and "_" other than Chinese, Japanese and Korean ones (which have no spaces
# between words): the characters of one identifier or word.
_WORD_CHAR = rf"[^\W{_CJK}]"
# Where a mark would break the Markdown a snippet shows: inline code, a link's target, a URL.
_UNMARKABLE = re.compile(
    r"`[^`\n]*`|\]\([^)\s]*\)?|<[a-z][a-z0-9+.-]*:[^\s>]*>?|\b(?:https?|ftp)://\S+|\bwww\.\S+", re.I
)


def snippet(text: str, words: list[str], width: int = 280) -> list[tuple[str, bool]]:
    """A stretch of ``text`` around the first of ``words`` it contains, cut into pieces that
    are (or are not) one of the words, for highlighting.

    >>> snippet("LMDeploy 支持 AWQ 量化", ["awq"], width=80)
    [('LMDeploy 支持 ', False), ('AWQ', True), (' 量化', False)]

    A Latin word is marked from a word's start to its end, ``_`` and digits being part of the
    word, so an identifier reads whole and "listen" marks "listens" but nothing inside "glisten"
    or "api_client":

    >>> snippet("it listens, glistening", ["listen"], width=80)
    [('it ', False), ('listens', True), (', glistening', False)]
    >>> snippet("run api_server, not my_api", ["api"], width=80)
    [('run ', False), ('api_server', True), (', not my_api', False)]

    Words joined by ``-``, ``.`` or ``/`` are marked as one; Chinese words wherever they are:

    >>> snippet("用 InternLM2-7B 部署", ["internlm2", "7b", "部署"], width=80)
    [('用 ', False), ('InternLM2-7B', True), (' ', False), ('部署', True)]

    Nothing is marked inside inline code, a link's target or a URL, where a mark would break them:

    >>> snippet("[Hub](https://hub.example/hub) and `hub_cli` hub", ["hub"], width=80)
    [('[', False), ('Hub', True), ('](https://hub.example/hub) and `hub_cli` ', False), ('hub', True)]
    """
    words = [w for w in words if any(ch.isalnum() for ch in w)]
    lowered = text.lower()
    hits = [i for i in (lowered.find(w) for w in words if w) if i >= 0]
    start = max(0, min(hits) - width // 4) if hits else 0
    window = text[start : start + width]
    # Found in the whole text, so a URL that the window cuts is still known for one.
    blocked = [(m.start() - start, m.end() - start) for m in _UNMARKABLE.finditer(text)]
    pieces: list[tuple[str, bool]] = []
    pattern = "|".join(_word_pattern(w) for w in sorted({w for w in words if w}, key=len, reverse=True))
    position = 0
    if pattern:
        for match in re.finditer(pattern, window, flags=re.IGNORECASE):
            if any(b_start < match.end() and match.start() < b_end for b_start, b_end in blocked):
                continue
            gap = window[position : match.start()]
            if pieces and pieces[-1][1] and _JOINERS.issuperset(gap):
                pieces[-1] = (pieces[-1][0] + gap + match.group(0), True)
            else:
                if gap:
                    pieces.append((gap, False))
                pieces.append((match.group(0), True))
            position = match.end()
    if position < len(window):
        pieces.append((window[position:], False))
    prefix = "…" if start > 0 else ""
    suffix = "…" if start + width < len(text) else ""
    if pieces:
        pieces[0] = (prefix + pieces[0][0], pieces[0][1]) if not pieces[0][1] else pieces[0]
        pieces[-1] = (pieces[-1][0] + suffix, pieces[-1][1]) if not pieces[-1][1] else pieces[-1]
    return pieces


def _word_pattern(word: str) -> str:
    """A regex for ``word`` in a snippet: a Latin word from a word's start to its end."""
    if not re.match(_WORD_CHAR, word):
        return re.escape(word)  # Chinese, Japanese or Korean: wherever it is
    return rf"(?<!{_WORD_CHAR}){re.escape(word)}{_WORD_CHAR}*"
