"""The HTTP server (FastAPI): native, OpenAI/Cohere-compatible and admin routes over one Engine.

`create_app` is imported lazily: the edge's light modules (`sie.server.errors`, its code → status table)
can be used without loading the engine and torch.
"""

__all__ = ["create_app"]


def __getattr__(name: str):
    if name == "create_app":
        from sie.server.app import create_app

        return create_app
    raise AttributeError(f"module 'sie.server' has no attribute {name!r}")
