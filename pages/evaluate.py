"""Evaluate page: measure retrieval on a knowledge base with your own questions, compare runs."""

import streamlit as st

from core.errors import AppError
from ui import keys
from ui.auth import acting
from ui.common import ensure_entry, show_error, t
from ui.evaluate_view import compare, job_panel, question_set, settings_form, show_run

ensure_entry()
app = acting()
st.title(t("eval.title"))
st.write(t("eval.intro"))

names = [kb.name for kb in app.knowledge.all()]
if not names:
    st.info(t("eval.none"))
    st.stop()
if st.session_state.get(keys.EVAL_KB) not in names:  # a knowledge base this user may not see
    st.session_state.pop(keys.EVAL_KB, None)
kb = app.knowledge.get(st.selectbox(t("eval.kb"), names, key=keys.EVAL_KB, placeholder=t("select.one")))
job = app.jobs.latest(f"kb:{kb.id}")
# Runs follow their knowledge base's permissions: running one needs the right to edit it.
busy = bool(job and job.active) or not app.can(kb, "edit")

st.subheader(t("eval.set.header"))
set_name, questions = question_set(app, kb, job)

st.subheader(t("eval.settings"))
settings = settings_form(app)
if st.button(t("eval.run"), key=keys.EVAL_RUN, type="primary", disabled=busy or not questions):
    try:
        app.start_evaluation(kb, questions, settings, set_name)
    except AppError as error:
        show_error(error)
    else:
        st.rerun()
job_panel(app, kb, job)

finished = job and job.kind == "evaluate" and job.status == "done"
result = next((r for r in app.evaluations.runs() if r.id == job.result["run"]), None) if finished else None
if result:  # None once the user has deleted the run
    st.subheader(t("eval.result.header"))
    show_run(result)

st.subheader(t("eval.history.header"))
compare(app)
