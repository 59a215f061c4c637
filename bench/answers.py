"""Answers users can trust, measured end to end through the app's own answer pipeline.

Knowledge bases are built by the app with default settings (bundled multilingual-e5-small,
500/150-character chunks, hybrid search, the embedding model's calibrated relevance floor):
CMRC 2018 dev (848 Chinese passages) and PubMedQA (the 800 abstracts outside the slice the
floor was tuned on). A fixed sample of questions per set (seed 0) is asked. Figures:

- ``extractive_containment``: share of answerable CMRC questions whose quick answer (at most
  three sentences, 250 Chinese characters or 60 English words, quoted; no model) contains a
  reference answer after whitespace and punctuation are removed.
- ``citation_precision``: share of answers whose citations (quoted, cited or matched) include
  a chunk of the question's gold passage.
- ``offtopic_refusal``: share of one set's questions, asked of the other set's knowledge base,
  that get "nothing fits"; ``answerable_kept``: share of answerable questions not refused.
- ``followup_recall``: recall@4 of 100 CMRC follow-ups (topic replaced by a pronoun) without
  rewriting, with a scripted rewriter (the original question), and with the bundled model and
  the offline Qwen (when installed) asked to rewrite 20 of them.
- generated answers (bundled SmolLM2; the offline Qwen2.5-Coder-1.5B when it is installed):
  containment, citation precision after attribution, ``unanswerable_declined`` on questions
  whose gold passage is withheld from the search, and seconds per answer.
- ``quick_answer_ms``: the app's time per question for a quick answer (search, floor, quoting),
  median, with the query's embedding served from the cache so it is excluded; at over 15,000
  chunks (both dates of the InternLM docs, all-MiniLM-L6-v2) with PubMedQA questions
  (``--scale-only`` runs this stage alone).

Embeddings and the chat models' replies are cached between runs (bench/cache.py). A prompt is
tuned on CMRC 2018 trial (``--cmrc-split trial --zh-system-prompt FILE --sets cmrc2018``), never
on dev.

Run: python -m bench.answers [--quick] [--qwen-data DIR] [--qwen-questions N] [--scale-only]
     [--generated-only] [--followups-only] [--no-declines] [--models ...] [--sets ...] [--cmrc-split trial]
     [--zh-system-prompt FILE]
"""

from __future__ import annotations

import dataclasses
import json
import random
import re
import shutil
import statistics
import tempfile
import time
import unicodedata
from pathlib import Path

from langchain_core.messages import AIMessage, HumanMessage

from bench import data
from bench.cache import CACHE_DIR, CachedChatModel, CachedEmbeddings
from bench.followup_pairs import followup_pairs
from bench.harness import parser, report
from core.embeddings.factory import build_embeddings
from core.knowledge.sources import FolderInput
from core.knowledge.splitting import SplitterSettings
from core.models.catalog import EMBEDDED_KEY
from core.rag import prompts
from core.rag.answer import Answer, AnswerSettings, complete, prepare_answer
from core.rag.followup import rewrite_followup
from core.rag.prompts import declines
from core.rag.retrieval import Searcher, SearchSettings
from core.services import Services, build_services
from core.settings import Settings, get_settings

EMBEDDING = "multilingual-e5-small-q4"
QWEN = "qwen2.5-coder-1.5b-instruct-offline"
MAX_NEW_TOKENS = 96  # CMRC answers are short spans; PubMedQA's conclusions a sentence or two
_DROP = re.compile(r"[\s\W_]+", re.UNICODE)


def normalise(text: str) -> str:
    """Lower case, without whitespace or punctuation: how a span is compared with an answer."""
    return _DROP.sub("", unicodedata.normalize("NFKC", text).lower())


def contains(answer: str, references: list[str]) -> bool:
    """Whether ``answer`` contains one of ``references`` (after :func:`normalise`)."""
    said = normalise(answer)
    return any(normalise(r) and normalise(r) in said for r in references)


def cached(spec, batch, path):
    """The real embedding model, its vectors remembered between runs."""
    return CachedEmbeddings(build_embeddings(spec, batch, folder=path), spec.key)


def knowledge_base(services: Services, qa: data.QASet, work: Path, embedding: str = EMBEDDING):
    """A knowledge base of ``qa``'s passages, one file each, built by the app's ingestion."""
    folder = work / f"{qa.name}-passages"
    folder.mkdir(parents=True)
    for pid, passage in qa.passages.items():
        (folder / f"{pid}.txt").write_text(passage, encoding="utf-8")
    kb = services.knowledge.create(qa.name, embedding, SplitterSettings(500, 150, "chars"))
    job = services.jobs.wait(services.start_ingest(kb, FolderInput(folder)).id)
    assert job.status == "done", job.error
    return kb


def pubmed_reported() -> data.QASet:
    """PubMedQA without the slice the floor was tuned on."""
    return data.pubmedqa_split()[1]


class WithoutGold(Searcher):
    """A searcher that never returns the chunks of one passage: that passage is not there."""

    def __init__(self, inner: Searcher, path: str) -> None:
        super().__init__(inner.bases, inner.reranker)
        self.path = path

    def search(self, query, kbs, settings):
        hits = super().search(query, kbs, dataclasses.replace(settings, k=settings.k + 8))
        kept = [h for h in hits if h.chunk.path != self.path][: settings.k]
        return [dataclasses.replace(h, rank=rank) for rank, h in enumerate(kept, 1)]


def _cites_gold(answer: Answer, numbers: set[int], gold: str) -> bool:
    return any(answer.hits[n - 1].chunk.path == gold for n in numbers if 0 < n <= len(answer.hits))


def quick_figures(services: Services, kb, questions: list, lang: str, spans: bool) -> dict:
    """Quick answers to answerable questions: kept, containment (``spans``: the references are
    answer spans; PubMedQA's are only yes/no/maybe), citations, time.
    """
    searcher = services.searcher()
    settings = AnswerSettings(lang=lang, mode="quick")
    embeddings = services.knowledge.embeddings.get(kb.embedding)
    for question, _, _ in questions:
        embeddings.embed_query(question)  # cached now: the timing below leaves it out
    kept = contained = cited = 0
    times = []
    for question, pid, references in questions:
        started = time.perf_counter()
        answer = prepare_answer(question, [], None, searcher, [kb], SearchSettings(), settings)
        times.append((time.perf_counter() - started) * 1000)
        if answer.no_match:
            continue
        kept += 1
        text = " ".join(q.text for q in answer.quick.quotes) if answer.quick else ""
        contained += contains(text, references)
        cited += _cites_gold(answer, set(answer.quick.sources) if answer.quick else set(), f"{pid}.txt")
    n = len(questions)
    return {
        "questions": n,
        "answerable_kept": round(kept / n, 3),
        "extractive_containment": round(contained / n, 3) if spans else None,
        "citation_precision": round(cited / max(kept, 1), 3),
        "quick_answer_ms_median": round(statistics.median(times), 1),
    }


def refusals(services: Services, kb, questions: list, lang: str) -> float:
    """Share of (off-topic) questions the floor turns away."""
    searcher = services.searcher()
    settings = AnswerSettings(lang=lang, mode="sources")
    refused = sum(
        prepare_answer(q, [], None, searcher, [kb], SearchSettings(), settings).no_match for q, _, _ in questions
    )
    return round(refused / len(questions), 3)


def followups(services: Services, kb, pairs: list, models: dict) -> dict:
    """recall@4 of follow-ups without rewriting, with a scripted rewriter, and with each of
    ``models`` (name: chat model) asked to rewrite a fifth of the pairs.
    """
    searcher = services.searcher()
    search = SearchSettings(k=4, threshold=0.0)  # recall of the search itself, not the floor

    def found(question, pid):
        return any(h.chunk.path == f"{pid}.txt" for h in searcher.search(question, [kb], search))

    plain = sum(found(p.followup, p.passage_id) for p in pairs)
    scripted = sum(found(p.standalone, p.passage_id) for p in pairs)
    figures = {
        "pairs": len(pairs),
        "without": round(plain / len(pairs), 3),
        "scripted": round(scripted / len(pairs), 3),
    }
    sample = pairs[: max(1, len(pairs) // 5)]
    for name, llm in models.items():
        hits, used, seconds = 0, 0, []
        for pair in sample:
            history = [HumanMessage(pair.first_question), AIMessage(pair.first_answer)]
            started = time.perf_counter()
            rewrite = rewrite_followup(pair.followup, history, llm, "zh", capable=True)
            seconds.append(time.perf_counter() - started)
            used += rewrite.rewritten
            hits += found(rewrite.question, pair.passage_id)
        figures[name] = {
            "pairs": len(sample),
            "recall": round(hits / len(sample), 3),
            "without_on_same_pairs": round(sum(found(p.followup, p.passage_id) for p in sample) / len(sample), 3),
            "rewrites_used": used,
            "seconds_median": round(statistics.median(seconds), 1),
        }
    return figures


def generated(
    services: Services, kb, questions: list, llm, lang: str, spans: bool, max_new_tokens: int, with_declines: bool
) -> dict:
    """Written answers through the pipeline: containment, citations after attribution, declines."""
    searcher = services.searcher()
    settings = AnswerSettings(lang=lang, mode="generate", rewrite=False)
    contained = cited = cited_written = declined_answerable = 0
    seconds = []
    for question, pid, references in questions:
        started = time.perf_counter()
        answer = prepare_answer(question, [], llm, searcher, [kb], SearchSettings(), settings)
        preparing = time.perf_counter() - started
        reply = complete(answer, llm, max_new_tokens=max_new_tokens, temperature=0.0)
        # Search and prompt, plus the model's own seconds as first generated (a cached reply
        # returns at once); checking the citations afterwards is left out.
        generation = llm.reply(answer.messages, max_new_tokens=max_new_tokens, temperature=0.0)[1]
        seconds.append(preparing + generation)
        contained += contains(reply.text, references)
        cited += _cites_gold(answer, set(reply.source_kinds), f"{pid}.txt")
        written = {n for n, kind in reply.source_kinds.items() if kind != "quoted"}
        cited_written += _cites_gold(answer, written, f"{pid}.txt")
        declined_answerable += declines(reply.text)
    declined = 0
    for question, pid, _ in questions if with_declines else ():
        answer = prepare_answer(
            question, [], llm, WithoutGold(searcher, f"{pid}.txt"), [kb], SearchSettings(), settings
        )
        reply = complete(answer, llm, max_new_tokens=max_new_tokens, temperature=0.0)
        declined += reply.refused or declines(reply.text)
    n = len(questions)
    return {
        "questions": n,
        "generated_containment": round(contained / n, 3) if spans else None,
        "citation_precision": round(cited / n, 3),
        # The same without the quotes shown under a declining reply: the model's own and matched.
        "citation_precision_written": round(cited_written / n, 3),
        "answerable_declined": round(declined_answerable / n, 3),
        "unanswerable_declined": round(declined / n, 3) if with_declines else None,
        "seconds_per_answer": round(statistics.median(seconds), 1),
    }


def chat_models(services: Services, qwen_data: Path) -> dict:
    """The bundled model and, when its files are there, the offline Qwen; each as a chat model."""
    services.models.load(EMBEDDED_KEY)
    models = {"smollm2": CachedChatModel(inner=services.models.chat_model(), model=EMBEDDED_KEY)}
    if not qwen_data.is_dir():
        return models
    qwen_services = build_services(Settings(data_dir=qwen_data))
    if qwen_services.model_status(QWEN).state == "downloaded":
        qwen_services.models.load(QWEN)
        models["qwen2.5-coder-1.5b"] = CachedChatModel(inner=qwen_services.models.chat_model(), model=QWEN)
    return models


def scale(questions: list, quick: bool) -> dict:
    """Quick answers at over 15,000 chunks: both dates of the InternLM docs in one knowledge
    base, with the English MiniLM (the multilingual model would take hours to embed them here).
    """
    services = build_services(Settings(data_dir=CACHE_DIR / "answers-scale"), embedding_builder=cached)
    for old in services.knowledge.all():
        services.knowledge.delete(old)
    kb = services.knowledge.create("internlm", "all-minilm-l6-v2", SplitterSettings(500, 150, "chars"))
    for source in [data.TUTORIAL_DOCS] if quick else [data.LATEST_DOCS, data.TUTORIAL_DOCS]:
        job = services.jobs.wait(services.start_ingest(kb, FolderInput(source)).id)
        assert job.status == "done", job.error
    chunks = services.knowledge.stats(kb).chunks
    searcher = services.searcher()
    embeddings = services.knowledge.embeddings.get(kb.embedding)
    settings = AnswerSettings(lang="en", mode="quick")
    times = []
    for question, _, _ in questions:
        embeddings.embed_query(question)
        started = time.perf_counter()
        prepare_answer(question, [], None, searcher, [kb], SearchSettings(threshold=0.0), settings)
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return {
        "chunks": chunks,
        "questions": len(times),
        "median_ms": round(statistics.median(times), 1),
        "p90_ms": round(times[int(0.9 * (len(times) - 1))], 1),
    }


def partial(result: dict) -> None:
    """The figures so far, so that a run stopped early still tells what it measured."""
    print("PARTIAL " + json.dumps(result, ensure_ascii=False, sort_keys=True), flush=True)


def main() -> None:
    """Measure everything and print the table and the RESULT line."""
    args = parser(__doc__.splitlines()[0])
    args.add_argument(
        "--qwen-data", type=Path, default=get_settings().data_dir, help="data folder holding the offline Qwen"
    )
    args.add_argument("--qwen-questions", type=int, default=30, help="questions per set for the offline Qwen")
    args.add_argument("--scale-only", action="store_true", help="only the time per quick answer at scale")
    args.add_argument("--generated-only", action="store_true", help="only the answers written by chat models")
    args.add_argument("--followups-only", action="store_true", help="only the follow-up rewriting figures")
    args.add_argument(
        "--no-declines", action="store_true", help="skip the gold-removed questions (unanswerable_declined)"
    )
    args.add_argument(
        "--models", nargs="+", default=["smollm2", "qwen2.5-coder-1.5b"], help="chat models that write answers"
    )
    args.add_argument("--sets", nargs="+", default=["cmrc2018", "pubmedqa"], help="data sets the chat models answer")
    args.add_argument("--cmrc-split", choices=["dev", "trial"], default="dev", help="trial is the tuning split")
    args.add_argument(
        "--zh-system-prompt", type=Path, help="a file holding a Chinese system prompt to try (tune on trial)"
    )
    args.add_argument("--max-new-tokens", type=int, default=MAX_NEW_TOKENS, help="new tokens per written answer")
    options = args.parse_args()
    if options.zh_system_prompt:
        prompts.QA_SYSTEM_PROMPT_ZH = options.zh_system_prompt.read_text(encoding="utf-8").strip()
    if options.scale_only:
        questions = random.Random(0).sample(pubmed_reported().questions, 200)
        result = {"quick_answer_at_scale": scale(questions, options.quick)}
        report(
            "Quick answers at scale",
            ["chunks", "median ms"],
            [[result["quick_answer_at_scale"]["chunks"], result["quick_answer_at_scale"]["median_ms"]]],
            result,
        )
        return
    sample, generated_n = (20, 2) if options.quick else (200, 30)
    work = Path(tempfile.mkdtemp(prefix="bench-answers-"))
    started = time.perf_counter()
    result: dict = {"embedding": EMBEDDING, "chunks": "500/150 characters", "search": "hybrid, calibrated floor"}
    rows = []
    try:
        services = build_services(Settings(data_dir=CACHE_DIR / "answers"), embedding_builder=cached)
        for old in services.knowledge.all():
            services.knowledge.delete(old)
        cmrc_qa = data.cmrc2018(40 if options.quick else None, split=options.cmrc_split)
        pubmed_qa = pubmed_reported()
        if options.quick:
            pubmed_qa = data.QASet(
                "pubmedqa",
                dict(sorted(pubmed_qa.passages.items())[:40]),
                [q for q in pubmed_qa.questions if q[1] in dict(sorted(pubmed_qa.passages.items())[:40])],
            )
        cmrc, pubmed = knowledge_base(services, cmrc_qa, work), knowledge_base(services, pubmed_qa, work)
        rng = random.Random(0)
        cmrc_q = rng.sample(cmrc_qa.questions, min(sample, len(cmrc_qa.questions)))
        pubmed_q = rng.sample(pubmed_qa.questions, min(sample, len(pubmed_qa.questions)))
        if not options.generated_only and not options.followups_only:
            quick = {
                "cmrc2018": quick_figures(services, cmrc, cmrc_q, "zh", spans=True),
                "pubmedqa": quick_figures(services, pubmed, pubmed_q, "en", spans=False),
            }
            result["quick"] = quick
            offtopic = {
                "cmrc_on_pubmed": refusals(services, pubmed, cmrc_q, "zh"),
                "pubmed_on_cmrc": refusals(services, cmrc, pubmed_q, "en"),
            }
            result["offtopic_refusal"] = offtopic
            result["offtopic_refusal_mean"] = round(statistics.mean(offtopic.values()), 3)
            result["answerable_kept_mean"] = round(statistics.mean(q["answerable_kept"] for q in quick.values()), 3)
            for name, figures in quick.items():
                rows.append(
                    [
                        name,
                        "quick answer",
                        figures["extractive_containment"],
                        figures["citation_precision"],
                        figures["answerable_kept"],
                        figures["quick_answer_ms_median"],
                    ]
                )
            partial(result)
            result["quick_answer_at_scale"] = scale(pubmed_q[: 50 if options.quick else 200], options.quick)
            partial(result)
        models = chat_models(services, options.qwen_data)
        if "qwen2.5-coder-1.5b" not in models:
            result["qwen"] = f"not installed in {options.qwen_data}: generated figures are SmolLM2's only"
        if not options.generated_only:
            pairs = followup_pairs(10 if options.quick else 100)
            rewriters = {"bundled_model": models["smollm2"]}
            if "qwen2.5-coder-1.5b" in models:
                rewriters["offline_qwen"] = models["qwen2.5-coder-1.5b"]
            result["followup_recall"] = followups(services, cmrc, pairs, rewriters)
            partial(result)
            if options.followups_only:
                recall = result["followup_recall"]
                table = [["without rewriting", recall["pairs"], recall["without"]]]
                table.append(["scripted rewriter", recall["pairs"], recall["scripted"]])
                table += [[name, recall[name]["pairs"], recall[name]["recall"]] for name in rewriters]
                report("Follow-ups: recall@4 by rewriter", ["rewriter", "pairs", "recall@4"], table, result)
                return
        result["generated"] = {}
        for model_name, llm in ((name, llm) for name, llm in models.items() if name in options.models):
            count = options.qwen_questions if model_name.startswith("qwen") and not options.quick else generated_n
            for name, kb, questions, lang in (("cmrc2018", cmrc, cmrc_q, "zh"), ("pubmedqa", pubmed, pubmed_q, "en")):
                if name not in options.sets:
                    continue
                figures = generated(
                    services,
                    kb,
                    questions[:count],
                    llm,
                    lang,
                    name == "cmrc2018",
                    options.max_new_tokens,
                    not options.no_declines,
                )
                result["generated"][f"{model_name}/{name}"] = figures
                partial(result)
                rows.append(
                    [
                        name,
                        model_name,
                        figures["generated_containment"],
                        figures["citation_precision"],
                        "-",
                        figures["seconds_per_answer"] * 1000,
                    ]
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result["seconds"] = round(time.perf_counter() - started, 1)
    report(
        "Answers: quick (quoted) and generated, through the app's pipeline",
        ["data set", "answer", "containment", "citation precision", "kept", "ms per answer"],
        rows,
        result,
    )


if __name__ == "__main__":
    main()
