"""Landing page: what the app is and what to do first."""

import streamlit as st

from ui.auth import acting
from ui.common import ensure_entry, plain, t

st.title(t("app.title"))
st.write(t("start.intro"))

ensure_entry()
app = acting()
loaded = app.models.current
steps = [
    (
        "start.step1",
        "start.step1.body",
        "pages/models.py",
        t("start.model_loaded", name=loaded.spec.name) if loaded else t("start.no_model"),
    ),
    ("start.step2", "start.step2.body", "pages/knowledge.py", t("start.kb_count", n=len(app.knowledge.all()))),
    ("start.step3", "start.step3.body", "pages/chat.py", ""),
]
demo = loaded.spec if loaded else app.catalog.get(app.settings.default_model)
if demo.demo:
    st.info(plain(t("demo.what", name=demo.name)), icon=":material/science:")
for column, (title, body, page, status) in zip(st.columns(3), steps, strict=True):
    with column.container(border=True):
        st.subheader(t(title))
        st.write(t(body))
        if status:
            st.caption(status)
        st.page_link(page, label=t("start.go"), icon=":material/arrow_forward:")
