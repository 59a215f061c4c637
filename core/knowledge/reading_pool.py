"""Processes that read and cut text files for the ingestion job when its model runs on a GPU.

There one Python thread of reading, splitting, token counting and keyword terms is several
times slower than the GPU embeds, so :class:`ReadingPool` runs :func:`file_chunks` in several
processes. Each is a plain ``python -c`` (as the document reader's are), not a
:mod:`multiprocessing` worker: those import the caller's main module again before their first
task, and under ``streamlit run`` or a script that imports torch and Chroma that took 6.6-7.5 s
of a 17-20 s job on a 16-core GPU host (8 processes importing at once), against about 0.4 s for
what reading needs. It also keeps a script without an ``if __name__ == "__main__"`` guard from
running again in each process.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import threading
import traceback
from pathlib import Path
from typing import BinaryIO

from core.knowledge.file_chunks import ChunkPlan, FileChunks, Unchanged, file_chunks
from core.knowledge.loaders import read_in_process
from core.knowledge.reader_process import end_process, private_stdout, receive_frame, send_frames, worker_environment
from core.knowledge.scanning import FoundFile, SkippedFile

# Below this many files the processes' start (under a second) costs more than it saves.
POOL_MIN_FILES = 64
POOL_MAX_PROCESSES = 8
# Files read ahead of the job: enough to keep the GPU busy, bounded so memory is on any corpus.
_AHEAD_FILES = 256
_CODE = "from core.knowledge.reading_pool import _serve; _serve()"

Result = FileChunks | Unchanged | SkippedFile


class ReadingPool:
    """Reading processes for the files :func:`pooled` names (text, Markdown, code, HTML...).

    It starts reading ``files`` (each a file and its known digest) in ``processes`` processes;
    :meth:`next` gives each file's result in that order, and can give up waiting; :meth:`close`
    ends the processes at once (a cancel does not wait for files being read). A process that
    dies on a file is replaced, and that file is skipped, saying so.
    """

    def __init__(self, plan: ChunkPlan, processes: int, files: list[tuple[FoundFile, str | None]]) -> None:
        self._plan = pickle.dumps(plan, pickle.HIGHEST_PROTOCOL)
        self._changed = threading.Condition()
        self._results: dict[int, Result | BaseException] = {}
        self._files = list(files)
        self._taken = self._given = 0
        self._closed = False
        self._processes: list[subprocess.Popen] = []
        # Daemons: a caller that never closes the pool must not keep Python from exiting.
        self._threads = [
            threading.Thread(target=self._feed, name="reading-pool", daemon=True) for _ in range(processes)
        ]
        for thread in self._threads:
            thread.start()

    def next(self, timeout: float) -> Result:
        """The next file's result, in the order given; raises ``TimeoutError`` after ``timeout``
        seconds without it, and what reading it raised.
        """
        with self._changed:
            if not self._changed.wait_for(lambda: self._given in self._results or self._closed, timeout):
                raise TimeoutError(f"file {self._given} not read in {timeout} s")
            if self._given not in self._results:
                raise RuntimeError("the reading pool is closed")
            result = self._results.pop(self._given)
            self._given += 1
            self._changed.notify_all()
        if isinstance(result, BaseException):
            raise result
        return result

    def close(self) -> None:
        """End the processes now, whatever they are reading."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()
            processes = list(self._processes)
        for process in processes:
            end_process(process)
        for thread in self._threads:
            if thread.is_alive():
                thread.join()

    def _feed(self) -> None:
        """One process's loop: take the next file, send it, keep the answer, until done or closed.
        Anything unforeseen (a process that cannot start) becomes that file's result, so the job
        hears it instead of waiting for the file.
        """
        process = None
        try:
            while (index := self._take()) is not None:
                try:
                    process = process or self._start()
                    result = self._read(process, *self._files[index])
                    if result is None:  # killed by the system, or by close()
                        end_process(process)
                        process = None
                        path = self._files[index][0].path
                        result = SkippedFile(path, "unreadable", "the reading process stopped while reading it")
                except BaseException as exc:  # noqa: BLE001 - raised in the job by next()
                    self._keep(index, exc)
                    return
                self._keep(index, result)
        finally:
            if process is not None:
                end_process(process)

    @staticmethod
    def _read(process: subprocess.Popen, file: FoundFile, digest: str | None) -> Result | None:
        """``process``'s answer for ``file``; None when it ended before answering."""
        try:
            send_frames(process.stdin, pickle.dumps((file, digest), pickle.HIGHEST_PROTOCOL))
            answer = receive_frame(process.stdout)
        except OSError:
            answer = None
        return None if answer is None else pickle.loads(answer)

    def _keep(self, index: int, result: Result | BaseException) -> None:
        with self._changed:
            self._results[index] = result
            self._changed.notify_all()

    def _take(self) -> int | None:
        """The index of the next file to read, once it is within reach of the job; None at the end."""
        with self._changed:
            self._changed.wait_for(lambda: self._closed or self._taken - self._given < _AHEAD_FILES)
            if self._closed or self._taken == len(self._files):
                return None
            self._taken += 1
            return self._taken - 1

    def _start(self) -> subprocess.Popen:
        """A new reading process with the plan loaded; raises :class:`ReadingProcessFailed`."""
        process = subprocess.Popen(
            [sys.executable, "-c", _CODE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=reader_environment(),
            creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0),
        )
        with self._changed:
            closed = self._closed
            if not closed:
                self._processes.append(process)
        if closed:
            end_process(process)
            raise ReadingProcessFailed("the reading pool is closed")
        try:
            send_frames(process.stdin, self._plan)
            answer = receive_frame(process.stdout)
        except OSError:
            answer = None
        problem = "it ended" if answer is None else pickle.loads(answer)
        if problem is not None:
            end_process(process)
            raise ReadingProcessFailed(
                f"a reading process could not load the job's settings ({problem}); what was stored "
                "so far is kept, and running the job again goes on from there"
            )
        return process


class ReadingProcessFailed(RuntimeError):
    """A reading process did not start, or could not load what the job sent it."""


def reader_environment() -> dict[str, str]:
    """A reading process's environment: a document reader's, with tokenizers and math libraries
    kept to one thread, since several processes each starting a thread per core would fight
    the job's own threads for the cores.
    """
    return {
        **worker_environment(),
        "TOKENIZERS_PARALLELISM": "false",
        "RAYON_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
    }


def pool_size(plan: ChunkPlan, files: int, on_gpu: bool) -> int:
    """How many reading processes a job should use: none unless its model runs on a GPU (on a
    CPU the model is far slower than one reading thread), the files are many, and the token
    counter can be sent to another process.
    """
    if not on_gpu or files < POOL_MIN_FILES or not _picklable(plan):
        return 0
    return max(0, min(POOL_MAX_PROCESSES, (os.cpu_count() or 1) - 2))


def pooled(path: str) -> bool:
    """Whether a reading process reads the file at ``path``: PDFs, images and Office files go to
    a document reader of their own, with OCR progress, from the job's reading thread.
    """
    return read_in_process(Path(path))


def _picklable(plan: ChunkPlan) -> bool:
    """Whether a reading process can load ``plan``: it pickles, and names nothing of the
    caller's main script (a token counter defined there), which a fresh process does not have.
    """
    try:
        data = pickle.dumps(plan)
    except Exception:  # noqa: BLE001 - any failure means "read in the job's thread"
        return False
    # A crude test (a name or text containing it would also match), which only costs speed.
    return b"__main__" not in data


def _serve() -> None:
    """A reading process's loop: the plan, then files, each answered with its pickled result,
    until the job closes the pipe (or ends: the pipe closes with it).
    """
    answers = private_stdout()
    requests = sys.stdin.buffer
    try:
        plan = pickle.loads(_frame(requests))
    except Exception as exc:  # noqa: BLE001 - told to the job, which stops with it
        send_frames(answers, pickle.dumps(f"{type(exc).__name__}: {exc}"))
        return
    send_frames(answers, pickle.dumps(None))  # ready
    while (request := receive_frame(requests)) is not None:
        file, digest = pickle.loads(request)
        try:
            result: object = file_chunks(plan, file, digest)
        except Exception as exc:  # noqa: BLE001 - raised in the job, as when it reads the file itself
            exc.add_note(f"in a reading process, reading {file.path}:\n{traceback.format_exc()}")
            result = exc if _sendable(exc) else RuntimeError(f"{type(exc).__name__}: {exc}")
        send_frames(answers, pickle.dumps(result, pickle.HIGHEST_PROTOCOL))


def _frame(pipe: BinaryIO) -> bytes:
    frame = receive_frame(pipe)
    if frame is None:
        raise SystemExit(0)  # the job went away before sending anything
    return frame


def _sendable(exc: Exception) -> bool:
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:  # noqa: BLE001 - an exception that cannot travel goes as its text
        return False
    return True
