"""One loader for every local catalog row: a folder in, a ready model and tokenizer out."""

from __future__ import annotations

import ctypes
import dataclasses
import gc
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from core.app_files import AppFiles
from core.embeddings.st_embeddings import cpu_has_native_bf16
from core.errors import (
    EmbeddedModelMissing,
    ModelFolderNotFound,
    ModelLoadFailed,
    ModelNotDownloaded,
    ModelOutOfMemory,
    RemoteCodeNotAllowed,
)
from core.models import download, embedded
from core.models.engine import Engine
from core.models.prompt_formats import PROMPT_FORMATS
from core.models.spec import ModelSpec
from core.settings import Settings

Device = Literal["auto", "cuda", "mps", "cpu"]
LoadStage = Literal["convert", "weights", "warmup"]


@dataclasses.dataclass(frozen=True)
class LoadStep:
    """The stage a load has reached: ``stage`` is step ``number`` of ``count`` for this load.

    The stages, in order: ``convert`` (the bundled model's one-off conversion to a model folder),
    ``weights`` (reading the tokenizer and weights onto the device), ``warmup`` (compiling the
    GPU decode step). A load runs only those it needs, so ``count`` differs from load to load.
    """

    stage: LoadStage
    number: int
    count: int


Progress = Callable[[LoadStep], None]


@dataclasses.dataclass(frozen=True)
class LoadOptions:
    """How to load a model; "auto" picks the best the machine offers."""

    device: Device = "auto"
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    quantization: Literal["none", "8bit", "4bit"] = "none"
    trust_remote_code: bool = False
    fast_generation: bool = True


@dataclasses.dataclass(eq=False)
class LoadedModel:
    """A model in memory with what is needed to prompt it; its ``engine`` runs generation."""

    spec: ModelSpec
    model: Any
    tokenizer: Any
    device: str
    dtype: str
    path: Path
    load_seconds: float
    options: LoadOptions = LoadOptions()
    engine: Engine | None = None


def model_folder(spec: ModelSpec, settings: Settings) -> Path:
    """Where the files of ``spec`` live (or will live once downloaded)."""
    if spec.local_path:
        return Path(spec.local_path).expanduser()
    return settings.models_dir / spec.folder_name


def is_downloaded(spec: ModelSpec, settings: Settings) -> bool:
    """Whether the model's files are all present.

    That is a finished download, a folder the user pointed at, the installed embedded model,
    or a server (nothing to download).
    """
    if spec.source == "remote":
        return True
    if spec.source == "embedded":
        try:
            embedded.gguf_file()
        except EmbeddedModelMissing:
            return False
        return True
    folder = model_folder(spec, settings)
    if spec.local_path:
        return (folder / "config.json").is_file()
    if spec.source == "pypi":
        return embedded.is_converted(folder)
    return download.is_complete(folder)


def pick_device(requested: Device = "auto") -> str:
    """The device to run on: CUDA, then Apple MPS, then the CPU, unless one is asked for."""
    import torch

    if requested != "auto":
        return requested
    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def available_devices() -> list[str]:
    """Devices this machine can run a model on, best first."""
    import torch

    devices = ["cuda"] if torch.cuda.is_available() else []
    if torch.backends.mps.is_available():
        devices.append("mps")
    return [*devices, "cpu"]


def quantization_available() -> bool:
    """Whether 8-bit and 4-bit loading can work here (bitsandbytes and a CUDA GPU)."""
    import importlib.util

    import torch

    return torch.cuda.is_available() and importlib.util.find_spec("bitsandbytes") is not None


def pick_dtype(spec: ModelSpec, device: str, requested: str = "auto") -> str:
    """bfloat16 on GPUs that have it, float16 on older GPUs and MPS; on the CPU bfloat16 for
    models published in it where the CPU computes it in hardware (half the memory, and faster
    there), else float32.
    """
    import torch

    if requested != "auto":
        return requested
    if device == "cuda":
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    if device == "mps":
        return "float16"
    return "bfloat16" if spec.dtype == "bfloat16" and cpu_has_native_bf16() else "float32"


def load(spec: ModelSpec, settings: Settings, options: LoadOptions, progress: Progress | None = None) -> LoadedModel:
    """Load ``spec`` with ``options``; raises an :class:`AppError` the user can act on.

    ``progress`` hears a :class:`LoadStep` as each stage starts.
    """
    started = time.perf_counter()
    if spec.trust_remote_code and not options.trust_remote_code:
        raise RemoteCodeNotAllowed(name=spec.name)
    folder = model_folder(spec, settings)
    if spec.local_path and not folder.is_dir():
        raise ModelFolderNotFound(path=str(folder))
    if spec.source != "embedded" and not is_downloaded(spec, settings):
        raise ModelNotDownloaded(name=spec.name, path=folder)
    device = pick_device(options.device)
    dtype = pick_dtype(spec, device, options.dtype)
    report = _stage_reporter(
        progress,
        convert=spec.source == "embedded" and not embedded.is_converted(folder),
        # Only the CUDA fast path warms up; the engine may still decline it for this model.
        warmup=device == "cuda" and options.fast_generation and options.quantization == "none",
    )
    if spec.source == "embedded":
        report("convert")
        folder = embedded.ensure_converted(folder, AppFiles(settings.data_dir))
    report("weights")
    try:
        model, tokenizer = _from_folder(folder, spec, device, dtype, options)
    except (MemoryError, torch_out_of_memory()) as exc:
        release_memory()
        raise ModelOutOfMemory(name=spec.name, needed=f"{spec.mem_bf16_gb} GB", device=device) from exc
    except Exception as exc:
        release_memory()
        raise ModelLoadFailed(name=spec.name, detail=f"{type(exc).__name__}: {_short(exc)}") from exc
    _install_prompt_format(tokenizer, spec)
    engine = Engine(model, fast=options.fast_generation)
    if engine.fast:
        report("warmup")
    engine.warm_up(model.config.vocab_size)
    return LoadedModel(
        spec=spec,
        model=model,
        tokenizer=tokenizer,
        device=device,
        dtype=dtype,
        path=folder,
        load_seconds=time.perf_counter() - started,
        options=options,
        engine=engine,
    )


def _stage_reporter(progress: Progress | None, *, convert: bool, warmup: bool) -> Callable[[LoadStage], None]:
    stages: list[LoadStage] = [*(["convert"] if convert else []), "weights", *(["warmup"] if warmup else [])]

    def report(stage: LoadStage) -> None:
        if progress and stage in stages:
            progress(LoadStep(stage, stages.index(stage) + 1, len(stages)))

    return report


def _from_folder(folder: Path, spec: ModelSpec, device: str, dtype: str, options: LoadOptions) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    trust = spec.trust_remote_code and options.trust_remote_code
    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=trust)
    kwargs: dict[str, Any] = {"dtype": getattr(torch, dtype), "trust_remote_code": trust}
    if options.quantization != "none":
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_8bit=options.quantization == "8bit",
            load_in_4bit=options.quantization == "4bit",
            bnb_4bit_compute_dtype=getattr(torch, dtype),
        )
    if device == "cuda":
        kwargs["device_map"] = "auto"
    model = AutoModelForCausalLM.from_pretrained(folder, **kwargs)
    if device != "cuda" and options.quantization == "none":
        model = model.to(device)
    model.eval()
    return model, tokenizer


def _install_prompt_format(tokenizer: Any, spec: ModelSpec) -> None:
    if spec.prompt_format:
        tokenizer.chat_template = PROMPT_FORMATS[spec.prompt_format]
    elif not getattr(tokenizer, "chat_template", None):
        raise ModelLoadFailed(
            name=spec.name,
            detail="its tokenizer has no chat template; set a prompt format for this model in the catalog",
        )


def torch_out_of_memory() -> type[BaseException]:
    """The exception torch raises when a GPU runs out of memory."""
    import torch

    return torch.OutOfMemoryError


def release(loaded: LoadedModel) -> None:
    """Drop the model's tensors and give their memory back to the system."""
    if loaded.engine:
        loaded.engine.close()
    loaded.engine = loaded.model = loaded.tokenizer = None
    release_memory()


def release_memory() -> None:
    """Collect garbage and hand freed memory back (GPU cache, glibc heap)."""
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    if sys.platform.startswith("linux"):
        # glibc keeps freed heap pages for reuse; hand them back so the memory shows as free.
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]
