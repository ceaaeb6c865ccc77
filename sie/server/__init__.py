"""The HTTP server (FastAPI): native, OpenAI/Cohere-compatible and admin routes over one Engine."""

from sie.server.app import create_app

__all__ = ["create_app"]
