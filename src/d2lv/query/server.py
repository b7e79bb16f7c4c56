"""``d2lv serve``: a collection matched over HTTP (Starlette on uvicorn).

- ``POST /match``: an image (the request body, or the multipart field ``image``) -> its matches with the
  evidence of every branch (:func:`d2lv.query.answers.to_json`); ``?all=1`` every verified candidate;
  ``?draw=1`` a PNG of the best match's inlier correspondences instead.
- ``POST /compare``: two images (multipart fields ``a`` and ``b``) -> the pair's evidence and score, ``a``
  matched as a query against ``b`` as the only reference; ``?draw=1`` a PNG.
- ``GET /health``: the collection's version, its counts, when it was loaded.

The models and the index load once (:class:`LiveCollection`); matching runs in worker threads, at most
``workers`` at once. A new collection version (a run that added references rewrote ``collection.json``), or
SIGHUP, loads the new collection beside the old one and then swaps them: requests in flight finish on the
one they started with. Withdrawn reference ids (``withdrawn.txt``) are read again whenever the file changes.
Bad input (no image, a truncated or empty file, a decompression bomb, an image too small to match) gets a
4xx JSON error that says what is wrong, and the service goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import signal
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from d2lv.errors import InputError
from d2lv.io.images import ImageError, decode_image
from d2lv.query import answers, collection
from d2lv.query.matcher import QUERY_ID, Answer, Matcher

#: The smallest side of an image worth matching: SIFT and the detector see nothing in fewer pixels.
MIN_SIDE = 16


@dataclass(frozen=True)
class ServeSettings:
    host: str = "127.0.0.1"
    port: int = 8000
    #: requests matched at once
    workers: int = 2
    max_body_bytes: int = 20_000_000
    #: how often the version file and the withdrawn file are looked at
    poll_seconds: float = 2.0
    #: withdrawn ids file (None: the collection's withdrawn.txt)
    withdrawn: str | None = None


@dataclass(frozen=True)
class Loaded:
    """One version of the collection, loaded: what a request holds on to until it is answered."""

    matcher: Matcher
    loaded_at: float

    @property
    def version(self) -> str:
        return self.matcher.collection.version


class LiveCollection:
    """The collection being served; :meth:`refresh` swaps in a new version, whole, once it is loaded."""

    def __init__(self, folder: str | os.PathLike, withdrawn: str | os.PathLike | None = None, quiet: bool = True):
        self.folder = Path(folder)
        self.quiet = quiet
        self._withdrawn_path = Path(withdrawn) if withdrawn else None
        self._withdrawn: tuple[float | None, frozenset[str]] = (None, frozenset())
        self._refresh_lock = threading.Lock()
        self.current = self._load()

    def _load(self) -> Loaded:
        return Loaded(Matcher(collection.read_collection(self.folder), quiet=self.quiet), time.time())

    def refresh(self) -> bool:
        """Load the collection again if its version changed (True when it did); the old one keeps serving
        until the new one is ready, and keeps serving if the new one cannot be loaded (e.g. mid-run)."""
        if not self._refresh_lock.acquire(blocking=False):
            return False  # a reload is under way
        try:
            if collection.read_version(self.folder) in (None, self.current.version):
                return False
            try:
                loaded = self._load()
            except (InputError, OSError, RuntimeError) as err:
                print(f"d2lv serve: collection not reloaded, still serving {self.current.version}: {err}",
                      file=sys.stderr)
                return False
            self.current = loaded  # one assignment: a request sees the old collection or the new one
            print(f"d2lv serve: now serving collection {loaded.version} "
                  f"({loaded.matcher.collection.references} references)", file=sys.stderr)
            return True
        finally:
            self._refresh_lock.release()

    def withdrawn(self) -> frozenset[str]:
        """The withdrawn reference ids, read again when the file's time changes."""
        path = self._withdrawn_path or self.current.matcher.collection.withdrawn_file
        try:
            stamp = path.stat().st_mtime_ns
        except FileNotFoundError:
            stamp = None
        if stamp != self._withdrawn[0]:
            self._withdrawn = (stamp, collection.read_withdrawn(path))
        return self._withdrawn[1]


def create_app(live: LiveCollection, settings: ServeSettings) -> Starlette:
    """The HTTP application over ``live``."""
    # Its own threads, as many as workers: the same few threads match every request, so the memory each
    # thread's allocator keeps is paid once (a pool that hands work to ever other threads grows with it).
    workers = ThreadPoolExecutor(settings.workers, thread_name_prefix="match")

    async def run(function, *args):
        return await asyncio.get_running_loop().run_in_executor(workers, function, *args)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        workers.shutdown(wait=False)

    async def health(request: Request) -> JSONResponse:
        loaded = live.current
        built = loaded.matcher.collection
        return JSONResponse({"status": "ok", "version": built.version, "references": built.references,
                             "created": built.created, "withdrawn": len(live.withdrawn()),
                             "loaded_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(loaded.loaded_at))})

    async def match(request: Request) -> Response:
        loaded = live.current
        [image] = await _images(request, ("image",), settings, loaded.matcher.decode.max_pixels, run)
        query_id = request.query_params.get("id", QUERY_ID)
        answer = (await run(loaded.matcher.match, image, query_id)).without(live.withdrawn())
        if _flag(request, "draw"):
            return await _drawing(run, loaded.matcher, image, answer)
        keep = None if _flag(request, "all") else loaded.matcher.output.max_results_per_query
        return JSONResponse({"version": loaded.version, **answers.to_json(answer, keep)})

    async def compare(request: Request) -> Response:
        loaded = live.current
        a, b = await _images(request, ("a", "b"), settings, loaded.matcher.decode.max_pixels, run)
        answer = await run(loaded.matcher.compare, a, b)
        if _flag(request, "draw"):
            return await _drawing(run, loaded.matcher, a, answer, b)
        found = answers.to_json(answer, None)
        pair = found["matches"][0] if found["matches"] else None
        return JSONResponse({"version": loaded.version, "boxes": found["boxes"], "verified": pair is not None,
                             "score": pair["score"] if pair else 0.0, "evidence": pair})

    async def bad_request(request: Request, err: HTTPException) -> JSONResponse:
        return JSONResponse({"error": err.detail}, status_code=err.status_code)

    return Starlette(routes=[Route("/health", health, methods=["GET"]), Route("/match", match, methods=["POST"]),
                             Route("/compare", compare, methods=["POST"])],
                     exception_handlers={HTTPException: bad_request}, lifespan=lifespan)


async def _images(request: Request, fields: tuple[str, ...], settings: ServeSettings, max_pixels: int,
                  run: Callable) -> list[np.ndarray]:
    """The request's images: multipart ``fields``, or the body for ``("image",)``; decoded, or a 4xx."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > settings.max_body_bytes:
        raise HTTPException(413, f"the body holds {int(declared)} bytes; this service takes at most "
                            f"{settings.max_body_bytes}")
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        data = []
        async with request.form(max_part_size=settings.max_body_bytes) as form:
            for field in fields:
                upload = form.get(field)
                if upload is None or isinstance(upload, str):
                    raise HTTPException(400, f"multipart field {field!r} with an image file is missing")
                data.append(await upload.read())
    elif fields == ("image",):
        data = [await _body(request, settings.max_body_bytes)]
    else:
        raise HTTPException(400, "send the two images as multipart fields 'a' and 'b' (curl -F a=@x.jpg -F b=@y.jpg)")
    return [await run(_decode, item, field, max_pixels) for item, field in zip(data, fields)]


async def _body(request: Request, limit: int) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"the body holds more than {limit} bytes, the most this service takes")
        chunks.append(chunk)
    return b"".join(chunks)


def _decode(data: bytes, field: str, max_pixels: int) -> np.ndarray:
    try:
        rgb = decode_image(data, max_pixels)
    except ImageError as err:
        status = 413 if str(err).startswith("decompression bomb") else 400
        raise HTTPException(status, f"{field}: {err}") from None
    if min(rgb.shape[:2]) < MIN_SIDE:
        raise HTTPException(422, f"{field}: a {rgb.shape[1]}x{rgb.shape[0]} image is too small to match (each side "
                            f"needs at least {MIN_SIDE} pixels)")
    return rgb


def _flag(request: Request, name: str) -> bool:
    return request.query_params.get(name, "0").lower() in ("1", "true", "yes")


async def _drawing(run: Callable, matcher: Matcher, query: np.ndarray, answer: Answer,
                   reference: np.ndarray | None = None) -> Response:
    """A PNG of the best pair's inlier correspondences (404 without a verified pair, or when the reference's
    image is gone)."""
    from d2lv.query import drawing

    if answer.pairs.empty:
        raise HTTPException(404, "no verified match to draw")
    try:
        picture = await run(drawing.draw_best, matcher, query, answer, reference)
    except ImageError as err:
        raise HTTPException(404, f"the match cannot be drawn: {err}") from None
    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, format="PNG")
    return Response(buffer.getvalue(), media_type="image/png")


def serve(folder: str | os.PathLike, settings: ServeSettings, quiet: bool = True) -> None:
    """Load the collection in ``folder`` and serve it until interrupted."""
    import uvicorn

    started = time.perf_counter()
    live = LiveCollection(folder, settings.withdrawn, quiet)
    print(f"d2lv serve: collection {live.current.version} ({live.current.matcher.collection.references} "
          f"references) loaded in {time.perf_counter() - started:.1f} s; listening on "
          f"http://{settings.host}:{settings.port}", file=sys.stderr)
    stop = threading.Event()
    wake = threading.Event()
    signal.signal(signal.SIGHUP, lambda *_: wake.set())

    def watch() -> None:
        while not stop.is_set():
            wake.wait(settings.poll_seconds)
            wake.clear()
            live.refresh()

    watcher = threading.Thread(target=watch, name="collection-watcher", daemon=True)
    watcher.start()
    try:
        uvicorn.run(create_app(live, settings), host=settings.host, port=settings.port,
                    log_level="warning" if quiet else "info")
    finally:
        stop.set()
        wake.set()
