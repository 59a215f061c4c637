"""The page a chunk comes from, shown with it: the PDF page as an image (or the image file
itself) and the file to download, for the chunk browser and the chat's sources.

A rendered page shows in every browser, and needs no route that serves the user's files: a
``#page=N`` link would need one, and only some built-in PDF viewers honour it.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from core.knowledge.pdf import page_image, source_file
from core.knowledge.reading import UnreadableText
from core.services import Services
from ui.common import plain, t


def page_button(app: Services, source_id: str, path: str, page: int | None, key: str) -> None:
    """A popover that shows ``page`` of ``path`` (of the source ``source_id``) and offers the file,
    for PDFs and images; nothing for other files or chunks without a page.
    """
    if page is None:  # only PDFs and images have pages
        return
    # A popover's content runs at every rerun, open or not, and the chat shows one per source:
    # the page is rendered once (cached) and the file read only when it is downloaded.
    with st.popover(t("kb.page.show", page=page), icon=":material/description:"):
        source = app.knowledge.records.source(source_id)
        try:
            if source is None:
                raise UnreadableText("its source was removed")
            file = source_file(app.knowledge.source_folder(source), path)
            image = _page_png(str(file), file.stat().st_mtime_ns, page)
        except (OSError, UnreadableText) as exc:
            st.caption(plain(t("kb.page.missing", error=str(exc))))
            return
        st.image(image, caption=plain(t("kb.page.caption", path=path, page=page)))
        st.download_button(
            t("kb.page.download", path=plain(path.rsplit("/", 1)[-1])),
            file.read_bytes,
            file_name=path.rsplit("/", 1)[-1],
            key=f"{key}.download",
            icon=":material/download:",
        )


@st.cache_data(max_entries=32, show_spinner=False)
def _page_png(file: str, modified_ns: int, page: int) -> bytes:
    """Page ``page`` of ``file`` as a PNG, rendered again only when the file changes."""
    return page_image(Path(file), page)
