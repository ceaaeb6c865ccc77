"""`python kill_at.py EVENT N DELAY_MS FILE`: run `sie run FILE --progress jsonl` in this process and
SIGKILL it right after the N-th `EVENT` (DELAY_MS later: inside whatever the runner does next).

A kill read off a pipe lands wherever the process happens to be by then (threads interleave events
differently each run); this one lands exactly between two steps of the write protocol (raise
high-water -> `begin` -> upsert -> `upserted` -> delete stale -> `deleted` -> commit -> `committed`),
or inside the next one."""

from __future__ import annotations

import os
import signal
import sys
import threading

from pipelines import progress


def main() -> None:
    target, n, delay_ms, file = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    emit = progress.JsonLines.__call__
    seen = 0
    lock = threading.Lock()

    def counting(self, event: str, data: dict) -> None:
        nonlocal seen
        emit(self, event, data)   # the event is printed first: the test sees what happened before the kill
        with lock:
            seen += event == target
            if event != target or seen != n:
                return
        if delay_ms <= 0:
            os.kill(os.getpid(), signal.SIGKILL)
        threading.Timer(delay_ms / 1000, os.kill, (os.getpid(), signal.SIGKILL)).start()

    progress.JsonLines.__call__ = counting
    from sie.cli import app

    app(args=["run", file, "--progress", "jsonl"])


if __name__ == "__main__":
    main()
