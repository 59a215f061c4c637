"""The key check in front of the HTTP API and the MCP endpoint (an ASGI middleware).

Every HTTP request gets its caller (:func:`core.api.keys.caller`) in ``scope["kba_user"]``, where
the routes and the MCP tools read it; with logins on, a request without a valid key is answered
401 with an OpenAI-style error body, so OpenAI clients raise their ``AuthenticationError``.
The API's own documentation (``/docs``, ``/openapi.json``) shows no data and needs no key.
"""

from __future__ import annotations

from typing import Any

from core.api.keys import KeyRefused, bearer, caller
from core.settings import Settings

OPEN_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/openapi.json", "/redoc", "/health"})


class KeyGate:
    """Puts the caller into each HTTP request's scope, or refuses the request."""

    def __init__(self, app: Any, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Serve the request as its caller, or answer 401."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        from starlette.datastructures import Headers
        from starlette.responses import JSONResponse

        try:
            scope["kba_user"] = caller(self.settings, bearer(Headers(scope=scope)))
        except KeyRefused as refused:
            if scope["path"] not in OPEN_PATHS:
                body = {"error": {"message": str(refused), "type": "authentication_error", "code": "invalid_api_key"}}
                response = JSONResponse(body, status_code=401, headers={"WWW-Authenticate": "Bearer"})
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
