"""The MCP server (``python -m core.mcp``): the app's knowledge bases as MCP tools and resources."""
