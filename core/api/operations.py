"""The knowledge-base operations the MCP server and the HTTP API offer, as plain JSON-ready rows.

Both front ends call these with the services of the acting user (``Services.as_user``), so
the app's permissions apply; searches and answers go through the app's one searcher and one
answer pipeline (:mod:`core.rag.answer`), ingestion through the app's jobs and their locks.
"""

from __future__ import annotations

import dataclasses
import re
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from langchain_core.documents import Document
from langchain_core.language_models import BaseChatModel

from core.errors import AppError, KnowledgeBaseNotFound, NoModelLoaded
from core.jobs import JobState
from core.knowledge.records import KnowledgeBase
from core.knowledge.sources import FolderInput
from core.knowledge.splitting import SplitterSettings
from core.rag.answer import Answer, AnswerSettings, Turn, finished_text, prepare_answer
from core.rag.retrieval import SearchMode, SearchSettings
from core.services import Services

AnswerChoice = Literal["auto", "generate", "quick", "sources"]
SEARCH_MODES: tuple[str, ...] = ("hybrid", "rrf", "dense", "mmr", "keyword")
MAX_K = 50
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")

NO_MATCH = {
    "en": "Nothing in the selected knowledge bases is relevant enough to this question, so it was not answered "
    "from them.",
    "zh": "所选知识库中没有与该问题足够相关的内容，因此没有据此回答。",
}
SOURCES_HEADING = {"en": "Sources:", "zh": "来源："}


class InvalidArgument(AppError):
    """An argument the caller can correct: the message names it and says what it must be."""

    en = "Invalid argument '{name}': {reason}."
    zh = "参数 “{name}” 无效：{reason}。"


class ModelNeeded(AppError):
    """A written answer was asked for, and this process has no chat model loaded."""

    en = (
        "A written answer needs a chat model, and this server has none loaded. Start it with --model KEY "
        "(a catalog key, e.g. a model server added on the Models page), or ask for mode 'quick'."
    )
    zh = (
        "写作式回答需要对话模型，而本服务未加载模型。请用 --model 模型键 启动"
        "（例如在“模型”页面添加的模型服务），或使用 quick 模式。"
    )


class JobNotFound(AppError):
    """A job id this server does not know (or that the caller may not see)."""

    en = "There is no job '{job_id}' in this server. Jobs are known to the server process that started them."
    zh = "本服务中没有任务 “{job_id}”。任务只在启动它的服务进程中可查。"


def language_of(text: str) -> str:
    """The language answers to ``text`` are written in: "zh" when it has Chinese characters, else "en".

    >>> language_of("lmdeploy 支持哪些量化方式？"), language_of("How long should pasta boil?")
    ('zh', 'en')
    """
    return "zh" if _CJK.search(text) else "en"


def knowledge_bases(services: Services) -> list[dict[str, Any]]:
    """The knowledge bases the acting user may read, with their sizes and sources."""
    rows = []
    for kb in services.knowledge.all():
        stats = services.knowledge.stats(kb)
        rows.append(
            {
                "name": kb.name,
                "files": stats.files,
                "chunks": stats.chunks,
                "embedding": kb.embedding,
                "updated": kb.updated,
                "sources": [
                    {"kind": s.kind, "location": s.location, "ref": s.ref, "commit": s.commit_sha}
                    for s in services.knowledge.sources(kb)
                ],
                "files_uri": files_uri(kb.name),
            }
        )
    return rows


def files_uri(name: str) -> str:
    """The MCP resource address of a knowledge base's file list (the name percent-encoded).

    >>> files_uri("课程 笔记")
    'kb://%E8%AF%BE%E7%A8%8B%20%E7%AC%94%E8%AE%B0/files'
    """
    from urllib.parse import quote

    return f"kb://{quote(name, safe='')}/files"


def files(services: Services, name: str) -> dict[str, Any]:
    """The files ``name`` holds, per source, with their sizes and chunk counts."""
    kb = services.knowledge.get(name)
    rows = []
    for source in services.knowledge.sources(kb):
        for record in sorted(services.knowledge.records.files(source.id).values(), key=lambda r: r.path):
            rows.append(
                {
                    "path": record.path,
                    "source": source.location,
                    "size": record.size,
                    "chunks": record.n_chunks,
                    "link": _link(source.kind, source.location, record.path),
                }
            )
    return {"knowledge_base": kb.name, "files": rows}


def _link(kind: str, location: str, path: str) -> str | None:
    """A file URI for a file of a folder source (the app's copies of uploads are not the user's)."""
    return (Path(location) / path).as_uri() if kind == "folder" and Path(location).is_absolute() else None


def _bases(services: Services, names: Sequence[str] | None) -> list[KnowledgeBase]:
    """The named knowledge bases, or every one the user may read when none is named."""
    if not names:
        kbs = services.knowledge.all()
        if not kbs:
            raise InvalidArgument(name="knowledge_bases", reason="there are no knowledge bases yet")
        return kbs
    return [services.knowledge.get(name) for name in dict.fromkeys(names)]


def _search_settings(services: Services, k: int | None, mode: str) -> SearchSettings:
    if k is not None and not 1 <= k <= MAX_K:
        raise InvalidArgument(name="k", reason=f"it must be between 1 and {MAX_K}, not {k}")
    if mode not in SEARCH_MODES:
        raise InvalidArgument(name="mode", reason=f"it must be one of {', '.join(SEARCH_MODES)}, not {mode!r}")
    search_mode: SearchMode = mode  # type: ignore[assignment]
    return SearchSettings(k=k or services.settings.top_k, mode=search_mode)


def passage(doc: Document, number: int) -> dict[str, Any]:
    """One retrieved passage as the API shows it: where it is, how relevant, and its text."""
    meta = doc.metadata
    lines = f"{meta['start_line']}-{meta['end_line']}"
    return {
        "number": number,
        "knowledge_base": meta["kb"],
        "path": meta["path"],
        "start_line": meta["start_line"],
        "end_line": meta["end_line"],
        "heading": meta.get("heading") or None,
        "page": meta.get("page"),
        "relevance": round(float(meta["score"]), 4),
        "link": meta.get("url") or _link(meta["source_kind"], meta["source"], meta["path"]),
        "citation": f"{meta['path']}:{lines}",
        "text": doc.page_content,
    }


def search(
    services: Services, query: str, names: Sequence[str] | None = None, k: int | None = None, mode: str = "hybrid"
) -> dict[str, Any]:
    """The passages that best match ``query``, best first, above each model's relevance floor."""
    if not query.strip():
        raise InvalidArgument(name="query", reason="it is empty")
    kbs = _bases(services, names)
    hits = services.searcher().search(query, kbs, _search_settings(services, k, mode))
    return {
        "query": query,
        "knowledge_bases": [kb.name for kb in kbs],
        "passages": [passage(hit.document(), n) for n, hit in enumerate(hits, 1)],
    }


@dataclasses.dataclass
class Prepared:
    """An answer decided up to the model's turn: the sources, and who answers (and why)."""

    answer: Answer
    llm: BaseChatModel | None
    mode: str  # generate | quick | sources
    answered_by: str  # model | quick | sources | refused
    model: str | None
    note: str
    lang: str

    def sources(self) -> list[dict[str, Any]]:
        """The sources, numbered as the answer's ``[n]`` cite them."""
        return [passage(doc, n) for n, doc in enumerate(self.answer.docs, 1)]

    def stream(self) -> Iterator[str]:
        """The answer's text, piece by piece: the model's words, or the whole quick answer or refusal."""
        if self.answered_by == "model":
            yield from self.answer.stream(self.llm)
        elif self.answered_by == "refused":
            yield NO_MATCH[self.lang]
        else:
            yield self.answer.quick_markdown()

    def result(self, text: str) -> dict[str, Any]:
        """The finished answer: ``answer`` with the citations the app checked (``*[n]*`` matched,
        ``*[?]*`` unsupported), the model's own ``text``, and the sources.
        """
        shown = text
        if self.answered_by == "model":
            shown = finished_text(self.answer, text).shown
        return {
            "answer": shown,
            "text": text,
            "answered_by": self.answered_by,
            "model": self.model,
            "note": self.note,
            "refused": self.answered_by == "refused",
            "question_searched": self.answer.standalone,
            "sources": self.sources(),
        }


def prepare(
    services: Services,
    question: str,
    names: Sequence[str] | None = None,
    *,
    mode: str = "auto",
    k: int | None = None,
    search_mode: str = "hybrid",
    history: Sequence[Turn] = (),
    lang: str | None = None,
    generation: dict[str, Any] | None = None,
) -> Prepared:
    """Search and decide who answers, the way the Chat page does.

    ``mode`` "auto" lets the loaded model write the answer, unless there is none or it is the
    bundled demo model: then the answer is quoted from the sources (no model), as the Chat
    page starts. "generate", "quick" and "sources" ask for one of them.
    """
    if not question.strip():
        raise InvalidArgument(name="question", reason="it is empty")
    if mode not in {"auto", "generate", "quick", "sources"}:
        raise InvalidArgument(name="mode", reason=f"it must be auto, generate, quick or sources, not {mode!r}")
    lang = lang or language_of(question)
    if lang not in {"en", "zh"}:
        raise InvalidArgument(name="lang", reason=f"it must be en or zh, not {lang!r}")
    kbs = _bases(services, names)
    search = _search_settings(services, k, search_mode)
    resident = services.models.current
    spec = resident.spec if resident else None
    try:
        llm = services.models.chat_model(**(generation or {}))
    except NoModelLoaded:
        llm = None
    chosen, note = _choose(mode, llm, spec)
    settings = AnswerSettings(lang=lang, mode=chosen, can_rewrite=bool(spec and spec.can_rewrite))  # type: ignore[arg-type]
    answer = prepare_answer(question, history, llm, services.searcher(), kbs, search, settings)
    if answer.no_match:
        answered_by, note = "refused", NO_MATCH[lang]
    else:
        answered_by = {"generate": "model", "quick": "quick", "sources": "sources"}[chosen]
    model = spec.name if spec and answered_by == "model" else None
    return Prepared(answer, llm, chosen, answered_by, model, note, lang)


def _choose(mode: str, llm: BaseChatModel | None, spec: Any) -> tuple[str, str]:
    """The pipeline's mode for ``mode``, and a note saying who answers and why."""
    if mode == "generate":
        if llm is None:
            raise ModelNeeded()
        return "generate", f"written by {spec.name if spec else 'the chat model'}"
    if mode in {"quick", "sources"}:
        return mode, "quoted from the sources, as asked" if mode == "quick" else "the sources only, as asked"
    if llm is None:
        return "quick", "quoted from the sources: no chat model is loaded in this server (start it with --model KEY)"
    if spec is not None and spec.demo:
        return "quick", f"quoted from the sources: {spec.name} is only a demo model (ask for mode 'generate' to use it)"
    return "generate", f"written by {spec.name if spec else 'the chat model'}"


def answer(services: Services, question: str, names: Sequence[str] | None = None, **options: Any) -> dict[str, Any]:
    """Answer ``question`` from the knowledge bases with the app's pipeline (see :func:`prepare`)."""
    prepared = prepare(services, question, names, **options)
    return prepared.result("".join(prepared.stream()))


def sources_block(sources: Sequence[dict[str, Any]], lang: str) -> str:
    """The sources as Markdown lines under the answer, numbered as its ``[n]``."""
    if not sources:
        return ""
    lines = [f"[{s['number']}] {s['citation']}" + (f" ({s['heading']})" if s["heading"] else "") for s in sources]
    return "\n\n" + SOURCES_HEADING[lang] + "\n" + "\n".join(lines)


def add_folder(
    services: Services, name: str, path: str, *, create: bool = False, embedding: str | None = None
) -> JobState:
    """Add a folder to ``name`` and ingest it, in the app's ingestion job (one per knowledge base,
    under its lock, so it waits while the app or another process writes to it).
    """
    if not path.strip():
        raise InvalidArgument(name="path", reason="it is empty")
    new = False
    try:
        kb = services.knowledge.get(name)
    except KnowledgeBaseNotFound:
        if not create:
            raise
        settings = services.settings
        splitter = SplitterSettings(settings.chunk_size, settings.chunk_overlap)
        kb = services.knowledge.create(name, embedding or settings.default_embedding, splitter)
        new = True
    return services.start_ingest(kb, FolderInput(Path(path).expanduser()), new_kb=new)


def refresh(services: Services, name: str) -> list[JobState]:
    """Bring every source of ``name`` up to date, one job after another (as ``python -m core.ingest
    refresh`` does); returns the jobs as they started, the first at once.
    """
    kb = services.knowledge.get(name)
    sources = services.knowledge.sources(kb)
    if not sources:
        raise InvalidArgument(name="knowledge_base", reason=f"'{kb.name}' has no sources to refresh")
    first = services.start_refresh(kb, sources[0])
    started = [first]

    def rest() -> None:
        # One job per knowledge base runs at a time, so each source waits for the one before.
        previous = first
        for source in sources[1:]:
            services.jobs.wait(previous.id)
            if services.jobs.get(previous.id).status != "done":
                return
            previous = services.start_refresh(kb, source)
            started.append(previous)

    if len(sources) > 1:
        threading.Thread(target=rest, name=f"refresh-{kb.id}", daemon=True).start()
    return started


def wait_for(services: Services, jobs: Sequence[JobState], seconds: float) -> list[dict[str, Any]]:
    """Wait up to ``seconds`` for ``jobs`` to end; their states, as :func:`job_row` shows them."""
    deadline = time.monotonic() + max(0.0, seconds)
    for job in jobs:
        services.jobs.wait(job.id, max(0.0, deadline - time.monotonic()))
    return [job_row(services.jobs.get(job.id)) for job in jobs]


def job_row(job: JobState) -> dict[str, Any]:
    """A job as the API shows it: its status, progress, what it waits for, its result or error."""
    row: dict[str, Any] = {
        "job_id": job.id,
        "kind": job.kind,
        "knowledge_base": job.title,
        "status": job.status,
        "done": job.done,
        "total": job.total,
        "message": job.message,
    }
    if job.active and job.waiting_for:
        row["status"] = "waiting"
        row["message"] = (
            f"Another job or process (the app, python -m core.ingest) is writing to knowledge base "
            f"'{job.waiting_for}'; this job starts when it is done."
        )
    if job.error:
        row["error"] = job.error_message("en")
    if job.status == "done":
        row["result"] = {key: value for key, value in job.result.items() if key != "skipped"}
        row["result"]["skipped"] = len(job.result.get("skipped", []))
    if "discarded" in job.detail:
        row["discarded"] = job.detail["discarded"]
    return row


def job(services: Services, job_id: str) -> dict[str, Any]:
    """The state of a job this server started, for a user who may read its knowledge base."""
    state = services.jobs.get(job_id)
    kb_id = state.target.removeprefix("kb:") if state and state.target.startswith("kb:") else None
    kb = services.knowledge.records.kb_by_id(kb_id) if kb_id else None
    if state is None or (kb is not None and not services.can(kb, "read")):
        raise JobNotFound(job_id=job_id)  # another user's job is not theirs to see, nor to know of
    return job_row(state)
