"""Where documents come from: files under a root (.txt/.md/.rst, and .pdf/.html/.docx read by
pipelines/documents.py: one document per file; .jsonl/.csv/.parquet: one document per row), objects in a
bucket read by the same rules (`Reader`, which pipelines/objects.py:ObjectSource shares), or records posted
with a run request.

A document's id is its source id: the file's path relative to the root, or `path#row-id` for a row (the
`id_field` value, else the 1-based line/row number). Its hash covers its text and metadata, so an edit
anywhere in it is seen. Files are never read outside the root: patterns cannot hold `..`, and a path
that is or passes through a symlink, or resolves outside the root, is refused. So is a file over
`max_file_bytes`, one that is not text in `encoding` (or whose bytes are not its suffix's format), a
document its parser refuses (no text layer, encrypted, corrupt), one that cannot be read (permissions), a folder that
cannot be listed, and a row without an id or text. Each refusal is a `Refusal` (path + reason) the run
counts and lists; its sources are protected from `sync_deletions` (`protects`): refused is not vanished.
A shard owns the sources whose id hashes to its index, so N indexed jobs split any corpus deterministically;
a refused file is reported by the shard that owns its path.
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import hashlib
import io
import json
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from connectors.ids import content_hash
from connectors.metadata import metadata_problem
from pipelines.documents import DOCUMENT_SUFFIXES, parse, text_problem, universal_newlines
from pipelines.errors import SourceError
from pipelines.spec import FilesSource, RecordsSource, _ReadRules

TEXT_SUFFIXES = frozenset({".txt", ".md", ".markdown", ".rst"})
JSONL_SUFFIXES = frozenset({".jsonl", ".ndjson"})
TABLE_SUFFIXES = frozenset({".csv", ".parquet"}) | JSONL_SUFFIXES
WHOLE_FILE_SUFFIXES = TEXT_SUFFIXES | DOCUMENT_SUFFIXES   # one document per file
MAX_ID_CHARS = 512


@dataclass(slots=True)
class Document:
    id: str
    text: str
    metadata: dict[str, Any]
    hash: str = ""
    origin: str | None = None   # the file or object it was read from (not hashed: the id and path say it)

    def __post_init__(self) -> None:
        if not self.hash:
            self.hash = content_hash({"text": self.text, "metadata": self.metadata})


@dataclass(frozen=True)
class Shard:
    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str) -> Shard:
        """'2/8' -> the third of eight shards."""
        try:
            index, count = (int(x) for x in text.split("/"))
        except ValueError:
            raise SourceError(f"shard: expected INDEX/COUNT such as 0/4, got {text!r}", field="shard") from None
        if count < 1 or not 0 <= index < count:
            raise SourceError(f"shard: index must be in 0..{count - 1} and count >= 1, got {text!r}", field="shard")
        return cls(index, count)

    def owns(self, source_id: str) -> bool:
        if self.count == 1:
            return True
        digest = hashlib.sha256(source_id.encode("utf-8")).digest()
        return int.from_bytes(digest[:8], "big") % self.count == self.index


@dataclass(frozen=True, slots=True)
class Refusal:
    """A file, row or folder the source rules would not read, and why (paths relative to the root)."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass
class Reader:
    """The rules every source of named files shares, local or in an object store: which suffixes are read and
    how (one document per text or PDF/HTML/DOCX file, one per table row), `max_file_bytes`, and refusals with
    their reasons, which protect the refused sources from `sync_deletions`. A subclass lists names and opens
    their bytes: FileSource here, pipelines/objects.py:ObjectSource for buckets."""

    config: _ReadRules
    shard: Shard = Shard()
    on_refused: Callable[[Refusal], None] | None = None
    refused: list[Refusal] = field(default_factory=list)   # this shard's, in the order found
    unsupported: int = 0
    _kept: dict[str, str] = field(default_factory=dict)           # refused files / row ids -> why: not vanished
    _kept_folders: dict[str, str] = field(default_factory=dict)   # folders that could not be listed ("" = the root)

    def protects(self, source_id: str) -> bool:
        """True when `source_id` may exist but was refused this time, so it must not look deleted."""
        return self.refusal_of(source_id) is not None

    def refusal_of(self, source_id: str) -> str | None:
        """Why `source_id` was not read this time (its file, row or folder was refused), or None."""
        if source_id in self._kept:
            return self._kept[source_id]
        return next((why for k, why in self._kept.items() if source_id.startswith(f"{k}#")), None) or next(
            (why for k, why in self._kept_folders.items() if source_id.startswith(f"{k}/" if k else "")), None)

    def _refuse(self, path: str, reason: str, source_id: str | None = None, folder: bool = False) -> None:
        key = path if source_id is None else source_id
        (self._kept_folders if folder else self._kept).setdefault(key, reason)
        if self.shard.owns(key):
            refusal = Refusal(path, reason)
            self.refused.append(refusal)
            if self.on_refused is not None:
                self.on_refused(refusal)

    def readable(self, name: str) -> bool:
        """A suffix some reader reads; other names are counted as `unsupported`, neither read nor refused."""
        if Path(name).suffix.lower() in WHOLE_FILE_SUFFIXES | TABLE_SUFFIXES:
            return True
        self.unsupported += 1
        return False

    def _read(self, rel: str, size: int, open_bytes: Callable[[], BinaryIO],
              origin: str | None = None) -> Iterator[Document]:
        """The documents of one file or object `rel` of `size` bytes; what cannot be read becomes a refusal.
        `open_bytes` opens its content (an OSError from it is 'cannot be read: ...')."""
        suffix = Path(rel).suffix.lower()
        if suffix in WHOLE_FILE_SUFFIXES and not self.shard.owns(rel):
            return  # decided before reading: a shard reads only its own whole-file sources
        rows = 0  # rows yielded from a table file before a failure
        try:
            if size > self.config.max_file_bytes:
                self._refuse(rel, f"{size} bytes exceeds source.max_file_bytes ({self.config.max_file_bytes})")
                return
            if suffix in TEXT_SUFFIXES:
                yield Document(rel, self._text(_bytes(open_bytes), suffix), self._metadata(rel), origin=origin)
            elif suffix in DOCUMENT_SUFFIXES:
                parsed = parse(_bytes(open_bytes), suffix, rel)
                yield Document(rel, parsed.text, {**parsed.metadata, **self._metadata(rel)}, origin=origin)
            else:
                for doc in self._rows(open_bytes, rel, suffix):
                    rows += 1
                    doc.origin = origin
                    yield doc
        except UnicodeDecodeError as e:
            # A table is decoded as it streams: only the rows yielded before the failure are known.
            where = f"; {rows} rows were read before it, the rest was not" if suffix in TABLE_SUFFIXES \
                else f": byte 0x{e.object[e.start]:02x} at offset {e.start}"
            self._refuse(rel, f"not {self.config.encoding} text (source.encoding){where}")
        except OSError as e:
            self._refuse(rel, f"cannot be read: {_os_reason(e)}")
        except (SourceError, ValueError) as e:  # DocumentRefused included: the parser's reason
            self._refuse(rel, getattr(e, "message", None) or str(e))
        except ImportError as e:
            self._refuse(rel, f"{suffix} files need the documents extra (pip install 'sie[documents]'): {e}")

    def _metadata(self, rel: str) -> dict[str, Any]:
        """What every document of `rel` carries besides what its parser found."""
        return {"path": rel}

    def _text(self, data: bytes, suffix: str) -> str:
        problem = text_problem(data, suffix)
        if problem:
            raise SourceError(problem)
        return universal_newlines(data.decode(self.config.encoding))

    def _rows(self, open_bytes: Callable[[], BinaryIO], rel: str, suffix: str) -> Iterator[Document]:
        c = self.config
        for number, row in _table_rows(open_bytes, suffix, c):
            if not isinstance(row, dict):
                self._refuse(rel, f"row {number}: expected an object per row, got {type(row).__name__}")
                continue
            key = row.get(c.id_field) if c.id_field else number
            if key is None or key == "":
                self._refuse(rel, f"row {number}: no value in id_field {c.id_field!r}")
                continue
            source_id = f"{rel}#{key}"
            if not self.shard.owns(source_id):
                continue
            text = row.get(c.text_field)
            if not isinstance(text, str):
                self._refuse(rel, f"row {number}: text_field {c.text_field!r} is "
                                  f"{'missing' if text is None else type(text).__name__}, expected text", source_id)
                continue
            keep = c.metadata_fields if c.metadata_fields is not None else \
                [k for k in row if k not in (c.text_field, c.id_field)]
            metadata = {_key(k): _jsonable(row.get(k)) for k in keep if k in row}
            yield Document(source_id, text, {**metadata, **self._metadata(rel)})


@dataclass
class FileSource(Reader):
    """Files under a local root."""

    config: FilesSource

    def paths(self) -> list[Path]:
        root = Path(self.config.root)
        if not root.is_dir():
            raise SourceError(f"source.root: {root} is not a folder", field="source.root")
        real_root = root.resolve()
        self._unlisted_folders(root)
        found: dict[str, Path] = {}
        refused: dict[str, str] = {}
        for pattern in self.config.glob:
            for path in root.glob(pattern):
                rel = path.relative_to(root)
                key = rel.as_posix()
                if key in found or key in refused:
                    continue  # matched by an earlier pattern
                if any((root.joinpath(*rel.parts[: k + 1])).is_symlink() for k in range(len(rel.parts))):
                    refused[key] = "a symlink (sources never follow links)"
                elif not path.is_file():
                    continue
                elif not path.resolve().is_relative_to(real_root):
                    refused[key] = f"outside the root {root}"
                elif self.readable(key):
                    found[key] = path
        for key in sorted(refused):  # in a stable order, as the sources are
            self._refuse(key, refused[key])
        return [found[k] for k in sorted(found)]

    def _unlisted_folders(self, root: Path) -> None:
        """Folders glob would silently skip (no permission to list them): their files did not vanish."""
        def refuse(error: OSError) -> None:
            rel = Path(error.filename).relative_to(root).as_posix() if error.filename else "."
            self._refuse(rel, f"a folder that cannot be listed: {_os_reason(error)}",
                         source_id="" if rel == "." else rel, folder=True)
        for _ in os.walk(root, onerror=refuse):
            pass

    def documents(self, paths: list[Path] | None = None) -> Iterator[Document]:
        root = Path(self.config.root)
        for path in self.paths() if paths is None else paths:
            rel = path.relative_to(root).as_posix()
            try:
                size = path.stat().st_size
            except OSError as e:
                self._refuse(rel, f"cannot be read: {_os_reason(e)}")
                continue
            yield from self._read(rel, size, lambda path=path: path.open("rb"))


def _bytes(open_bytes: Callable[[], BinaryIO]) -> bytes:
    with open_bytes() as f:
        return f.read()


def _table_rows(open_bytes: Callable[[], BinaryIO], suffix: str, c: _ReadRules) -> Iterator[tuple[int, Any]]:
    if suffix in JSONL_SUFFIXES:
        with io.TextIOWrapper(open_bytes(), encoding=c.encoding) as f:
            for number, line in enumerate(f, 1):
                if line.strip():
                    try:
                        yield number, json.loads(line)
                    except json.JSONDecodeError as e:
                        raise SourceError(f"line {number}: not JSON: {e.msg}") from None
    elif suffix == ".csv":
        with io.TextIOWrapper(open_bytes(), encoding=c.encoding, newline="") as f:
            yield from enumerate(csv.DictReader(f, delimiter=c.csv_delimiter), 1)
    else:
        import pyarrow.parquet as pq

        number = 0
        with open_bytes() as f:
            for batch in pq.ParquetFile(f).iter_batches(batch_size=1024):
                for row in batch.to_pylist():
                    number += 1
                    yield number, row


def _os_reason(error: OSError) -> str:
    return (error.strerror or type(error).__name__).lower()


def _key(name: str) -> str:
    # '.' separates paths in filters and `_sie_` is reserved: column names are made safe, not refused.
    name = str(name).replace(".", "_") or "_"
    return "x" + name if name.startswith("_sie_") else name


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (dt.date, dt.datetime, dt.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, dict):
        return {_key(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item"):  # numpy scalars
        return _jsonable(value.item())
    if isinstance(value, bytes):
        return None
    return str(value)


def posted_documents(config: RecordsSource, records: Any, shard: Shard = Shard()) -> list[Document]:
    """Records from a run request as documents; any invalid record fails the whole request (400)."""
    if not isinstance(records, list):
        raise SourceError(f"records: expected a list, got {type(records).__name__}", field="records")
    if len(records) > config.max_records:
        raise SourceError(f"records: {len(records)} records exceeds source.max_records ({config.max_records})",
                          field="records", code="payload_too_large")
    out, seen = [], set()
    for i, record in enumerate(records):
        where = f"records[{i}]"
        if not isinstance(record, dict):
            raise SourceError(f"{where}: expected an object with id, text, metadata", field=where)
        extra = set(record) - {"id", "text", "metadata"}
        if extra:
            raise SourceError(f"{where}.{sorted(extra)[0]}: unknown key; valid keys: id, metadata, text",
                              field=f"{where}.{sorted(extra)[0]}")
        rid, text, metadata = record.get("id"), record.get("text"), record.get("metadata") or {}
        if not isinstance(rid, str) or not 0 < len(rid) <= MAX_ID_CHARS:
            raise SourceError(f"{where}.id: expected a string of 1..{MAX_ID_CHARS} characters, got {rid!r}",
                              field=f"{where}.id")
        if rid in seen:
            raise SourceError(f"{where}.id: {rid!r} appears twice in this request", field=f"{where}.id")
        seen.add(rid)
        if not isinstance(text, str):
            raise SourceError(f"{where}.text: expected a string, got {type(text).__name__}", field=f"{where}.text")
        if len(text) > config.max_chars:
            raise SourceError(f"{where}.text: {len(text)} characters exceeds source.max_chars ({config.max_chars})",
                              field=f"{where}.text", code="payload_too_large")
        problem = metadata_problem(metadata) if isinstance(metadata, dict) else "metadata must be an object"
        reserved = next((k for k in metadata if str(k).startswith("_sie_")), None) if not problem else None
        if reserved is not None:
            problem = f"metadata key {reserved!r} is reserved (sie writes the _sie_* keys itself)"
        if problem:
            raise SourceError(f"{where}.{problem}", field=f"{where}.metadata")
        if shard.owns(rid):
            out.append(Document(rid, text, metadata))
    return out
