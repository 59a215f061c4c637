"""The command lines of the servers: ``python -m core.api`` (HTTP API, OpenAI-compatible chat and
MCP at /mcp, in one process) and ``python -m core.mcp`` (MCP alone, stdio or HTTP), and the
API keys they accept while logins are on.

Examples::

    python -m core.api --port 8765                      # http://127.0.0.1:8765/docs
    python -m core.api --port 8765 --model qwen2.5-7b-instruct --allow-ingest
    python -m core.api keys add alice --role user       # prints the key once
    python -m core.api keys list
    python -m core.api keys revoke alice
    python -m core.mcp                                  # stdio, for Claude Desktop, Cherry Studio
    python -m core.mcp --http 8766                      # streamable HTTP at http://127.0.0.1:8766/mcp

Both use the app's data folder (``KBA_DATA_DIR``) and its locks, so they run beside the app.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence

from core.api.keys import ApiKeys
from core.errors import AppError
from core.services import Services, build_services
from core.settings import get_settings

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


def server_options(parser: argparse.ArgumentParser) -> None:
    """The options both servers take."""
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)"
    )
    parser.add_argument(
        "--model",
        metavar="KEY",
        help="catalog key of the chat model that writes answers (e.g. a model server added on the Models page); "
        "without it, answers are quoted from the sources",
    )
    parser.add_argument(
        "--allow-ingest", action="store_true", help="offer add_folder and refresh (they change knowledge bases)"
    )
    parser.add_argument(
        "--lock-wait",
        type=float,
        metavar="SECONDS",
        help="an ingestion fails after waiting this long while another process writes to its knowledge base "
        "(default: it waits, shown as status 'waiting')",
    )


def start_services(args: argparse.Namespace) -> Services:
    """The process's services, with the chat model of ``--model`` loaded (its messages go to
    stderr: stdout may be the MCP stream).
    """
    services = build_services()
    services.write_wait_s = args.lock_wait
    if args.host not in LOOPBACK and services.settings.auth == "none":
        say(
            f"warning: listening on {args.host} with logins off: everyone who can reach this port reads every "
            "knowledge base. Turn logins on (KBA_AUTH) and give out API keys, or keep the default 127.0.0.1."
        )
    if args.model:
        with contextlib.redirect_stdout(sys.stderr):
            loaded = services.models.load(args.model)
        say(f"chat model: {loaded.spec.name} ({loaded.device})")
    return services


def say(text: str) -> None:
    """A line for whoever started the server (stderr: stdout may be the MCP stream)."""
    print(text, file=sys.stderr)  # noqa: T201 - the command line's output


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m core.api``: serve the HTTP API, or manage its keys (``keys ...``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["keys"]:
        return _keys(argv[1:])
    parser = argparse.ArgumentParser(
        prog="python -m core.api",
        description="The HTTP API (docs at /docs), OpenAI-compatible chat over the knowledge bases, and MCP at /mcp. "
        "'python -m core.api keys --help' for API keys.",
    )
    parser.add_argument("--port", type=int, default=8765, help="port to listen on (default 8765)")
    server_options(parser)
    args = parser.parse_args(argv)
    try:
        services = start_services(args)
    except AppError as error:
        say(f"error: {error}")
        return 2
    import uvicorn

    from core.api.app import create_app

    app = create_app(services, allow_ingest=args.allow_ingest, host=args.host)
    say(f"API docs: http://{args.host}:{args.port}/docs · MCP: http://{args.host}:{args.port}/mcp")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def _keys(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.api keys", description="API keys, for logins on.")
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("add", help="make a key for a user; it is printed once")
    add.add_argument("user")
    add.add_argument("--role", choices=["user", "admin"], default="user")
    commands.add_parser("list", help="the keys made (not the keys themselves)")
    revoke = commands.add_parser("revoke", help="forget a key (by its id) or every key of a user")
    revoke.add_argument("key_or_user")
    args = parser.parse_args(argv)
    keys = ApiKeys(get_settings().data_dir)
    if args.command == "add":
        row, key = keys.add(args.user, args.role)
        say(f"key {row.id} for {row.user} ({row.role}); it is shown only now:")
        print(key)  # noqa: T201 - the key itself, alone on stdout for scripts
    elif args.command == "list":
        for row in keys.rows():
            print(f"{row.id}  {row.user}  {row.role}")  # noqa: T201
    else:
        removed = keys.revoke(args.key_or_user)
        say(f"{removed} key(s) revoked")
        return 0 if removed else 1
    return 0
