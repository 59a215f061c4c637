"""Turn a file's bytes into text: encodings detected, binaries refused."""

from __future__ import annotations

import codecs
from collections.abc import Callable
from pathlib import Path

# What hears a paged reader: (pages done, pages to do); what it raises (a cancel) stops the reading.
Progress = Callable[[int, int], None]

DOC_SUFFIXES = frozenset({".md", ".markdown", ".txt", ".rst", ".text", ".adoc", ".org", ".tex"})
CODE_SUFFIXES = frozenset(
    {
        ".py",
        ".pyi",
        ".js",
        ".jsx",
        ".mjs",
        ".ts",
        ".tsx",
        ".java",
        ".kt",
        ".scala",
        ".go",
        ".rs",
        ".c",
        ".h",
        ".cc",
        ".cpp",
        ".cxx",
        ".hpp",
        ".cu",
        ".cs",
        ".rb",
        ".php",
        ".swift",
        ".m",
        ".lua",
        ".pl",
        ".r",
        ".jl",
        ".sh",
        ".bash",
        ".zsh",
        ".ps1",
        ".bat",
        ".sql",
        ".proto",
        ".cmake",
        ".vue",
        ".svelte",
        ".css",
        ".scss",
    }
)
DATA_SUFFIXES = frozenset({".json", ".yaml", ".yml", ".toml", ".ini", ".cfg", ".conf", ".xml", ".csv", ".tsv"})
TEXT_SUFFIXES = DOC_SUFFIXES | CODE_SUFFIXES | DATA_SUFFIXES

_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_SNIFF_BYTES = 8192


class UnreadableText(ValueError):
    """The bytes are not text in any encoding we recognise."""


def looks_binary(path: Path) -> bool:
    """Whether the file's first bytes show it is not text (NUL bytes outside UTF-16/32)."""
    with path.open("rb") as handle:
        head = handle.read(_SNIFF_BYTES)
    if any(head.startswith(bom) for bom, _ in _BOMS):
        return False
    return b"\x00" in head


def decode(data: bytes) -> tuple[str, str]:
    """Decode ``data`` as UTF-8, a BOM-marked Unicode encoding, or (detected) GBK/GB18030 and kin.

    Returns the text and the encoding used; raises :class:`UnreadableText`.

    >>> decode("知识库".encode("gb18030"))[0]
    '知识库'
    """
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding), encoding
            except UnicodeDecodeError as exc:  # a mark, then bytes that are not that encoding
                raise UnreadableText(f"not valid {encoding.removesuffix('-sig')} after its byte-order mark") from exc
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    # Most non-UTF-8 files our users have are GBK/GB18030, and detectors guess wrong on short
    # Chinese texts; so GB18030 wins whenever it yields plausible Chinese text.
    try:
        text = data.decode("gb18030")
    except UnicodeDecodeError:
        pass
    else:
        if _plausible_chinese(text):
            return text, "gb18030"
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is None or best.encoding is None:
        raise UnreadableText("not text in any known encoding")
    # GB18030 is a superset of GBK and GB2312; decoding with it loses nothing they encode.
    encoding = "gb18030" if best.encoding in {"gbk", "gb2312"} else best.encoding
    try:
        return data.decode(encoding), encoding
    except (UnicodeDecodeError, LookupError) as exc:
        raise UnreadableText(f"not valid {encoding}") from exc


def _plausible_chinese(text: str) -> bool:
    common = sum(
        ch.isascii() or "\u4e00" <= ch <= "\u9fff" or "\u3000" <= ch <= "\u303f" or "\uff00" <= ch <= "\uffef"
        for ch in text
    )
    return common >= 0.95 * len(text)


def read_text(path: Path) -> str:
    """The text of a file, with Windows line endings made plain."""
    text, _ = decode(path.read_bytes())
    return text.replace("\r\n", "\n").replace("\r", "\n")
