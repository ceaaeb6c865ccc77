"""The engine a pipeline talks to: the in-process `sie.Engine` (default; shared with the server when
the pipelines are mounted into `sie serve`) or a server through `sie.SieClient`. Both implement the
Engine protocol, which is all the steps use."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pipelines.spec import EngineConfig
from sie.protocol import EngineProtocol


def open_engine(config: EngineConfig,
                shared: EngineProtocol | None = None) -> tuple[EngineProtocol, Callable[[], None]]:
    """(engine, close): `shared` is used for an in-process spec and is not closed here."""
    if config.url is None:
        if shared is not None:
            return shared, lambda: None
        from sie.runtime.engine import Engine

        engine = Engine()
        return engine, engine.close
    from sie.client import SieClient

    client = SieClient(config.url, api_key=config.api_key, timeout=config.timeout_s,
                       max_retries=config.max_retries)
    return client, client.close


def catalog_of(engine: Any) -> Any:
    """The catalog tokenizers are looked up in: the engine's own, or the local one for a remote engine."""
    return getattr(engine, "catalog", None)
