"""The parts of the Evaluate page: question sets, settings, a run's result, runs compared."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from core.errors import AppError
from core.evaluation import EvalRun, EvalSettings, Question, format_metric, parse_question_set, run_labels
from core.jobs import JobState
from core.knowledge.records import KnowledgeBase
from core.services import Services
from ui import keys
from ui.chat_view import MODES
from ui.common import duration, lang, plain, queue_toast, show_error, t
from ui.jobs import watch
from ui.text import LANGUAGES

METRICS = ["recall_at_k", "mrr", "citation_hit_rate", "answer_containment", "retrieve_ms_p50", "generate_ms_p50"]
_PENDING = "eval.pending_questions"
# Widget keys of the run deletion (ui/keys.py holds the page's other keys).
DELETE_PICK = "eval.delete_pick"
DELETE_YES = "eval.delete_yes"


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
    picked = st.selectbox(t("eval.set.pick"), names, key=keys.EVAL_SET, placeholder=t("select.one"))
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
        queue_toast(t("eval.set.saved", name=name))
        st.rerun()


def settings_form(app: Services) -> EvalSettings:
    """Search mode, top-k, threshold, reranker, answers on or off."""
    mode_col, k_col, threshold_col = st.columns(3)
    mode = mode_col.selectbox(
        t("chat.mode"),
        MODES,
        key=keys.EVAL_MODE,
        format_func=lambda m: t(f"chat.mode.{m}"),
        help=t("chat.mode.help"),
        placeholder=t("select.one"),
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
    return EvalSettings(
        mode=mode,
        k=k,
        threshold=None if calibrated else threshold,
        reranker=reranker,
        answers=answers,
        lang=lang(),  # answers are asked for in the UI's language, as on the Chat page
    )


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
        column.metric(t(f"eval.metric.{metric}", k=k), format_metric(metric, run.metrics[metric]))
    if not run.rows:
        return
    st.caption(t("eval.rows"))
    table = pd.DataFrame(
        {
            t("eval.col.question"): [r["question"] for r in run.rows],
            t("eval.col.source"): [r["expected_source"] for r in run.rows],
            t("eval.col.hit"): [r["hit"] for r in run.rows],
            # Text, so that a file not found leaves the cell blank instead of showing "None".
            t("eval.col.rank"): ["" if r["rank"] is None else str(r["rank"]) for r in run.rows],
            t("eval.col.retrieved"): [", ".join(r["retrieved"]) for r in run.rows],
        }
    )
    st.dataframe(table, hide_index=True, width="stretch")


def compare(app: Services) -> None:
    """Every kept run; the chosen ones side by side, in a table and a chart; deleting a run."""
    runs = app.evaluations.runs()
    if not runs:
        st.caption(t("eval.history.none"))
        return
    by_id = {r.id: r for r in runs}
    words = _Words(app)
    labels = run_labels(runs, words.describe)
    # A deleted run leaves the picked ones, which must all be options.
    if keys.EVAL_COMPARE in st.session_state:
        st.session_state[keys.EVAL_COMPARE] = [i for i in st.session_state[keys.EVAL_COMPARE] if i in by_id]
    # A new run joins the comparison: the three newest are shown until the user picks others.
    if st.session_state.get("eval.newest") != runs[0].id:
        st.session_state["eval.newest"] = runs[0].id
        st.session_state[keys.EVAL_COMPARE] = list(by_id)[:3]
    chosen = st.multiselect(
        t("eval.history.pick"), list(by_id), format_func=labels.get, key=keys.EVAL_COMPARE, placeholder=t("select.many")
    )
    if chosen:
        picked = [by_id[i] for i in chosen]
        _comparison_table(picked, labels, words)
        _comparison_chart(picked, labels)
    _delete_run(app, labels)


class _Words:
    """How a run's settings read, in the UI's language, in labels and in the table."""

    def __init__(self, app: Services) -> None:
        self._rerankers = {r.key: r.name for r in app.rerankers()}

    def describe(self, field: str, value: Any) -> str:
        """``value`` of ``field`` in a run's label."""
        match field:
            case "mode":
                return t(f"chat.mode.{value}")
            case "k":
                return f"k={value}"
            case "reranker":
                return self.reranker(value) if value else t("eval.label.no_reranker")
            case "threshold":
                return t("eval.label.floor", floor=self.floor(value))
            case "answers":
                return t("eval.label.answers" if value else "eval.label.retrieval")
        return str(value)  # the knowledge base's and the question set's names

    def reranker(self, key: str | None) -> str:
        """A reranker's name (its key when no longer in the catalog); "off" for none."""
        return self._rerankers.get(key, key) if key else t("chat.reranker.none")

    @staticmethod
    def floor(threshold: float | None) -> str:
        """The lowest relevance kept, or "calibrated" when the embedding model's floor was used."""
        return t("eval.floor.auto") if threshold is None else f"{threshold:.2f}"


def _comparison_table(runs: list[EvalRun], labels: dict[str, str], words: _Words) -> None:
    # Figures are text so that one not measured stays blank; st.dataframe writes "None" for a
    # missing number.
    rows = [
        {
            "run": labels[run.id],
            "questions": int(run.metrics["questions"]),
            **{m: format_metric(m, run.metrics.get(m)) for m in METRICS},
            "kb": run.kb,
            "question_set": run.question_set,
            "mode": words.describe("mode", run.settings["mode"]),
            "k": run.settings["k"],
            "reranker": words.reranker(run.settings.get("reranker")),
            "floor": words.floor(run.settings.get("threshold")),
            "answers": bool(run.settings.get("answers")),
            "lang": _prompt_language(run),
        }
        for run in runs
    ]
    figure = {m: st.column_config.TextColumn(t(f"eval.metric.{m}", k="k"), alignment="right") for m in METRICS}
    st.dataframe(
        pd.DataFrame(rows),
        hide_index=True,
        width="stretch",
        column_config={
            "run": st.column_config.TextColumn(t("eval.col.run"), pinned=True),
            "questions": st.column_config.NumberColumn(t("eval.col.questions")),
            **figure,
            "kb": t("eval.col.kb"),
            "question_set": t("eval.col.set"),
            "mode": t("chat.mode"),
            "k": st.column_config.NumberColumn("k"),
            "reranker": t("chat.reranker"),
            "floor": t("chat.threshold"),
            "answers": st.column_config.CheckboxColumn(t("eval.col.answers")),
            "lang": t("eval.col.lang"),
        },
    )


def _prompt_language(run: EvalRun) -> str:
    # Blank without answers, where no prompt was written; runs kept before the language was
    # recorded all used the Chinese prompt.
    return LANGUAGES[run.settings.get("lang", "zh")] if run.settings.get("answers") else ""


def _comparison_chart(runs: list[EvalRun], labels: dict[str, str]) -> None:
    # Rates (0 to 1) only, the milliseconds being on another scale; a figure not measured is
    # left out rather than drawn as nothing or zero.
    legend = t("eval.col.run")  # the color column's name titles the legend
    bars = [
        {"metric": t(f"eval.metric.{m}", k="k"), legend: labels[run.id], "value": run.metrics[m]}
        for run in runs
        for m in METRICS
        if not m.endswith("_ms_p50") and m in run.metrics
    ]
    if bars:
        st.bar_chart(
            pd.DataFrame(bars), x="metric", y="value", color=legend, stack=False, sort=False, x_label="", y_label=""
        )


def _delete_run(app: Services, labels: dict[str, str]) -> None:
    """Delete a kept run, after a confirmation."""
    if st.session_state.get(DELETE_PICK) not in labels:
        st.session_state.pop(DELETE_PICK, None)  # the run it named is gone
    with st.popover(t("eval.delete"), icon=":material/delete:"):
        run_id = st.selectbox(
            t("eval.delete.pick"), list(labels), format_func=labels.get, key=DELETE_PICK, placeholder=t("select.one")
        )
        label = plain(labels[run_id])
        st.write(t("eval.delete.confirm", label=label))
        if st.button(t("eval.delete.yes"), key=DELETE_YES, type="primary"):
            try:
                app.evaluations.delete_run(run_id)
            except AppError as error:
                show_error(error)
            else:
                queue_toast(t("eval.deleted", label=label))
                st.rerun()
