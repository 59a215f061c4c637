"""The page a chunk comes from, shown with it: the PDF page as an image (or the image file
itself) and the file to download, for the chunk browser and the chat's sources.

A rendered page shows in every browser, and needs no route that serves the user's files: a
``#page=N`` link would need one, and only some built-in PDF viewers honour it.
"""

from __future__ import annotations

import streamlit as st

from core.knowledge.ocr import IMAGE_SUFFIXES
from core.knowledge.pdf import page_image, source_file
from core.knowledge.reading import UnreadableText
from core.services import Services
from ui.common import plain, t


def page_button(app: Services, source_id: str, path: str, page: int | None, key: str) -> None:
    """A popover that shows ``page`` of ``path`` (of the source ``source_id``) and offers the file,
    for PDFs and images; nothing for other files or chunks without a page.
    """
    suffix = path.rsplit(".", 1)[-1].lower() if "." in path else ""
    if page is None or f".{suffix}" not in {".pdf", *IMAGE_SUFFIXES}:
        return
    with st.popover(t("kb.page.show", page=page), icon=":material/description:"):
        source = app.knowledge.records.source(source_id)
        try:
            if source is None:
                raise UnreadableText("its source was removed")
            file = source_file(app.knowledge.source_folder(source), path)
            image = page_image(file, page)
            data = file.read_bytes()
        except (OSError, UnreadableText) as exc:
            st.caption(plain(t("kb.page.missing", error=str(exc))))
            return
        st.image(image, caption=plain(t("kb.page.caption", path=path, page=page)))
        st.download_button(
            t("kb.page.download", path=plain(path.rsplit("/", 1)[-1])),
            data,
            file_name=path.rsplit("/", 1)[-1],
            key=f"{key}.download",
            icon=":material/download:",
        )
