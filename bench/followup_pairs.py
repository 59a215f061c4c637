"""Follow-up question pairs made from CMRC 2018, for measuring follow-up rewriting.

A pair is two questions about the same passage: the first is asked as is, with its reference
answer as the assistant's reply; in the second, the passage's topic is replaced by a pronoun,
so retrieval without the conversation no longer sees what is asked about. The topic is the
passage title (or its part before a bracket), taken only when both questions name it, so the
conversation always holds what the pronoun stands for. (A shared run of characters was tried
as a fallback on the trial split; it cut words apart, "战国史模式" -> "他史模式", so it was dropped.)
The pronoun is 他/她 when the passage opens like a biography, else 它.

Built in file order, one pair per passage, so the same call always gives the same pairs. Use
split="trial" for tuning rules and split="dev" for reporting.

Run: python -m bench.followup_pairs [--split dev] [--limit 100] [--flags]
(--flags: how many follow-ups, and how many of 200 questions as written, the rules of
core.rag.followup.needs_context flag as needing the conversation.)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
from collections.abc import Iterator

from bench.data import EVALDATA

_SPLITS = {"dev": "cmrc2018_dev.json", "trial": "cmrc2018_trial.json"}
_MIN_TOPIC = 2
# How Chinese Wikipedia opens a biography: a birth year or a person's role.
_PERSON = re.compile(
    r"（\d{3,4}年|出生|生于|运动员|演员|歌手|作家|诗人|画家|政治家|军事家|学者|教授|皇帝|国王|君主|将领|官员|球员|教练|导演|主持人|艺人|人物|去世|逝世|，字|谥|在位|之女|之子|儿子|父亲|夫人|校长|主席|）人，"
)
_OPENING = 120


@dataclasses.dataclass(frozen=True)
class FollowupPair:
    """A first question with its answer, then a follow-up whose topic became a pronoun.

    ``standalone`` is the follow-up as CMRC wrote it (the ideal rewrite); ``passage_id`` is
    the gold passage of both questions.
    """

    passage_id: str
    title: str
    first_question: str
    first_answer: str
    followup: str
    standalone: str
    topic: str
    pronoun: str


def _articles(split: str) -> list[dict]:
    path = EVALDATA / "cmrc2018" / _SPLITS[split]
    return json.loads(path.read_text(encoding="utf-8"))["data"]


def _title_forms(title: str) -> list[str]:
    """The title, and its part before a bracket ("赵鹏 (足球运动员)" -> "赵鹏")."""
    head = re.split(r"[（(]", title, maxsplit=1)[0].strip()
    return [form for form in dict.fromkeys([title.strip(), head]) if len(form) >= _MIN_TOPIC]


def _topic(first: str, second: str, title: str) -> str | None:
    for form in _title_forms(title):
        if form in first and form in second:
            return form
    return None


def _pronoun(passage: str) -> str:
    if not _PERSON.search(passage[:_OPENING]):
        return "它"
    return "她" if passage.count("她") > passage.count("他") else "他"


def _pairs(split: str) -> Iterator[FollowupPair]:
    for article in _articles(split):
        title = article.get("title", "")
        for paragraph in article["paragraphs"]:
            qas = paragraph["qas"]
            pair = _first_pair(paragraph["id"], title, paragraph["context"], qas)
            if pair:
                yield pair


def _first_pair(passage_id: str, title: str, passage: str, qas: list[dict]) -> FollowupPair | None:
    for i, first in enumerate(qas):
        for second in qas[i + 1 :]:
            topic = _topic(first["question"], second["question"], title)
            if topic is None:
                continue
            pronoun = _pronoun(passage)
            # "《战国无双3》" and "该战国无双3" become "它", not "《它》" or "该它".
            followup = re.sub(f"(该|此)?《?{re.escape(topic)}》?", pronoun, second["question"])
            return FollowupPair(
                passage_id=passage_id,
                title=title,
                first_question=first["question"],
                first_answer=first["answers"][0]["text"],
                followup=followup,
                standalone=second["question"],
                topic=topic,
                pronoun=pronoun,
            )
    return None


def followup_pairs(limit: int | None = 100, split: str = "dev") -> list[FollowupPair]:
    """The first ``limit`` follow-up pairs of CMRC 2018 ``split`` ("dev" or "trial"), in file order."""
    pairs = []
    for pair in _pairs(split):
        if limit is not None and len(pairs) >= limit:
            break
        pairs.append(pair)
    return pairs


def standalone_questions(limit: int | None = 200, split: str = "dev") -> list[str]:
    """The first ``limit`` questions of CMRC 2018 ``split`` as written (each names its topic)."""
    questions = [
        qa["question"] for article in _articles(split) for paragraph in article["paragraphs"] for qa in paragraph["qas"]
    ]
    return questions[:limit]


def flag_rates(limit: int, split: str) -> None:
    """Print how often the follow-up rules fire on follow-ups and on questions as written."""
    from core.rag.followup import needs_context

    pairs = followup_pairs(limit, split)
    missed = [p.followup for p in pairs if not needs_context(p.followup, "zh")]
    standalone = standalone_questions(200, split)
    flagged = [q for q in standalone if needs_context(q, "zh")]
    print(f"{split}: follow-ups flagged {len(pairs) - len(missed)}/{len(pairs)}, missed: {missed}")
    print(f"{split}: questions as written flagged {len(flagged)}/{len(standalone)}: {flagged}")


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    args.add_argument("--split", choices=sorted(_SPLITS), default="dev")
    args.add_argument("--limit", type=int, default=100)
    args.add_argument("--flags", action="store_true")
    options = args.parse_args()
    if options.flags:
        flag_rates(options.limit, options.split)
        return
    for pair in followup_pairs(options.limit, options.split):
        print(f"{pair.passage_id}\t{pair.first_question}\t{pair.followup}\t<- {pair.standalone}")


if __name__ == "__main__":
    main()
