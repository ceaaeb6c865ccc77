"""The pipeline spec: YAML -> validated objects, every problem reported as `file:line:col key.path: ...`.

    name: docs                       # [a-z0-9][a-z0-9_-]*; part of every record id
    kind: ingest                     # or query
    engine: local                    # in-process (default), or http://host:8080, or {url, api_key: ${KEY}}
    source: {type: files, root: ./docs, glob: ["**/*.md"]}     # or {type: s3 | gcs | azure, bucket, prefix},
                                                               # or {type: records} (posted over REST)
    steps:
      - chunk: {by: tokens, size: 256, overlap: 32}
      - encode: {model: all-MiniLM-L6-v2}
    sinks:
      - {type: lancedb, uri: ./lance, collection: docs}

Parts are validated one by one (header, engine, source, each step by its registered config, each sink by
its connector's config) so a path in a message is always the path in the file. Relative paths (source
root, embedded sink locations, dlq) are relative to the pipeline file. Secrets only as `${ENV}`.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from connectors.config import SECRET_KEYS, env_names, expand_env, is_secret_reference
from connectors.ids import canonical_json, content_hash
from pipelines.errors import Problem, SpecError
from pipelines.sink_rules import check_ingest_sinks, check_search_sink
from pipelines.steps import REGISTRIES, step_class, step_classes, vector_makers
from pipelines.steps.base import Step, StepConfig
from pipelines.steps.rules import placement_problems
from pipelines.yaml_source import Located, load_file, load_text

NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
# Placeholder schemes for unset ${VAR}s in URL-typed keys when validating without the environment.
URL_SCHEMES = {"url": "http", "grpc_url": "grpc", "endpoint_url": "http"}
MAX_STEPS, MAX_SINKS = 32, 8
SOURCE_TYPES = ("files", "s3", "gcs", "azure", "records")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EngineConfig(_Strict):
    url: str | None = Field(None, description="A sie server (http://...); none = the in-process engine.")
    api_key: str | None = Field(None, description="${ENV_VAR} holding the server's API key.")
    timeout_s: float = Field(120.0, gt=0, le=3600)
    max_retries: int = Field(6, ge=0, le=20, description="Client retries of 429/503/unreachable, honouring "
                                                          "Retry-After (the runner's own retries come on top).")

    @field_validator("url")
    @classmethod
    def _http(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("http://", "https://")):
            raise ValueError(f"expected an http:// or https:// URL, got {url!r}")
        return url


class _ReadRules(_Strict):
    """What a files source and an object-store source share: which names are read, how, and up to what size."""

    glob: list[str] = Field(default_factory=lambda: ["**/*"], min_length=1, max_length=64)
    text_field: str = Field("text", min_length=1, description=".jsonl/.csv/.parquet: the column holding the text.")
    id_field: str | None = Field(None, description="Tabular files: the column identifying a row (default: its "
                                                   "line/row number).")
    metadata_fields: list[str] | None = Field(None, description="Tabular files: columns kept (default: all others).")
    csv_delimiter: str = Field(",", min_length=1, max_length=1)
    encoding: str = "utf-8"
    max_file_bytes: int = Field(64 << 20, gt=0, le=4 << 30)
    sync_deletions: bool = Field(False, description="Delete the records of sources that disappeared.")

    @field_validator("glob", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("glob")
    @classmethod
    def _inside(cls, patterns: list[str]) -> list[str]:
        for p in patterns:
            if p.startswith(("/", "\\")) or ".." in Path(p).parts or re.match(r"^[A-Za-z]:", p):
                raise ValueError(f"pattern {p!r} reaches outside the root; patterns are relative, without '..'")
        return patterns


class FilesSource(_ReadRules):
    type: Literal["files"] = "files"
    root: str = Field(min_length=1, description="The folder to read, relative to the pipeline file; nothing "
                                                "outside it is read.")


class ObjectStoreSource(_ReadRules):
    """Objects in an S3, GCS or Azure bucket, read through obstore (pipelines/objects.py). Credentials come from
    the environment only (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, GOOGLE_APPLICATION_CREDENTIALS
    or GOOGLE_SERVICE_ACCOUNT, AZURE_STORAGE_ACCOUNT_NAME / AZURE_STORAGE_ACCOUNT_KEY, ...), never from this file."""

    type: Literal["s3", "gcs", "azure"]
    bucket: str = Field(min_length=1, max_length=255, description="The bucket (Azure: the container).")
    prefix: str = Field("", max_length=1024, description="A folder inside the bucket, like a files source's root: "
                                                         "keys are listed under it, and ids and glob patterns "
                                                         "are relative to it.")
    endpoint_url: str | None = Field(None, description="Another endpoint than the cloud's own (MinIO, an S3 "
                                                       "API elsewhere, an emulator); http:// is allowed.")
    region: str | None = Field(None, max_length=64, description="S3: the bucket's region (default: AWS_REGION / "
                                                                "AWS_DEFAULT_REGION, else us-east-1).")
    account: str | None = Field(None, max_length=64, description="Azure: the storage account (default: "
                                                                 "AZURE_STORAGE_ACCOUNT_NAME).")
    timeout_s: float = Field(60.0, gt=0, le=3600, description="Per request, listing and each download.")

    @field_validator("endpoint_url")
    @classmethod
    def _url(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("http://", "https://")):
            raise ValueError(f"expected an http:// or https:// URL, got {url!r}")
        return url

    @field_validator("prefix")
    @classmethod
    def _folder(cls, prefix: str) -> str:
        if prefix.startswith("/") or ".." in prefix.split("/"):
            raise ValueError(f"prefix {prefix!r}: expected a folder inside the bucket, without a leading '/' or '..'")
        return prefix.strip("/")

    @property
    def location(self) -> str:
        """The bucket and prefix as a URL, for messages and record metadata."""
        scheme = {"s3": "s3", "gcs": "gs", "azure": "az"}[self.type]
        return f"{scheme}://{self.bucket}/{self.prefix + '/' if self.prefix else ''}"


class RecordsSource(_Strict):
    type: Literal["records"]
    max_records: int = Field(10_000, gt=0, le=1_000_000, description="Most records per run request.")
    max_chars: int = Field(1_000_000, gt=0, le=100_000_000, description="Longest record text.")


class BatchConfig(_Strict):
    size: int = Field(64, gt=0, le=100_000, description="Chunks per batch through the model steps.")
    queue: int = Field(4, gt=0, le=256, description="Batches buffered between reading, models and writing.")


class RetryConfig(_Strict):
    attempts: int = Field(4, ge=1, le=20, description="Tries per batch and sink before the dead-letter file.")
    backoff_s: float = Field(0.5, ge=0, le=60)
    max_backoff_s: float = Field(30.0, ge=0, le=3600)


class InputConfig(_Strict):
    max_chars: int = Field(2000, gt=0, le=100_000, description="Longest query accepted.")


class _Header(_Strict):
    name: str
    version: str | int = Field("1", description="Written into every record (_sie_version); a new version "
                                                 "reprocesses every source.")
    description: str = ""
    kind: Literal["ingest", "query"] = "ingest"
    engine: Any = "local"
    steps: list[Any] = Field(min_length=1, max_length=MAX_STEPS)

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        if not NAME.match(name):
            raise ValueError(f"expected lower-case letters, digits, '-' or '_' (at most 63), got {name!r}")
        return name

    @field_validator("version")
    @classmethod
    def _version(cls, value: str | int) -> str:
        return str(value)


class IngestHeader(_Header):
    kind: Literal["ingest"] = "ingest"
    source: Any
    sinks: list[Any] = Field(min_length=1, max_length=MAX_SINKS)
    batch: BatchConfig = BatchConfig()
    retry: RetryConfig = RetryConfig()
    dlq: str | None = Field(None, description="Dead-letter JSONL file (default $SIE_DLQ_DIR/<name>.jsonl, else "
                                              ".sie/dlq/<name>.jsonl next to the pipeline file).")


class QueryHeader(_Header):
    kind: Literal["query"]
    input: InputConfig = InputConfig()
    deadline_ms: int | None = Field(None, gt=0, le=600_000, description=(
        "End-to-end budget of one query; every engine call carries what is left of it. Default: the rerank "
        "step's timeout_ms plus a first-stage allowance (pipelines.query.FIRST_STAGE_MS)."))


@dataclass(frozen=True)
class StepSpec:
    name: str
    config: StepConfig
    index: int
    step: type[Step]               # its registered class: what it declares (pipelines.steps.base, .rules)


@dataclass(frozen=True)
class SinkSpec:
    raw: dict[str, Any]            # as written (env references unresolved), local paths made absolute
    key: str                       # stable identity: run-store rows and dead letters are per sink
    index: int

    @property
    def label(self) -> str:
        return f"{self.raw.get('type')}:{self.raw.get('collection')}"


@dataclass
class Pipeline:
    kind: Literal["ingest", "query"]
    name: str
    version: str
    description: str
    engine: EngineConfig
    steps: list[StepSpec]
    path: Path
    located: Located
    source: FilesSource | ObjectStoreSource | RecordsSource | None = None
    sinks: list[SinkSpec] = field(default_factory=list)
    batch: BatchConfig = field(default_factory=BatchConfig)
    retry: RetryConfig = field(default_factory=RetryConfig)
    dlq: Path | None = None
    input: InputConfig = field(default_factory=InputConfig)
    deadline_ms: int | None = None

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def fingerprint(self) -> str:
        """Hash of what decides a source's records besides its content: a change reprocesses every source."""
        return content_hash({"name": self.name, "version": self.version,
                             "steps": [[s.name, s.config.model_dump(mode="json")] for s in self.steps]})

    def steps_named(self, name: str) -> list[StepSpec]:
        return [s for s in self.steps if s.name == name]

    def problem(self, path: tuple, message: str) -> Problem:
        return self.located.problem(path, message)


def load_pipeline(path: str | Path, *, env: Mapping[str, str] | None = None, strict_env: bool = False,
                  shown_as: str | None = None) -> Pipeline:
    """Parse and validate a pipeline file. `strict_env`: an unset ${VAR} is an error (run, plan) rather
    than a placeholder (validate, which must work without the secrets)."""
    path = Path(path)
    located = load_file(path, shown_as)
    return build(located, path.resolve(), env=os.environ if env is None else env, strict_env=strict_env)


def parse_pipeline(text: str, file: str, base_dir: Path, *, env: Mapping[str, str] | None = None,
                   strict_env: bool = False) -> Pipeline:
    located = load_text(text, file)
    return build(located, (base_dir / Path(file).name).resolve(), env=os.environ if env is None else env,
                 strict_env=strict_env)


def build(located: Located, path: Path, *, env: Mapping[str, str], strict_env: bool) -> Pipeline:
    v = _Validator(located, env, strict_env)
    pipeline = v.pipeline(path)
    if v.problems or pipeline is None:
        raise SpecError(v.problems or [located.problem((), "invalid pipeline")])
    return pipeline


class _Validator:
    def __init__(self, located: Located, env: Mapping[str, str], strict_env: bool) -> None:
        self.located, self.env, self.strict_env = located, env, strict_env
        self.problems: list[Problem] = []

    def fail(self, path: tuple, message: str, *, key: bool = False) -> None:
        problem = self.located.problem(path, message, key=key)
        if all(p.path != problem.path for p in self.problems):  # one message per key is enough
            self.problems.append(problem)

    def model(self, cls: type[BaseModel], data: Any, path: tuple) -> Any:
        """`cls` validated from `data`, or None with every error recorded at its position."""
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            self.fail(path, f"expected a mapping of keys, got {_kind(data)}")
            return None
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            errors = e.errors()
            unknown = [tuple(err["loc"]) for err in errors if err["type"] == "extra_forbidden"]
            for err in errors:
                loc = tuple(p for p in err["loc"] if p != "[key]")
                message = explain(err, cls, loc)
                if err["type"] == "missing":
                    message += self._typo_of(path, loc, unknown)
                self.fail((*path, *loc), message, key=err["type"] == "extra_forbidden")
            return None

    def _typo_of(self, path: tuple, loc: tuple, unknown: list[tuple]) -> str:
        """For a missing key: an unknown key beside it that looks like a misspelling of it."""
        for other in unknown:
            if other[:-1] == loc[:-1] and _edits(str(other[-1]).lower(), str(loc[-1]).lower()) <= 2:
                line, _ = self.located.position((*path, *other), key=True)
                return f" ('{other[-1]}' on line {line} looks like a misspelling of it)"
        return ""

    def pipeline(self, path: Path) -> Pipeline | None:
        data = self.located.data
        if not isinstance(data, Mapping):
            self.fail((), f"expected a mapping with name, steps and sinks, got {_kind(data)}")
            return None
        kind = data.get("kind", "ingest")
        if kind not in ("ingest", "query"):
            self.fail(("kind",), f"expected 'ingest' or 'query', got {kind!r}")
            return None
        self.secrets(data, ())
        header = self.model(IngestHeader if kind == "ingest" else QueryHeader, data, ())
        # The parts are checked even when the header is not, so one pass reports every problem.
        engine = self.engine(data.get("engine", "local"))
        raw_steps = data.get("steps") if isinstance(data.get("steps"), list) else []
        steps = self.steps(kind, raw_steps)
        base = path.parent
        source = self.source(data.get("source"), base) if kind == "ingest" else None
        raw_sinks = data.get("sinks") if kind == "ingest" and isinstance(data.get("sinks"), list) else []
        sinks = [s for i, raw in enumerate(raw_sinks) if (s := self.sink(raw, ("sinks", i), base))]
        if header is None:
            return None
        p = Pipeline(kind=kind, name=header.name, version=str(header.version), description=header.description,
                     engine=engine or EngineConfig(), steps=steps, path=path, located=self.located)
        if isinstance(header, IngestHeader):
            p.source, p.sinks, p.batch, p.retry = source, sinks, header.batch, header.retry
            # SIE_DLQ_DIR: where a read-only pipelines folder (a ConfigMap mount) keeps its dead letters.
            dlq_dir = Path(self.env["SIE_DLQ_DIR"]) if self.env.get("SIE_DLQ_DIR") else base / ".sie" / "dlq"
            p.dlq = _local(header.dlq, base) if header.dlq else dlq_dir / f"{p.name}.jsonl"
        else:
            p.input, p.deadline_ms = header.input, header.deadline_ms
        self.step_rules(p, base)
        return p

    def secrets(self, node: Any, path: tuple) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                if key in SECRET_KEYS and value is not None and not is_secret_reference(value):
                    self.fail((*path, key), "a secret: give it as an ${ENV_VAR} reference, never a literal value")
                else:
                    self.secrets(value, (*path, key))
        elif isinstance(node, list):
            for i, item in enumerate(node):
                self.secrets(item, (*path, i))

    def resolve(self, value: Any, path: tuple) -> Any:
        """${VAR} and ${VAR:-default} references replaced from the environment (strings inside mappings and
        lists too)."""
        if isinstance(value, Mapping):
            return {k: self.resolve(v, (*path, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v, (*path, i)) for i, v in enumerate(value)]
        if not isinstance(value, str):
            return value

        def missing(name: str, start: int) -> str:
            if self.strict_env:
                self.fail(path, f"references ${{{name}}}, but the environment variable {name} is not set")
            # A URL-typed field must still parse as one; its real value is checked when the variable is set.
            scheme = URL_SCHEMES.get(path[-1]) if path and start == 0 else None
            return f"{scheme}://unset-{name}" if scheme else f"unset-{name}"
        return expand_env(value, self.env, missing)

    def engine(self, raw: Any) -> EngineConfig | None:
        if raw is None or raw == "local":
            return EngineConfig()
        if isinstance(raw, str):
            raw = {"url": raw}
        resolved = self.resolve(raw, ("engine",)) if isinstance(raw, Mapping) else raw
        if not isinstance(resolved, Mapping):
            self.fail(("engine",), f"expected 'local', a server URL or a mapping with url, got {_kind(raw)}")
            return None
        return self.model(EngineConfig, resolved, ("engine",))

    def source(self, raw: Any, base: Path) -> FilesSource | ObjectStoreSource | RecordsSource | None:
        if not isinstance(raw, Mapping):
            self.fail(("source",), f"expected a mapping with type: {' | '.join(SOURCE_TYPES)}, got {_kind(raw)}")
            return None
        kind = raw.get("type", "files")
        if kind not in SOURCE_TYPES:
            self.fail(("source", "type"), f"expected one of {', '.join(map(repr, SOURCE_TYPES))}, got {kind!r}")
            return None
        cls = FilesSource if kind == "files" else RecordsSource if kind == "records" else ObjectStoreSource
        source = self.model(cls, self.resolve(raw, ("source",)), ("source",))
        if isinstance(source, FilesSource):
            source = source.model_copy(update={"root": str(_local(source.root, base))})
        return source

    def steps(self, kind: str, raw_steps: list[Any]) -> list[StepSpec]:
        registry = REGISTRIES[kind]
        other = REGISTRIES["query" if kind == "ingest" else "ingest"]
        out: list[StepSpec] = []
        for i, entry in enumerate(raw_steps):
            path: tuple = ("steps", i)
            if isinstance(entry, str):
                entry = {entry: None}
            if not isinstance(entry, Mapping) or len(entry) != 1:
                shown = f"{len(entry)} keys ({', '.join(map(str, entry))})" if isinstance(entry, Mapping) \
                    else _kind(entry)
                self.fail(path, f"a step is a mapping with exactly one key, the step name "
                                f"(one of {', '.join(registry)}); got {shown}")
                continue
            ((name, config),) = entry.items()
            if name not in registry:
                if name in other:
                    message = (f"'{name}' is a step of {'query' if kind == 'ingest' else 'ingest'} pipelines; "
                               f"this pipeline is kind: {kind} (steps: {', '.join(registry)})")
                else:
                    message = (f"unknown step '{name}'; valid steps: {', '.join(registry)}"
                               f"{_did_you_mean(name, registry)}")
                self.fail((*path, name), message, key=True)
                continue
            cls = step_class(kind, name)
            if isinstance(config, Mapping):  # ${VAR} in step settings (a model per environment); a nested
                # sink keeps its references: the connectors resolve those, secrets included
                config = {k: v if k in cls.config_class.sink_keys else self.resolve(v, (*path, name, k))
                          for k, v in config.items()}
            validated = self.model(cls.config_class, config, (*path, name))
            if validated is not None:
                out.append(StepSpec(name, validated, i, cls))
        return out

    def sink(self, raw: Any, path: tuple, base: Path) -> SinkSpec | None:
        from connectors.errors import ConnectorError
        from connectors.registry import load_config

        if not isinstance(raw, Mapping):
            self.fail(path, f"expected a sink config mapping (type, collection, ...), got {_kind(raw)}")
            return None
        raw = _absolute_locations(dict(raw), base)
        env, checked = dict(self.env), raw
        if not self.strict_env:  # placeholders as in `resolve`; secrets stay references (the connectors insist)
            checked = {k: v if k in SECRET_KEYS else self.resolve(v, (*path, k)) for k, v in raw.items()}
            env.update({m: f"unset-{m}" for m in env_names(canonical_json(checked)) if m not in env})
        try:
            load_config(checked, env)
        except ConnectorError as e:
            for part in re.split(r"; (?=sink\b)", e.message):
                m = re.match(r"^sink((?:\.[\w-]+)*)(?::\s*| )(.*)$", part, re.S)
                keys = tuple(x for x in (m.group(1) if m else "").split(".") if x)
                reason = m.group(2) if m else part
                self.fail((*path, *keys), reason, key="unknown option" in reason)
            return None
        identity = {k: v for k, v in raw.items() if k not in ("batch_size", "api_key", "keep_previous", "drop_after_s")}
        return SinkSpec(raw, f"{raw['type']}:{raw['collection']}:{content_hash(identity)[7:19]}", path[-1])

    def step_rules(self, p: Pipeline, base: Path) -> None:
        """What the steps declare, checked for every step alike: where each may stand, the vectors they make,
        the sinks they search and the tokenizer they default to; then what each sink can store."""
        complete = len(p.steps) == len(self.located.data.get("steps") or [])
        if p.kind == "ingest":
            self.vector_rules(p, complete)
        for path, message in placement_problems(p.steps, step_classes(p.kind), complete):
            self.fail(path, message)
        if complete:  # what a failed step would have given them is unknown: their messages would be noise
            self.default_tokenizers(p)
            self.step_sinks(p, base)
        if p.kind == "ingest" and len(p.sinks) == len(self.located.data.get("sinks") or []):
            check_ingest_sinks(p, self.fail)

    def vector_rules(self, p: Pipeline, complete: bool) -> None:
        """An ingest pipeline's sinks store vectors: some step makes them, each name once."""
        if complete and not any(s.config.vector_outputs() for s in p.steps):
            self.fail(("steps",), f"an ingest pipeline needs {vector_makers(p.kind, article=True)}: sinks store "
                                  "vectors")
        names: dict[str, int] = {}
        for s in p.steps:
            for vector, output in s.config.vector_outputs().items():
                if vector in names:
                    self.fail(("steps", s.index, s.name, output.field),
                              f"vector name {vector!r} is also made by steps[{names[vector]}]")
                names[vector] = s.index

    def default_tokenizers(self, p: Pipeline) -> None:
        """A step's unset tokenizer is the model of the pipeline's first step that makes vectors with one."""
        default = next((e[1] for s in p.steps if (e := s.config.encoder())), None)
        for step in list(p.steps):
            key = step.config.tokenizer_default_key()
            if key is None:
                continue
            if default is None:
                makers = vector_makers(p.kind, with_model=True)
                self.fail(("steps", step.index, step.name), f"needs {key}: (a model name); there is no {makers} "
                                                            "to take it from")
                continue
            p.steps[p.steps.index(step)] = replace(step, config=step.config.model_copy(update={key: default}))

    def step_sinks(self, p: Pipeline, base: Path) -> None:
        """Each sink a step holds, validated by its connector (locations made absolute); then whether the
        vectors a step searches it with are made before it, and whether that sink can search them."""
        for step in list(p.steps):
            resolved: dict[str, Any] = {}
            for key in step.config.sink_keys:
                sink = self.sink(getattr(step.config, key), ("steps", step.index, step.name, key), base)
                if sink is not None:
                    resolved[key] = sink.raw
            if len(resolved) != len(step.config.sink_keys):
                continue
            if resolved:
                step = replace(step, config=step.config.model_copy(update=resolved))
                p.steps[next(i for i, s in enumerate(p.steps) if s.index == step.index)] = step
            if step.config.vector_search() is not None:
                check_search_sink(p, step, self.fail)


def _local(value: str, base: Path) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else (base / path).resolve()


def _absolute_locations(raw: dict[str, Any], base: Path) -> dict[str, Any]:
    """Embedded databases' folders are relative to the pipeline file, not to where `sie` was started."""
    for key in ("path", "uri"):
        value = raw.get(key)
        if isinstance(value, str) and "://" not in value and "${" not in value and value != ":memory:":
            raw[key] = str(_local(value, base))
    return raw


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    names = {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "a number",
             float: "a number"}
    shown = repr(value) if not isinstance(value, (dict, list)) else ""
    return f"{names.get(type(value), type(value).__name__)} {shown}".strip()


def _did_you_mean(word: str, options: Any) -> str:
    """'; did you mean X?' for the nearest option by edits (a swap of two letters is one edit)."""
    word = str(word)
    scored = sorted((_edits(word.lower(), str(o).lower()), abs(len(str(o)) - len(word)),
                     -difflib.SequenceMatcher(None, word, str(o)).ratio(), str(o)) for o in options)
    if scored and scored[0][0] <= max(1, len(word) // 3):
        return f"; did you mean '{scored[0][3]}'?"
    return ""


def _edits(a: str, b: str) -> int:
    """Optimal-string-alignment distance: insertions, deletions, substitutions, adjacent swaps."""
    d = [[max(i, j) if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[len(a)][len(b)]


def explain(err: dict[str, Any], cls: type[BaseModel], loc: tuple) -> str:
    """A pydantic error as what was expected and what was given."""
    kind, value = err["type"], err.get("input")
    if kind == "extra_forbidden":
        owner = _owner(cls, loc[:-1])
        valid = sorted(owner.model_fields) if owner else []
        return f"unknown key; valid keys: {', '.join(valid)}{_did_you_mean(loc[-1], valid)}"
    if kind == "missing":
        owner = _owner(cls, loc[:-1])
        info = owner.model_fields.get(str(loc[-1])) if owner else None
        hint = info.description.rstrip(".") if info is not None and info.description else ""
        return f"required key is missing: {hint[0].lower()}{hint[1:]}" if hint else "required key is missing"
    message = err["msg"]
    if message.startswith("Value error, "):
        return message.removeprefix("Value error, ")
    if kind == "too_short":
        return f"expected at least {err['ctx']['min_length']} item(s), got {len(value) if value else 'none'}"
    if kind == "too_long":
        return f"expected at most {err['ctx']['max_length']} item(s), got {len(value)}"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return f"expected an integer, got {_kind(value)}"
    if kind in ("float_parsing", "float_type"):
        return f"expected a number, got {_kind(value)}"
    if kind in ("bool_parsing", "bool_type"):
        return f"expected true or false, got {_kind(value)}"
    message = message.replace("a valid ", "a ")
    message = message.replace("Input should be", "expected").replace("input should be", "expected")
    if message.startswith("Field required"):
        return "required key is missing"
    return f"{message[0].lower()}{message[1:]}, got {_kind(value)}"


def _owner(cls: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The model class that holds the field at `loc` (for listing valid keys)."""
    current: Any = cls
    for part in loc:
        if isinstance(part, int) or not (isinstance(current, type) and issubclass(current, BaseModel)):
            continue
        info = current.model_fields.get(part)
        if info is None:
            return None
        current = _model_in(info.annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _model_in(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_in(arg)
        if found is not None:
            return found
    return None
