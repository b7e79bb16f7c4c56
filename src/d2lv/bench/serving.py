"""``d2lv bench query`` and ``d2lv bench serve``: one image's latency against a built collection, and the HTTP
service under concurrent clients, with its memory over many requests.

Both report seconds and ratios measured in the same run (against the PDQ hash of the same image, the cheapest
answer there is), as this machine's speed varies from one run to the next.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from d2lv.io.images import image_id, load_image
from d2lv.query import collection
from d2lv.query.matcher import Matcher


@dataclass(frozen=True)
class QueryLatency:
    queries: int
    startup_s: float
    median_s: float
    p95_s: float
    #: decoding and hashing the same image with PDQ, the cheapest answer there is
    pdq_median_s: float
    #: queries whose rows equal matches.parquet's in every column (where the collection's run matched them)
    identical: int
    compared: int


def bench_query(folder: str | os.PathLike, images: list[Path], progress: bool = True) -> QueryLatency:
    """Match each image alone after one start-up; compare its rows with the run's matches.parquet."""
    from d2lv.pdq import hashes

    started = time.perf_counter()
    matcher = Matcher(collection.read_collection(folder))
    startup = time.perf_counter() - started
    batch = pd.read_parquet(Path(folder) / "matches.parquet")
    batch_ids = set(batch.query_id)
    seconds, pdq_seconds, identical, compared = [], [], 0, 0
    for path in tqdm(images, desc="query", unit="img", disable=not progress):
        started = time.perf_counter()
        rgb = load_image(path, matcher.decode.max_pixels)
        decoded = time.perf_counter()
        answer = matcher.match(rgb, image_id(path))
        matched = time.perf_counter()
        hashes.hash_images(["pdq"], [rgb], progress=False)
        seconds.append(matched - started)  # decoding and matching, as `d2lv query` does for each image
        pdq_seconds.append(decoded - started + time.perf_counter() - matched)  # decoding and hashing
        if answer.query_id in batch_ids:
            compared += 1
            identical += same_rows(answer.pairs, batch[batch.query_id == answer.query_id])
    return QueryLatency(len(images), startup, float(np.median(seconds)), float(np.percentile(seconds, 95)),
                        float(np.median(pdq_seconds)), identical, compared)


def same_rows(mine: pd.DataFrame, theirs: pd.DataFrame) -> bool:
    """Every column of ``theirs`` equal in ``mine``, row by row (missing values equal, dtypes aside)."""
    mine, theirs = mine.reset_index(drop=True), theirs.reset_index(drop=True)
    if len(mine) != len(theirs):
        return False
    return all(x == y or (pd.isna(x) and pd.isna(y)) for column in theirs.columns
               for x, y in zip(mine[column], theirs[column]))


@dataclass(frozen=True)
class ServeLoad:
    clients: int
    requests_per_client: int
    errors: int
    median_s: float
    p95_s: float
    throughput_per_s: float
    startup_s: float
    rss_after_mb: dict[int, float]


def bench_serve(folder: str | os.PathLike, images: list[Path], clients: int, requests_per_client: int,
                memory_at: list[int], workers: int, progress: bool = True) -> ServeLoad:
    """Start ``d2lv serve`` in its own process and read its RSS after each count of requests of ``memory_at``:
    requests go one at a time up to the first count, then ``clients`` x ``requests_per_client`` at once (the
    latency figures), then one at a time again up to each further count."""
    import requests

    bodies = [path.read_bytes() for path in images]
    port = _free_port()
    started = time.perf_counter()
    server = subprocess.Popen([sys.executable, "-m", "d2lv.cli", "serve", "--quiet", "--collection", str(folder),
                               "--port", str(port), "--workers", str(workers)])
    url = f"http://127.0.0.1:{port}"
    sent, rss = 0, {}

    def send(until: int) -> None:
        nonlocal sent
        for _ in tqdm(range(sent, until), desc="requests", disable=not progress):
            requests.post(f"{url}/match", data=bodies[sent % len(bodies)], timeout=600).raise_for_status()
            sent += 1

    try:
        _wait_for(url, server)
        startup = time.perf_counter() - started
        targets = sorted(memory_at)
        send(targets[0] if targets else 0)
        if targets:
            rss[targets[0]] = _rss_mb(server.pid)
        results, wall = _concurrent_load(url, bodies, clients, requests_per_client)
        sent += len(results)
        for target in targets[1:]:
            send(target)
            rss[target] = _rss_mb(server.pid)
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(30)
    latencies = [seconds for _, seconds in results]
    return ServeLoad(clients, requests_per_client, sum(status != 200 for status, _ in results),
                     float(np.median(latencies)), float(np.percentile(latencies, 95)), len(results) / wall, startup,
                     rss)


def _concurrent_load(url: str, bodies: list[bytes], clients: int,
                     requests_per_client: int) -> tuple[list[tuple[int, float]], float]:
    """(status, seconds) of every request of ``clients`` concurrent clients, and the wall time of it all."""
    import requests

    def client(k: int) -> list[tuple[int, float]]:
        out = []
        for i in range(requests_per_client):
            begun = time.perf_counter()
            status = requests.post(f"{url}/match", data=bodies[(k * requests_per_client + i) % len(bodies)],
                                   timeout=600).status_code
            out.append((status, time.perf_counter() - begun))
        return out

    begun = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = [r for found in pool.map(client, range(clients)) for r in found]
    return results, time.perf_counter() - begun


def write_results(out: str | os.PathLike, name: str, result: object) -> Path:
    path = Path(out) / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(result), indent=1) + "\n")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(url: str, server: subprocess.Popen, timeout: float = 300) -> None:
    import requests

    deadline = time.time() + timeout
    while time.time() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"d2lv serve exited with status {server.returncode}")
        try:
            if requests.get(f"{url}/health", timeout=5).ok:
                return
        except requests.ConnectionError:
            time.sleep(0.2)
    raise TimeoutError(f"d2lv serve did not answer within {timeout} s")


def _rss_mb(pid: int) -> float:
    """The process' resident memory (Linux /proc), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")
