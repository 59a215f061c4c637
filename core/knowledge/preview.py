"""A dry run of ingestion: what would be read, skipped and cut, before anything is embedded."""

from __future__ import annotations

import contextlib
import dataclasses
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from langchain_core.embeddings import Embeddings

from core.app_files import AppFiles, inside
from core.credentials import Allowed, Credentials, configured_secret, split_credentials
from core.embeddings.catalog import suggested_embedding
from core.errors import FolderNotFound
from core.jobs import JobContext
from core.knowledge import git_source
from core.knowledge.archives import extract_zip, save_upload
from core.knowledge.file_chunks import chunk_page
from core.knowledge.loaders import UnsupportedFile, load
from core.knowledge.ocr import PAGES_PER_SECOND
from core.knowledge.reading import UnreadableText
from core.knowledge.scanning import SkippedFile, scan_folder
from core.knowledge.sources import FolderInput, GitInput, SourceInput, UploadInput
from core.knowledge.splitting import Piece, SplitterSettings, embedded_text, split_document

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
    ocr_pages: int = 0  # pages without a text layer (scans, images), which ingestion reads by OCR
    ocr_seconds: float = 0.0  # about how long that OCR takes here

    def as_dict(self) -> dict:
        """A JSON-ready form, for job results."""
        return dataclasses.asdict(self)


@contextlib.contextmanager
def files_to_preview(
    item: SourceInput, scratch: Path, files: AppFiles, git_tokens: Allowed | None = None, git_timeout_s: float = 300
) -> Iterator[tuple[Path, tuple[SkippedFile, ...]]]:
    """The folder to preview ``item`` from, and archive entries refused, for the ``with`` block.

    Nothing is recorded: a repository is cloned, and uploads are stored, in a scratch folder
    under ``scratch`` that is removed afterwards, so a preview never adds a source.
    """
    if isinstance(item, FolderInput):
        folder = item.path.expanduser()
        if not folder.is_dir():
            raise FolderNotFound(path=str(item.path))
        yield folder, ()
        return
    work = files.scratch_dir(scratch, "preview")
    try:
        refused: list[SkippedFile] = []
        if isinstance(item, GitInput):
            url, typed = split_credentials(git_source.check_git_url(item.url))
            found = configured_secret(git_tokens or {}, url)
            credentials = typed or (Credentials.parse(found[1]) if found else None)
            root = work / "clone"
            git_source.clone(url, root, item.ref, git_timeout_s, files=files, credentials=credentials)
        else:
            root = work
            for name, data in item.files if isinstance(item, UploadInput) else ():
                if name.lower().endswith(".zip"):
                    entries = extract_zip(data, inside(root, Path(name).stem), files=files)
                    refused += [SkippedFile(f"{name}/{e.name}", e.reason) for e in entries]
                else:
                    save_upload(name, data, root)
        yield root, tuple(refused)
    finally:
        files.remove(work)


def preview_folder(
    root: Path,
    settings: SplitterSettings,
    embeddings: Embeddings,
    max_file_bytes: int,
    ctx: JobContext | None = None,
    skipped: tuple[SkippedFile, ...] = (),
    has_cuda: bool = False,
) -> PreviewReport:
    """Scan, read and split ``root`` like ingestion would, and report on it (``has_cuda``: a
    CUDA GPU is there for a stronger embedding model).
    """
    found, scan_skipped = scan_folder(root, max_file_bytes)
    report = PreviewReport(files=len(found), skipped=sorted([*skipped, *scan_skipped], key=lambda s: s.path))
    report.files_by_type = dict(Counter(Path(f.path).suffix.lower() or f.path for f in found).most_common())
    count_tokens = getattr(embeddings, "count_tokens", None)
    report.max_tokens = getattr(embeddings, "max_tokens", None)
    cjk = words = 0
    per_file: list[list[dict]] = []  # a few chunks of each file, spread over it
    for index, file in enumerate(found):
        if ctx:
            ctx.check_cancelled()
            ctx.progress(done=index, total=len(found), unit="files")
        try:
            # OCR takes seconds a page: a preview only counts the pages that need it.
            document = load(file.abs_path, read_scans=False)
        except (OSError, UnreadableText, UnsupportedFile) as exc:
            report.skipped.append(SkippedFile(file.path, "unreadable", str(exc)[:200]))
            continue
        report.ocr_pages += document.ocr_pages
        cjk += len(_CJK.findall(document.text))
        words += len(_LATIN_WORD.findall(document.text))
        pieces = split_document(document.text, settings, document.language, count_tokens, report.max_tokens)
        report.chunks += len(pieces)
        if count_tokens:
            report.token_counts += [count_tokens(embedded_text(p)) for p in pieces]
        per_file.append(
            [
                {
                    "path": file.path,
                    "start_line": p.start_line,
                    "end_line": p.end_line,
                    "heading": p.heading,
                    "text": p.text,
                    "page": chunk_page(document.pages, p.start_line, p.end_line),
                }
                for p in spread(pieces, SAMPLES)
            ]
        )
    report.samples = _samples([chunks for chunks in per_file if chunks])
    if report.max_tokens:
        report.at_limit = sum(1 for n in report.token_counts if n >= report.max_tokens - 2)
    report.ocr_seconds = round(report.ocr_pages / PAGES_PER_SECOND, 1)
    report.cjk_share = round(cjk / max(1, cjk + words), 3)
    report.suggested_embedding, report.suggestion_reason = suggest_embedding(report.cjk_share, has_cuda)
    return report


def spread(items: list, n: int) -> list:
    """``n`` of ``items``, evenly spaced from the first to the last, in order (all if fewer).

    >>> spread(list(range(10)), 3), spread([1, 2], 3), spread(list(range(10)), 1)
    ([0, 4, 9], [1, 2], [0])
    """
    if len(items) <= n:
        return list(items)
    if n == 1:
        return items[:1]
    return [items[round(i * (len(items) - 1) / (n - 1))] for i in range(n)]


def _sample(path: str, piece: Piece) -> dict:
    return {
        "path": path,
        "start_line": piece.start_line,
        "end_line": piece.end_line,
        "heading": piece.heading,
        "text": piece.text,
    }


def _samples(per_file: list[list[dict]]) -> list[dict]:
    """SAMPLES chunks spread over the files (and over each file's chunks when there are few
    files), so the samples show the whole source rather than the start of its first file.
    """
    files = spread(per_file, SAMPLES)
    picked: list[dict] = []
    for round_ in range(SAMPLES):
        picked += [chunks[round_] for chunks in files if round_ < len(chunks)]
    order = {id(chunk): (f, c) for f, chunks in enumerate(files) for c, chunk in enumerate(chunks)}
    return sorted(picked[:SAMPLES], key=lambda chunk: order[id(chunk)])


def suggest_embedding(cjk_share: float, has_cuda: bool = False) -> tuple[str, str]:
    """The embedding model to use for a corpus with this share of Chinese, and why (a reason code):
    with a CUDA GPU, the catalog's stronger multilingual model (see ``suggested_embedding``).

    >>> suggest_embedding(0.4)
    ('multilingual-e5-small-q4', 'chinese')
    >>> suggest_embedding(0.0)
    ('all-minilm-l6-v2', 'english')
    >>> suggest_embedding(0.0, has_cuda=True)
    ('qwen3-embedding-0.6b', 'gpu')
    """
    if has_cuda:
        return suggested_embedding(True), "gpu"
    if cjk_share >= CHINESE_SHARE:
        return "multilingual-e5-small-q4", "chinese"
    return "all-minilm-l6-v2", "english"
