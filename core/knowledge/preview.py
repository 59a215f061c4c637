"""A dry run of ingestion: what would be read, skipped and cut, before anything is embedded."""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from pathlib import Path

from langchain_core.embeddings import Embeddings

from core.jobs import JobContext
from core.knowledge.loaders import UnsupportedFile, load
from core.knowledge.reading import UnreadableText
from core.knowledge.scanning import SkippedFile, scan_folder
from core.knowledge.splitting import SplitterSettings, embedded_text, split_document

_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_LATIN_WORD = re.compile(r"[A-Za-z]{2,}")
SAMPLES = 5
# Share of CJK characters among CJK characters and Latin words from which the multilingual
# model is suggested: the English model cannot retrieve Chinese at all, so even a little counts.
CHINESE_SHARE = 0.05


@dataclasses.dataclass
class PreviewReport:
    """What ingesting a folder with given settings would do."""

    files: int = 0
    files_by_type: dict[str, int] = dataclasses.field(default_factory=dict)
    skipped: list[SkippedFile] = dataclasses.field(default_factory=list)
    chunks: int = 0
    token_counts: list[int] = dataclasses.field(default_factory=list)
    max_tokens: int | None = None
    at_limit: int = 0
    samples: list[dict] = dataclasses.field(default_factory=list)
    cjk_share: float = 0.0
    suggested_embedding: str = ""
    suggestion_reason: str = ""

    def as_dict(self) -> dict:
        """A JSON-ready form, for job results."""
        return dataclasses.asdict(self)


def preview_folder(
    root: Path,
    settings: SplitterSettings,
    embeddings: Embeddings,
    max_file_bytes: int,
    ctx: JobContext | None = None,
    skipped: tuple[SkippedFile, ...] = (),
) -> PreviewReport:
    """Scan, read and split ``root`` like ingestion would, and report on it."""
    found, scan_skipped = scan_folder(root, max_file_bytes)
    report = PreviewReport(files=len(found), skipped=sorted([*skipped, *scan_skipped], key=lambda s: s.path))
    report.files_by_type = dict(Counter(Path(f.path).suffix.lower() or f.path for f in found).most_common())
    count_tokens = getattr(embeddings, "count_tokens", None)
    report.max_tokens = getattr(embeddings, "max_tokens", None)
    cjk = words = 0
    for index, file in enumerate(found):
        if ctx:
            ctx.check_cancelled()
            ctx.progress(done=index, total=len(found), unit="files")
        try:
            document = load(file.abs_path)
        except (OSError, UnreadableText, UnsupportedFile) as exc:
            report.skipped.append(SkippedFile(file.path, "unreadable", str(exc)[:200]))
            continue
        cjk += len(_CJK.findall(document.text))
        words += len(_LATIN_WORD.findall(document.text))
        pieces = split_document(document.text, settings, document.language, count_tokens, report.max_tokens)
        report.chunks += len(pieces)
        if count_tokens:
            report.token_counts += [count_tokens(embedded_text(p)) for p in pieces]
        report.samples += [
            {
                "path": file.path,
                "start_line": p.start_line,
                "end_line": p.end_line,
                "heading": p.heading,
                "text": p.text,
            }
            for p in pieces[: max(0, SAMPLES - len(report.samples))]
        ]
    if report.max_tokens:
        report.at_limit = sum(1 for n in report.token_counts if n >= report.max_tokens - 2)
    report.cjk_share = round(cjk / max(1, cjk + words), 3)
    report.suggested_embedding, report.suggestion_reason = suggest_embedding(report.cjk_share)
    return report


def suggest_embedding(cjk_share: float) -> tuple[str, str]:
    """The embedding model to use for a corpus with this share of Chinese, and why (a reason code).

    >>> suggest_embedding(0.4)
    ('multilingual-e5-small-q4', 'chinese')
    >>> suggest_embedding(0.0)
    ('all-minilm-l6-v2', 'english')
    """
    if cjk_share >= CHINESE_SHARE:
        return "multilingual-e5-small-q4", "chinese"
    return "all-minilm-l6-v2", "english"
