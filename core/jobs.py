"""Background jobs: long work (downloads, ingestion, model loads) that outlives a page rerun.

A job runs in a daemon thread of the app process. Its state is kept in memory for the pages
to poll and written to ``<data>/jobs/<id>.json`` so that, after the process dies, the next
start knows the job was interrupted. Work functions are written to be re-runnable: running
the same work again after an interruption finishes it without duplicating anything.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import psutil

from core.app_files import write_atomically
from core.credentials import forget_in_file
from core.errors import AppError, JobAlreadyRunning, JobCancelled

JobStatus = Literal["running", "done", "failed", "cancelled", "interrupted"]
_PERSIST_EVERY_S = 0.5


@dataclasses.dataclass
class JobState:
    """A snapshot of one job, as the pages show it."""

    id: str
    kind: str
    target: str
    title: str
    status: JobStatus = "running"
    done: float = 0
    baseline: float = 0
    total: float | None = None
    unit: str = ""
    message: str = ""
    detail: dict[str, Any] = dataclasses.field(default_factory=dict)
    error: dict[str, str] | None = None
    result: dict[str, Any] = dataclasses.field(default_factory=dict)
    started: float = dataclasses.field(default_factory=time.time)
    updated: float = dataclasses.field(default_factory=time.time)
    finished: float | None = None
    pid: int = dataclasses.field(default_factory=os.getpid)

    @property
    def active(self) -> bool:
        """Whether the job is still running."""
        return self.status == "running"

    @property
    def waiting_for(self) -> str | None:
        """The knowledge base whose lock the job is waiting for, while another job or process
        writes to it; None when the job is not waiting.
        """
        return self.detail.get("waiting") if self.message == "waiting" else None

    @property
    def fraction(self) -> float | None:
        """Share of the work done, 0..1, when the total is known."""
        if not self.total:
            return None
        return min(1.0, max(0.0, self.done / self.total))

    @property
    def elapsed_s(self) -> float:
        """Seconds since the start, up to the end for finished jobs."""
        return (self.finished or time.time()) - self.started

    @property
    def rate(self) -> float | None:
        """Units of work per second so far in this run (``baseline`` was done by earlier runs)."""
        elapsed = self.elapsed_s
        done = self.done - self.baseline
        return done / elapsed if elapsed > 0 and done > 0 else None

    @property
    def eta_s(self) -> float | None:
        """Seconds left at the current rate, when it can be told."""
        rate = self.rate
        if not rate or self.total is None or not self.active:
            return None
        return max(0.0, (self.total - self.done) / rate)

    def error_message(self, lang: str) -> str | None:
        """The failure message in ``lang``, if the job failed."""
        if not self.error:
            return None
        return self.error.get(lang) or self.error.get("en")


class JobContext:
    """What a work function gets: a way to report progress and to notice cancellation."""

    def __init__(self, manager: JobManager, state: JobState, cancel_event: threading.Event) -> None:
        self._manager = manager
        self._state = state
        self._cancel = cancel_event

    @property
    def cancelled(self) -> bool:
        """Whether the user asked to stop."""
        return self._cancel.is_set()

    def check_cancelled(self) -> None:
        """Stop the work here if the user asked to; raises :class:`JobCancelled`."""
        if self._cancel.is_set():
            raise JobCancelled()

    def progress(
        self,
        done: float | None = None,
        total: float | None = None,
        message: str | None = None,
        unit: str | None = None,
        baseline: float | None = None,
        **detail: Any,
    ) -> None:
        """Record progress; any argument left out keeps its previous value.

        ``baseline`` is work already done before this run (a resumed download), left out of
        the rate and the time estimate.
        """
        self._manager._update(
            self._state.id, done=done, total=total, message=message, unit=unit, baseline=baseline, detail=detail
        )


class JobManager:
    """Starts, tracks, cancels and remembers background jobs."""

    def __init__(self, state_dir: Path) -> None:
        self._dir = state_dir
        self._dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._jobs: dict[str, JobState] = {}
        self._cancels: dict[str, threading.Event] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._persisted_at: dict[str, float] = {}
        self._load_records()

    def submit(self, kind: str, target: str, title: str, work: Callable[[JobContext], dict | None]) -> JobState:
        """Start ``work`` in the background; one running job per ``target`` at a time."""
        with self._lock:
            if any(j.target == target and j.active for j in self._jobs.values()):
                raise JobAlreadyRunning(target=title)
            state = JobState(id=uuid.uuid4().hex[:12], kind=kind, target=target, title=title)
            cancel = threading.Event()
            self._jobs[state.id] = state
            self._cancels[state.id] = cancel
            self._persist(state, force=True)
            thread = threading.Thread(
                target=self._run, args=(state, cancel, work), name=f"job-{kind}-{state.id}", daemon=True
            )
            self._threads[state.id] = thread
        thread.start()
        return self.get(state.id)

    def get(self, job_id: str) -> JobState | None:
        """A copy of the job's current state."""
        with self._lock:
            state = self._jobs.get(job_id)
            return dataclasses.replace(state, detail=dict(state.detail)) if state else None

    def latest(self, target: str, kind: str | None = None) -> JobState | None:
        """The most recently started job for ``target``."""
        with self._lock:
            matches = [j for j in self._jobs.values() if j.target == target and kind in (None, j.kind)]
        if not matches:
            return None
        return self.get(max(matches, key=lambda j: j.started).id)

    def active(self, kind: str | None = None) -> list[JobState]:
        """Jobs still running, oldest first."""
        with self._lock:
            ids = [j.id for j in sorted(self._jobs.values(), key=lambda j: j.started) if j.active]
        return [s for s in (self.get(i) for i in ids) if s and kind in (None, s.kind)]

    def cancel(self, job_id: str) -> None:
        """Ask a running job to stop at its next check."""
        event = self._cancels.get(job_id)
        if event:
            event.set()

    def wait(self, job_id: str, timeout: float | None = None) -> JobState:
        """Block until the job ends (for the command line and tests)."""
        thread = self._threads.get(job_id)
        if thread:
            thread.join(timeout)
        return self.get(job_id)

    def _run(self, state: JobState, cancel: threading.Event, work: Callable[[JobContext], dict | None]) -> None:
        status: JobStatus = "done"
        error: dict[str, str] | None = None
        result: dict[str, Any] = {}
        try:
            result = work(JobContext(self, state, cancel)) or {}
        except JobCancelled:
            status = "cancelled"
        except AppError as exc:
            status, error = "failed", {"en": exc.message("en"), "zh": exc.message("zh")}
        except Exception as exc:  # noqa: BLE001 - a job must end in a state the user can see
            status = "failed"
            text = f"{type(exc).__name__}: {exc}"
            error = {"en": text, "zh": text}
        with self._lock:
            state.status, state.error, state.result = status, error, result
            state.finished = state.updated = time.time()
            self._persist(state, force=True)

    def _update(self, job_id: str, *, detail: dict[str, Any], **fields: Any) -> None:
        with self._lock:
            state = self._jobs[job_id]
            for name, value in fields.items():
                if value is not None:
                    setattr(state, name, value)
            state.detail.update(detail)
            state.updated = time.time()
            self._persist(state)

    def _persist(self, state: JobState, force: bool = False) -> None:
        now = time.time()
        if not force and now - self._persisted_at.get(state.id, 0) < _PERSIST_EVERY_S:
            return
        self._persisted_at[state.id] = now
        path = self._dir / f"{state.id}.json"
        write_atomically(path, json.dumps(dataclasses.asdict(state), ensure_ascii=False))

    def _load_records(self) -> None:
        for path in sorted(self._dir.glob("*.json")):
            try:
                forget_in_file(path)  # earlier versions kept git addresses with their tokens
                state = JobState(**json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError, TypeError):
                continue  # a half-written or foreign file; the job it described is gone anyway
            if state.active and not _owned_by_live_process(state.pid):
                state.status = "interrupted"
                self._persist(state, force=True)
            self._jobs[state.id] = state


def _owned_by_live_process(pid: int) -> bool:
    # This process's own leftovers belong to a manager that no longer exists.
    return pid != os.getpid() and psutil.pid_exists(pid)
