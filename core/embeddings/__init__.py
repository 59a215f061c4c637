"""Embedding models behind LangChain's ``Embeddings`` interface."""
