"""Knowledge page: knowledge bases, their sources, ingestion jobs, previews and chunks."""

import streamlit as st

from ui import keys
from ui.common import ensure_entry, services, t
from ui.knowledge_view import add_source, chunk_browser, create_form, health, job_panel, manage, overview, sources

ensure_entry()
app = services()
st.title(t("kb.title"))

# A base created or renamed on the last run becomes the selection before the selectbox is drawn.
if pending := st.session_state.pop("kb.just_created", None):
    st.session_state[keys.KB_PICK] = pending

names = [kb.name for kb in app.knowledge.all()]
if names:
    st.subheader(t("kb.list.header"))
    overview(app)
with st.expander(t("kb.create.header"), expanded=not names):
    create_form(app)
if not names:
    st.info(t("kb.none"))
    st.stop()

picked = st.selectbox(t("kb.pick"), names, key=keys.KB_PICK)
kb = app.knowledge.get(picked)
job = app.jobs.latest(f"kb:{kb.id}")
busy = bool(job and job.active)
health(app, kb, busy)
manage(app, kb)

st.subheader(t("kb.sources.header"))
sources(app, kb, busy)
with st.expander(t("kb.add.header"), expanded=not app.knowledge.sources(kb)):
    add_source(app, kb, busy)
job_panel(app, kb, job)

st.subheader(t("kb.chunks.header"))
chunk_browser(app, kb)
