"""A live view of a background job that refreshes itself while the job runs."""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from core.errors import AppError
from core.jobs import JobState
from ui.auth import current_user
from ui.common import services, show_error, t


def watch(
    job_id: str,
    describe: Callable[[JobState], str],
    label: str,
    cancel_key: str | None = None,
    cancel_label: str | None = None,
) -> None:
    """Show the job's progress in a running status box every second; rerun the page once it ends."""

    @st.fragment(run_every=1.0)
    def panel() -> None:
        job = services().jobs.get(job_id)
        if job is None or not job.active:
            st.rerun()
        # Not used as a context manager: leaving one would mark the box "complete".
        box = st.status(label, state="running", expanded=True)
        box.progress(job.fraction or 0.0, text=describe(job))
        if cancel_key and box.button(cancel_label or t("kb.ingest.cancel"), key=cancel_key):
            user = current_user()
            try:
                if user is not None:
                    services().as_user(user).cancel_job(job_id)
            except AppError as error:
                show_error(error)

    panel()


def first_sight(job: JobState) -> bool:
    """True the first time this session sees ``job`` finished, so outcomes are shown once."""
    seen = st.session_state.setdefault("jobs.seen", set())
    if job.id in seen:
        return False
    seen.add(job.id)
    return True
