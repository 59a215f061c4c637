"""What every benchmark shares: a readable table, then ``RESULT {json}`` as the last line."""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Sequence
from contextlib import contextmanager


def parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the ``--quick`` switch every benchmark has."""
    args = argparse.ArgumentParser(description=description)
    args.add_argument("--quick", action="store_true", help="a smaller run that finishes in under a minute")
    return args


@contextmanager
def timer(into: dict, name: str):
    """Measure the block's wall time into ``into[name]`` (seconds)."""
    started = time.perf_counter()
    yield
    into[name] = time.perf_counter() - started


def machine() -> str:
    """A one-line description of where the figures were taken."""
    import os

    cpu = platform.processor() or platform.machine()
    try:
        import torch

        if torch.cuda.is_available():
            return f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}"
    except ImportError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def report(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]], result: dict) -> None:
    """Print ``rows`` as a table under ``title``, then the RESULT line."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    print(f"\n{title}  ({machine()})")
    print("  ".join(str(h).ljust(w) for h, w in zip(headers, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    sys.stdout.flush()
    print("RESULT " + json.dumps(result, ensure_ascii=False, sort_keys=True))


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
