"""The engine a pipeline talks to: the in-process `sie.Engine` (default; shared with the server when
the pipelines are mounted into `sie serve`) or a server through `sie.SieClient`. Both implement the
Engine protocol, which is all the steps use. Tools that only check a pipeline (`sie plan`) need only the
protocol's models half: `sie.LocalModels` (the catalog, without torch) stands in for an in-process engine."""

from __future__ import annotations

from collections.abc import Callable

from pipelines.spec import EngineConfig
from sie.protocol import EngineProtocol, ModelsProtocol


def open_engine(config: EngineConfig,
                shared: EngineProtocol | None = None) -> tuple[EngineProtocol, Callable[[], None]]:
    """(engine, close): `shared` is used for an in-process spec and is not closed here."""
    if config.url is None:
        if shared is not None:
            return shared, lambda: None
        from sie import Engine

        engine = Engine()
        return engine, engine.close
    return _client(config)


def open_models(config: EngineConfig) -> tuple[ModelsProtocol, Callable[[], None]]:
    """(models, close): what the engine of `config` knows of its models and tokenizers, without building
    an in-process engine."""
    if config.url is None:
        from sie import LocalModels

        return LocalModels.from_settings(), lambda: None
    return _client(config)


def _client(config: EngineConfig) -> tuple[EngineProtocol, Callable[[], None]]:
    from sie.client import SieClient

    client = SieClient(config.url, api_key=config.api_key, timeout=config.timeout_s,
                       max_retries=config.max_retries)
    return client, client.close
