"""Measure retrieval (and answers) on a knowledge base with the user's own questions.

A question set lists questions with the file that should be found and/or the answer that
should be given. It comes from a CSV or JSONL file, or is drafted by the chat model from
random chunks for the user to review. A run records, per question, what was retrieved and
how long each stage took; runs are kept so settings can be compared side by side.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import io
import json
import random
import re
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage

from core.app_files import AppFiles, inside, write_atomically
from core.errors import InvalidQuestionSet
from core.jobs import JobContext
from core.knowledge.records import ChunkRecord, KnowledgeBase
from core.rag.answer import AnswerSettings, prepare_answer
from core.rag.retrieval import Searcher, SearchSettings
from core.rag.sentences import features, han_count, split_sentences

# Column names users write, in English and Chinese.
_QUESTION = ("question", "query", "问题")
_SOURCE = ("source", "expected_source", "file", "path", "出处", "来源", "文件")
_ANSWER = ("answer", "expected_answer", "reference", "答案", "参考答案")

# One prompt per language: a small model answers in the language it is asked in, whatever the
# instruction says, so a Chinese file gets a Chinese prompt. The key sentence is the answer the
# question should lead to; the heading says what the section is about.
DRAFT_PROMPTS = {
    "en": (
        "Section: {heading}\nKey sentence: {sentence}\n\n"
        "Write one short question, in English, that a reader of this documentation would ask and "
        "that the key sentence answers. Do not copy the sentence. Write only the question.\n\nQuestion:"
    ),
    "zh": (
        "章节：{heading}\n关键句：{sentence}\n\n"
        "请用中文写一个简短的问题：读者查阅这份文档时会问、并且由上面的关键句回答。"
        "不要照抄关键句，只写问题。\n\n问题："
    ),
}
# Asked when the model's question is unusable (wrong language, no question, a copy).
FALLBACK_QUESTIONS = {"en": "What does the documentation say about {topic}?", "zh": "文档中关于“{topic}”是怎么说的？"}
# Share of Chinese characters among a text's letters from which it is treated as Chinese.
_CHINESE_SHARE = 0.2
_LABEL = re.compile(r"^\s*(?:\d+[.)、]\s*|[-*]\s*|(?:question|q|问题)\s*[:：]\s*)+", re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class Question:
    """A question, the file that should be retrieved for it, and the answer it should get."""

    question: str
    source: str = ""
    answer: str = ""


@dataclasses.dataclass(frozen=True)
class EvalSettings:
    """What a run measures with."""

    mode: str = "hybrid"
    k: int = 4
    threshold: float | None = None  # None: the embedding model's calibrated floor
    reranker: str | None = None
    answers: bool = False
    # The answer prompt's language. The page passes the UI's, as the Chat page does, so a run
    # measures the answers users get there (knowledge bases do not record their text's language).
    lang: str = "zh"


@dataclasses.dataclass
class EvalRun:
    """One evaluation: settings, summary figures and a row per question."""

    id: str
    kb: str
    question_set: str
    settings: dict[str, Any]
    started: float
    metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    rows: list[dict[str, Any]] = dataclasses.field(default_factory=list)


def parse_question_set(name: str, data: bytes) -> list[Question]:
    """Questions from a CSV (with a header row) or JSONL file; raises :class:`InvalidQuestionSet`."""
    from core.knowledge.reading import UnreadableText, decode

    try:
        text, _ = decode(data)
    except UnreadableText:
        raise InvalidQuestionSet(name=name, reason="it is not a text file") from None
    rows: list[dict[str, Any]]
    if name.lower().endswith((".jsonl", ".json")):
        try:
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        except ValueError as exc:
            raise InvalidQuestionSet(name=name, reason=f"a line is not JSON ({exc})") from None
    else:
        rows = list(csv.DictReader(io.StringIO(text)))
    questions = []
    for row in rows:
        if not isinstance(row, dict):
            raise InvalidQuestionSet(name=name, reason="each line must be a JSON object")
        fields = {str(k).strip().lower(): str(v or "").strip() for k, v in row.items() if k is not None}
        question = _pick(fields, _QUESTION)
        if question:
            questions.append(Question(question, _pick(fields, _SOURCE), _pick(fields, _ANSWER)))
    if not questions:
        raise InvalidQuestionSet(name=name, reason="no row has a 'question' (问题) column")
    return questions


def _pick(fields: dict[str, str], names: tuple[str, ...]) -> str:
    return next((fields[n] for n in names if fields.get(n)), "")


def draft_questions(llm: BaseChatModel, chunks: list[ChunkRecord], count: int, seed: int = 0) -> list[Question]:
    """Questions for ``count`` chunks spread over the files, each in its chunk's language, each
    expecting its chunk's file: the chat model turns the chunk's heading and key sentence into a
    question; where its question is unusable, one is made from the heading.
    """
    drafted = []
    for chunk in _draft_chunks(chunks, count, seed):
        lang = text_language(chunk.text)
        sentence = key_sentence(chunk.text)
        heading = chunk.heading.split(" > ")[-1] if chunk.heading else ""
        prompt = DRAFT_PROMPTS[lang].format(heading=heading or Path(chunk.path).stem, sentence=sentence)
        reply = llm.invoke([HumanMessage(prompt)], temperature=0.0, max_new_tokens=64).text
        question = usable_question(reply, lang, sentence)
        if question is None:
            question = FALLBACK_QUESTIONS[lang].format(topic=heading or Path(chunk.path).stem)
        drafted.append(Question(question, chunk.path, ""))
    return drafted


def _draft_chunks(chunks: list[ChunkRecord], count: int, seed: int) -> list[ChunkRecord]:
    """``count`` chunks with prose in them, from as many files as possible, chosen at random."""
    rng = random.Random(seed)
    by_file: dict[str, list[ChunkRecord]] = {}
    for chunk in chunks:
        if key_sentence(chunk.text):
            by_file.setdefault(chunk.path, []).append(chunk)
    for group in by_file.values():
        rng.shuffle(group)
    files = sorted(by_file)
    rng.shuffle(files)
    picked: list[ChunkRecord] = []
    while len(picked) < count and any(by_file.values()):
        picked += [by_file[f].pop() for f in files if by_file[f]][: count - len(picked)]
    return picked


def text_language(text: str) -> str:
    """The language of ``text``: "zh" when it is mostly Chinese, else "en".

    >>> text_language("LMDeploy 支持 AWQ 权重量化"), text_language("Boil the pasta")
    ('zh', 'en')
    """
    letters = sum(ch.isalpha() for ch in text)
    return "zh" if letters and han_count(text) / letters >= _CHINESE_SHARE else "en"


def key_sentence(text: str, limit: int = 300) -> str:
    r"""The prose sentence of ``text`` that says the most (distinct search terms), cut to ``limit``.

    >>> key_sentence("# Install\n\nRun it.\n\nLMDeploy supports AWQ 4-bit weight quantization.")
    'LMDeploy supports AWQ 4-bit weight quantization.'
    """
    prose = [s.text for s in split_sentences(text) if not s.code and not s.text.startswith("#")]
    best = max(prose, key=lambda s: len(features(s)), default="")
    return best[:limit] if len(features(best)) >= 3 else ""


def usable_question(reply: str, lang: str, sentence: str) -> str | None:
    r"""The question in a model's reply: its first line, numbering and labels taken off, or None
    when it is no question in ``lang`` or merely repeats ``sentence``.

    >>> usable_question("Question: What does LMDeploy quantize?\nMore", "en", "LMDeploy supports AWQ.")
    'What does LMDeploy quantize?'
    >>> usable_question("LMDeploy 支持什么？", "en", ""), usable_question("It supports AWQ.", "en", "It supports AWQ.")
    (None, None)
    """
    line = next((line.strip() for line in reply.splitlines() if line.strip()), "")
    question = _LABEL.sub("", line).strip().strip("\"'“”")
    if not 6 <= len(question) <= 200 or text_language(question) != lang:
        return None
    if question.rstrip("?？") in sentence or not question.endswith(("?", "？")):
        return None
    return question


def same_file(retrieved: str, expected: str) -> bool:
    """Whether ``retrieved`` is the file a question expects: the expected path's parts are the
    retrieved path's last parts, so a bare file name finds that file in any folder, never a
    longer name that merely ends the same way. Backslashes typed on Windows are separators.

    >>> same_file("docs/quant.md", "quant.md"), same_file("docs/w8a8_quant.md", "quant.md")
    (True, False)
    """
    wanted = _parts(expected.replace("\\", "/"))
    return bool(wanted) and _parts(retrieved)[-len(wanted) :] == wanted


def _parts(path: str) -> list[str]:
    # "./" and empty parts name no folder; a dot that starts a name (".github", ".env") does.
    return [part for part in path.strip().split("/") if part not in ("", ".")]


def run_evaluation(
    searcher: Searcher,
    kb: KnowledgeBase,
    questions: list[Question],
    settings: EvalSettings,
    llm: BaseChatModel | None = None,
    question_set: str = "",
    ctx: JobContext | None = None,
) -> EvalRun:
    """Ask every question; retrieval always, answers too when ``settings.answers`` and ``llm``."""
    run = EvalRun(uuid.uuid4().hex[:12], kb.name, question_set, dataclasses.asdict(settings), time.time())
    search = SearchSettings(
        k=settings.k, mode=settings.mode, threshold=settings.threshold, rerank=settings.reranker is not None
    )
    answering = AnswerSettings(lang=settings.lang, rewrite=False)
    for index, item in enumerate(questions):
        if ctx:
            ctx.check_cancelled()
            ctx.progress(done=index, total=len(questions), unit="questions")
        started = time.perf_counter()
        prepared = prepare_answer(item.question, [], llm, searcher, [kb], search, answering)
        retrieve_ms = (time.perf_counter() - started) * 1000
        paths = [hit.chunk.path for hit in prepared.hits]
        rank = next((hit.rank for hit in prepared.hits if same_file(hit.chunk.path, item.source)), None)
        row: dict[str, Any] = {
            "question": item.question,
            "expected_source": item.source,
            "expected_answer": item.answer,
            "retrieved": paths,
            "rank": rank,
            "hit": rank is not None,
            "retrieve_ms": round(retrieve_ms, 1),
        }
        if settings.answers and llm is not None:
            started = time.perf_counter()
            reply = "".join(prepared.stream(llm)) if prepared.needs_model else ""
            # The citations a user sees: the model's own that point at a source, else matched.
            numbers = {n for sentence in prepared.cite(reply).sentences for n in sentence.sources}
            cited = [prepared.hits[n - 1].chunk.path for n in sorted(numbers)]
            row.update(
                answer=reply,
                generate_ms=round((time.perf_counter() - started) * 1000, 1),
                cited=cited,
                cited_hit=any(same_file(p, item.source) for p in cited) if item.source else None,
                contains_answer=item.answer.lower() in reply.lower() if item.answer else None,
            )
        run.rows.append(row)
    run.metrics = summarize(run.rows, settings.k)
    if ctx:
        ctx.progress(done=len(questions), total=len(questions))
    return run


def summarize(rows: list[dict[str, Any]], k: int) -> dict[str, float]:
    """recall@k and MRR over questions with an expected file; citation hit rate, answer
    containment and median latency per stage where measured.

    >>> summarize([{"expected_source": "a", "rank": 1, "retrieve_ms": 10}, {"expected_source": "b", "rank": None,
    ...            "retrieve_ms": 30}], 4)
    {'questions': 2, 'recall_at_k': 0.5, 'mrr': 0.5, 'retrieve_ms_p50': 20.0}
    """
    metrics: dict[str, float] = {"questions": len(rows)}
    judged = [r for r in rows if r.get("expected_source")]
    if judged:
        metrics["recall_at_k"] = round(sum(r["rank"] is not None for r in judged) / len(judged), 4)
        metrics["mrr"] = round(sum(1 / r["rank"] for r in judged if r["rank"]) / len(judged), 4)
    for key, name in (("cited_hit", "citation_hit_rate"), ("contains_answer", "answer_containment")):
        values = [r[key] for r in rows if r.get(key) is not None]
        if values:
            metrics[name] = round(sum(values) / len(values), 4)
    for stage in ("retrieve_ms", "generate_ms"):
        values = [r[stage] for r in rows if stage in r]
        if values:
            metrics[f"{stage}_p50"] = round(statistics.median(values), 1)
    return metrics


def format_metric(name: str, value: float | None) -> str:
    """A figure as people read it: rates to two decimals, counts and milliseconds whole, and
    blank when it was not measured (no expected files, no answers).

    >>> format_metric("mrr", 0.86666), format_metric("retrieve_ms_p50", 120.4), format_metric("mrr", None)
    ('0.87', '120', '')
    """
    if value is None:
        return ""
    return f"{value:.0f}" if name == "questions" or name.endswith("_ms_p50") else f"{value:.2f}"


# What can tell runs apart, in the order a label lists it. The prompt language is left out:
# it matters only with answers on, and the comparison shows it in a column of its own.
_LABEL_FIELDS = ("kb", "question_set", "mode", "k", "reranker", "threshold", "answers")


def run_labels(runs: list[EvalRun], describe: Callable[[str, Any], str]) -> dict[str, str]:
    """A distinct label for each run, by id: when it started, then ``describe(field, value)`` for
    each of the knowledge base, the question set and the settings that is not the same for all
    ``runs``. Runs whose labels would still be equal get the start of their id too.
    """
    values = {run.id: {"kb": run.kb, "question_set": run.question_set, **run.settings} for run in runs}
    differing = [field for field in _LABEL_FIELDS if len({v.get(field) for v in values.values()}) > 1]
    labels = {
        run.id: " · ".join([_when(run.started), *(describe(f, values[run.id].get(f)) for f in differing)])
        for run in runs
    }
    repeated = Counter(labels.values())
    short = _short_ids(list(labels))
    return {rid: f"{label} · #{short[rid]}" if repeated[label] > 1 else label for rid, label in labels.items()}


def _when(started: float) -> str:
    return datetime.datetime.fromtimestamp(started).strftime("%m-%d %H:%M")


def _short_ids(ids: list[str]) -> dict[str, str]:
    # The shortest start (four characters at least) that no two of the ids share.
    size = 4
    while len({i[:size] for i in ids}) < len(ids):
        size += 1
    return {i: i[:size] for i in ids}


class EvaluationStore:
    """Question sets and runs, kept as JSON in the data folder."""

    def __init__(self, folder: Path, files: AppFiles) -> None:
        self._sets = folder / "question_sets"
        self._sets.mkdir(parents=True, exist_ok=True)
        self._runs = files.make_dir(folder / "runs")
        self._files = files

    def save_set(self, name: str, questions: list[Question]) -> None:
        """Keep a question set under ``name``."""
        _write(
            inside(self._sets, f"{_file_name(name)}.json"),
            {"name": name, "questions": [dataclasses.asdict(q) for q in questions]},
        )

    def sets(self) -> dict[str, list[Question]]:
        """Every saved question set, by name."""
        found = {}
        for path in sorted(self._sets.glob("*.json")):
            data = json.loads(path.read_text(encoding="utf-8"))
            found[data["name"]] = [Question(**q) for q in data["questions"]]
        return found

    def save_run(self, run: EvalRun) -> None:
        """Keep a finished run."""
        _write(self._runs / f"{run.id}.json", dataclasses.asdict(run))

    def runs(self) -> list[EvalRun]:
        """Every kept run, newest first."""
        runs = [EvalRun(**json.loads(p.read_text(encoding="utf-8"))) for p in self._runs.glob("*.json")]
        return sorted(runs, key=lambda r: -r.started)

    def delete_run(self, run_id: str) -> None:
        """Forget a run."""
        if run_id.isalnum():
            self._files.remove(self._runs / f"{run_id}.json")


def _file_name(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)[:80] or "questions"


def _write(path: Path, data: dict) -> None:
    write_atomically(path, json.dumps(data, ensure_ascii=False))
