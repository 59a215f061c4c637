"""PowerPoint (.pptx) files as Markdown: one section a slide, headed by its number and title, with
its text in reading order, its tables as Markdown tables and its speaker notes.

A slide is a section of its own, so the splitter cuts at slides and a chunk never mixes two;
a slide's text is short, so it is one chunk, or few.
"""

from __future__ import annotations

import io

from core.knowledge.reading import UnreadableText
from core.knowledge.spreadsheets import cell_text, markdown_table
from core.knowledge.zip_budget import check_unpacked


def pptx(data: bytes) -> str:
    """Every slide of a .pptx file, in order; hidden slides too (they hold text people search for)."""
    from pptx import Presentation

    check_unpacked(data, ".pptx")  # python-pptx reads every part, pictures included: all count
    # python-pptx fails on non-zip, non-PowerPoint or damaged files with zip, XML, key and value errors.
    try:
        deck = Presentation(io.BytesIO(data))
        slides = [_slide(number, slide) for number, slide in enumerate(deck.slides, 1)]
    except MemoryError:
        raise
    except Exception as exc:
        raise UnreadableText(f"not a readable .pptx file: {exc}") from exc
    text = "\n\n".join(slide for slide in slides if slide)
    if not text:
        raise UnreadableText("no slide has any text")
    return text


def _slide(number: int, slide) -> str:
    title_shape = slide.shapes.title
    title = " ".join(title_shape.text_frame.text.split()) if title_shape is not None else ""
    parts = []
    for shape in _in_reading_order(slide.shapes):
        if title_shape is not None and shape.shape_id == title_shape.shape_id:
            continue
        if shape.has_text_frame:
            lines = [_paragraph(p) for p in shape.text_frame.paragraphs]
            parts.append("\n".join(line for line in lines if line.strip()))
        elif getattr(shape, "has_table", False):
            rows = [[cell_text(cell.text) for cell in row.cells] for row in shape.table.rows]
            if any(any(row) for row in rows):
                parts.append(markdown_table(rows))
    notes = ""
    if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
        notes = slide.notes_slide.notes_text_frame.text.strip()
    if notes:
        parts.append(f"Notes: {notes}")
    body = "\n\n".join(part for part in parts if part)
    if not (title or body):
        return ""
    heading = f"# Slide {number}: {title}" if title else f"# Slide {number}"
    return f"{heading}\n\n{body}" if body else heading


def _in_reading_order(shapes) -> list:
    """The shapes, group members included, top to bottom and then left to right: the order in
    the file is the drawing order, which is often the order they were added in.
    """
    flat = []
    for shape in shapes:
        if hasattr(shape, "shapes"):  # a group
            flat.extend(_in_reading_order(shape.shapes))
        else:
            flat.append(shape)
    return sorted(flat, key=lambda shape: (shape.top or 0, shape.left or 0))


def _paragraph(paragraph) -> str:
    text = " ".join(paragraph.text.split())
    return f"{'  ' * paragraph.level}- {text}" if text and paragraph.level else text
