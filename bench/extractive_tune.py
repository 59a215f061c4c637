"""Quick answers (core/rag/extractive.py) and answer attribution (core/rag/attribution.py):
their constants chosen on tuning data, their figures reported on data not tuned on.

Hits: for each question, every 500/150-character chunk of its gold passage and of the three
other passages of the same split that share the most (IDF-weighted) words with the question,
in a fixed shuffled order. The answer is always among the hits, so the figures measure
choosing sentences, not retrieval; with about ten chunks instead of the app's four, the choice
is harder than in the app.

- ``containment``: share of questions whose quick answer contains one of the reference answers
  (CMRC 2018; whitespace and punctuation removed, case folded).
- ``quick citation precision``: share of quick answers quoting a chunk of the gold passage.
- ``abstains``: share of questions whose quick answer is empty when the gold passage is
  swapped for a fourth distractor (nothing to quote is better than a wrong quote).
- ``max chars``: the longest quick answer, in characters (the budget is 250).
- ``ms``: median and 90th-percentile time of ``quick_answer`` per question. It reads only the
  hits, never the knowledge base, so it does not grow with the number of chunks stored.
- attribution: answer sentences with the gold passage among the hits (``supported``) and
  without it (``unsupported``, the gold passage swapped for a fourth distractor). CMRC answers
  are written as "question：answer。"; PubMedQA answers are the abstracts' own conclusions
  (LONG_ANSWER), which the hits (the abstract's other sections) do not contain word for word.
  ``citation precision``: share of supported answers whose matched sources include a gold
  chunk; ``false support``: share of unsupported answers matched to any source. Each is
  measured by words alone and with matching by meaning (the default embedding model's
  ``sentence_match`` cosine, tried at three values on the tuning sets).

Tried on trial and dropped, as they did not raise containment (measured with an earlier
version of the word features, 0.7715 without either): a discount for long sentences (0.7685,
0.7695) and keeping a later sentence only if it scores at least half the first one's (0.7485).

Tuning: CMRC trial (all 1,002 questions) and the first 200 PubMedQA ids (sorted).
Report: CMRC dev (a fixed sample of 1,000 questions, seed 0) and the other 800 PubMedQA ids.

Run: python -m bench.extractive_tune [--quick]
"""

from __future__ import annotations

import json
import math
import random
import re
import statistics
import time
import unicodedata
from collections import Counter

from langchain_core.documents import Document

from bench import data
from bench.harness import parser, report
from core.knowledge.splitting import SplitterSettings, split_document
from core.knowledge.terms import terms
from core.rag.attribution import SUPPORT_THRESHOLD, Meaning, attribute
from core.rag.extractive import QuickSettings, quick_answer

SPLITTER = SplitterSettings(500, 150)
DISTRACTORS = 3


def cmrc(split: str) -> list[tuple[str, str, list[str], dict[str, str]]]:
    """(question, gold id, reference answers, passages) of a CMRC 2018 split."""
    raw = json.loads((data.EVALDATA / "cmrc2018" / f"cmrc2018_{split}.json").read_text(encoding="utf-8"))
    passages = {p["id"]: p["context"] for a in raw["data"] for p in a["paragraphs"]}
    return [
        (qa["question"], p["id"], [x["text"] for x in qa["answers"]], passages)
        for a in raw["data"]
        for p in a["paragraphs"]
        for qa in p["qas"]
    ]


def pubmed(tune: bool) -> list[tuple[str, str, list[str], dict[str, str]]]:
    """(question, gold id, [long answer], abstracts): the first 200 ids sorted, or the rest."""
    raw = json.loads((data.EVALDATA / "pubmedqa" / "ori_pqal.json").read_text(encoding="utf-8"))
    ids = sorted(raw)
    chosen = ids[:200] if tune else ids[200:]
    passages = {pid: " ".join(item["CONTEXTS"]) for pid, item in raw.items()}
    return [(raw[pid]["QUESTION"], pid, [raw[pid]["LONG_ANSWER"]], passages) for pid in chosen]


class Distractors:
    """The passages sharing the most IDF-weighted words with a question, its gold one excepted."""

    def __init__(self, passages: dict[str, str]) -> None:
        self.words = {pid: set(terms(text)) for pid, text in passages.items()}
        df = Counter(w for words in self.words.values() for w in words)
        self.idf = {w: math.log(len(passages) / n) for w, n in df.items()}

    def __call__(self, question: str, gold: str, count: int) -> list[str]:
        wanted = set(terms(question))
        score = {pid: sum(self.idf.get(w, 0.0) for w in wanted & words) for pid, words in self.words.items()}
        return [pid for pid in sorted(score, key=lambda p: (-score[p], p)) if pid != gold][:count]


def hits(passages: dict[str, str], ids: list[str], seed: str) -> tuple[list[Document], set[int]]:
    """Chunks of the passages ``ids`` (the first is the gold one) in a fixed shuffled order,
    and the source numbers of the gold passage's chunks.
    """
    chunks = [(pid, piece.text) for pid in ids for piece in split_document(passages[pid], SPLITTER)]
    random.Random(seed).shuffle(chunks)
    gold = {n for n, (pid, _) in enumerate(chunks, 1) if pid == ids[0]}
    return [Document(text, metadata={"path": pid}) for pid, text in chunks], gold


def normal(text: str) -> str:
    """``text`` without whitespace or punctuation, case folded."""
    return "".join(ch for ch in text.lower() if not ch.isspace() and not unicodedata.category(ch).startswith("P"))


def quick_cases(questions) -> list[tuple[str, list[Document], set[int], list[str], list[Document]]]:
    """(question, hits, gold sources, reference answers, hits without the gold passage) for each question."""
    distractors = Distractors(questions[0][3])
    cases = []
    for question, gold, answers, passages in questions:
        others = distractors(question, gold, DISTRACTORS + 1)
        docs, gold_sources = hits(passages, [gold, *others[:DISTRACTORS]], question)
        cases.append((question, docs, gold_sources, answers, hits(passages, others, question)[0]))
    return cases


def quick(cases, settings: QuickSettings) -> dict:
    """Containment, quick citation precision, time per question, and how often the quick
    answer stays empty when the gold passage is not among the hits (``abstains``).
    """
    contained = cited = abstained = longest = 0
    times = []
    for question, docs, gold_sources, answers, without_gold in cases:
        started = time.perf_counter()
        answer = quick_answer(question, docs, settings)
        times.append(time.perf_counter() - started)
        longest = max(longest, len("".join(q.text for q in answer.quotes)))
        text = normal("".join(q.text for q in answer.quotes))
        contained += any(normal(a) and normal(a) in text for a in answers)
        cited += bool(gold_sources & set(answer.sources))
        abstained += not quick_answer(question, without_gold, settings).quotes
    n = len(cases)
    return {
        "n": n,
        "containment": round(contained / n, 4),
        "quick_citation_precision": round(cited / n, 4),
        "abstains": round(abstained / n, 4),
        "max_chars": longest,
        "ms_median": round(1000 * statistics.median(times), 2),
        "ms_p90": round(1000 * sorted(times)[int(0.9 * n)], 2),
    }


def written_answer(question: str, answers: list[str], pubmed_set: bool) -> str:
    """The answer a model might write: PubMedQA's own conclusion, or "question：answer。" for CMRC."""
    if pubmed_set:
        return answers[0]
    return re.sub(r"[？?]\s*$", "", question) + "：" + answers[0] + "。"


def support_cases(questions, pubmed_set: bool) -> list[tuple[list[Document], set[int], str, bool]]:
    """(hits, gold sources, answer, supported) for each question, with and without its gold passage."""
    distractors = Distractors(questions[0][3])
    cases = []
    for question, gold, answers, passages in questions:
        others = distractors(question, gold, DISTRACTORS + 1)
        answer = written_answer(question, answers, pubmed_set)
        docs, gold_sources = hits(passages, [gold, *others[:DISTRACTORS]], question)
        cases.append((docs, gold_sources, answer, True))
        docs, _ = hits(passages, others, question)
        cases.append((docs, set(), answer, False))
    return cases


def attribution(cases, threshold: float, meaning: Meaning | None = None) -> dict:
    """Citation precision on supported answers and false support on unsupported ones.

    An answer counts as citing its gold passage if any of its sentences is matched to a gold
    chunk; as falsely supported if any of its sentences is matched to anything.
    """
    precise = supported = false = unsupported = 0
    for docs, gold, answer, has_gold in cases:
        result = attribute(answer, docs, threshold, meaning)
        matched = {n for s in result.sentences for n in s.sources}
        if has_gold:
            supported += 1
            precise += bool(matched & gold)
        else:
            unsupported += 1
            false += bool(matched)
    return {
        "citation_precision": round(precise / supported, 4),
        "false_support": round(false / unsupported, 4),
    }


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    trial, dev = cmrc("trial"), cmrc("dev")
    dev = random.Random(0).sample(dev, 1000)
    pm_tune, pm_report = pubmed(True), pubmed(False)
    if args.quick:
        trial, dev, pm_tune, pm_report = trial[:150], dev[:150], pm_tune[:60], pm_report[:60]
    rows = []
    result: dict = {}
    # Quick answers: the score floor, tried on trial only.
    trial_cases = quick_cases(trial)
    for floor in (0.0, 0.05, 0.1, 0.15, 0.2):
        figures = quick(trial_cases, QuickSettings(min_score=floor))
        rows.append(("cmrc trial", floor, *figures.values()))
    default = QuickSettings()
    figures = quick(quick_cases(dev), default)
    rows.append(("cmrc dev (report)", default.min_score, *figures.values()))
    result["quick_dev"] = figures
    headers = ["set", "min_score", "n", "containment", "cites gold", "abstains"]
    report("Quick answers", [*headers, "max chars", "ms median", "ms p90"], rows, {})
    rows = []
    tune_cases = {"cmrc trial": support_cases(trial, False), "pubmed tune": support_cases(pm_tune, True)}
    for threshold in (0.2, 0.25, 0.3, 0.35):
        for name, cases in tune_cases.items():
            rows.append((name, threshold, *attribution(cases, threshold).values()))
    # Matching by meaning (the default model's sentence_match), tried on the tuning sets.
    model, fitted = default_embeddings()
    for cosine in (0.86, 0.88, 0.9):
        for name, cases in tune_cases.items():
            figures = attribution(cases, SUPPORT_THRESHOLD, Meaning(lambda: model, cosine))
            rows.append((f"{name}, meaning {cosine}", SUPPORT_THRESHOLD, *figures.values()))
    for name, cases in {"cmrc dev": support_cases(dev, False), "pubmed report": support_cases(pm_report, True)}.items():
        figures = attribution(cases, SUPPORT_THRESHOLD)
        rows.append((f"{name} (report), words only", SUPPORT_THRESHOLD, *figures.values()))
        result[f"attribution_{name.split()[0]}_words"] = figures
        figures = attribution(cases, SUPPORT_THRESHOLD, Meaning(lambda: model, fitted))
        rows.append((f"{name} (report), meaning {fitted}", SUPPORT_THRESHOLD, *figures.values()))
        result[f"attribution_{name.split()[0]}"] = figures
    report("Attribution", ["set", "threshold", "citation precision", "false support"], rows, result)


def default_embeddings():
    """The default embedding model (its vectors cached between runs) and its row's sentence_match."""
    from bench.answers import EMBEDDING, cached
    from bench.cache import CACHE_DIR
    from core.services import build_services
    from core.settings import Settings

    pool = build_services(Settings(data_dir=CACHE_DIR / "answers"), embedding_builder=cached).knowledge.embeddings
    return pool.get(EMBEDDING), pool.registry.get(EMBEDDING).sentence_match


if __name__ == "__main__":
    main()
