"""How much memory a model needs, how much the machine has free, and how much is in use."""

from __future__ import annotations

import dataclasses
import os
import sys

import psutil

from core.models.spec import ModelSpec

_GB = 1024**3


@dataclasses.dataclass(frozen=True)
class MemoryCheck:
    """A model's estimated need against the free memory of the device it would load on."""

    device: str
    needed_gb: float
    free_gb: float

    @property
    def fits(self) -> bool:
        """Whether the estimate fits in what is free."""
        return self.needed_gb <= self.free_gb


def estimate(params_b: float) -> dict[str, float]:
    """Memory to run a model of ``params_b`` billion parameters at bf16, 8-bit and 4-bit (GB).

    Weights at 2 / 1 / 0.5 bytes per parameter plus 20% for activations, the CUDA context and
    a few thousand tokens of KV cache; rounded up, since a warning that comes late is worse.

    >>> estimate(7.0)
    {'mem_bf16_gb': 17.3, 'mem_int8_gb': 8.9, 'mem_int4_gb': 4.7}
    """
    return {
        "mem_bf16_gb": round(params_b * 2 * 1.2 + 0.5, 1),
        "mem_int8_gb": round(params_b * 1 * 1.2 + 0.5, 1),
        "mem_int4_gb": round(params_b * 0.5 * 1.2 + 0.5, 1),
    }


def needed_gb(spec: ModelSpec, quantization: str = "none", dtype: str = "bfloat16") -> float:
    """Estimated memory to load and run ``spec``: 32-bit weights take twice the 16-bit figure."""
    if quantization == "8bit":
        return spec.mem_int8_gb
    if quantization == "4bit":
        return spec.mem_int4_gb
    return spec.mem_bf16_gb * (2 if dtype == "float32" else 1)


def free_gb(device: str) -> float:
    """Free memory where a model would live: the GPU's for CUDA, the system's otherwise."""
    if device.startswith("cuda"):
        import torch

        free, _total = torch.cuda.mem_get_info()
        return free / _GB
    return psutil.virtual_memory().available / _GB


def check(spec: ModelSpec, device: str, quantization: str = "none", dtype: str = "bfloat16") -> MemoryCheck:
    """Compare the estimate for ``spec`` with what ``device`` has free."""
    return MemoryCheck(device, needed_gb(spec, quantization, dtype), round(free_gb(device), 1))


def in_use() -> dict[str, float]:
    """This process's resident memory and, on CUDA machines, GPU memory held by torch (GB)."""
    usage = {"ram_gb": psutil.Process(os.getpid()).memory_info().rss / _GB}
    # Only asked when torch is already imported: reporting usage must not load it.
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        usage["gpu_gb"] = torch.cuda.memory_allocated() / _GB
    return usage


def cuda_available() -> bool:
    """Whether PyTorch sees a CUDA GPU here (False without PyTorch)."""
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()
