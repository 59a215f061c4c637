"""Retrieval quality of the default settings against plain BM25 and plain dense search, and
answer quality of our prompt against the tutorial's, in one run.

Each data set's passages become one file each in a knowledge base built by the app's own
ingestion (bundled multilingual-e5-small, 500/150-character chunks). A hit is a chunk from
the question's gold passage. Figures: recall@1, recall@5 and MRR@10 for the default (hybrid)
search, keyword (BM25) only, dense only, and for reference the same two lists fused by
reciprocal rank (RRF). Then, on a fixed sample of CMRC 2018 questions, the bundled chat model
answers from the retrieved chunks with the tutorial's prompt and with ours; containment = the
answer contains one of the reference answers.

Embeddings are cached between runs (bench/cache.py) since only quality is measured here.

Run: python -m bench.retrieval [--quick]
"""

from __future__ import annotations

import random
import shutil
import tempfile
import time
from pathlib import Path

from bench import data
from bench.cache import CACHE_DIR, CachedEmbeddings
from bench.harness import parser, report
from core.embeddings.factory import build_embeddings
from core.knowledge.sources import FolderInput
from core.knowledge.splitting import SplitterSettings
from core.rag.answer import AnswerSettings, prepare_answer
from core.rag.context import format_context
from core.rag.prompts import SEED_TEMPLATE_ZH
from core.rag.retrieval import SearchSettings
from core.services import Services, build_services
from core.settings import Settings

EMBEDDING = "multilingual-e5-small-q4"
# rrf: the other fusion the app offers, for reference.
MODES = {"default": "hybrid", "bm25": "keyword", "dense": "dense", "rrf": "rrf"}


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
        hits = searcher.search(question, [kb], SearchSettings(k=10, mode=mode, depth=20))
        ranks = [h.rank for h in hits if h.chunk.path == f"{gold}.txt"]
        if ranks:
            first = ranks[0]
            r1 += first == 1
            r5 += first <= 5
            mrr += 1.0 / first
    n = len(qa.questions)
    return {"r1": round(r1 / n, 4), "r5": round(r5 / n, 4), "mrr10": round(mrr / n, 4)}


def answer_quality(services: Services, kb, qa: data.QASet, sample: int) -> dict:
    """Answer containment on a fixed sample of questions, the tutorial's prompt against ours."""
    from langchain_core.messages import HumanMessage

    services.models.load(services.settings.default_model)
    llm = services.models.chat_model(max_new_tokens=64, temperature=0.0)
    searcher = services.searcher()
    picked = random.Random(7).sample(qa.questions, sample)
    seed = ours = 0
    for question, _, answers in picked:
        prepared = prepare_answer(question, [], llm, searcher, [kb], SearchSettings(k=4), AnswerSettings(lang="zh"))
        context = format_context([h.document() for h in prepared.hits])
        seed_prompt = SEED_TEMPLATE_ZH.replace("{context}", context).replace("{question}", question)
        seed_reply = llm.invoke([HumanMessage(seed_prompt)]).text
        our_reply = "".join(prepared.stream(llm))
        seed += any(a in seed_reply for a in answers)
        ours += any(a in our_reply for a in answers)
    return {"questions": sample, "seed_prompt": round(seed / sample, 3), "our_prompt": round(ours / sample, 3)}


def main() -> None:
    """Measure both data sets and print the table and the RESULT line."""
    options = parser(__doc__.splitlines()[0]).parse_args()
    limit = 40 if options.quick else None
    work = Path(tempfile.mkdtemp(prefix="bench-retrieval-"))
    result: dict = {"embedding": EMBEDDING, "chunks": "500/150 characters"}
    rows = []
    started = time.perf_counter()
    try:
        for qa in (data.cmrc2018(limit), data.pubmedqa(limit)):
            services, kb = build(qa, work)
            figures = {name: evaluate(services, kb, qa, mode) for name, mode in MODES.items()}
            best = {m: max(figures["bm25"][m], figures["dense"][m]) for m in ("r1", "r5", "mrr10")}
            figures["within_0.005_of_best"] = all(figures["default"][m] >= best[m] - 0.005 for m in best)
            figures["better_than_both_on"] = [m for m in best if figures["default"][m] > best[m]]
            figures["questions"] = len(qa.questions)
            result[qa.name] = figures
            rows += [[qa.name, name, f["r1"], f["r5"], f["mrr10"]] for name, f in figures.items() if name in MODES]
            if qa.name == "cmrc2018":
                result["answer_containment"] = answer_quality(services, kb, qa, 1 if options.quick else 30)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result["seconds"] = round(time.perf_counter() - started, 1)
    report("Retrieval quality", ["data set", "search", "R@1", "R@5", "MRR@10"], rows, result)


if __name__ == "__main__":
    main()
