"""Quick answers that need no language model: the sentences of the retrieved chunks that best
answer the question, quoted word for word with their source numbers, so nothing is invented.

A sentence scores by the question's words and Chinese character pairs it contains, each
weighted by how rare it is among the retrieved sentences. Keyword overlap, not embeddings: the
bundled embedding model took 10 s for 40 sentences of CMRC 2018 on two shared cores, and a
question's hits hold dozens of sentences; overlap takes milliseconds and meets the containment
target on its own (figures in bench/extractive_tune.py).
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Sequence

from langchain_core.documents import Document

from core.rag.sentences import Measure, features, han_count, overlap, split_sentences, weights

# What lies between a list's introduction, or one of its items, and the next item.
_LIST_GAP = re.compile(r"\s*(?:[-*+]|\d{1,3}[.)])\s+")
# How long a quick answer may be: 250 characters of Chinese or 60 words of other languages.
MAX_CHARS = 250
MAX_WORDS = 60


@dataclasses.dataclass(frozen=True)
class QuickSettings:
    """How a quick answer is chosen: at most ``max_quotes`` sentences within one length budget
    (250 Chinese characters or 60 words), each scoring above ``min_score``.

    ``min_score`` was chosen on CMRC 2018 trial as the highest floor that costs at most two
    points of containment: 0.1 keeps 0.76 (0.77 without) and leaves the quick answer empty for
    48% of questions whose passage is not among the hits (4% without).
    """

    max_quotes: int = 3
    min_score: float = 0.1


@dataclasses.dataclass(frozen=True)
class Quote:
    """A sentence quoted from source ``source`` (numbered from 1, as in the prompt's ``[n]``);
    ``start``..``end`` is its span in that source's ``page_content``, for highlighting.
    """

    text: str
    source: int
    start: int
    end: int
    score: float
    code: bool = False


@dataclasses.dataclass(frozen=True)
class QuickAnswer:
    """The quoted sentences, best first; empty when no sentence shares a word with the question."""

    quotes: tuple[Quote, ...]

    @property
    def sources(self) -> list[int]:
        """The source numbers quoted, in order of first quote."""
        return list(dict.fromkeys(q.source for q in self.quotes))


def quick_answer(question: str, docs: Sequence[Document], settings: QuickSettings | None = None) -> QuickAnswer:
    r"""The sentences of ``docs`` that best answer ``question``, within the length budget.

    >>> docs = [Document("光荣是日本公司。战国无双3由光荣和ω-force开发。"), Document("天气很好。")]
    >>> [(q.text, q.source) for q in quick_answer("战国无双3是由哪两个公司开发的？", docs).quotes]
    [('战国无双3由光荣和ω-force开发。', 1)]

    A sentence that introduces a list is quoted with the items that follow it:

    >>> docs = [Document("目前支持的量化模型包括：\n\n- int4 量化（AWQ、GPTQ）\n- int8 量化\n\n其他内容。")]
    >>> [q.text for q in quick_answer("支持哪些量化模型？", docs).quotes]
    ['目前支持的量化模型包括：int4 量化（AWQ、GPTQ）；int8 量化']
    """
    settings = settings or QuickSettings()
    measure = functools.partial(cost, chinese=han_count(question) > 0)
    candidates: list[Quote] = []
    seen: set[str] = set()
    for number, doc in enumerate(docs, 1):
        for sentence in split_sentences(doc.page_content, measure):
            # Overlapping chunks repeat sentences; quote each once, from the best-ranked source.
            if sentence.text in seen:
                continue
            seen.add(sentence.text)
            candidates.append(Quote(sentence.text, number, sentence.start, sentence.end, 0.0, sentence.code))
    lowered = [q.text.lower() for q in candidates]
    wanted = weights(features(question), lowered)
    scored = sorted(
        (
            dataclasses.replace(quote, score=overlap(text, wanted))
            for quote, text in zip(candidates, lowered, strict=True)
        ),
        key=lambda q: -q.score,
    )
    chosen: list[Quote] = []
    used = 0.0
    for quote in scored:
        if len(chosen) == settings.max_quotes or quote.score <= settings.min_score:
            break
        if used + measure(quote.text) <= 1.0:
            chosen.append(quote)
            used += measure(quote.text)
    # A sentence that introduces a list ("支持的模型包括：") says nothing without its items.
    for n, quote in enumerate(chosen):
        if quote.text.endswith((":", "：")):
            source = docs[quote.source - 1].page_content
            chosen[n], used = _with_list(quote, source, candidates, used, measure)
    return QuickAnswer(tuple(q for q in chosen if not any(_inside(q, other) for other in chosen)))


def _with_list(
    quote: Quote, source: str, candidates: list[Quote], used: float, measure: Measure
) -> tuple[Quote, float]:
    """``quote`` with the list items that follow it in its source, as many as the length budget
    takes (``used`` of it is spent), and the budget spent then.
    """
    items: list[Quote] = []
    end = quote.end
    for item in (c for c in candidates if c.source == quote.source and c.start >= quote.end):
        if not _LIST_GAP.fullmatch(source, end, item.start) or used + measure(item.text) > 1.0:
            break
        items.append(item)
        used += measure(item.text)
        end = item.end
    if not items:
        return quote, used
    between = "；" if han_count(quote.text) else "; "
    text = quote.text + between.join(item.text for item in items)
    return dataclasses.replace(quote, text=text, end=end), used


def _inside(quote: Quote, other: Quote) -> bool:
    """Whether ``quote`` lies inside ``other``'s span of the same source (a list item quoted with its list)."""
    return quote is not other and quote.source == other.source and other.start <= quote.start and quote.end <= other.end


def cost(text: str, chinese: bool) -> float:
    """The share of a quick answer's length budget ``text`` takes (1.0 is all of it). A Chinese
    answer counts characters, spaces included; another counts words, and any Chinese characters
    in its quotes as well, since Chinese has no spaces between words.

    >>> cost("光荣" * 125, chinese=True), cost(" ".join(["word"] * 30), chinese=False)
    (1.0, 0.5)
    """
    if chinese:
        return len(text) / MAX_CHARS
    return max(len(text.split()) / MAX_WORDS, han_count(text) / MAX_CHARS)


def quick_answer_markdown(answer: QuickAnswer) -> str:
    r"""The quick answer as Markdown: one quoted sentence per line, each followed by ``[n]``.

    >>> print(quick_answer_markdown(QuickAnswer((Quote("Paris is big.", 2, 0, 13, 0.9),))))
    > Paris is big. [2]
    """
    blocks = [
        f"```\n{quote.text}\n```\n[{quote.source}]" if quote.code else f"> {quote.text} [{quote.source}]"
        for quote in answer.quotes
    ]
    return "\n\n".join(blocks)


def highlights(text: str, quotes: Sequence[Quote], source: int) -> list[tuple[str, bool]]:
    """``text`` (the page content of source ``source``) cut into pieces that are, or are not,
    quoted in the answer, for highlighting.

    >>> highlights("A. B. C.", (Quote("B.", 1, 3, 5, 1.0),), 1)
    [('A. ', False), ('B.', True), (' C.', False)]
    """
    pieces: list[tuple[str, bool]] = []
    position = 0
    for quote in sorted((q for q in quotes if q.source == source), key=lambda q: q.start):
        if quote.start > position:
            pieces.append((text[position : quote.start], False))
        pieces.append((text[max(position, quote.start) : quote.end], True))
        position = max(position, quote.end)
    if position < len(text):
        pieces.append((text[position:], False))
    return pieces
