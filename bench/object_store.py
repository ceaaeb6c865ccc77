"""Why the bucket source reads through obstore: list and download N objects from one S3 API server (moto's, on
loopback) with obstore and, as the anchor in the same run, with s3fs (not a dependency: `pip install s3fs` to
compare), in alternating rounds; medians. The last line is one JSON object.

    .venv/bin/python bench/object_store.py --objects 300 --bytes 20000 --rounds 3

The server is the same for both and does most of the work, so the ratios understate the clients' difference.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}


def start_moto() -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, **CREDENTIALS})
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=1).close()
            return proc, url
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("moto server did not start")


def with_obstore(url: str, bucket: str) -> tuple[float, float, int]:
    import obstore
    from obstore.store import S3Store

    store = S3Store(bucket, config={"endpoint": url, "region": "us-east-1"}, client_options={"allow_http": True})
    t = time.perf_counter()
    keys = [m["path"] for batch in obstore.list(store, chunk_size=1000) for m in batch]
    listed = time.perf_counter() - t
    t = time.perf_counter()
    size = sum(len(bytes(obstore.get(store, k).bytes())) for k in keys)
    return listed, time.perf_counter() - t, size


def with_s3fs(url: str, bucket: str) -> tuple[float, float, int]:
    import s3fs

    # A fresh instance without its listing cache: otherwise every round after the first lists from memory.
    fs = s3fs.S3FileSystem(endpoint_url=url, skip_instance_cache=True, use_listings_cache=False)
    t = time.perf_counter()
    keys = [m["name"] for m in fs.ls(bucket, detail=True)]
    listed = time.perf_counter() - t
    t = time.perf_counter()
    size = sum(len(fs.cat_file(k)) for k in keys)
    return listed, time.perf_counter() - t, size


def import_seconds(module: str) -> float:
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"], capture_output=True,
                         text=True, check=True)
    last = [line for line in out.stderr.splitlines() if line.rstrip().endswith(f"| {module}")][-1]
    return int(last.split("|")[1]) / 1e6   # cumulative microseconds of the top-level module


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--objects", type=int, default=300)
    ap.add_argument("--bytes", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    os.environ.update(CREDENTIALS)
    proc, url = start_moto()
    try:
        import boto3

        client = boto3.client("s3", endpoint_url=url, region_name="us-east-1")
        client.create_bucket(Bucket="bench")
        for i in range(args.objects):
            client.put_object(Bucket="bench", Key=f"o{i:05d}.txt", Body=b"x" * args.bytes)
        try:
            import s3fs  # noqa: F401
            clients = {"obstore": with_obstore, "s3fs": with_s3fs}
        except ImportError:
            clients = {"obstore": with_obstore}
        runs: dict[str, list[tuple[float, float, int]]] = {name: [] for name in clients}
        for _ in range(args.rounds):
            for name, read in clients.items():
                runs[name].append(read(url, "bench"))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    result: dict = {"objects": args.objects, "bytes_each": args.bytes, "rounds": args.rounds}
    for name, r in runs.items():
        assert all(size == args.objects * args.bytes for _, _, size in r), name
        result[name] = {"list_s": round(statistics.median(x[0] for x in r), 4),
                        "download_s": round(statistics.median(x[1] for x in r), 4),
                        "import_s": round(import_seconds(name), 4)}
    if "s3fs" in result:
        result["list_ratio"] = round(result["s3fs"]["list_s"] / result["obstore"]["list_s"], 2)
        result["download_ratio"] = round(result["s3fs"]["download_s"] / result["obstore"]["download_s"], 2)
    else:
        result["note"] = "s3fs is not installed: no anchor in this run"
    print(json.dumps(result))


if __name__ == "__main__":
    main()
