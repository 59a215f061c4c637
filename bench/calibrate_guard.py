"""Calibrate the guard: fit each bundled embedding model's relevance and default floor on tuning
data, then check the constants in core/embeddings/catalog.py on report data.

Fitting (the default) uses only the CMRC 2018 trial set (256 passages, 1,002 questions)
and a fixed PubMedQA slice (the first 200 ids in sorted order). The report check (``--check``)
uses what was not tuned on: a fixed sample of CMRC 2018 dev passages with their questions and a
fixed sample of PubMedQA abstracts outside the slice.

Each data set's passages become one file each in a knowledge base built by the app's own
ingestion (500/150-character chunks), as in bench/retrieval.py. Questions are asked three ways:
against their own set (answerable), against the other set's knowledge base (off-topic, in
another language for the multilingual model), and against a knowledge base of the same set's
other half of passages, so their own passage is absent (off-topic in the same language).

Fitting, for the multilingual model first: for each BM25 half-saturation point and keyword
weight on a grid, hybrid candidates are ordered by cosine + weight * bm25 / (bm25 + half); the
pair kept is the one that refuses the most off-topic and absent questions while answerable ones
keep 98% (a margin above the 97% target), among pairs whose MRR@10 is at least that of the
fusion this replaces (each list min-max scaled and summed), so retrieval does not get worse.
That score becomes the 0..1 relevance through a logistic curve that is 0.1 at the median best
score of questions whose knowledge base lacks the answer and 0.9 at the 99th percentile of real
answers' best scores; the floor is the highest relevance (two decimals, rounded down) that still
keeps 98% of answerable questions on every tuning set. The English MiniLM is fitted on PubMedQA
alone (a fixed sample of CMRC questions as its off-topic ones), with the same half point.

The fit prints the constants; they go by hand into core/embeddings/catalog.py (KEYWORD_HALF and
each bundled row), so a change to them shows in review.

Run: python -m bench.calibrate_guard [--check] [--quick]
"""

from __future__ import annotations

import dataclasses
import math
import random
import shutil
import tempfile
from pathlib import Path

import numpy as np

from bench import data
from bench.cache import CachedEmbeddings
from bench.harness import parser, report
from core.embeddings.catalog import KEYWORD_HALF, LOGIT_SPAN, builtin_embedding
from core.embeddings.factory import build_embeddings
from core.knowledge.sources import FolderInput
from core.knowledge.splitting import SplitterSettings
from core.rag.retrieval import SearchSettings
from core.services import Services, build_services
from core.settings import Settings

E5 = "multilingual-e5-small-q4"
MINILM = "all-minilm-l6-v2"
# Report samples stay small since the bundled model embeds only a few chunks a second on a CPU.
REPORT_PASSAGES = 200
FOREIGN_SAMPLE = 200  # CMRC questions asked of the English-only MiniLM's knowledge bases
DEPTH = 20
KEPT_TARGET = 0.98  # on tuning data, a margin above the 0.97 the report data must reach
HALVES = (5.0, 10.0, 20.0, 40.0, 80.0, 160.0)
MISSES = ("offtopic", "absent")  # the questions a knowledge base has no answer for
WEIGHTS = (0.0, 0.005, 0.01, 0.02, 0.03, 0.05, 0.08, 0.12, 0.2, 0.3, 0.5)


@dataclasses.dataclass
class Asked:
    """One question asked against one knowledge base: its candidates' evidence and which are gold."""

    cosine: np.ndarray
    bm25: np.ndarray  # 0 where keyword search did not find the chunk
    found_by_words: np.ndarray
    gold: np.ndarray


def pubmed_split(limit: int | None) -> tuple[data.QASet, data.QASet]:
    """The PubMedQA tuning slice and a fixed sample of the rest."""
    tuning, rest = data.pubmedqa_split()
    report_ids = set(random.Random(0).sample(sorted(rest.passages), limit or REPORT_PASSAGES))
    return tuning, _subset(rest, report_ids, "pubmedqa-report")


def halves(qa: data.QASet) -> tuple[data.QASet, list]:
    """Every other passage (sorted ids) as a set, and the questions of the passages left out."""
    ids = sorted(qa.passages)
    kept = set(ids[::2])
    return _subset(qa, kept, qa.name + "-half"), [q for q in qa.questions if q[1] not in kept]


def _subset(qa: data.QASet, ids: set[str], name: str) -> data.QASet:
    return data.QASet(
        name, {k: v for k, v in qa.passages.items() if k in ids}, [q for q in qa.questions if q[1] in ids]
    )


def build(services: Services, qa: data.QASet, embedding: str, work: Path):
    """A knowledge base holding the passages of ``qa``, one file per passage."""
    folder = work / f"{qa.name}-{embedding}"
    folder.mkdir(parents=True)
    for pid, passage in qa.passages.items():
        (folder / f"{pid}.txt").write_text(passage, encoding="utf-8")
    kb = services.knowledge.create(f"{qa.name}-{embedding}"[:60], embedding, SplitterSettings(500, 150, "chars"))
    job = services.jobs.wait(services.start_ingest(kb, FolderInput(folder)).id)
    assert job.status == "done", job.error
    return kb


def ask(services: Services, kb, questions: list, answerable: bool) -> list[Asked]:
    """The hybrid candidates of each question in ``kb``, with which chunks are from its passage."""
    searcher = services.searcher()
    asked = []
    for question, gold, _ in questions:
        found = searcher.candidates(question, [kb], SearchSettings(mode="hybrid", depth=DEPTH))
        paths = {cid: r.path for cid, r in services.knowledge.records.chunks_by_id([c.chunk_id for c in found]).items()}
        asked.append(
            Asked(
                np.array([c.cosine for c in found], dtype=float),
                np.array([c.bm25 or 0.0 for c in found], dtype=float),
                np.array([c.bm25 is not None for c in found], dtype=bool),
                np.array([answerable and paths.get(c.chunk_id) == f"{gold}.txt" for c in found], dtype=bool),
            )
        )
    return asked


def score(a: Asked, weight: float, half: float) -> np.ndarray:
    """The fitted order: cosine plus the weighted, saturated BM25 score."""
    return a.cosine + weight * a.bm25 / (a.bm25 + half)


def ranking(asked: list[Asked], orders: list[np.ndarray]) -> dict:
    """R@1, R@5 and MRR@10 of candidate orders (indices, best first)."""
    firsts = []
    for a, order in zip(asked, orders, strict=True):
        ranks = [rank for rank, i in enumerate(order[:10], start=1) if a.gold[i]]
        firsts.append(ranks[0] if ranks else math.inf)
    n = len(firsts)
    return {
        "r1": round(sum(f == 1 for f in firsts) / n, 4),
        "r5": round(sum(f <= 5 for f in firsts) / n, 4),
        "mrr10": round(sum(1 / f for f in firsts) / n, 4),
    }


def old_fusion(a: Asked) -> np.ndarray:
    """The order of the fusion this replaces: the dense and keyword lists each min-max scaled to
    0..1 and summed. The dense list is the DEPTH best cosines among the candidates."""
    fused = np.zeros(len(a.cosine))
    dense = np.argsort(-a.cosine, kind="stable")[:DEPTH]
    for members, values in ((dense, a.cosine[dense]), (np.flatnonzero(a.found_by_words), a.bm25[a.found_by_words])):
        if len(members):
            span = values.max() - values.min()
            fused[members] += (values - values.min()) / span if span else 1.0
    return np.argsort(-fused, kind="stable")


def best_of(asked: list[Asked], weight: float, half: float) -> np.ndarray:
    """Each question's best candidate score (-inf where nothing was found)."""
    return np.array([score(a, weight, half).max() if len(a.cosine) else -math.inf for a in asked])


def highest_floor(answerable: list[np.ndarray], target: float) -> float:
    """The highest cut that keeps ``target`` of the answerable questions of every set."""
    return min(float(np.sort(tops)[math.floor((1 - target) * len(tops))]) for tops in answerable)


def refused(tops: np.ndarray, floor: float) -> float:
    """Share of questions whose best candidate is below the floor."""
    return round(float(np.mean(tops < floor)), 4)


def fit(sets: dict, halves_grid: tuple[float, ...]) -> dict:
    """Choose the keyword weight and half point, then the logistic curve and the floor.

    ``sets``: name -> {"answerable": [...], "offtopic": [...], "absent": [...]} of Asked.
    """
    rows = []
    for half in halves_grid:
        for weight in WEIGHTS:
            mrr = np.mean(
                [
                    ranking(s["answerable"], [np.argsort(-score(a, weight, half)) for a in s["answerable"]])["mrr10"]
                    for s in sets.values()
                ]
            )
            cut = highest_floor([best_of(s["answerable"], weight, half) for s in sets.values()], KEPT_TARGET)
            refusal = np.mean([refused(best_of(s[k], weight, half), cut) for s in sets.values() for k in MISSES])
            rows.append((half, weight, float(mrr), float(refusal)))
    old = float(
        np.mean([ranking(s["answerable"], [old_fusion(a) for a in s["answerable"]])["mrr10"] for s in sets.values()])
    )
    fair = [r for r in rows if r[2] >= old] or [max(rows, key=lambda r: r[2])]
    half, weight, mrr, refusal = max(fair, key=lambda r: (r[3], r[2]))
    # The scale is anchored on two points users can picture: 0.1 is the best match a knowledge
    # base typically offers when it lacks the answer (the median best score of off-topic and
    # absent questions), 0.9 a match as strong as the best 1% of real answers (the 99th percentile
    # of each answerable question's best gold score). Stronger matches than that stay below 1.
    answers = [score(a, weight, half)[a.gold].max() for s in sets.values() for a in s["answerable"] if a.gold.any()]
    misses = [score(a, weight, half).max() for s in sets.values() for k in MISSES for a in s[k] if len(a.cosine)]
    low, high = float(np.median(misses)), float(np.quantile(answers, 0.99))
    slope, intercept = LOGIT_SPAN / (high - low), -LOGIT_SPAN * ((low + high) / 2) / (high - low)
    tops = {name: {kind: best_of(asked, weight, half) for kind, asked in s.items()} for name, s in sets.items()}

    def relevance(s):
        return 1 / (1 + np.exp(-(slope * s + intercept)))

    floor = math.floor(100 * relevance(highest_floor([t["answerable"] for t in tops.values()], KEPT_TARGET))) / 100
    figures = {
        name: {
            "kept": round(1 - refused(relevance(t["answerable"]), floor), 4),
            "offtopic_refusal": refused(relevance(t["offtopic"]), floor),
            "same_language_absent_refusal": refused(relevance(t["absent"]), floor),
        }
        for name, t in tops.items()
    }
    return {
        "keyword_half": half,
        "score_floor": round(low, 4),
        "score_ceiling": round(high, 4),
        "keyword_weight": round(weight / (high - low), 4),
        "relevance_floor": floor,
        "tuning_mrr10": round(mrr, 4),
        "tuning_mrr10_old_fusion": round(old, 4),
        "tuning": figures,
        "grid": [dict(zip(("half", "weight", "mrr10", "refusal"), r, strict=True)) for r in rows],
    }


def collect(services: Services, embedding: str, qa: data.QASet, foreign: list, work: Path) -> dict:
    """``qa``'s questions against its own knowledge base and against one of its half without
    their passages, and ``foreign`` questions (another set's) against its own."""
    own = build(services, qa, embedding, work)
    half, absent = halves(qa)
    return {
        "answerable": ask(services, own, qa.questions, True),
        "offtopic": ask(services, own, foreign, False),
        "absent": ask(services, build(services, half, embedding, work), absent, False),
    }


def check(services: Services, embedding: str, qa: data.QASet, foreign: list, work: Path) -> dict:
    """The catalog's relevance and floor as the app applies them, on report data, beside the
    order of the fusion they replace."""
    spec = builtin_embedding(embedding)
    searcher = services.searcher()
    kb = build(services, qa, embedding, work)
    half, absent = halves(qa)
    half_kb = build(services, half, embedding, work)
    guarded = SearchSettings(k=10, depth=DEPTH)  # threshold None: the model's relevance_floor

    def found(questions, where):
        return np.array([bool(searcher.search(question, [where], guarded)) for question, _, _ in questions])

    asked = ask(services, kb, qa.questions, True)
    relevance = [np.array([spec.relevance(c, b) for c, b in zip(a.cosine, a.bm25, strict=True)]) for a in asked]
    shown = [np.sort(r)[::-1][:10].round(2) for r in relevance]
    return {
        "questions": len(qa.questions),
        "answerable_kept": round(float(found(qa.questions, kb).mean()), 4),
        "offtopic_refusal": round(1 - float(found(foreign, kb).mean()), 4),
        "same_language_absent_refusal": round(1 - float(found(absent, half_kb).mean()), 4),
        "hybrid": ranking(asked, [np.argsort(-r, kind="stable") for r in relevance]),
        "old_fusion": ranking(asked, [old_fusion(a) for a in asked]),
        "lists_with_two_sources_shown_as_1.00": sum(int((r == 1.0).sum() >= 2) for r in shown),
        "lists_with_two_sources_showing_the_same_top_value": sum(int(len(r) > 1 and r[0] == r[1]) for r in shown),
    }


def main() -> None:
    """Fit (default) or check (--check), then print the table and the RESULT line."""
    args = parser(__doc__.splitlines()[0])
    args.add_argument("--check", action="store_true", help="report the catalog's constants on the report data")
    options = args.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-guard-"))
    services = build_services(Settings(data_dir=work / "data"), embedding_builder=_cached)
    try:
        (_check if options.check else _fit)(services, options.quick, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _cached(spec, batch, path):
    return CachedEmbeddings(build_embeddings(spec, batch, folder=path), spec.key)


def _first(qa: data.QASet, limit: int | None) -> data.QASet:
    return qa if not limit else _subset(qa, set(sorted(qa.passages)[:limit]), qa.name)


def _foreign(qa: data.QASet) -> list:
    return random.Random(0).sample(qa.questions, min(FOREIGN_SAMPLE, len(qa.questions)))


_CONSTANTS = ("keyword_half", "score_floor", "score_ceiling", "keyword_weight", "relevance_floor")


def _fit(services: Services, quick: bool, work: Path) -> None:
    limit = 30 if quick else None
    cmrc, pubmed = _first(data.cmrc2018(split="trial"), limit), _first(pubmed_split(None)[0], limit)
    e5 = fit(
        {
            cmrc.name: collect(services, E5, cmrc, pubmed.questions, work),
            pubmed.name: collect(services, E5, pubmed, cmrc.questions, work),
        },
        HALVES,
    )
    # MiniLM reads English only: it is fitted on PubMedQA; a sample of CMRC questions are its off-topic ones.
    minilm = fit({pubmed.name: collect(services, MINILM, pubmed, _foreign(cmrc), work)}, (e5["keyword_half"],))
    result = {E5: e5, MINILM: minilm}
    rows = [[key] + [f[c] for c in _CONSTANTS] for key, f in result.items()]
    report("Guard constants, fitted on tuning data only", ["embedding", *_CONSTANTS], rows, result)


def _check(services: Services, quick: bool, work: Path) -> None:
    cmrc = data.cmrc2018(30 if quick else REPORT_PASSAGES)
    pubmed = pubmed_split(30 if quick else None)[1]
    figures = {
        f"{cmrc.name}-dev / {E5}": check(services, E5, cmrc, pubmed.questions, work),
        f"{pubmed.name} / {E5}": check(services, E5, pubmed, cmrc.questions, work),
        f"{pubmed.name} / {MINILM}": check(services, MINILM, pubmed, _foreign(cmrc), work),
    }
    rows = [
        [name, f["answerable_kept"], f["offtopic_refusal"], f["same_language_absent_refusal"]]
        + [f[order][m] for order in ("hybrid", "old_fusion") for m in ("r1", "r5", "mrr10")]
        for name, f in figures.items()
    ]
    headers = ["report set / embedding", "kept", "off-topic refused", "absent refused"]
    headers += [f"{order} {m}" for order in ("new", "old") for m in ("R@1", "R@5", "MRR@10")]
    report(f"Guard on report data (KEYWORD_HALF {KEYWORD_HALF})", headers, rows, figures)


if __name__ == "__main__":
    main()
