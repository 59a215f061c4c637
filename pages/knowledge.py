"""Knowledge page: knowledge bases, their sources, ingestion jobs, previews and chunks."""

import streamlit as st

from ui import keys
from ui.auth import acting
from ui.chunk_browser import chunk_browser
from ui.common import ensure_entry, t
from ui.knowledge_view import (
    add_source,
    create_form,
    health,
    job_panel,
    manage,
    overview,
    running_jobs,
    sharing,
    sources,
)

ensure_entry()
app = acting()
st.title(t("kb.title"))
running_jobs(app)

# A base created or renamed on the last run becomes the selection before the selectbox is drawn.
if pending := st.session_state.pop("kb.just_created", None):
    st.session_state[keys.KB_PICK] = pending

names = [kb.name for kb in app.knowledge.all()]
if names:
    st.subheader(t("kb.list.header"))
    overview(app)
else:
    st.info(t("kb.none"))
with st.expander(t("kb.create.header"), expanded=not names):
    create_form(app)
if not names:
    st.stop()

# A name put into the session (a deep link, an old selection) that this user may not see is dropped;
# app.knowledge.get checks again in core.
if st.session_state.get(keys.KB_PICK) not in names:
    st.session_state.pop(keys.KB_PICK, None)
picked = st.selectbox(t("kb.pick"), names, key=keys.KB_PICK, placeholder=t("select.one"))
kb = app.knowledge.get(picked)
editable = app.can(kb, "edit")
job = app.jobs.latest(f"kb:{kb.id}")
busy = bool(job and job.active)
health(app, kb, busy)
if not app.user.is_local:
    sharing(app, kb)
if app.can(kb, "manage"):
    manage(app, kb)
elif not editable:
    st.info(t("kb.readonly"), icon=":material/visibility:")

st.subheader(t("kb.sources.header"))
sources(app, kb, busy or not editable)
if editable:
    # Keyed, so it stays as the user left it: a failed preview or ingestion keeps it open
    # with what was typed; unkeyed, it would follow the list of sources.
    with st.expander(
        t("kb.add.header"), expanded=not app.knowledge.sources(kb), key=keys.KB_ADD_OPEN, on_change="rerun"
    ):
        add_source(app, kb, busy)
job_panel(app, kb, job)

st.subheader(t("kb.chunks.header"))
chunk_browser(app, kb, editable)
