"""The parts of the Evaluate page: question sets, settings, a run's result, runs compared."""

from __future__ import annotations

import datetime

import pandas as pd
import streamlit as st

from core.errors import AppError
from core.evaluation import EvalRun, EvalSettings, Question, parse_question_set
from core.jobs import JobState
from core.knowledge.records import KnowledgeBase
from core.services import Services
from ui import keys
from ui.chat_view import MODES
from ui.common import duration, lang, show_error, t
from ui.jobs import watch

METRICS = ["recall_at_k", "mrr", "citation_hit_rate", "answer_containment", "retrieve_ms_p50", "generate_ms_p50"]
_PENDING = "eval.pending_questions"


def question_set(app: Services, kb: KnowledgeBase, job: JobState | None) -> tuple[str, list[Question]]:
    """A saved set, an uploaded file, or questions drafted from the knowledge base's chunks."""
    saved = app.evaluations.sets()
    if job and job.kind == "draft" and job.status == "done" and st.session_state.get("eval.draft_seen") != job.id:
        st.session_state["eval.draft_seen"] = job.id
        st.session_state[_PENDING] = [Question(**q) for q in job.result["questions"]]
    upload = st.file_uploader(t("eval.set.upload"), type=["csv", "jsonl", "json"], key=keys.EVAL_UPLOAD)
    if upload is not None and st.session_state.get("eval.upload_seen") != upload.file_id:
        try:
            st.session_state[_PENDING] = parse_question_set(upload.name, upload.getvalue())
        except AppError as error:
            show_error(error)
        else:
            st.session_state["eval.upload_seen"] = upload.file_id
            st.caption(t("eval.set.loaded", n=len(st.session_state[_PENDING]), name=upload.name))
    count_col, draft_col = st.columns([1, 2], vertical_alignment="bottom")
    count = count_col.number_input(t("eval.draft.count"), 1, 100, 10, key=keys.EVAL_DRAFT_COUNT)
    if draft_col.button(
        t("eval.draft.button"), key=keys.EVAL_DRAFT, help=t("eval.draft.help"), disabled=bool(job and job.active)
    ):
        try:
            app.start_drafting(kb, int(count))
        except AppError as error:
            show_error(error)
        else:
            st.rerun()
    if st.session_state.get(_PENDING):
        _review(app)
    names = list(saved)
    if not names:
        return "", []
    picked = st.selectbox(t("eval.set.pick"), names, key=keys.EVAL_SET)
    return picked, saved[picked]


def _review(app: Services) -> None:
    st.caption(t("eval.review"))
    table = pd.DataFrame([q.__dict__ for q in st.session_state[_PENDING]], columns=["question", "source", "answer"])
    edited = st.data_editor(
        table,
        num_rows="dynamic",
        width="stretch",
        key=keys.EVAL_REVIEW,
        column_config={
            "question": st.column_config.TextColumn(t("eval.col.question"), width="large"),
            "source": st.column_config.TextColumn(t("eval.col.source")),
            "answer": st.column_config.TextColumn(t("eval.col.answer")),
        },
    )
    name_col, save_col = st.columns([2, 1], vertical_alignment="bottom")
    name = name_col.text_input(t("eval.set.name"), key=keys.EVAL_SET_NAME).strip()
    if save_col.button(t("eval.set.save"), key=keys.EVAL_SAVE_SET, disabled=not name):
        questions = [
            Question(str(r["question"]).strip(), str(r["source"] or "").strip(), str(r["answer"] or "").strip())
            for _, r in edited.fillna("").iterrows()
            if str(r["question"]).strip()
        ]
        app.evaluations.save_set(name, questions)
        st.session_state.pop(_PENDING)
        st.session_state[keys.EVAL_SET] = name
        st.toast(t("eval.set.saved", name=name))
        st.rerun()


def settings_form(app: Services) -> EvalSettings:
    """Search mode, top-k, threshold, reranker, answers on or off."""
    mode_col, k_col, threshold_col = st.columns(3)
    mode = mode_col.selectbox(
        t("chat.mode"), MODES, key=keys.EVAL_MODE, format_func=lambda m: t(f"chat.mode.{m}"), help=t("chat.mode.help")
    )
    k = k_col.slider(t("chat.top_k"), 1, 12, 4, key=keys.EVAL_TOP_K)
    calibrated = threshold_col.toggle(
        t("chat.threshold.auto"), True, key=keys.EVAL_THRESHOLD_AUTO, help=t("chat.threshold.auto.help")
    )
    threshold = threshold_col.slider(
        t("chat.threshold"), 0.0, 1.0, 0.5, 0.05, key=keys.EVAL_THRESHOLD, disabled=calibrated
    )
    rerankers = {r.key: r.name for r in app.rerankers()}
    reranker = st.selectbox(
        t("chat.reranker"),
        [None, *rerankers],
        key=keys.EVAL_RERANKER,
        format_func=lambda r: t("chat.reranker.none") if r is None else rerankers[r],
        disabled=not rerankers,
        placeholder=t("chat.reranker.none"),
    )
    answers = st.toggle(t("eval.answers"), key=keys.EVAL_ANSWERS, disabled=app.models.current is None)
    return EvalSettings(mode=mode, k=k, threshold=None if calibrated else threshold, reranker=reranker, answers=answers)


def job_panel(app: Services, kb: KnowledgeBase, job: JobState | None) -> None:
    """Progress of a running evaluation or draft; the last failure, if any."""
    if job is None:
        return
    if job.active:
        label = t("eval.draft.running") if job.kind == "draft" else t("eval.running", name=kb.name)
        watch(
            job.id,
            lambda j: t("eval.progress", done=int(j.done), total=int(j.total or 0), eta=duration(j.eta_s)),
            label,
            cancel_key=keys.EVAL_CANCEL,
        )
    elif job.status == "failed":
        st.error(t("eval.failed", error=job.error_message(lang())), icon="⚠️")


def show_run(run: EvalRun) -> None:
    """A run's figures and its per-question table."""
    k = run.settings.get("k", 4)
    shown = [m for m in METRICS if m in run.metrics]
    for column, metric in zip(st.columns(len(shown) or 1), shown, strict=False):
        value = run.metrics[metric]
        column.metric(t(f"eval.metric.{metric}", k=k), f"{value:.0f}" if metric.endswith("_ms_p50") else f"{value:.2f}")
    rows = pd.DataFrame(run.rows)
    if rows.empty:
        return
    st.caption(t("eval.rows"))
    table = pd.DataFrame(
        {
            t("eval.col.question"): rows["question"],
            t("eval.col.source"): rows["expected_source"],
            t("eval.col.hit"): rows["hit"],
            t("eval.col.rank"): rows["rank"],
            t("eval.col.retrieved"): rows["retrieved"].map(lambda paths: ", ".join(paths)),
        }
    )
    st.dataframe(table, hide_index=True, width="stretch")


def compare(app: Services) -> None:
    """Every kept run; the chosen ones side by side, with a chart."""
    runs = app.evaluations.runs()
    if not runs:
        st.caption(t("eval.history.none"))
        return
    by_id = {r.id: r for r in runs}

    def label(run_id: str) -> str:
        run = by_id[run_id]
        when = datetime.datetime.fromtimestamp(run.started).strftime("%m-%d %H:%M")
        s = run.settings
        return f"{when} · {run.kb} · {run.question_set} · {s['mode']} k={s['k']}" + (
            " +rerank" if s.get("reranker") else ""
        )

    # A new run joins the comparison: the three newest are shown until the user picks others.
    if st.session_state.get("eval.newest") != runs[0].id:
        st.session_state["eval.newest"] = runs[0].id
        st.session_state[keys.EVAL_COMPARE] = list(by_id)[:3]
    chosen = st.multiselect(t("eval.history.pick"), list(by_id), format_func=label, key=keys.EVAL_COMPARE)
    if not chosen:
        return
    table = pd.DataFrame(
        {
            label(rid): {
                t(f"eval.metric.{m}", k=by_id[rid].settings.get("k", 4)): by_id[rid].metrics.get(m) for m in METRICS
            }
            for rid in chosen
        }
    )
    st.dataframe(table, width="stretch")
    quality = table.loc[[i for i in table.index if "ms" not in i]].dropna(how="all")
    if not quality.empty:
        st.bar_chart(quality.T, stack=False)
