"""The page a chunk comes from, shown with it: the PDF page as an image (or the image file
itself) and the file to download, for the chunk browser and the chat's sources.

A rendered page shows in every browser. A PDF can also be opened in the browser's own viewer at
that page, without a route that serves the user's files (Streamlit's static folder would serve
them to anyone with the link): on request, the file is sent once to this browser tab, which
makes a local ``blob:`` address of it and links to it with ``#page=N``.
"""

from __future__ import annotations

import base64
import hashlib
import html
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
        name = path.rsplit("/", 1)[-1]
        st.download_button(
            t("kb.page.download", path=plain(name)),
            file.read_bytes,
            file_name=name,
            key=f"{key}.download",
            icon=":material/download:",
        )
        # The file goes to the browser only in the run after this click, not at every rerun.
        if file.suffix.lower() == ".pdf" and st.button(
            t("kb.page.open"), key=f"{key}.open", icon=":material/open_in_new:"
        ):
            label = t("kb.page.open_link", path=name, page=page)
            st.html(open_link(file.read_bytes(), page, label), unsafe_allow_javascript=True)


@st.cache_data(max_entries=32, show_spinner=False)
def _page_png(file: str, modified_ns: int, page: int) -> bytes:
    """Page ``page`` of ``file`` as a PNG, rendered again only when the file changes."""
    return page_image(Path(file), page)


def open_link(pdf: bytes, page: int, label: str) -> str:
    """HTML for a link that opens ``pdf`` at ``page`` in the browser's PDF viewer, in a new tab."""
    anchor = f"kba-open-{hashlib.sha256(pdf).hexdigest()[:12]}-{page}"
    payload = base64.b64encode(pdf).decode("ascii")
    return (
        f'<a id="{anchor}" target="_blank">{html.escape(label)}</a>'
        "<script>(() => {"
        f'const bytes = Uint8Array.from(atob("{payload}"), c => c.charCodeAt(0));'
        'const url = URL.createObjectURL(new Blob([bytes], {type: "application/pdf"}));'
        f'document.getElementById("{anchor}").href = url + "#page={int(page)}";'
        "})();</script>"
    )
