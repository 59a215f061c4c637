"""The knowledge bases for other tools: an HTTP API with an OpenAI-compatible chat endpoint
(``python -m core.api``) and the API keys it accepts while logins are on; the MCP server is in
:mod:`core.mcp`. Nothing here is imported by the app itself.
"""
