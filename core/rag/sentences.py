"""Cut text into sentences that remember where they lie, and measure how much of one text
another contains.

Quick answers quote sentences of the sources and the Chat page highlights them there, so every
sentence keeps its span in the original text. Markdown structure decides first: a fenced code
block is one unit (a text that starts with the bare closing fence of a block begun before it, as
an overlapping chunk can, is prose after that fence), and list items, headings, table rows and
blank lines end a sentence. Inside a paragraph, sentences end at Chinese 。！？； (no space
needed) and at English . ! ? ; followed by a space and not by a lowercase word (so "e.g. the"
and "3.5" stay whole). Single line breaks inside a paragraph do not end a sentence, since
Markdown prose is often wrapped.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Iterable, Sequence

from core.knowledge.terms import terms

_FENCE = re.compile(r"^\s*(```|~~~)")
# Lines that start a block of their own: list items, headings, quotes and table rows.
_BLOCK_START = re.compile(r"^\s*(?:[-*+]\s|\d{1,3}[.)]\s|#{1,6}\s|>|\|)")
_MARKER = re.compile(r"^\s*(?:[-*+]\s+|\d{1,3}[.)]\s+|#{1,6}\s+|>\s*)", re.MULTILINE)
# A sentence end, with closing quotes and the citations an answer puts after it ("…的。[1]").
_END = re.compile(r"[。！？；]+[”’」』）)\"']*(?:\s*\[\d{1,3}\])*|[.!?;]+[”’\"')\]]*(?:\s*\[\d{1,3}\])*(?=\s|$)")
_CLAUSE = re.compile(r"[，、：,:]+")
_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK = re.compile(f"[{_HAN}]")
_CJK_RUN = re.compile(f"[{_HAN}]+")
_BREAK = re.compile(r"\s*\n\s*")

# How long a piece of text is, as a share of the most that fits (see extractive.cost).
Measure = Callable[[str], float]


@dataclasses.dataclass(frozen=True)
class Sentence:
    """A sentence of a text: what it says (line breaks joined), where it lies
    (``source[start:end]``), and whether it is a piece of a code block.
    """

    text: str
    start: int
    end: int
    code: bool = False


def split_sentences(text: str, measure: Measure | None = None) -> list[Sentence]:
    r"""The sentences of ``text``, in order, each with its span; with ``measure``, sentences
    measuring over 1 are cut into pieces that do not.

    >>> [s.text for s in split_sentences("战国无双3是光荣开发的。它于2010年发售！Next, e.g. this.\n- item one")]
    ['战国无双3是光荣开发的。', '它于2010年发售！', 'Next, e.g. this.', 'item one']
    >>> s = split_sentences("Intro text\nwrapped here.\n\n```\nx = 1. y\n```\n")
    >>> [(p.text, p.code) for p in s]
    [('Intro text wrapped here.', False), ('x = 1. y', True)]
    >>> [p.text for p in split_sentences("甲乙丙，丁戊己。", measure=lambda t: len(t) / 5)]
    ['甲乙丙，', '丁戊己。']
    """
    sentences: list[Sentence] = []
    for start, end, code in _blocks(text):
        if code:
            sentences.append(Sentence(text[start:end], start, end, code=True))
        else:
            sentences.extend(_prose(text, start, end))
    if measure is None:
        return sentences
    return [piece for sentence in sentences for piece in _fit(text, sentence, measure)]


def _fit(text: str, sentence: Sentence, measure: Measure) -> list[Sentence]:
    """``sentence`` (of ``text``) cut into pieces each measuring at most 1: prose at clause ends
    (，、：, :), code at line ends, and by length where neither is close enough.
    """
    piece = text[sentence.start : sentence.end]
    if measure(piece) <= 1:
        return [sentence]
    separators = re.compile("\n") if sentence.code else _CLAUSE
    pieces: list[Sentence] = []
    begin = good = 0
    for cut in [*(m.end() for m in separators.finditer(piece)), len(piece)]:
        if measure(piece[begin:cut]) <= 1:
            good = cut
            continue
        if good > begin:
            pieces.append(_sentence(text, sentence.start + begin, sentence.start + good, sentence.code))
            begin = good
        if measure(piece[begin:cut]) > 1:
            pieces.extend(_hard_cut(text, sentence.start + begin, sentence.start + cut, measure, sentence.code))
            begin = cut
        good = cut
    if good > begin:
        pieces.append(_sentence(text, sentence.start + begin, sentence.start + good, sentence.code))
    return [p for p in pieces if p.text]


def features(text: str) -> set[str]:
    """What a text is about, for overlap: its search terms and the character pairs of its
    Chinese runs. The pairs catch words that jieba cuts differently in a question and in a source.

    >>> sorted(features("光荣开发了Quick answers"))
    ['answers', 'quick', '光荣', '发了', '开发', '荣开']
    """
    found = set(terms(text))
    for run in _CJK_RUN.findall(text):
        found.update(run[i : i + 2] for i in range(len(run) - 1))
    return found


def han_count(text: str) -> int:
    """How many Chinese characters ``text`` has.

    >>> han_count("LMDeploy 支持 AWQ")
    2
    """
    return len(_CJK.findall(text))


def contains(text: str, feature: str) -> bool:
    """Whether lowercased ``text`` holds ``feature``; a Latin word must start a word there, so
    "listen" is found in "listens" but not in "glisten".
    """
    if not feature.isascii():
        return feature in text
    return re.search(rf"(?<![a-z0-9]){re.escape(feature)}", text) is not None


def weights(wanted: Iterable[str], texts: Sequence[str]) -> dict[str, float]:
    """Inverse document frequency of each feature over lowercased ``texts``: a feature found in
    every text says little about which one answers.
    """
    n = len(texts)
    return {f: math.log((n + 1) / (sum(contains(t, f) for t in texts) + 0.5)) for f in wanted}


def overlap(text: str, wanted: dict[str, float]) -> float:
    """The weighted share of the ``wanted`` features that lowercased ``text`` contains (0..1)."""
    total = sum(wanted.values())
    if total <= 0:
        return 0.0
    return sum(w for f, w in wanted.items() if contains(text, f)) / total


def _blocks(text: str) -> list[tuple[int, int, bool]]:
    """(start, end, is code) of each block: a fenced code block, a list item, a heading, a
    table row, or a paragraph.
    """
    blocks: list[tuple[int, int, bool]] = []
    offset, start, fence = 0, None, None
    lines = text.splitlines(keepends=True)
    closing = _closes_earlier_block(lines)
    for number, line in enumerate(lines):
        stripped = line.strip()
        if number == closing:
            pass  # the end of a code block that began before this text: what follows is not code
        elif fence is not None:
            if _FENCE.match(line):
                if offset > fence:
                    blocks.append((fence, offset, True))
                fence = None
        elif _FENCE.match(line):
            if start is not None:
                blocks.append((start, offset, False))
            start, fence = None, offset + len(line)
        elif not stripped or _BLOCK_START.match(line):
            if start is not None:
                blocks.append((start, offset, False))
            start = offset if stripped else None
        elif start is None:
            start = offset
        offset += len(line)
    if fence is not None and offset > fence:
        blocks.append((fence, offset, True))
    elif start is not None:
        blocks.append((start, offset, False))
    return [(s, e - (len(text[s:e]) - len(text[s:e].rstrip())), code) for s, e, code in blocks if text[s:e].strip()]


def _closes_earlier_block(lines: list[str]) -> int | None:
    r"""The index of ``lines``' first line when it is a bare fence that closes a code block begun
    before the text (a chunk cut inside a code block): its fences do not pair up, and an
    opening fence usually names its language while a closing one never does.

    >>> _closes_earlier_block(["```\n", "\n", "Prose after the code.\n"])
    0
    >>> _closes_earlier_block(["```python\n", "x = 1\n"]) is None
    True
    """
    fences = [n for n, line in enumerate(lines) if _FENCE.match(line)]
    first = next((n for n, line in enumerate(lines) if line.strip()), None)
    if len(fences) % 2 and fences[0] == first and lines[first].strip() in ("```", "~~~"):
        return first
    return None


def _prose(text: str, start: int, end: int) -> list[Sentence]:
    marker = _MARKER.match(text, start, end)
    position = marker.end() if marker else start
    sentences = []
    for match in _END.finditer(text, position, end):
        after = text[match.end() : match.end() + 3].lstrip()
        if match.group(0)[0] in ".!?;" and after[:1].islower():
            continue  # "e.g. the": a lowercase word after a dot continues the sentence
        sentences.append(_sentence(text, position, match.end()))
        position = match.end()
    sentences.append(_sentence(text, position, end))
    return [s for s in sentences if s.text]


def _sentence(text: str, start: int, end: int, code: bool = False) -> Sentence:
    """The sentence in ``text[start:end]`` with its surrounding space left out of the span."""
    raw = text[start:end]
    start += len(raw) - len(raw.lstrip())
    end -= len(raw) - len(raw.rstrip())
    shown = text[start:end] if code else _BREAK.sub(_join, text[start:end])
    return Sentence(shown, start, end, code)


def _join(match: re.Match) -> str:
    """A wrapped line's break: nothing between two Chinese characters, a space otherwise."""
    before = match.string[match.start() - 1 : match.start()]
    after = match.string[match.end() : match.end() + 1]
    return "" if _CJK.match(before) and _CJK.match(after) else " "


def _hard_cut(text: str, begin: int, end: int, measure: Measure, code: bool) -> list[Sentence]:
    """``text[begin:end]`` cut by length into pieces each measuring at most 1."""
    pieces = []
    while begin < end:
        stop = end
        while stop > begin + 1 and measure(text[begin:stop]) > 1:
            stop = begin + max(1, int((stop - begin) * 0.9))
        pieces.append(_sentence(text, begin, stop, code))
        begin = stop
    return pieces
