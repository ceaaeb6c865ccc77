"""Ingest the handbook into a Chroma server with `sie run`, then query it from plain Chroma code through
sie's Chroma embedding function. Uses CHROMA_URL, or starts `chroma run` on a free port for the demo."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import chromadb
import httpx

HERE = Path(__file__).resolve().parent
SIE = str(Path(sys.executable).parent / "sie")
QUESTION = "What is the hotel limit in London?"


def start_chroma() -> tuple[str, subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = tempfile.mkdtemp(prefix="chroma-example-")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "chroma"), "run", "--path", data, "--host",
                             "127.0.0.1", "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            httpx.get(f"{url}/api/v2/heartbeat", timeout=1).raise_for_status()
            return url, proc, data
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit("chroma run did not start")


def main() -> None:
    proc, store = None, []
    url = os.environ.get("CHROMA_URL")
    if not url:
        url, proc, data = start_chroma()
        store = ["--store", f"{data}/sie-runs.sqlite"]  # a fresh server: its own run store, not the shared one
        print(f"started a Chroma server at {url} (set CHROMA_URL to use your own)")
    try:
        subprocess.run([SIE, "run", str(HERE / "pipeline.yaml"), "--progress", "none", *store], check=True,
                       env={**os.environ, "CHROMA_URL": url})
        from sie.integrations.chroma import SieEmbeddingFunction

        host, port = url.removeprefix("http://").split(":")
        client = chromadb.HttpClient(host=host, port=int(port))
        # Plain Chroma code: the collection embeds the query text with the same model sie ingested with.
        collection = client.get_collection("handbook", embedding_function=SieEmbeddingFunction("all-MiniLM-L6-v2"))
        result = collection.query(query_texts=[QUESTION], n_results=3)
        print(f"collection 'handbook' holds {collection.count()} chunks")
        print(f"Q: {QUESTION}")
        for rank, (doc, meta, dist) in enumerate(zip(result["documents"][0], result["metadatas"][0],
                                                     result["distances"][0]), 1):
            print(f"{rank}. {meta['source']} (distance {dist:.3f}): {' '.join(doc.split())[:90]}...")
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
