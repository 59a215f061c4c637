"""The HTTP API: the knowledge-base operations as JSON, an OpenAI-compatible chat endpoint whose
model names are knowledge bases, and the MCP server's streamable HTTP endpoint at ``/mcp``,
all in one FastAPI app (OpenAPI documentation at ``/docs``).

Errors are JSON in OpenAI's shape, ``{"error": {"message", "type", "code"}}``, with a 4xx
status: 400 bad arguments, 401 no valid key, 403 not permitted, 404 unknown knowledge base or
job, 409 busy (a job of this server already works on the knowledge base; another process's
writing makes the job wait instead) or no chat model.
"""

from __future__ import annotations

import contextlib
from typing import Any, Literal

from fastapi import Body, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field

from core import errors
from core.api import chat_completions, operations
from core.api.gate import KeyGate
from core.errors import AppError
from core.services import Services

_STATUS: dict[type[AppError], tuple[int, str]] = {
    errors.KnowledgeBaseNotFound: (404, "not_found"),
    operations.JobNotFound: (404, "not_found"),
    errors.NotPermitted: (403, "permission_denied"),
    errors.AdminOnly: (403, "permission_denied"),
    errors.KnowledgeBaseBusy: (409, "busy"),
    errors.JobAlreadyRunning: (409, "busy"),
    operations.ModelNeeded: (409, "no_model"),
}

SearchModeField = Literal["hybrid", "rrf", "dense", "mmr", "keyword"]


class SearchRequest(BaseModel):
    """``POST /v1/search``."""

    query: str = Field(min_length=1)
    knowledge_bases: list[str] | None = Field(None, description="Names; every readable one if left out.")
    k: int | None = Field(None, ge=1, le=operations.MAX_K)
    mode: SearchModeField = "hybrid"


class AnswerRequest(BaseModel):
    """``POST /v1/answer``."""

    question: str = Field(min_length=1)
    knowledge_bases: list[str] | None = Field(None, description="Names; every readable one if left out.")
    mode: Literal["auto", "generate", "quick", "sources"] = Field(
        "auto",
        description="auto: the server's chat model writes the answer, or it is quoted from the sources when "
        "there is none or only the demo model; generate; quick (quoted, no model); sources (passages only).",
    )
    k: int | None = Field(None, ge=1, le=operations.MAX_K)
    search_mode: SearchModeField = "hybrid"
    lang: Literal["en", "zh"] | None = Field(None, description="Answer language; default: the question's.")


class FolderRequest(BaseModel):
    """``POST /v1/knowledge-bases/{name}/folders``."""

    path: str = Field(min_length=1, description="A folder on the machine running this server.")
    create: bool = Field(False, description="Create the knowledge base if it does not exist.")
    wait_seconds: float = Field(30, ge=0, le=600)


def create_app(services: Services, *, allow_ingest: bool = False, host: str = "127.0.0.1") -> FastAPI:
    """The API over ``services`` (the process-wide ones; each request acts as its key's user)."""
    from core.mcp.server import build_server

    mcp = build_server(services, allow_ingest=allow_ingest)
    mcp_app = mcp.streamable_http_app(streamable_http_path="/mcp", host=host)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        async with mcp.session_manager.run():
            yield

    app = FastAPI(
        title="Knowledge Assistant API",
        summary="Search and ask the knowledge bases of the Knowledge Assistant app; OpenAI-compatible chat.",
        lifespan=lifespan,
    )
    app.add_middleware(KeyGate, settings=services.settings)

    def acting(request: Request) -> Services:
        return services.as_user(request.scope["kba_user"])

    @app.exception_handler(AppError)
    async def app_error(_request: Request, error: AppError) -> JSONResponse:
        status, code = next(((s, c) for kind, (s, c) in _STATUS.items() if isinstance(error, kind)), (400, "invalid"))
        kind = "invalid_request_error" if status < 409 else "conflict_error"
        return JSONResponse({"error": {"message": error.message("en"), "type": kind, "code": code}}, status)

    @app.exception_handler(RequestValidationError)
    async def bad_request(_request: Request, error: RequestValidationError) -> JSONResponse:
        problems = [f"{'.'.join(str(p) for p in e['loc'] if p != 'body')}: {e['msg']}" for e in error.errors()]
        message = "Invalid request: " + "; ".join(problems)
        return JSONResponse({"error": {"message": message, "type": "invalid_request_error", "code": "invalid"}}, 400)

    @app.get("/health", tags=["service"])
    def health() -> dict[str, Any]:
        """Whether the server runs, and which chat model (if any) writes answers."""
        resident = services.models.current
        return {"status": "ok", "model": resident.spec.name if resident else None, "ingest": allow_ingest}

    @app.get("/v1/knowledge-bases", tags=["knowledge bases"])
    def list_knowledge_bases(request: Request) -> dict[str, Any]:
        """The knowledge bases the caller may read, with sizes and sources."""
        return {"knowledge_bases": operations.knowledge_bases(acting(request))}

    @app.get("/v1/knowledge-bases/{name}/files", tags=["knowledge bases"])
    def files(name: str, request: Request) -> dict[str, Any]:
        """The files a knowledge base holds."""
        return operations.files(acting(request), name)

    @app.post("/v1/search", tags=["knowledge bases"])
    def search(body: SearchRequest, request: Request) -> dict[str, Any]:
        """The passages that best match the query, best first, with file, lines, heading, page,
        relevance (0..1) and a link; passages below the relevance floor are left out.
        """
        return operations.search(acting(request), body.query, body.knowledge_bases, body.k, body.mode)

    @app.post("/v1/answer", tags=["knowledge bases"])
    def answer(body: AnswerRequest, request: Request) -> dict[str, Any]:
        """An answer from the app's answer pipeline, with its numbered sources and who answered."""
        return operations.answer(
            acting(request),
            body.question,
            body.knowledge_bases,
            mode=body.mode,
            k=body.k,
            search_mode=body.search_mode,
            lang=body.lang,
        )

    @app.get("/v1/models", tags=["OpenAI-compatible"])
    def models(request: Request) -> dict[str, Any]:
        """The knowledge bases, as the model names of /v1/chat/completions."""
        return chat_completions.models(acting(request))

    @app.post("/v1/chat/completions", tags=["OpenAI-compatible"], response_model=None)
    def chat(body: chat_completions.ChatRequest, request: Request) -> dict[str, Any] | StreamingResponse:
        """Answer the last user message from the knowledge base named by ``model``; ``stream`` sends
        Server-Sent Events. The response adds ``sources``, ``answered_by`` and ``note``.
        """
        prepared = chat_completions.prepare(acting(request), body)
        if body.stream:
            return StreamingResponse(chat_completions.chunks(prepared, body.model), media_type="text/event-stream")
        return chat_completions.completion(prepared, body.model)

    if allow_ingest:
        _ingest_routes(app, acting)
    app.router.routes.extend(mcp_app.routes)
    return app


def _ingest_routes(app: FastAPI, acting: Any) -> None:
    """Routes that change knowledge bases (``--allow-ingest``), through the app's jobs and locks."""

    @app.post("/v1/knowledge-bases/{name}/folders", tags=["ingestion"])
    def add_folder(name: str, body: FolderRequest, request: Request) -> dict[str, Any]:
        """Add a folder and ingest it; waits up to ``wait_seconds``, then reports the job's progress."""
        services = acting(request)
        job = operations.add_folder(services, name, body.path, create=body.create)
        return {"jobs": operations.wait_for(services, [job], body.wait_seconds)}

    @app.post("/v1/knowledge-bases/{name}/refresh", tags=["ingestion"])
    def refresh(
        name: str, request: Request, wait_seconds: float = Body(30, ge=0, le=600, embed=True)
    ) -> dict[str, Any]:
        """Bring every source up to date; while another job or process writes to the knowledge base,
        the job waits (status ``waiting``).
        """
        services = acting(request)
        return {"jobs": operations.wait_for(services, operations.refresh(services, name), wait_seconds)}

    @app.get("/v1/jobs/{job_id}", tags=["ingestion"])
    def job(job_id: str, request: Request, wait_seconds: float = 0) -> dict[str, Any]:
        """An ingestion job's status; waits up to ``wait_seconds`` for it to end."""
        services = acting(request)
        operations.job(services, job_id)
        services.jobs.wait(job_id, min(max(wait_seconds, 0.0), 600.0))
        return operations.job(services, job_id)
