"""Refuse an Office file or e-book (a zip of XML) whose parts would unpack past a budget, before
any of it is inflated: a zip bomb then costs nothing.
"""

from __future__ import annotations

import io
import zipfile

from core.knowledge.reader_process import OverBudget

# The XML parsers keep about 20 bytes of memory per byte of XML and read it at a few MB a second:
# past 50 MB a file would break both the memory and the time budget anyway.
MAX_UNPACKED_MB = 50


def check_unpacked(data: bytes, kind: str, skip: tuple[str, ...] = ()) -> None:
    """Raise :class:`OverBudget` when the entries of the zip ``data`` (but those whose names start
    with one of ``skip``: parts the reader never opens) would unpack past :data:`MAX_UNPACKED_MB`.

    The sizes come from the zip's directory; zipfile never returns more than an entry declares,
    so a lie there only makes the file shorter. Data that is not a zip passes: the reader says so
    in its own words.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            unpacked = sum(info.file_size for info in zf.infolist() if not info.filename.startswith(skip))
    except (zipfile.BadZipFile, ValueError, OSError):
        return
    check_size(unpacked, kind)


def check_size(unpacked: int, kind: str) -> None:
    """Raise :class:`OverBudget` when ``unpacked`` bytes of XML are past :data:`MAX_UNPACKED_MB`."""
    if unpacked > MAX_UNPACKED_MB * 1_000_000:
        raise OverBudget(
            f"its XML would unpack to {unpacked / 1e6:,.0f} MB, more than the {MAX_UNPACKED_MB} MB a {kind} may hold"
        )
