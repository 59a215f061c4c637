"""Reading order of the text on one page, from positioned boxes: PDF words or OCR lines.

pdfplumber and RapidOCR give text with positions but no order a person would read: a two-column
page comes out line by line across both columns. Neither library (nor pdfminer's layout analysis,
which orders boxes well only on simple pages) has a maintained reading-order step that works on
both, so this small one does: find a gutter (a vertical strip near the middle that no box
crosses), read each run of two-column lines left column first, and join wrapped lines so that
sentences, Chinese ones above all, are not cut by the page's line breaks.
"""

from __future__ import annotations

import dataclasses
import re
import statistics

_CJK = re.compile(r"[\u3000-\u303f\u3400-\u9fff\uf900-\ufaff\uff00-\uffef]")
# A gutter lies within the middle of the text area and is at least this wide (in page units: points
# for PDFs, pixels for images, so it is a share of the text width).
_GUTTER_ZONE = (0.3, 0.7)
_MIN_GUTTER_SHARE = 0.015
# Each column holds at least this many lines, and its lines fill most of it: key-value lists and
# short labels also leave gaps, but their left parts are short.
_MIN_COLUMN_LINES = 3
_MIN_COLUMN_FILL = 0.5
# A line that reaches this far across its column was wrapped by the layout, so it continues on the
# next line; a shorter one ends there (a title, a paragraph's last line, a list item).
_FULL_LINE = 0.85
# A vertical gap of more than this many line heights starts a new paragraph.
_PARAGRAPH_GAP = 0.8


@dataclasses.dataclass(frozen=True)
class Box:
    """Text at a position: ``x0``/``x1`` left and right, ``top``/``bottom`` measured downwards.

    ``block`` marks text that is laid out already (a Markdown table): it stays on lines of its own.
    ``joined`` marks a text detector's line, which may join a line of each column (see
    :func:`_part_joined`).
    """

    x0: float
    top: float
    x1: float
    bottom: float
    text: str
    block: bool = False
    joined: bool = False


def page_lines(boxes: list[Box], width: float) -> list[str]:
    """The text of a page ``width`` wide as lines in reading order; paragraphs are parted by an
    empty line.

    >>> page_lines([Box(10, 0, 40, 10, "world"), Box(0, 0, 8, 10, "hello")], 40)
    ['hello world']
    """
    boxes = [b for b in boxes if b.text.strip()]
    if not boxes:
        return []
    # Margins are about even, so the text area ends as far from the right edge as it starts from
    # the left one: a page of short lines then has no line that looks wrapped.
    left = min(b.x0 for b in boxes)
    right = max(max(b.x1 for b in boxes), width - left)
    gutter = _gutter(boxes, left, right)
    if gutter is None:
        return _paragraphs(_lines(boxes), left, right)
    cut_left, cut_right = gutter
    boxes = _part_joined(boxes, cut_left, cut_right)
    across = [b for b in boxes if b.x0 < cut_right and b.x1 > cut_left]
    out: list[str] = []
    # Lines crossing the gutter (titles, wide tables) part the page into bands of two columns.
    bands: list[tuple[float, float]] = []
    edge = min(b.top for b in boxes) - 1
    crossing_lines = _lines(across)
    for line in crossing_lines:
        bands.append((edge, line[0].top))
        bands.append((-1.0, -1.0))  # a marker: this crossing line comes here
        edge = max(b.bottom for b in line)
    bands.append((edge, max(b.bottom for b in boxes) + 1))
    crossing = iter(crossing_lines)
    in_columns = [b for b in boxes if not (b.x0 < cut_right and b.x1 > cut_left)]
    for top, bottom in bands:
        if top < 0:
            out += _paragraphs([next(crossing)], left, right)
            continue
        inside = [b for b in in_columns if top <= _middle(b) < bottom]
        for column, (start, end) in (
            ([b for b in inside if b.x1 <= cut_left], (left, cut_left)),
            ([b for b in inside if b.x0 >= cut_right], (cut_right, right)),
        ):
            if column:
                out += [*_paragraphs(_lines(column), start, end), ""]
    return tidy(out)


def _middle(box: Box) -> float:
    return (box.top + box.bottom) / 2


def _part_joined(boxes: list[Box], cut_left: float, cut_right: float) -> list[Box]:
    """``boxes``, with each detector's line across the gutter that has lines of both columns
    beside it, above and below, cut in two at the gutter.

    OCR's text detector sometimes takes a line of each column for one line when the gutter is
    narrow; read as a full-width line, it would part the columns there. Its text is cut where the
    gutter falls, in proportion to the width its characters take on each side (Chinese ones about
    twice a Latin one's). A title across the columns has no column lines above it and stays whole.
    """
    columns = [b for b in boxes if b.x1 <= cut_left or b.x0 >= cut_right]
    out = []
    for box in boxes:
        if not (box.joined and box.x0 < cut_right and box.x1 > cut_left):  # only OCR's lines are joined
            out.append(box)
            continue
        height = box.bottom - box.top
        near = [b for b in columns if abs(_middle(b) - _middle(box)) <= 2 * height]
        if not (
            any(b.x1 <= cut_left for b in near)
            and any(b.x0 >= cut_right for b in near)
            and any(_middle(b) < box.top for b in near)
            and any(_middle(b) > box.bottom for b in near)
        ):
            out.append(box)
            continue
        on_left, on_right = max(0.0, cut_left - box.x0), max(0.0, box.x1 - cut_right)
        at = _cut_at(box.text, on_left / max(on_left + on_right, 1e-9))
        if left := box.text[:at].strip():
            out.append(dataclasses.replace(box, x1=min(box.x1, cut_left), text=left, joined=False))
        if right := box.text[at:].strip():
            out.append(dataclasses.replace(box, x0=max(box.x0, cut_right), text=right, joined=False))
    return out


def _cut_at(text: str, share: float) -> int:
    """Where ``text`` is cut so that ``share`` of its width lies before the cut.

    >>> _cut_at("左栏四字右栏四字", 0.5), _cut_at("ab 左栏", 0.0)
    (4, 0)
    """
    widths = [1.0 if _CJK.match(ch) else 0.55 for ch in text]
    goal, run = share * sum(widths), 0.0
    for i, width in enumerate(widths):
        if run + width / 2 > goal:
            return i
        run += width
    return len(text)


def _gutter(boxes: list[Box], left: float, right: float) -> tuple[float, float] | None:
    """The widest strip in the middle of the text that few boxes cross, if it parts two columns."""
    width = right - left
    if width <= 0:
        return None
    steps = 200
    step = width / steps
    counts = [0] * steps
    for box in boxes:
        for i in range(max(0, int((box.x0 - left) / step)), min(steps, int((box.x1 - left) / step) + 1)):
            counts[i] += 1
    lo, hi = int(_GUTTER_ZONE[0] * steps), int(_GUTTER_ZONE[1] * steps)
    # Full-width lines (a title, a footer, a table, two lines OCR took for one) cross the gutter,
    # one in ten at most; the columns' own lines do not. The strictest strip that parts two
    # columns wins.
    for few in range(max(2, len(_lines(boxes)) // 10) + 1):
        strip = _widest(counts, lo, hi, few)
        if strip is None or (strip[1] - strip[0]) * step < _MIN_GUTTER_SHARE * width:
            continue
        cut_left, cut_right = left + strip[0] * step, left + strip[1] * step
        if _columns(boxes, left, cut_left, cut_right, right):
            return cut_left, cut_right
    return None


def _widest(counts: list[int], lo: int, hi: int, few: int) -> tuple[int, int] | None:
    """The widest run of ``counts[lo:hi]`` at most ``few``, as (first, past the last)."""
    best: tuple[int, int] | None = None
    start = None
    for i in range(lo, hi + 1):
        low = i < hi and counts[i] <= few
        if low and start is None:
            start = i
        elif not low and start is not None:
            if best is None or i - start > best[1] - best[0]:
                best = (start, i)
            start = None
    return best


def _columns(boxes: list[Box], left: float, cut_left: float, cut_right: float, right: float) -> bool:
    """Whether the boxes on each side of a strip are columns: several lines that fill their width."""
    left_lines = _lines([b for b in boxes if b.x1 <= cut_left])
    right_lines = _lines([b for b in boxes if b.x0 >= cut_right])
    if len(left_lines) < _MIN_COLUMN_LINES or len(right_lines) < _MIN_COLUMN_LINES:
        return False
    left_fill = statistics.median(max(b.x1 for b in line) - left for line in left_lines) / (cut_left - left)
    right_fill = statistics.median(right - min(b.x0 for b in line) for line in right_lines) / (right - cut_right)
    return min(left_fill, right_fill) >= _MIN_COLUMN_FILL


def _lines(boxes: list[Box]) -> list[list[Box]]:
    """Boxes grouped into lines (each sorted left to right), top to bottom; a block is a line alone."""
    lines: list[list[Box]] = []
    for box in sorted(boxes, key=lambda b: (b.top, b.x0)):
        last = lines[-1] if lines else None
        if last and not box.block and not last[0].block and _same_line(last, box):
            last.append(box)
        else:
            lines.append([box])
    return [sorted(line, key=lambda b: b.x0) for line in lines]


def _same_line(line: list[Box], box: Box) -> bool:
    top, bottom = min(b.top for b in line), max(b.bottom for b in line)
    overlap = min(bottom, box.bottom) - max(top, box.top)
    return overlap >= 0.5 * min(bottom - top, box.bottom - box.top)


def _paragraphs(lines: list[list[Box]], start: float, end: float) -> list[str]:
    """The text of ``lines`` of one column (from ``start`` to ``end``): wrapped lines joined."""
    heights = [max(b.bottom for b in line) - min(b.top for b in line) for line in lines if not line[0].block]
    height = statistics.median(heights) if heights else 0
    out: list[str] = []
    joining = False
    previous_bottom = None
    for line in lines:
        top = min(b.top for b in line)
        if previous_bottom is not None and height and top - previous_bottom > _PARAGRAPH_GAP * height:
            out.append("")
            joining = False
        previous_bottom = max(b.bottom for b in line)
        if line[0].block:
            # Right after the line before it, its caption, so that the two stay in one chunk.
            while out and not out[-1]:
                out.pop()
            out += [line[0].text, ""]
            joining = False
            continue
        # The words of a line were apart on the page: a space between them, Chinese ones too.
        text = " ".join(b.text.strip() for b in line)
        if joining and out:
            out[-1] = _join(out[-1], text)
        else:
            out.append(text)
        joining = end > start and (max(b.x1 for b in line) - start) >= _FULL_LINE * (end - start)
    return out


def _join(text: str, more: str) -> str:
    """A wrapped line and the next: a space between them, except between two Chinese characters."""
    if text and more and not (_CJK.match(text[-1]) and _CJK.match(more[0])):
        return f"{text} {more}"
    return text + more


def tidy(lines: list[str]) -> list[str]:
    """``lines`` without leading, trailing or repeated blank lines."""
    out: list[str] = []
    for line in lines:
        if line.strip() or (out and out[-1].strip()):
            out.append(line)
    while out and not out[-1].strip():
        out.pop()
    return out
