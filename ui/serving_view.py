"""The Models page's engine servers: serve a downloaded model with vLLM, LMDeploy or SGLang,
watch each server's health and log, stop it.
"""

from __future__ import annotations

import streamlit as st

from core.errors import AppError
from core.models import serving
from core.models.spec import ModelSpec
from core.services import Services
from ui import keys
from ui.common import plain, show_error, t


def serving_panel(app: Services, spec: ModelSpec, servers: list[serving.Server]) -> None:
    """The start form for ``spec`` (when an engine is installed and its files are here) and
    ``servers``, those started so far.
    """
    engines = serving.installed()
    if not engines:
        st.caption(t("models.serve.none"))
    elif spec.source in {"remote", "embedded"}:
        st.caption(t(f"models.serve.not_{spec.source}", name=spec.name))
    elif app.model_status(spec.key).state not in {"downloaded", "loaded"}:
        st.caption(t("models.serve.need_files", name=spec.name))
    else:
        _start_form(app, spec, engines)
    _servers(app, servers)


def _start_form(app: Services, spec: ModelSpec, engines: list[serving.Engine]) -> None:
    names = {e.key: e.name for e in engines}
    engine_col, port_col = st.columns(2)
    engine = engine_col.selectbox(
        t("models.serve.engine"), list(names), format_func=names.__getitem__, key=keys.MODELS_SERVE_ENGINE
    )
    if keys.MODELS_SERVE_PORT not in st.session_state:
        st.session_state[keys.MODELS_SERVE_PORT] = serving.free_port()
    port = port_col.number_input(t("models.serve.port"), 1024, 65535, key=keys.MODELS_SERVE_PORT)
    share_col, context_col = st.columns(2)
    share = share_col.slider(t("models.serve.gpu"), 0.1, 0.95, 0.9, 0.05, key=keys.MODELS_SERVE_GPU)
    context = context_col.number_input(
        t("models.serve.context"), 512, 1_048_576, 8192, step=512, key=keys.MODELS_SERVE_CONTEXT
    )
    if st.button(t("models.serve.start", engine=names[engine]), key=keys.MODELS_SERVE_START, type="primary"):
        try:
            app.start_server(engine, spec.key, int(port), float(share), int(context))
        except AppError as error:
            show_error(error)
        else:
            del st.session_state[keys.MODELS_SERVE_PORT]  # the next server gets another free port
            st.rerun()


def _servers(app: Services, servers: list[serving.Server]) -> None:
    if not servers:
        return
    starting = any(s.status == "starting" for s in servers)

    @st.fragment(run_every=2.0 if starting else None)
    def listing() -> None:
        current = app.servers.all()
        if starting and not any(s.status == "starting" for s in current):
            st.rerun()  # ready or failed: the catalog above gains (or keeps) no row
        for server in current:
            _server(app, server)

    listing()


def _server(app: Services, server: serving.Server) -> None:
    engine = serving.engine(server.engine).name
    with st.container(border=True):
        st.markdown(f"**{plain(server.model_name)}** · {engine} · `{server.base_url}`")
        unknown = server.status == "exited" and server.exit_code is None
        status = t(
            "models.serve.status.ended" if unknown else f"models.serve.status.{server.status}", code=server.exit_code
        )
        {"ready": st.success, "starting": st.info, "exited": st.error}.get(server.status, st.caption)(status)
        if server.attached:
            st.caption(t("models.serve.attached", row=plain(app.catalog.get(server.attached).name)))
        with st.expander(t("models.serve.log")):
            st.code(app.servers.log_tail(server.id) or "—", language=None)
        live = server.status in {"starting", "ready"}
        label = t("models.serve.stop" if live else "models.serve.remove")
        if st.button(label, key=f"{keys.MODELS_SERVE_STOP}.{server.id}"):
            try:
                app.servers.stop(server.id) if live else app.servers.forget(server.id)
            except AppError as error:
                show_error(error)
            else:
                st.rerun()
