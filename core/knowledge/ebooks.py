"""The chapters of an EPUB e-book: its XHTML documents in reading order, each with its title.

An EPUB is a zip of XHTML files listed, in reading order, by a package file (the OPF) that
META-INF/container.xml points to; the table of contents (EPUB 3's nav document or EPUB 2's
NCX) names the chapters. The standard library reads all of that; the only EPUB library with
a reader, ebooklib, is AGPL. The chapters' HTML becomes Markdown where every HTML file does
(core/knowledge/loaders.py).
"""

from __future__ import annotations

import io
import posixpath
import zipfile
import zlib
from urllib.parse import unquote, urldefrag
from xml.etree import ElementTree

from core.knowledge.reading import UnreadableText
from core.knowledge.zip_budget import check_size

_HTML_TYPES = frozenset({"application/xhtml+xml", "text/html"})
# How a damaged zip or XML fails: a missing member (KeyError), corrupt or truncated data (zlib.error,
# EOFError, BadZipFile), an encrypted member (RuntimeError), an unknown compression (NotImplementedError),
# XML that declares an unknown encoding (LookupError).
_BROKEN = (
    zipfile.BadZipFile,
    ElementTree.ParseError,
    KeyError,
    LookupError,
    ValueError,
    OSError,
    EOFError,
    RuntimeError,
    NotImplementedError,
    zlib.error,
)


def chapters(data: bytes) -> list[tuple[str, bytes]]:
    """(title, XHTML bytes) of each document of the book's reading order; the title is the table
    of contents' name for it, or "".
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as book:
            return _chapters(book)
    except (MemoryError, UnreadableText):
        raise
    except _BROKEN as exc:
        raise UnreadableText(f"not a readable .epub file: {exc}") from exc


def _chapters(book: zipfile.ZipFile) -> list[tuple[str, bytes]]:
    container = ElementTree.fromstring(book.read("META-INF/container.xml"))
    rootfile = container.find(".//{*}rootfile")
    if rootfile is None or not rootfile.get("full-path"):
        raise UnreadableText("not a readable .epub file: META-INF/container.xml names no package file")
    opf_path = rootfile.get("full-path", "")
    package = ElementTree.fromstring(book.read(opf_path))
    base = posixpath.dirname(opf_path)
    manifest = {
        item.get("id"): (_member(base, item.get("href", "")), item.get("media-type", ""), item.get("properties", ""))
        for item in package.iterfind(".//{*}manifest/{*}item")
    }
    order = []
    for ref in package.iterfind(".//{*}spine/{*}itemref"):
        path, media_type, _ = manifest.get(ref.get("idref"), ("", "", ""))
        if path and media_type in _HTML_TYPES and path not in order:
            order.append(path)
    if not order:
        raise UnreadableText("not a readable .epub file: its reading order lists no documents")
    sizes = {info.filename: info.file_size for info in book.infolist()}
    check_size(sum(sizes.get(path, 0) for path in order), ".epub")
    if set(order) & _encrypted(book, sizes):
        raise UnreadableText("its chapters are encrypted (DRM); only the shop's reader app can open them")
    titles = _titles(book, package, manifest)
    return [(titles.get(path, ""), book.read(path)) for path in order if path in sizes]


def _encrypted(book: zipfile.ZipFile, sizes: dict[str, int]) -> set[str]:
    """The members META-INF/encryption.xml lists: DRM's chapters, or merely obfuscated fonts."""
    if "META-INF/encryption.xml" not in sizes:
        return set()
    tree = ElementTree.fromstring(book.read("META-INF/encryption.xml"))
    # Its URIs are relative to the container's root, not to META-INF/.
    return {_member("", ref.get("URI", "")) for ref in tree.iterfind(".//{*}CipherReference")}


def _titles(book: zipfile.ZipFile, package: ElementTree.Element, manifest: dict) -> dict[str, str]:
    """The table of contents' first name for each document; {} when the book has none we read."""
    spine = package.find(".//{*}spine")
    nav = next((path for path, _, properties in manifest.values() if "nav" in properties.split()), None)
    ncx = manifest.get(spine.get("toc") if spine is not None else None, ("",))[0]
    titles: dict[str, str] = {}
    try:
        if nav:
            tree = ElementTree.fromstring(book.read(nav))
            for link in tree.iterfind(".//{*}nav//{*}a"):
                _name(titles, posixpath.dirname(nav), link.get("href", ""), "".join(link.itertext()))
        elif ncx:
            tree = ElementTree.fromstring(book.read(ncx))
            for point in tree.iterfind(".//{*}navPoint"):
                content, label = point.find("{*}content"), point.find("{*}navLabel")
                if content is not None and label is not None:
                    _name(titles, posixpath.dirname(ncx), content.get("src", ""), "".join(label.itertext()))
    except _BROKEN:
        return {}  # a broken table of contents costs the titles, not the book
    return titles


def _name(titles: dict[str, str], base: str, href: str, label: str) -> None:
    path = _member(base, href)
    label = " ".join(label.split())
    if path and label:
        titles.setdefault(path, label)


def _member(base: str, href: str) -> str:
    """The zip member an href (relative to the file at ``base``, maybe %-encoded, maybe with a
    #fragment) names.
    """
    href = unquote(urldefrag(href).url)
    return posixpath.normpath(posixpath.join(base, href)) if href else ""
