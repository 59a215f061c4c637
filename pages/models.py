"""Models page: the catalog, loading and unloading, and a box to try the loaded model."""

import pandas as pd
import streamlit as st

from core.errors import AppError
from core.models.loader import is_downloaded
from ui import keys
from ui.common import lang, services, show_error, t
from ui.jobs import first_sight, watch

app = services()
st.title(t("models.title"))

loaded = app.models.current
specs = app.catalog.all()


def status(spec) -> str:
    if loaded and loaded.spec.key == spec.key:
        return t("models.status.loaded")
    if spec.source == "embedded":
        return t("models.status.embedded")
    return t("models.status.downloaded" if is_downloaded(spec, app.settings) else "models.status.missing")


st.subheader(t("models.catalog"))
table = pd.DataFrame(
    {
        t("models.col.name"): [s.name for s in specs],
        t("models.col.params"): [s.params_b for s in specs],
        t("models.col.size"): [s.download_gb for s in specs],
        t("models.col.memory"): [s.mem_bf16_gb for s in specs],
        t("models.col.source"): [
            t("models.source.embedded") if s.source == "embedded" else (s.hub_id(app.settings.hub) or s.local_path)
            for s in specs
        ],
        t("models.col.status"): [status(s) for s in specs],
        t("models.col.licence"): [s.licence for s in specs],
    }
)
st.dataframe(table, hide_index=True, width="stretch")

st.subheader(t("models.load.header"))
job = app.jobs.latest("model", kind="load")
if job and job.active:

    def load_step(job) -> str:
        return t(f"models.load.step.{job.message}") if job.message else ""

    watch(job.id, load_step, t("models.load.running", name=job.title))
elif job and first_sight(job):
    if job.status == "failed":
        st.error(job.error_message(lang()), icon="⚠️")
    elif job.status == "done":
        st.toast(t("models.load.done", name=job.title, **job.result))

ready = [s for s in specs if is_downloaded(s, app.settings)]
left, right = st.columns([3, 1], vertical_alignment="bottom")
key = left.selectbox(
    t("models.load.pick"), [s.key for s in ready], format_func=lambda k: app.catalog.get(k).name, key=keys.MODELS_PICK
)
if right.button(t("models.load.button"), key=keys.MODELS_LOAD, type="primary", disabled=bool(job and job.active)):
    try:
        app.start_load(key)
    except AppError as error:
        show_error(error)
    else:
        st.rerun()

if loaded:
    left, right = st.columns([3, 1], vertical_alignment="center")
    left.success(t("models.loaded", name=loaded.spec.name, device=loaded.device, dtype=loaded.dtype))
    if right.button(t("models.unload"), key=keys.MODELS_UNLOAD):
        app.models.unload()
        st.rerun()

    st.subheader(t("models.try.header"))
    prompt = st.text_input(t("models.try.prompt"), t("models.try.default"), key=keys.MODELS_TRY_PROMPT)
    if st.button(t("models.try.button"), key=keys.MODELS_TRY_SEND) and prompt.strip():
        try:
            st.write_stream(chunk.text for chunk in app.models.chat_model().stream(prompt))
        except AppError as error:
            show_error(error)
else:
    st.info(t("models.none_loaded"))
