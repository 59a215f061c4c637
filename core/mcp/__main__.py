"""``python -m core.mcp``: the MCP server over stdio (the default), or over streamable HTTP at
``http://127.0.0.1:PORT/mcp`` with ``--http PORT``. See :mod:`core.api.cli` for the options.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from core.api.cli import say, server_options, start_services
from core.api.keys import KeyRefused, caller
from core.errors import AppError


def main(argv: Sequence[str] | None = None) -> int:
    """Run the MCP server until its client (stdio) or a signal (HTTP) ends it."""
    parser = argparse.ArgumentParser(
        prog="python -m core.mcp",
        description="The knowledge bases as an MCP server: over stdio (the default) or streamable HTTP at "
        "http://127.0.0.1:PORT/mcp (--http PORT).",
    )
    parser.add_argument("--http", type=int, metavar="PORT", help="serve streamable HTTP on this port instead of stdio")
    server_options(parser)
    args = parser.parse_args(argv)
    try:
        services = start_services(args)
        # Over stdio there is no request to carry a key: with logins on, KBA_API_KEY says who calls.
        user = caller(services.settings, os.environ.get("KBA_API_KEY")) if args.http is None else None
    except KeyRefused as refused:
        say(f"error: {refused} (over stdio, put the key in the environment variable KBA_API_KEY)")
        return 2
    except AppError as error:
        say(f"error: {error}")
        return 2
    from core.mcp.server import build_server

    if args.http is None:
        build_server(services, allow_ingest=args.allow_ingest, user=user).run("stdio")
        return 0
    import uvicorn

    from core.api.gate import KeyGate

    server = build_server(services, allow_ingest=args.allow_ingest)
    app = KeyGate(server.streamable_http_app(host=args.host), services.settings)
    say(f"MCP: http://{args.host}:{args.http}/mcp")
    uvicorn.run(app, host=args.host, port=args.http, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
