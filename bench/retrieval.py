"""Retrieval quality of the default settings against plain BM25 and plain dense search, in one run.

Each data set's passages become one file each in a knowledge base built by the app's own
ingestion (bundled multilingual-e5-small, 500/150-character chunks). A hit is a chunk from
the question's gold passage. Figures: recall@1, recall@5 and MRR@10 of the ranking (no floor:
the guard is measured by bench/answers.py) for the default (hybrid) search, the app's keyword
mode, dense only, the two lists fused by reciprocal rank (RRF), and a plain BM25 over the same
chunks as the baseline the keyword mode must match (``bm25s``, k1 1.2, b 0.75, jieba words;
the text each chunk is indexed and embedded with).

Reported on what no method or constant was chosen on: CMRC 2018 dev and PubMedQA without its
tuning slice (bench/data.py); the fusion, weights and floors were fitted on CMRC 2018 trial and
that slice (bench/calibrate_guard.py). Answers are measured by bench/answers.py.

Embeddings are cached between runs (bench/cache.py) since only quality is measured here.

Run: python -m bench.retrieval [--quick]
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from pathlib import Path

import bm25s
import jieba

from bench import data
from bench.cache import CACHE_DIR, CachedEmbeddings
from bench.harness import parser, report
from core.embeddings.factory import build_embeddings
from core.knowledge.sources import FolderInput
from core.knowledge.splitting import Piece, SplitterSettings, embedded_text
from core.rag.retrieval import SearchSettings
from core.services import Services, build_services
from core.settings import Settings

EMBEDDING = "multilingual-e5-small-q4"
# rrf: the other fusion the app offers, for reference.
MODES = {"default": "hybrid", "keyword": "keyword", "dense": "dense", "rrf": "rrf"}
FIGURES = ("r1", "r5", "mrr10")
LABELS = (*MODES, "bm25_plain")
_WORD = re.compile(r"\w+")


def cached_embeddings(spec, batch, path):
    """The real embedding model, its vectors remembered between runs."""
    return CachedEmbeddings(build_embeddings(spec, batch, folder=path), spec.key)


def build(qa: data.QASet, work: Path) -> tuple[Services, object]:
    """A knowledge base holding the passages of ``qa``, one file per passage.

    The data folder persists in the cache folder, so the bundled chat model is converted once.
    """
    folder = work / f"{qa.name}-passages"
    folder.mkdir(parents=True)
    for pid, passage in qa.passages.items():
        (folder / f"{pid}.txt").write_text(passage, encoding="utf-8")
    services = build_services(Settings(data_dir=CACHE_DIR / "data"), embedding_builder=cached_embeddings)
    for old in services.knowledge.all():
        services.knowledge.delete(old)
    kb = services.knowledge.create(qa.name, EMBEDDING, SplitterSettings(500, 150, "chars"))
    job = services.jobs.wait(services.start_ingest(kb, FolderInput(folder)).id)
    assert job.status == "done", job.error
    return services, kb


def evaluate(services: Services, kb, qa: data.QASet, mode: str) -> dict:
    """recall@1, recall@5 and MRR@10 of ``mode`` over the questions of ``qa``."""
    searcher = services.searcher()
    r1 = r5 = mrr = 0.0
    for question, gold, _ in qa.questions:
        hits = searcher.search(question, [kb], SearchSettings(k=10, mode=mode, depth=20, threshold=0.0))
        ranks = [h.rank for h in hits if h.chunk.path == f"{gold}.txt"]
        if ranks:
            first = ranks[0]
            r1 += first == 1
            r5 += first <= 5
            mrr += 1.0 / first
    n = len(qa.questions)
    return {"r1": round(r1 / n, 4), "r5": round(r5 / n, 4), "mrr10": round(mrr / n, 4)}


def _bm25_tokens(text: str) -> list[str]:
    """Plain tokens: jieba's words (which keeps Latin words whole), lowercased, punctuation dropped."""
    return [w for w in (t.strip().lower() for t in jieba.lcut(text)) if _WORD.fullmatch(w)]


def bm25_plain(services: Services, kb, qa: data.QASet) -> dict:
    """recall@1, recall@5 and MRR@10 of a plain BM25 (the maintained ``bm25s``) over the chunks
    the app stored for ``kb``: the baseline for the app's keyword mode.
    """
    chunks = services.knowledge.records.chunks(kb.id)
    index = bm25s.BM25(k1=1.2, b=0.75)
    index.index([_bm25_tokens(embedded_text(Piece(c.text, 0, 0, c.heading))) for c in chunks], show_progress=False)
    r1 = r5 = mrr = 0.0
    for question, gold, _ in qa.questions:
        words = [w for w in _bm25_tokens(question) if w in index.vocab_dict]
        if not words:
            continue
        found, scores = index.retrieve([words], k=min(10, len(chunks)), show_progress=False)
        ranks = [i + 1 for i, (d, s) in enumerate(zip(found[0], scores[0], strict=True)) if s > 0]
        ranks = [r for r in ranks if chunks[found[0][r - 1]].path == f"{gold}.txt"]
        if ranks:
            r1 += ranks[0] == 1
            r5 += ranks[0] <= 5
            mrr += 1.0 / ranks[0]
    n = len(qa.questions)
    return {"r1": round(r1 / n, 4), "r5": round(r5 / n, 4), "mrr10": round(mrr / n, 4)}


def compare(figures: dict) -> dict:
    """The checks: keyword mode within 0.01 of plain BM25; the default within 0.005 of the
    better of plain BM25 and dense on every figure and above both on at least one.
    """
    best = {m: max(figures["bm25_plain"][m], figures["dense"][m]) for m in FIGURES}
    return {
        "keyword_within_0.01_of_bm25_plain": all(
            figures["keyword"][m] >= figures["bm25_plain"][m] - 0.01 for m in FIGURES
        ),
        "default_within_0.005_of_best": all(figures["default"][m] >= best[m] - 0.005 for m in FIGURES),
        "default_better_than_both_on": [m for m in FIGURES if figures["default"][m] > best[m]],
    }


def main() -> None:
    """Measure both data sets and print the table and the RESULT line."""
    options = parser(__doc__.splitlines()[0]).parse_args()
    limit = 40 if options.quick else None
    work = Path(tempfile.mkdtemp(prefix="bench-retrieval-"))
    result: dict = {
        "embedding": EMBEDDING,
        "chunks": "500/150 characters",
        "reports_on": "CMRC 2018 dev; PubMedQA outside its first 200 ids (tuned on: CMRC 2018 trial, those 200)",
    }
    rows = []
    started = time.perf_counter()
    try:
        for qa in (data.cmrc2018(limit), data.sample(data.pubmedqa_split()[1], limit)):
            services, kb = build(qa, work)
            figures = {name: evaluate(services, kb, qa, mode) for name, mode in MODES.items()}
            figures["bm25_plain"] = bm25_plain(services, kb, qa)
            figures.update(compare(figures))
            figures["questions"] = len(qa.questions)
            figures["passages"] = len(qa.passages)
            result[qa.name] = figures
            rows += [[qa.name, name, f["r1"], f["r5"], f["mrr10"]] for name, f in figures.items() if name in LABELS]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result["seconds"] = round(time.perf_counter() - started, 1)
    report("Retrieval quality", ["data set", "search", "R@1", "R@5", "MRR@10"], rows, result)


if __name__ == "__main__":
    main()
