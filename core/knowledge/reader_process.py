"""The process that parses documents for :mod:`core.knowledge.loaders`, within a per-file
time and memory budget.

Only a process can be stopped from outside: this side waits ``seconds`` for the answer, then
kills the worker; on Linux the worker caps its own address space (RLIMIT_AS) at its size after
start-up plus ``memory_mb``, so a parser that asks for more gets a MemoryError. A worker is a
fresh Python (never a fork of this process, which runs threads), started once and reused, so a
file costs one round trip through a pipe; a killed worker is replaced on the next file.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import queue
import struct
import subprocess
import sys
import threading
import time
import warnings
import weakref
from pathlib import Path
from typing import BinaryIO

from core.knowledge.reading import Progress, UnreadableText

log = logging.getLogger(__name__)
_ROOT = Path(__file__).resolve().parents[2]  # the folder holding the ``core`` package


"""Hears (pages done, pages to do) of a reading; an exception it raises stops the reading."""
# While a file is read, progress is also told this often (the last figures again), so that a
# cancel is noticed within this time even on a page that takes long.
_HEARTBEAT_SECONDS = 1.0


class OverBudget(UnreadableText):
    """Reading the file would take more time or memory than one file is allowed."""


class ReaderFailed(UnreadableText):
    """A parser failed in an unforeseen way (a bug, or a crash in a library); the file is skipped."""


# Waiting for a new worker (a Python start and the parsers' imports: about a second) is not the
# file's time; a worker that does not even start in this long will not.
_START_SECONDS = 60.0
# Workers kept between files: one per thread reading at the same time and kind (with OCR or
# without), up to this many.
_MAX_IDLE_WORKERS = 3
# After a worker failed to start, files are skipped at once for this long before trying again.
_RETRY_START_SECONDS = 30.0
_idle: list[_Worker] = []
_idle_lock = threading.Lock()
_all_workers: weakref.WeakSet[_Worker] = weakref.WeakSet()
_no_workers_until = 0.0
_start_failure = ""
_HEADER = struct.Struct(">Q")
# A plain ``python -c``: multiprocessing's spawn would run the caller's main script again in the
# child, which breaks any script without an ``if __name__ == "__main__"`` guard.
_WORKER_CODE = (
    "import sys; from core.knowledge.reader_process import _serve; "
    "_serve(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == 'ocr')"
)


class _Worker:
    """A process that reads documents sent to it on its stdin, within ``memory_mb``.

    Messages are length-prefixed frames: in, the suffix, the options (JSON: ``read_scans``,
    whether pages without text are read by OCR) and the bytes; out, JSON objects: any
    number of progress reports, then the answer. A thread reads them, so that waiting for one can
    time out on every system. An ``ocr`` worker loads the OCR models before its budget is set.
    """

    def __init__(self, memory_mb: int, ocr: bool = False) -> None:
        self.memory_mb = memory_mb
        self.ocr = ocr
        self._process = subprocess.Popen(
            [sys.executable, "-c", _WORKER_CODE, str(memory_mb), str(os.getpid()), "ocr" if ocr else "plain"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=worker_environment(),
            creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0),
        )
        self._replies: queue.Queue[dict | None] = queue.Queue()
        _all_workers.add(self)
        threading.Thread(target=self._receive, name="document-reader-replies", daemon=True).start()
        try:
            reply = self._replies.get(timeout=_START_SECONDS)
        except queue.Empty:
            reply = {"status": "silent"}
        if reply != {"status": "ready"}:
            self.close()
            ended = f"it ended with code {self._process.returncode}"
            raise OSError(f"no answer in {_START_SECONDS:g} s" if reply else ended)

    def alive(self) -> bool:
        return self._process.poll() is None

    def read(
        self,
        suffix: str,
        data: bytes,
        seconds: float,
        page_seconds: float,
        progress: Progress | None = None,
        options: dict | None = None,
    ) -> dict:
        try:
            send_frames(self._process.stdin, suffix.encode(), json.dumps(options or {}).encode(), data)
        except OSError:
            reply = None  # it died before
        else:
            reply = self._answer(seconds, page_seconds, progress)
        if reply is None:  # killed by the system, or a crash inside a C library
            self.close()
            raise ReaderFailed(
                f"the reader stopped while reading it (it may have needed more than {self.memory_mb} MB)"
            )
        status = reply["status"]
        if status == "ok":
            return {key: reply[key] for key in ("text", "kind", "language", "pages", "ocr_pages")}
        if status == "memory":
            self.close()  # its heap may stay fragmented: start afresh
            raise OverBudget(f"needed more than {self.memory_mb} MB to read")
        if status == "unreadable":
            raise UnreadableText(reply["reason"])
        raise ReaderFailed(reply["reason"])

    def _answer(self, seconds: float, page_seconds: float, progress: Progress | None) -> dict | None:
        """The answer to the file just sent: within ``seconds``, and once pages are reported done,
        within ``page_seconds`` of the last page.
        """
        deadline = time.monotonic() + seconds
        done, total = 0, 0
        while True:
            left = deadline - time.monotonic()
            try:
                reply = self._replies.get(timeout=max(0.0, min(left, _HEARTBEAT_SECONDS)))
            except queue.Empty:
                if left <= _HEARTBEAT_SECONDS:
                    self.close()
                    if total:
                        raise OverBudget(f"a page took longer than {page_seconds:g} s to read by OCR") from None
                    raise OverBudget(f"took longer than {seconds:g} s to read") from None
                reply = {"status": "progress", "done": done, "total": total}
            else:
                if reply is None or reply["status"] != "progress":
                    return reply
                done, total = reply["done"], reply["total"]
                deadline = time.monotonic() + page_seconds
            if progress:
                try:
                    progress(done, total)
                except BaseException:
                    self.close()  # it is busy with the file: stopping it is the only way
                    raise

    def close(self) -> None:
        end_process(self._process)

    def _receive(self) -> None:
        try:
            while (frame := receive_frame(self._process.stdout)) is not None:
                self._replies.put(json.loads(frame))
        except (OSError, ValueError):
            pass
        self._replies.put(None)  # end of the pipe: the process ended


def worker_environment() -> dict[str, str]:
    """The environment of a worker started with ``python -c``: this one, with ``core`` and
    whatever this process can import importable.
    """
    path = [str(_ROOT), *filter(None, sys.path), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(dict.fromkeys(path))}


def end_process(process: subprocess.Popen) -> None:
    """Kill a worker now (whatever it is doing), reap it and close its pipes."""
    if process.poll() is None:
        process.kill()
    process.wait()
    for pipe in (process.stdin, process.stdout):
        with contextlib.suppress(OSError):
            pipe.close()


def send_frames(pipe: BinaryIO, *frames: bytes) -> None:
    """Write ``frames`` to ``pipe``, each after its length, and flush."""
    for frame in frames:
        pipe.write(_HEADER.pack(len(frame)))
        pipe.write(frame)
    pipe.flush()


def private_stdout() -> BinaryIO:
    """A worker's pipe for its answers: stdout's, taken for them alone. Libraries that print
    would corrupt the frames, so what they print goes to stderr from now on.
    """
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno() if sys.stderr else os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return answers


def receive_frame(pipe: BinaryIO) -> bytes | None:
    """The next frame from ``pipe``; None at its end (the other side closed it, or ended)."""
    header = pipe.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack(header)
    frame = pipe.read(size)
    return frame if len(frame) == size else None


def _serve(memory_mb: int, app_pid: int, ocr: bool = False) -> None:
    """The worker's loop (see :class:`_Worker`); runs until its stdin closes or the app ends."""
    if sys.platform != "win32":
        threading.Thread(target=_exit_with, args=(app_pid,), name="document-reader-watch", daemon=True).start()
    replies = private_stdout()
    requests = sys.stdin.buffer
    # What went wrong comes back as the reason; pdfminer's notes on repairs and bs4's warnings
    # would only fill the app's console.
    logging.getLogger("pdfminer").setLevel(logging.ERROR)
    warnings.simplefilter("ignore")
    # Imported before the limit is set, so that the budget is the file's alone.
    import bs4
    import mammoth
    import markdownify
    from charset_normalizer import from_bytes

    from core.knowledge.loaders import parse

    del bs4, mammoth, markdownify, from_bytes
    if ocr:
        _load_ocr()
    _limit_memory(memory_mb)
    _answer(replies, {"status": "ready"})
    while True:
        suffix = receive_frame(requests)
        options = receive_frame(requests)
        data = receive_frame(requests)
        if suffix is None or options is None or data is None:
            return  # the app closed the pipe, or ended

        def report(done: int, total: int) -> None:
            _answer(replies, {"status": "progress", "done": done, "total": total})

        try:
            reply = {"status": "ok", **parse(suffix.decode(), data, report, **json.loads(options))}
        except MemoryError:
            reply = {"status": "memory"}
        except UnreadableText as exc:
            reply = {"status": "unreadable", "reason": str(exc)}
        except Exception as exc:  # noqa: BLE001 - any parser failure skips the file, saying what happened
            reply = {
                "status": "failed",
                "reason": f"the {suffix.decode()} reader failed: {type(exc).__name__}: {exc}"[:500],
            }
        del data
        try:
            _answer(replies, reply)
        except MemoryError:  # the text itself is too large to send
            reply = None  # freed first
            _answer(replies, {"status": "memory"})


def _load_ocr() -> None:
    """Import what reading PDFs and images needs (0.4 s). The OCR models themselves are loaded on
    the first page that needs them (a second, 0.3 GB, within the memory budget): most PDFs never do.
    """
    import pdfplumber
    import pypdfium2

    del pdfplumber, pypdfium2
    # Without the package, pages that need OCR are reported as such (see core.knowledge.ocr).
    with contextlib.suppress(ImportError):
        import rapidocr_onnxruntime

        del rapidocr_onnxruntime


def _exit_with(app_pid: int) -> None:
    # The app kills its workers when it exits; if it was killed itself, a worker busy with a file
    # that never ends would run on alone. An orphan gets a new parent: then it exits too.
    while os.getppid() == app_pid:
        time.sleep(1)
    os._exit(1)


@atexit.register
def _close_workers() -> None:
    for worker in list(_all_workers):
        worker.close()


def _answer(pipe: BinaryIO, reply: dict) -> None:
    send_frames(pipe, json.dumps(reply, ensure_ascii=False).encode())


def _limit_memory(megabytes: int) -> None:
    if sys.platform != "linux":
        return  # macOS does not enforce RLIMIT_AS; Windows has no rlimits
    import resource

    with open("/proc/self/statm", encoding="ascii") as statm:
        size = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = size + megabytes * 1024 * 1024
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def read_in_worker(
    suffix: str,
    data: bytes,
    memory_mb: int,
    seconds: float,
    ocr: bool = False,
    page_seconds: float | None = None,
    progress: Progress | None = None,
    read_scans: bool = True,
) -> dict:
    """The text, kind, language and pages of a document of type ``suffix``, read by a worker
    process within ``memory_mb`` and ``seconds`` (``ocr``: one with the OCR models loaded; each
    page read by OCR may take ``page_seconds`` more; with ``read_scans`` false, pages without text
    are only counted); raises :class:`OverBudget`,
    :class:`ReaderFailed` or ``UnreadableText``, or what ``progress`` raises.
    """
    global _no_workers_until, _start_failure
    worker = None
    with _idle_lock:
        for candidate in [w for w in _idle if not w.alive()]:
            _idle.remove(candidate)
            candidate.close()
        # A folder mixes PDFs (read by OCR workers) with other documents: each kind keeps its own.
        matching = [w for w in _idle if w.memory_mb == memory_mb and w.ocr == ocr]
        if matching:
            worker = matching[-1]
            _idle.remove(worker)
    if worker is None:
        # Without a worker there is no budget, and a hostile file could stall the app: such files
        # are skipped, saying why, rather than read here.
        if time.monotonic() < _no_workers_until:
            raise ReaderFailed(_start_failure)
        try:
            worker = _Worker(memory_mb, ocr)
        except OSError as exc:
            _start_failure = f"the document reader process could not start: {exc.strerror or exc}"
            _no_workers_until = time.monotonic() + _RETRY_START_SECONDS
            log.warning("%s; documents that need a parser are skipped", _start_failure)
            raise ReaderFailed(_start_failure) from None
    try:
        options = {"read_scans": read_scans} if ocr else {}
        return worker.read(suffix, data, seconds, page_seconds or seconds, progress, options)
    finally:
        if worker.alive():
            with _idle_lock:
                _idle.append(worker)
                evicted = _idle.pop(0) if len(_idle) > _MAX_IDLE_WORKERS else None  # the longest idle
            if evicted:
                evicted.close()
