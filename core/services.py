"""The composition root: builds the app's long-lived objects from settings, in one place."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from core.embeddings.pool import EmbeddingPool
from core.errors import FolderNotFound
from core.jobs import JobManager, JobState
from core.knowledge import vectors
from core.knowledge.bases import KnowledgeBases
from core.knowledge.ingest import FolderIngestion
from core.knowledge.records import KnowledgeBase, Records
from core.models.loader import LoadOptions
from core.models.manager import ModelManager
from core.models.registry import ModelRegistry
from core.settings import Settings, get_settings


@dataclasses.dataclass
class Services:
    """Everything the pages (and library users) work with; one per process."""

    settings: Settings
    jobs: JobManager
    catalog: ModelRegistry
    models: ModelManager
    knowledge: KnowledgeBases

    def start_ingest(self, kb: KnowledgeBase, folder: Path) -> JobState:
        """Ingest ``folder`` into ``kb`` in the background; one job per knowledge base."""
        settings = self.settings
        if not folder.expanduser().is_dir():
            raise FolderNotFound(path=str(folder))

        def work(ctx):
            run = FolderIngestion(
                self.knowledge, kb, folder, int(settings.max_file_mb * 1e6), settings.embed_batch_size * 2, ctx
            )
            return run.run().as_dict()

        return self.jobs.submit("ingest", f"kb:{kb.id}", kb.name, work)

    def start_load(self, key: str, options: LoadOptions | None = None) -> JobState:
        """Load chat model ``key`` in the background (one load at a time)."""
        spec = self.catalog.get(key)

        def work(ctx):
            loaded = self.models.load(key, options, progress=lambda step: ctx.progress(message=step))
            return {"device": loaded.device, "dtype": loaded.dtype, "seconds": round(loaded.load_seconds, 2)}

        return self.jobs.submit("load", "model", spec.name, work)


def build_services(settings: Settings | None = None) -> Services:
    """Create the services for ``settings`` (the environment's by default)."""
    settings = settings or get_settings()
    settings.ensure_dirs()
    catalog = ModelRegistry(settings.models_dir / "custom_models.json")
    knowledge = KnowledgeBases(
        Records(settings.db_path), vectors.make_client(settings), EmbeddingPool(settings.embed_batch_size)
    )
    return Services(
        settings=settings,
        jobs=JobManager(settings.jobs_dir),
        catalog=catalog,
        models=ModelManager(settings, catalog),
        knowledge=knowledge,
    )
