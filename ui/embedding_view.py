"""The Models page's section for embedding and reranker models: status, download, add."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.embeddings.custom import embedding_row
from core.errors import AppError
from core.services import Services
from ui import keys
from ui.common import lang, show_error, t
from ui.jobs import watch
from ui.models_view import status_text


def embedding_models(app: Services) -> None:
    """Every embedding and reranker row with its status; download one; add one."""
    pool = app.knowledge.embeddings
    rows = pool.registry.all()
    st.dataframe(
        pd.DataFrame(
            {
                t("models.col.name"): [r.name for r in rows],
                t("emb.col.kind"): [t(f"emb.kind.{r.kind}") for r in rows],
                t("models.col.status"): [status_text(app, r.key) for r in rows],
                t("emb.col.languages"): [r.languages for r in rows],
                t("emb.col.max_tokens"): [r.max_tokens for r in rows],
                t("models.col.size"): [r.download_gb or None for r in rows],
            }
        ),
        hide_index=True,
        width="stretch",
    )
    missing = {r.key: r for r in rows if not pool.available(r)}
    if missing:
        key = st.selectbox(t("emb.pick"), list(missing), format_func=lambda k: missing[k].name, key=keys.EMB_PICK)
        job = app.jobs.latest(f"model:{key}", kind="download")
        if job and job.active:
            watch(
                job.id,
                lambda j: f"{j.done / 1e9:.2f} / {(j.total or 0) / 1e9:.2f} GB",
                t("models.download.running", name=job.title),
                cancel_key=keys.EMB_CANCEL,
                cancel_label=t("models.download.cancel"),
            )
        else:
            if job and job.status == "failed":
                st.error(job.error_message(lang()), icon="⚠️")
            hub = st.selectbox(
                t("models.download.hub"),
                ["modelscope", "huggingface"],
                key=keys.EMB_HUB,
                format_func={"modelscope": "ModelScope", "huggingface": "Hugging Face"}.get,
            )
            if st.button(t("models.download.button"), key=keys.EMB_DOWNLOAD):
                try:
                    app.start_download(key, hub)
                except AppError as error:
                    show_error(error)
                else:
                    st.rerun()
    with st.expander(t("emb.add.header")):
        source = st.text_input(t("emb.add.source"), key=keys.EMB_ADD_SOURCE)
        kind = st.selectbox(
            t("emb.add.kind"),
            ["embedding", "reranker"],
            key=keys.EMB_ADD_KIND,
            format_func=lambda k: t(f"emb.kind.{k}"),
        )
        if st.button(t("emb.add.button"), key=keys.EMB_ADD, disabled=not source.strip()):
            try:
                row = embedding_row(source, kind)
            except AppError as error:
                show_error(error)
            else:
                pool.registry.add(row)
                st.toast(t("emb.added", name=row.name))
                st.rerun()
