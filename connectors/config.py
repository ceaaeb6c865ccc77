"""Sink configuration: a YAML dict, validated by pydantic with unknown keys refused.

    sink:
      type: qdrant                  # chroma | qdrant | weaviate | lancedb
      collection: docs
      url: https://qdrant.example:6333
      api_key: ${QDRANT_API_KEY}    # secrets only as ${ENV_VAR} references
      batch_size: 256
      keep_previous: 1              # blue/green reindex: retired collections kept for rollback
      drop_after_s: 600             # ... and how long the others stay before they are dropped

Any string may contain `${NAME}` references, replaced from the environment before validation, or
`${NAME:-default}` (POSIX: the default when NAME is unset or empty); a reference to an unset variable
without a default fails naming the key. Secret keys (`SECRET_KEYS`: `api_key`, `password`, ...) must be
exactly one `${NAME}` reference, never a literal and without a default, so configs can be committed.
`expand_env` is the one implementation of this syntax, and `SECRET_KEYS` the one list of secret keys: the
pipeline spec uses both. Each sink module defines its config as a subclass of `SinkConfig`; errors name
the key as `sink.<key>` and list the valid options.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from connectors.errors import ConnectorError

#: `${NAME}` or `${NAME:-default}`; a default runs to the first `}` (no nested references).
ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
#: Keys whose values are secrets wherever they appear, in a sink or in a pipeline file (pipelines.spec uses
#: this set): only ever an ${ENV_VAR} reference, never echoed in a message.
SECRET_KEYS = frozenset({"api_key", "password", "token", "secret"})
#: Chroma and LanceDB keep the logical names' pointers in a collection / table of this name (connectors.base).
MANIFEST = "sie_collections"
#: How a blue/green reindex names physical collections: `<logical>__<8 hex>` (connectors.base.physical_name).
PHYSICAL_SUFFIX = re.compile(r"__[0-9a-f]{8}$")


def expand_env(text: str, env: Mapping[str, str], missing: Callable[[str, int], str]) -> str:
    """`text` with each reference replaced: the variable's value, else its default, else `missing(name, start)`
    (which raises, or returns a placeholder; `start` is where the reference begins in `text`)."""
    def substitute(match: re.Match) -> str:
        name, default = match.group(1), match.group(2)
        value = env.get(name)
        if value is not None and (value != "" or default is None):
            return value
        return default if default is not None else missing(name, match.start())
    return ENV_REF.sub(substitute, text)


def env_names(text: str) -> list[str]:
    """The variables `text` refers to."""
    return [m.group(1) for m in ENV_REF.finditer(text)]


def is_secret_reference(value: Any) -> bool:
    """A secret's only accepted form: exactly one `${NAME}`, no default (a default would be a literal)."""
    match = ENV_REF.fullmatch(value) if isinstance(value, str) else None
    return match is not None and match.group(2) is None


class SinkConfig(BaseModel):
    """Keys every sink takes. Subclasses add their connection keys and set `default_batch_size`."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    default_batch_size: ClassVar[int] = 500

    type: str
    collection: str = Field(min_length=1, max_length=255, description="Collection / table name.")
    batch_size: int | None = Field(None, gt=0, le=100_000, description="Records per write request.")
    keep_previous: int = Field(1, ge=0, le=100, description="Collections a blue/green reindex keeps after "
                                                             "switching away from them (for rollback).")
    drop_after_s: float = Field(600, ge=0, description="Seconds a retired collection beyond keep_previous is "
                                                        "kept for queries that still read it, before it is dropped.")

    @field_validator("collection")
    @classmethod
    def _not_reserved(cls, name: str) -> str:
        # Refused on every database, so that a pipeline keeps validating when it moves from one to another.
        if name.lower() == MANIFEST:
            raise PydanticCustomError("reserved_name", f"{MANIFEST!r} is reserved: sie keeps the logical collection "
                                      "names' pointers there (Chroma, LanceDB); choose another name")
        if PHYSICAL_SUFFIX.search(name):
            raise PydanticCustomError("reserved_name", "a name ending in '__' and 8 hex digits is reserved: a "
                                      "blue/green reindex names its physical collections <collection>__<8 hex>, so "
                                      "this one could be another collection's reindex; choose another name")
        return name

    @property
    def effective_batch_size(self) -> int:
        return self.batch_size or self.default_batch_size

    @staticmethod
    def secret(value: SecretStr | None) -> str | None:
        return None if value is None else value.get_secret_value()


def resolve_env(raw: Any, env: Mapping[str, str], path: str = "sink") -> Any:
    """`raw` with every `${NAME}` replaced from `env`; secret keys must be a single reference."""
    if isinstance(raw, Mapping):
        out = {}
        for key, value in raw.items():
            sub = f"{path}.{key}"
            if key in SECRET_KEYS and value is not None and not is_secret_reference(value):
                raise ConnectorError(f"{sub} is a secret: give it as an ${{ENV_VAR}} reference, not a literal value",
                                     field=sub)
            out[key] = resolve_env(value, env, sub)
        return out
    if isinstance(raw, list):
        return [resolve_env(item, env, f"{path}[{i}]") for i, item in enumerate(raw)]
    if isinstance(raw, str):
        def missing(name: str, _start: int) -> str:
            raise ConnectorError(f"{path} references ${{{name}}}, but the environment variable {name} is not set",
                                 field=path)
        return expand_env(raw, env, missing)
    return raw


def parse_config(raw: Mapping[str, Any], config_class: type[SinkConfig],
                 env: Mapping[str, str] | None = None) -> SinkConfig:
    """Validated config; every problem is reported in one ConnectorError naming the first bad key."""
    resolved = resolve_env(raw, os.environ if env is None else env)
    try:
        return config_class.model_validate(resolved)
    except ValidationError as e:
        raise _config_error(e, config_class, resolved) from None


def _config_error(error: ValidationError, config_class: type[SinkConfig], raw: Mapping[str, Any]) -> ConnectorError:
    kind = raw.get("type", "?")
    valid = ", ".join(sorted(name for name in config_class.model_fields))
    lines, first = [], None
    for err in error.errors():
        key = "sink." + ".".join(str(p) for p in err["loc"]) if err["loc"] else "sink"
        first = first or key
        if err["type"] == "extra_forbidden":
            lines.append(f"{key}: unknown option for sink type {kind}; valid options: {valid}")
        elif err["type"] == "missing":
            lines.append(f"{key}: required for sink type {kind}")
        else:
            shown = "<secret>" if err["loc"] and err["loc"][-1] in SECRET_KEYS else repr(err.get("input"))
            lines.append(f"{key}: {err['msg']} (got {shown})")
    return ConnectorError("; ".join(lines), field=first)
