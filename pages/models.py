"""Models page: the catalog, downloads, loading and unloading, settings and a box to try the model."""

import streamlit as st

from core.errors import AppError
from core.models import memory
from ui import generation, keys
from ui.auth import acting
from ui.common import ensure_entry, lang, plain, show_error, t
from ui.embedding_view import embedding_models
from ui.models_view import (
    add_model_form,
    catalog_table,
    delete_panel,
    download_panel,
    load_panel,
    remove_panel,
    resident_panel,
)
from ui.serving_view import serving_panel

ensure_entry()
app = acting()
st.title(t("models.title"))

usage = memory.in_use()
ram, gpu, _ = st.columns([1, 1, 3])
ram.metric(t("models.memory.ram"), f"{usage['ram_gb']:.1f} GB")
if "gpu_gb" in usage:
    gpu.metric(t("models.memory.gpu"), f"{usage['gpu_gb']:.1f} GB")
admin = app.user.is_admin
if admin:
    resident_panel(app)
elif app.models.current:
    st.success(t("chat.model", name=app.models.current.spec.name))

# Read first: a server that became ready is added to the catalog drawn below.
servers = app.servers.all()
st.subheader(t("models.catalog"))
spec = catalog_table(app, app.catalog.all())
if not admin:  # the catalog, read-only: downloads, loading, servers and settings are for administrators
    st.info(t("auth.models.readonly"), icon=":material/lock:")
    st.stop()

with st.container(border=True):
    st.markdown(f"**{spec.name}**")
    if description := spec.description(lang()):
        st.caption(description)
    if spec.demo:
        st.info(plain(t("demo.what", name=spec.name)), icon=":material/science:")
    state = app.model_status(spec.key).state
    if state in {"missing", "downloading"}:
        download_panel(app, spec)
    elif state != "loaded":
        load_panel(app, spec)
        if state == "downloaded" and not spec.local_path:
            delete_panel(app, spec)
    if not app.catalog.is_builtin(spec.key):
        remove_panel(app, spec)

with st.expander(t("models.serve.header"), expanded=bool(servers)):
    st.caption(t("models.serve.intro"))
    serving_panel(app, spec, servers)

with st.expander(t("models.add.header")):
    add_model_form(app)

st.subheader(t("emb.header"))
embedding_models(app)

resident = app.models.current
if resident:
    with st.expander(t("models.gen.header")):
        generation.panel(resident.spec)
    st.subheader(t("models.try.header"))
    prompt = st.text_input(t("models.try.prompt"), t("models.try.default"), key=keys.MODELS_TRY_PROMPT)
    if st.button(t("models.try.button"), key=keys.MODELS_TRY_SEND) and prompt.strip():
        # Stop interrupts this run mid-stream; what came so far stays in the session state.
        st.button(t("chat.stop"), key=keys.MODELS_TRY_STOP, icon=":material/stop:")
        st.session_state[keys.MODELS_TRY_ANSWER] = ""
        try:
            llm = app.models.chat_model(**generation.settings())
            st.write_stream(generation.kept(llm.stream(prompt), keys.MODELS_TRY_ANSWER))
        except AppError as error:
            show_error(error)
    elif answer := st.session_state.get(keys.MODELS_TRY_ANSWER):
        st.markdown(answer)
