"""The evaluation data in ../shared/evaldata, read where it lies (never copied into the repo)."""

from __future__ import annotations

import dataclasses
import json
import os
import random
from pathlib import Path

EVALDATA = Path(os.environ.get("KBA_EVALDATA", Path(__file__).resolve().parents[2] / "shared" / "evaldata"))
TUTORIAL_DOCS = EVALDATA / "internlm-docs" / "tutorial-2024-01"
LATEST_DOCS = EVALDATA / "internlm-docs" / "latest"


@dataclasses.dataclass(frozen=True)
class QASet:
    """Passages with ids, and questions each answered by one passage (``gold``)."""

    name: str
    passages: dict[str, str]
    questions: list[tuple[str, str, list[str]]]  # (question, gold passage id, reference answers)


# Constants and methods are chosen on the tuning split (CMRC 2018 trial, the first PubMedQA
# abstracts in sorted id order); figures are reported on the rest.
PUBMED_TUNING = 200


def cmrc2018(limit: int | None = None, seed: int = 0, split: str = "dev") -> QASet:
    """CMRC 2018 ``split``: dev (reported on) has 848 Chinese Wikipedia passages and 3,219
    questions, trial (tuned on) 256 and 1,002 (``limit`` passages).
    """
    data = json.loads((EVALDATA / "cmrc2018" / f"cmrc2018_{split}.json").read_text(encoding="utf-8"))
    passages, questions = {}, []
    for article in data["data"]:
        for paragraph in article["paragraphs"]:
            passages[paragraph["id"]] = paragraph["context"]
            for qa in paragraph["qas"]:
                questions.append((qa["question"], paragraph["id"], [a["text"] for a in qa["answers"]]))
    return sample(QASet("cmrc2018" if split == "dev" else f"cmrc2018-{split}", passages, questions), limit, seed)


def pubmedqa(limit: int | None = None, seed: int = 0) -> QASet:
    """PubMedQA expert set: 1,000 abstracts, each with the question its title asks (``limit`` of them)."""
    data = json.loads((EVALDATA / "pubmedqa" / "ori_pqal.json").read_text(encoding="utf-8"))
    passages = {pid: " ".join(item["CONTEXTS"]) for pid, item in data.items()}
    questions = [(item["QUESTION"], pid, [item["final_decision"]]) for pid, item in data.items()]
    return sample(QASet("pubmedqa", passages, questions), limit, seed)


def pubmedqa_split() -> tuple[QASet, QASet]:
    """PubMedQA's tuning slice (the first ``PUBMED_TUNING`` ids in sorted order) and the rest."""
    every = pubmedqa()
    tuning = set(sorted(every.passages)[:PUBMED_TUNING])
    return _subset(every, tuning, "pubmedqa-tuning"), _subset(every, set(every.passages) - tuning, "pubmedqa")


def _subset(qa: QASet, ids: set[str], name: str) -> QASet:
    return QASet(name, {k: v for k, v in qa.passages.items() if k in ids}, [q for q in qa.questions if q[1] in ids])


def sample(qa: QASet, limit: int | None, seed: int = 0) -> QASet:
    """A fixed random subset of ``limit`` passages with the questions they answer."""
    if not limit or limit >= len(qa.passages):
        return qa
    kept = set(random.Random(seed).sample(sorted(qa.passages), limit))
    passages = {k: v for k, v in qa.passages.items() if k in kept}
    return QASet(qa.name, passages, [q for q in qa.questions if q[1] in kept])
