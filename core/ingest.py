"""Command line for knowledge bases: the same jobs as the Knowledge page, for scripts and cron.

Examples::

    python -m core.ingest list
    python -m core.ingest add "InternLM docs" --create --folder ~/docs/internlm
    python -m core.ingest add "InternLM docs" --git https://github.com/InternLM/lmdeploy.git --ref main
    python -m core.ingest add "papers" --create --embedding all-minilm-l6-v2 --file a.pdf --file notes.zip
    python -m core.ingest refresh "InternLM docs"          # every source: only changes are embedded
    python -m core.ingest refresh "InternLM docs" --wait 600   # from cron, beside the running app
    python -m core.ingest preview "InternLM docs" --folder ~/docs/new

The data folder is the app's (``KBA_DATA_DIR``, default ./data), and the app may be running:
while it (or another command) writes to the same knowledge base, the command says so and
waits, for at most ``--wait`` seconds if given; the app's searches see what it added.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from core.errors import AppError, KnowledgeBaseNotFound
from core.jobs import JobState
from core.knowledge.sources import FolderInput, GitInput, SourceInput, UploadInput
from core.knowledge.splitting import SplitterSettings
from core.services import Services, build_services


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status (0 on success)."""
    args = _parser().parse_args(argv)
    services = build_services()
    services.write_wait_s = getattr(args, "wait", None)
    try:
        return args.run(services, args)
    except AppError as error:
        print(f"error: {error}", file=sys.stderr)  # noqa: T201 - the command line's output
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core.ingest", description="Build and refresh knowledge bases.")
    commands = parser.add_subparsers(required=True)

    listing = commands.add_parser("list", help="knowledge bases with their sources and sizes")
    listing.set_defaults(run=_list)

    for name, run, text in (("add", _add, "add a source and ingest it"), ("preview", _preview, "dry run")):
        command = commands.add_parser(name, help=text)
        command.add_argument("kb", help="knowledge base name")
        where = command.add_mutually_exclusive_group(required=True)
        where.add_argument("--folder", type=Path, help="a folder on this machine")
        where.add_argument("--git", help="a git repository URL (https or ssh)")
        where.add_argument("--file", type=Path, action="append", help="a file or zip archive (repeatable)")
        command.add_argument("--ref", help="branch or tag of --git (default: its default branch)")
        _wait_option(command)
        command.set_defaults(run=run)
        if name == "add":
            command.add_argument("--create", action="store_true", help="create the knowledge base if missing")
            command.add_argument("--embedding", help="embedding model of a new knowledge base")
            command.add_argument("--chunk-size", type=int, help="chunk size of a new knowledge base")
            command.add_argument("--chunk-overlap", type=int, help="chunk overlap of a new knowledge base")
            command.add_argument("--unit", choices=["chars", "tokens"], default="chars", help="unit of chunk sizes")

    refresh = commands.add_parser("refresh", help="ingest every source of a knowledge base again")
    refresh.add_argument("kb", help="knowledge base name")
    _wait_option(refresh)
    refresh.set_defaults(run=_refresh)
    return parser


def _wait_option(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--wait",
        type=float,
        metavar="SECONDS",
        help="give up after waiting this long while another process writes to the knowledge base "
        "(default: wait until it is done)",
    )


def _list(services: Services, args: argparse.Namespace) -> int:
    for kb in services.knowledge.all():
        stats = services.knowledge.stats(kb)
        _say(f"{kb.name}: {stats.files} files, {stats.chunks} chunks, {kb.embedding}, {stats.size_bytes / 1e6:.1f} MB")
        for source in services.knowledge.sources(kb):
            _say(f"  {source.kind:6} {source.location}" + (f" @ {source.commit_sha[:10]}" if source.commit_sha else ""))
    return 0


def _source(args: argparse.Namespace) -> SourceInput:
    if args.folder:
        return FolderInput(args.folder)
    if args.git:
        return GitInput(args.git, args.ref)
    return UploadInput(tuple((path.name, path.read_bytes()) for path in args.file))


def _add(services: Services, args: argparse.Namespace) -> int:
    created = False
    try:
        kb = services.knowledge.get(args.kb)
    except KnowledgeBaseNotFound:
        if not args.create:
            raise
        settings = services.settings
        splitter = SplitterSettings(
            args.chunk_size or settings.chunk_size, args.chunk_overlap or settings.chunk_overlap, args.unit
        )
        kb = services.knowledge.create(args.kb, args.embedding or settings.default_embedding, splitter)
        created = True
    try:
        job = _follow(services, services.start_ingest(kb, _source(args), new_kb=created))
    except AppError:
        if created:
            _say(f"The new knowledge base '{kb.name}' was not kept.", error=True)
        raise
    if job.status == "done":
        _report(job)
    elif "discarded" in job.detail:
        _say(f"Nothing was added, so the new knowledge base '{kb.name}' was not kept.", error=True)
    return _exit(job)


def _refresh(services: Services, args: argparse.Namespace) -> int:
    kb = services.knowledge.get(args.kb)
    status = 0
    for source in services.knowledge.sources(kb):
        job = _follow(services, services.start_refresh(kb, source))
        if job.status == "done":
            _report(job)
        status = status or _exit(job)
    return status


def _preview(services: Services, args: argparse.Namespace) -> int:
    kb = services.knowledge.get(args.kb)
    job = _follow(services, services.start_preview(kb, _source(args)))
    if job.status == "done":
        result = job.result
        _say(f"{result['files']} files, {result['chunks']} chunks; by type: {result['files_by_type']}")
        if result["token_counts"]:
            counts = sorted(result["token_counts"])
            median, longest, limit = counts[len(counts) // 2], counts[-1], result["max_tokens"]
            _say(f"tokens per chunk: median {median}, max {longest} (the model reads {limit})")
        share, model = result["cjk_share"], result["suggested_embedding"]
        _say(f"Chinese share {share:.0%}: suggested embedding {model}")
        for item in result["skipped"]:
            _say(f"  skipped {item['path']}: {item['reason']} {item['detail']}")
    return _exit(job)


def _follow(services: Services, job: JobState) -> JobState:
    """Show a progress bar until the job ends; Ctrl-C cancels it."""
    from tqdm import tqdm

    told = False
    with tqdm(total=None, unit="B", unit_scale=True, desc=job.title, leave=False) as bar:
        try:
            while (job := services.jobs.get(job.id)).active:
                if job.waiting_for and not told:
                    waiting = f"another process is writing to knowledge base '{job.waiting_for}'; waiting..."
                    bar.write(waiting, sys.stderr)
                    told = True
                if job.total:
                    bar.total = job.total
                    bar.n = job.done
                    bar.set_postfix(chunks=job.detail.get("chunks_embedded", 0), refresh=False)
                    bar.refresh()
                time.sleep(0.2)
        except KeyboardInterrupt:
            services.jobs.cancel(job.id)
            job = services.jobs.wait(job.id)
    return job


def _report(job: JobState) -> None:
    r = job.result
    _say(
        f"{r['source']}: {r['files_ingested']} files ingested, {r['files_unchanged']} unchanged, "
        f"{r['files_removed']} removed; {r['chunks_added']} chunks added, {r['chunks_removed']} removed "
        f"in {r['seconds']:.1f} s; {len(r['skipped'])} skipped"
    )


def _exit(job: JobState) -> int:
    if job.status != "done":
        _say(f"{job.status}: {job.error_message('en') or ''}", error=True)
        return 1
    return 0


def _say(text: str, error: bool = False) -> None:
    print(text, file=sys.stderr if error else sys.stdout)


if __name__ == "__main__":
    sys.exit(main())
