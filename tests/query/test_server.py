"""`d2lv serve` through a real HTTP client: answers, bad input, concurrency, withdrawals, a new version."""

from __future__ import annotations

import io
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests
import skimage.data
import uvicorn
from PIL import Image
from workflow.test_workflow import snakemake

from d2lv.io import manifest
from d2lv.query import collection
from d2lv.query.server import LiveCollection, ServeSettings, create_app

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving(live: LiveCollection, settings: ServeSettings) -> Iterator[str]:
    """The app on a real socket, in a thread; yields its base URL."""
    server = uvicorn.Server(uvicorn.Config(create_app(live, settings), host="127.0.0.1", port=settings.port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started:
        assert time.time() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{settings.port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def service(built) -> Iterator[tuple[str, LiveCollection]]:
    live = LiveCollection(built.out)
    with serving(live, ServeSettings(port=_free_port(), workers=2, max_body_bytes=3_000_000)) as url:
        yield url, live


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def test_health_names_the_collection(service, built):
    url, _ = service
    health = requests.get(f"{url}/health", timeout=30).json()
    assert health["status"] == "ok" and health["version"] == collection.read_version(built.out)
    assert health["references"] == 8 and health["withdrawn"] == 0


def test_match_answers_the_workflows_matches_body_or_multipart(service, built):
    url, _ = service
    path = sorted(built.queries.iterdir())[0]
    expected = pd.read_csv(built.out / "matches.csv", dtype={"query_id": str, "reference_id": str})
    expected = expected[expected.query_id == path.stem]
    raw = requests.post(f"{url}/match?id={path.stem}", data=path.read_bytes(), timeout=60).json()
    form = requests.post(f"{url}/match?id={path.stem}", files={"image": path.read_bytes()}, timeout=60).json()
    for answer in (raw, form):
        assert [m["reference_id"] for m in answer["matches"]] == list(expected.reference_id)
        assert [m["score"] for m in answer["matches"]] == pytest.approx(list(expected.score), rel=1e-9)
        assert answer["query_id"] == path.stem and answer["version"] == collection.read_version(built.out)


def test_draw_answers_a_png_of_the_correspondences(service, built):
    url, _ = service
    path = sorted(built.queries.iterdir())[0]
    drawn = requests.post(f"{url}/match?draw=1", data=path.read_bytes(), timeout=60)
    assert drawn.status_code == 200 and drawn.headers["content-type"] == "image/png"
    picture = Image.open(io.BytesIO(drawn.content))
    assert picture.width > 300 and picture.height > 200


def test_compare_answers_the_pairs_evidence(service, built):
    url, _ = service
    truth = pd.read_csv(built.queries.parent.parent / "demo" / "ground_truth.csv", keep_default_na=False)
    copy = truth[truth.reference_id != ""].iloc[0]
    query = (built.queries / f"{copy.query_id}.jpg").read_bytes()
    source = next(built.references.glob(f"{copy.reference_id}.*")).read_bytes()
    pair = requests.post(f"{url}/compare", files={"a": query, "b": source}, timeout=60).json()
    assert pair["verified"] and pair["score"] > 0.5 and pair["evidence"]["verification"]["local"]["n_inliers"] >= 10
    drawn = requests.post(f"{url}/compare?draw=1", files={"a": query, "b": source}, timeout=60)
    assert drawn.headers["content-type"] == "image/png"
    missing = requests.post(f"{url}/compare", files={"a": query}, timeout=60)
    assert missing.status_code == 400 and "'b'" in missing.json()["error"]


def test_bad_input_gets_a_4xx_that_says_why_and_the_service_goes_on(service, built):
    url, _ = service
    good = sorted(built.queries.iterdir())[0].read_bytes()
    bomb = io.BytesIO()
    Image.new("1", (9500, 9500)).save(bomb, format="PNG")  # 90 megapixels in a few kilobytes
    cases = {
        "not an image": (b"hello, world", 400, "unreadable image"),
        "truncated": (good[: len(good) // 3], 400, "unreadable image"),
        "empty": (b"", 400, "empty file"),
        "bomb": (bomb.getvalue(), 413, "decompression bomb"),
        "1x1": (_png(np.zeros((1, 1, 3), np.uint8)), 422, "too small"),
        "too large a body": (b"\0" * 3_500_000, 413, "at most"),
    }
    for name, (body, status, words) in cases.items():
        answer = requests.post(f"{url}/match", data=body, timeout=60)
        assert answer.status_code == status, (name, answer.text)
        assert words in answer.json()["error"], (name, answer.json())
        assert requests.post(f"{url}/match", data=good, timeout=60).json()["matches"], name


def test_concurrent_clients_all_get_answers(service, built):
    url, _ = service
    bodies = [p.read_bytes() for p in sorted(built.queries.iterdir())[:8]]

    def client(body: bytes) -> list[int]:
        return [requests.post(f"{url}/match", data=body, timeout=120).status_code for _ in range(2)]

    with ThreadPoolExecutor(8) as pool:
        statuses = [s for result in pool.map(client, bodies) for s in result]
    assert statuses == [200] * 16


def test_a_withdrawn_reference_is_never_returned_and_comes_back_when_listed_no_more(service, built):
    url, _ = service
    body = sorted(built.queries.iterdir())[0].read_bytes()
    best = requests.post(f"{url}/match", data=body, timeout=60).json()["matches"][0]["reference_id"]
    withdrawn = built.out / collection.WITHDRAWN_FILE
    withdrawn.write_text(f"# a takedown\n{best}\n")
    try:
        answer = requests.post(f"{url}/match?all=1", data=body, timeout=60).json()
        assert best not in {m["reference_id"] for m in answer["matches"]}
        assert requests.get(f"{url}/health", timeout=30).json()["withdrawn"] == 1
    finally:
        withdrawn.unlink()
    time.sleep(0.01)
    assert requests.post(f"{url}/match", data=body, timeout=60).json()["matches"][0]["reference_id"] == best


def test_the_serving_benchmark_counts_errors_latency_and_memory(built):
    """`d2lv bench serve` on a few requests: its own server process, every answer a 200, RSS read at each count."""
    from d2lv.bench import serving

    load = serving.bench_serve(built.out, sorted(built.queries.iterdir())[:4], clients=2, requests_per_client=2,
                               memory_at=[2, 8], workers=2, progress=False)
    assert load.errors == 0 and 0 < load.median_s <= load.p95_s and set(load.rss_after_mb) == {2, 8}
    assert all(mb > 100 for mb in load.rss_after_mb.values())
    query = serving.bench_query(built.out, sorted(built.queries.iterdir())[:3], progress=False)
    assert query.compared == 3 and query.identical == 3 and query.median_s > query.pdq_median_s


def test_a_run_that_adds_a_reference_is_served_within_seconds(built):
    """While the workflow adds a reference, the service goes on answering on the old version; it serves the new
    one within seconds of collection.json changing, and finds a copy of the new reference. (Last: it changes the
    collection the other tests share.)"""
    photo = Path(skimage.data.__file__).parent / "motorcycle_right.png"
    shutil.copy(photo, built.references / "extra.png")
    assert manifest.shard_of("extra", manifest.num_shards(9, 4)) != 0  # not the shard the models are fitted on
    live = LiveCollection(built.out)
    old = live.current.version
    copy = Image.open(photo).convert("RGB")
    body = _png(np.asarray(copy.crop((20, 20, copy.width - 40, copy.height - 30)).resize((300, 220))))
    stop = threading.Event()
    with serving(live, ServeSettings(port=_free_port())) as url:
        threading.Thread(target=_watch, args=(live, stop), daemon=True).start()
        snakemake(built.work, *built.contract)
        changed = collection.collection_file(built.out).stat().st_mtime
        while requests.get(f"{url}/health", timeout=30).json()["version"] == old:
            assert time.time() < changed + 10, "the new version was not served within 10 s"
            time.sleep(0.2)
        answer = requests.post(f"{url}/match", data=body, timeout=60).json()
        stop.set()
    assert answer["matches"] and answer["matches"][0]["reference_id"] == "extra", answer["matches"][:2]


def _watch(live: LiveCollection, stop: threading.Event) -> None:
    """What `d2lv serve` does between requests: look for a new version."""
    while not stop.wait(0.5):
        live.refresh()
