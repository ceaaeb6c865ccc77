"""Ingest the handbook into Weaviate and ask it a question — when WEAVIATE_URL names a server.

No Weaviate server can run on the machines this project is tested on (no binary in any reachable
registry, no Docker engine), so without WEAVIATE_URL this says so and exits 0. With Docker elsewhere:
    docker run -p 8080:8080 -p 50051:50051 cr.weaviate.io/semitechnologies/weaviate:1.30.0
    WEAVIATE_URL=http://127.0.0.1:8080 python examples/weaviate/run.py
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SIE = str(Path(sys.executable).parent / "sie")


def main() -> None:
    if not os.environ.get("WEAVIATE_URL"):
        print("WEAVIATE_URL is not set: this example needs a Weaviate server, e.g. "
              "`docker run -p 8080:8080 -p 50051:50051 cr.weaviate.io/semitechnologies/weaviate:1.30.0` "
              "then WEAVIATE_URL=http://127.0.0.1:8080. Nothing was run.")
        return
    subprocess.run([SIE, "run", str(HERE / "pipeline.yaml"), "--progress", "none"], check=True)
    subprocess.run([SIE, "query", str(HERE / "query.yaml"), "Who covers the shared Kubernetes clusters?"],
                   check=True)


if __name__ == "__main__":
    main()
