"""The dead-letter file: one JSON line per (sink, source) that still failed after the retries, with the
reason and the document itself, so `sie run --retry-dlq` can replay it without the original input.

Lines are appended and flushed one by one; a line cut short by a crash is ignored when read. Rewriting
(after a replay) goes through a temporary file and a rename, so the file is always whole.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any


class DeadLetters:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def append(self, entries: Iterable[dict[str, Any]]) -> int:
        lines = [json.dumps({"time": time.time(), **e}, ensure_ascii=False, sort_keys=True) + "\n" for e in entries]
        if not lines:
            return 0
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as f:
                for line in lines:
                    f.write(line)
                f.flush()
                os.fsync(f.fileno())
        return len(lines)

    def read(self) -> list[dict[str, Any]]:
        with self._lock:
            if not self.path.exists():
                return []
            out = []
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue  # the tail of a write cut short by a crash
                if isinstance(entry, dict) and "source" in entry and "sink" in entry:
                    out.append(entry)
            return out

    def rewrite(self, entries: list[dict[str, Any]]) -> None:
        with self._lock:
            if not entries:
                self.path.unlink(missing_ok=True)
                return
            tmp = self.path.with_suffix(self.path.suffix + ".tmp")
            with tmp.open("w", encoding="utf-8") as f:
                for e in entries:
                    f.write(json.dumps(e, ensure_ascii=False, sort_keys=True) + "\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
