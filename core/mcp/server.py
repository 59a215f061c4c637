"""The MCP server: the knowledge bases as tools and resources for MCP clients (Cherry Studio,
Claude Desktop, VS Code, Cursor), built with the official SDK's ``MCPServer``.

Tools: ``list_knowledge_bases``, ``search``, ``answer``; with ``allow_ingest`` also
``add_folder``, ``refresh`` and ``job_status``. Resource: ``kb://{name}/files``, a knowledge
base's file list. Each call acts as its caller (the API key's user over HTTP, the process's
user over stdio) through :mod:`core.api.operations`, so the app's permissions, search, answer
pipeline, jobs and locks apply unchanged.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from mcp_types import ToolAnnotations
from pydantic import Field

from core.api import operations
from core.errors import AppError
from core.services import Services
from core.users import LOCAL, User

NAME = "knowledge-base-assistant"
INSTRUCTIONS = (
    "Local knowledge bases (documents, notes, code) of the Knowledge Assistant app. Call list_knowledge_bases "
    "first; search returns passages with their file, lines, heading, page and relevance (0..1); answer runs the "
    "app's answer pipeline and returns the answer with numbered sources that its [n] cite."
)
READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)
MAX_WAIT_S = 600

KnowledgeBaseNames = Annotated[
    list[str] | None, Field(description="Knowledge base names (from list_knowledge_bases); all of them if left out.")
]
TopK = Annotated[int | None, Field(ge=1, le=operations.MAX_K, description="How many passages (the app's default: 4).")]
SearchModeArg = Annotated[
    Literal["hybrid", "rrf", "dense", "mmr", "keyword"],
    Field(description="hybrid (meaning and keywords, the default), rrf, dense (meaning), mmr (varied), keyword."),
]
Language = Annotated[Literal["en", "zh"] | None, Field(description="Answer language; default: the question's.")]
WaitSeconds = Annotated[float, Field(ge=0, le=MAX_WAIT_S, description="How long to wait for the job to finish.")]


@contextlib.contextmanager
def _as_tool_error() -> Iterator[None]:
    """The app's errors as MCP tool errors, with the app's message (it says how to fix it)."""
    try:
        yield
    except AppError as error:
        raise ToolError(error.message("en")) from error


def build_server(services: Services, *, allow_ingest: bool = False, user: User = LOCAL) -> MCPServer:
    """An MCP server over ``services``; ``user`` is who stdio calls act as (HTTP calls act as the
    user of the request's API key, which :class:`core.api.gate.KeyGate` put in the request).
    """
    server = MCPServer(NAME, instructions=INSTRUCTIONS, log_level="WARNING")

    def acting(ctx: Context | None) -> Services:
        request = ctx.request_context.request if ctx is not None else None
        scope = getattr(request, "scope", None)
        caller = scope.get("kba_user") if scope is not None else user
        if caller is None:  # an HTTP app that was built without the key gate
            raise ToolError("This server was started without its key check; no request is served.")
        return services.as_user(caller)

    @server.tool(annotations=READ_ONLY)
    def list_knowledge_bases(ctx: Context) -> dict[str, Any]:
        """The knowledge bases you may read: name, files, chunks, embedding model, sources and the
        address of the resource that lists their files.
        """
        with _as_tool_error():
            return {"knowledge_bases": operations.knowledge_bases(acting(ctx))}

    @server.tool(annotations=READ_ONLY)
    def search(
        query: Annotated[str, Field(min_length=1, description="What to look for, in any language.")],
        ctx: Context,
        knowledge_bases: KnowledgeBaseNames = None,
        k: TopK = None,
        mode: SearchModeArg = "hybrid",
    ) -> dict[str, Any]:
        """Search knowledge bases. Returns the best passages, best first, each with its file path,
        line range, heading, page (for PDFs, when known), relevance from 0 to 1, a link and its text.
        Passages below the relevance floor are left out, so an empty list means nothing fits.
        """
        with _as_tool_error():
            return operations.search(acting(ctx), query, knowledge_bases, k, mode)

    @server.tool(annotations=READ_ONLY)
    def answer(
        question: Annotated[str, Field(min_length=1, description="The question, in Chinese or English.")],
        ctx: Context,
        knowledge_bases: KnowledgeBaseNames = None,
        mode: Annotated[
            Literal["auto", "generate", "quick", "sources"],
            Field(
                description="auto: written by the server's chat model, or quoted from the sources when it has "
                "none (or only the demo model); generate: written by the model; quick: sentences quoted from "
                "the sources, no model; sources: the passages only."
            ),
        ] = "auto",
        k: TopK = None,
        lang: Language = None,
    ) -> dict[str, Any]:
        """Answer a question with the app's own answer pipeline (search, relevance floor, prompt,
        citation checks). Returns the answer with [n] citations, who answered (answered_by: model,
        quick, sources or refused, and a note saying why) and the numbered sources.
        """
        with _as_tool_error():
            return operations.answer(acting(ctx), question, knowledge_bases, mode=mode, k=k, lang=lang)

    @server.resource("kb://{name}/files", mime_type="application/json", title="Files of a knowledge base")
    def knowledge_base_files(name: str, ctx: Context) -> str:
        """The files a knowledge base holds, with their source, size and chunk count."""
        try:
            return json.dumps(operations.files(acting(ctx), name), ensure_ascii=False)
        except AppError as error:
            raise ResourceError(error.message("en")) from error

    if allow_ingest:
        _add_ingest_tools(server, acting)
    return server


def _add_ingest_tools(server: MCPServer, acting: Any) -> None:
    """The tools that change knowledge bases, through the app's ingestion jobs and locks."""

    @server.tool(annotations=ToolAnnotations(destructive_hint=False, open_world_hint=False))
    def add_folder(
        knowledge_base: Annotated[str, Field(min_length=1)],
        path: Annotated[str, Field(min_length=1, description="A folder on the machine running this server.")],
        ctx: Context,
        create: Annotated[bool, Field(description="Create the knowledge base if it does not exist.")] = False,
        wait_seconds: WaitSeconds = 30,
    ) -> dict[str, Any]:
        """Add a folder to a knowledge base and ingest it (only new and changed files are embedded).
        Waits up to wait_seconds; a job still running is reported with its progress: ask job_status later.
        """
        with _as_tool_error():
            services = acting(ctx)
            job = operations.add_folder(services, knowledge_base, path, create=create)
            return {"jobs": operations.wait_for(services, [job], wait_seconds)}

    @server.tool(annotations=ToolAnnotations(destructive_hint=False, idempotent_hint=True, open_world_hint=False))
    def refresh(
        knowledge_base: Annotated[str, Field(min_length=1)], ctx: Context, wait_seconds: WaitSeconds = 30
    ) -> dict[str, Any]:
        """Bring every source of a knowledge base up to date: changed files are embedded again, removed
        ones dropped. While the app or another process writes to it, the job waits (status "waiting").
        """
        with _as_tool_error():
            services = acting(ctx)
            return {"jobs": operations.wait_for(services, operations.refresh(services, knowledge_base), wait_seconds)}

    @server.tool(annotations=READ_ONLY)
    def job_status(
        job_id: Annotated[str, Field(min_length=1)], ctx: Context, wait_seconds: WaitSeconds = 0
    ) -> dict[str, Any]:
        """The status of an ingestion job started by add_folder or refresh, waiting up to wait_seconds."""
        with _as_tool_error():
            services = acting(ctx)
            operations.job(services, job_id)  # the caller may see it
            services.jobs.wait(job_id, wait_seconds)
            return operations.job(services, job_id)
