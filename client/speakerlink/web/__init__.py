"""The web page over the service (F17): upload clips, watch the job, see who spoke where.

A small Starlette app, served by uvicorn (`speakerlink web`), that calls the gRPC service
through this SDK: it is one more client, with no job system of its own. The page
(static/index.html and app.js, plain modules, no build step) uploads each file to it with its
own progress bar; the app streams each to a temporary file, checks its size as it comes, and
once all are in hands them to `Client.iter_diarize` until the server accepts the job. Progress
reaches the page as Server-Sent Events from `Client.watch`, so a reload, or a server that
went away and came back, picks the job up again from the id in the page's URL.

A token typed into the page is kept in the tab's sessionStorage and sent as an
`Authorization: Bearer` header; the app opens a channel with it for that call, so each person
sees their tenant's jobs. It never appears in a URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import tempfile
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from google.protobuf.json_format import MessageToDict
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from speakerlink.client import Client
from speakerlink.errors import SpeakerlinkError, TransportError
from speakerlink.events import is_terminal
from speakerlink.v1 import speakerlink_pb2 as pb

STATIC = Path(__file__).parent / "static"
HEX_ID = re.compile(r"[0-9a-f]{32}")  # upload and job ids
EXPORTS = ("json", "csv", "text", "rttm", "srt", "vtt")


class Clients:
    """One SDK client per token (and one without), opened on first use and kept."""

    def __init__(self, target: str, connection: dict) -> None:
        self._target, self._connection = target, connection
        self._clients: dict[str, Client] = {}
        self._lock = threading.Lock()

    def __call__(self, request: Request) -> Client:
        header = request.headers.get("authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else ""
        with self._lock:
            if token not in self._clients:
                extra = {"token": token} if token else {}
                self._clients[token] = Client(self._target, **(self._connection | extra))
            return self._clients[token]

    def close(self) -> None:
        for client in self._clients.values():
            client.close()


def create_app(target: str, connection: dict | None = None) -> Starlette:
    """The page and its API, calling the service at `target` (with `connection`: tls, cert, token)."""
    clients = Clients(target, connection or {})
    spool = Path(tempfile.mkdtemp(prefix="speakerlink-web-"))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        clients.close()
        shutil.rmtree(spool, ignore_errors=True)

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html")

    async def info(request: Request) -> Response:
        found = await _call(clients(request).info)
        if isinstance(found, Response):
            return found
        return JSONResponse({"max_file_bytes": found.limits.max_file_bytes, "max_clips": found.limits.max_clips,
                             "formats": list(found.formats),
                             "transcription": any(e.kind == "transcriber" and e.available for e in found.engines)})

    async def upload(request: Request) -> Response:
        """One file, streamed to the spool; refused as soon as it passes the service's file limit."""
        found = await _call(clients(request).info)
        if isinstance(found, Response):
            return found
        limit = found.limits.max_file_bytes
        name = Path(request.headers.get("x-file-name", "clip")).name or "clip"
        upload_id = uuid.uuid4().hex
        folder = spool / upload_id
        folder.mkdir()
        size = 0
        with open(folder / name, "wb") as out:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    out.close()
                    shutil.rmtree(folder, ignore_errors=True)
                    return _error(413, "FILE_TOO_LARGE", f"{name} is over the service's limit of {limit} bytes a file")
                out.write(chunk)
        return JSONResponse({"upload": upload_id, "name": name, "bytes": size})

    async def submit(request: Request) -> Response:
        body = await request.json()
        ids = body.get("uploads") or []
        if not ids or not all(isinstance(i, str) and HEX_ID.fullmatch(i) and (spool / i).is_dir() for i in ids):
            return _error(400, "NO_UPLOADS", "upload the clips first")
        paths = [next((spool / i).iterdir()) for i in ids]
        options = {k: v for k, v in (body.get("options") or {}).items()
                   if k in ("num_speakers", "min_speakers", "max_speakers", "transcribe") and v not in (None, "")}
        client = clients(request)

        def accepted() -> str:
            events = client.iter_diarize(paths, **options)
            try:
                return next(events).job_id  # the first event is Accepted; the job goes on without us
            finally:
                events.close()

        try:
            found = await _call(accepted)
        finally:
            for i in ids:
                shutil.rmtree(spool / i, ignore_errors=True)
        return found if isinstance(found, Response) else JSONResponse({"job_id": found})

    async def jobs(request: Request) -> Response:
        found = await _call(lambda: clients(request).list_jobs(limit=20))
        if isinstance(found, Response):
            return found
        return JSONResponse([_status(status) for status in found])

    async def events(request: Request) -> Response:
        job_id = request.path_params["job_id"]
        if not HEX_ID.fullmatch(job_id):
            return _error(400, "INVALID_JOB_ID", "not a job id")
        return StreamingResponse(_sse(clients(request), job_id, request), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})

    async def cancel(request: Request) -> Response:
        job_id = request.path_params["job_id"]
        found = await _call(lambda: clients(request).cancel(job_id), job_id)
        return found if isinstance(found, Response) else JSONResponse(_status(found))

    async def export(request: Request) -> Response:
        job_id, name = request.path_params["job_id"], request.path_params["format"]
        if name not in EXPORTS:
            return _error(400, "UNKNOWN_FORMAT", f"formats: {', '.join(EXPORTS)}")
        found = await _call(lambda: clients(request).export(job_id, name), job_id)
        if isinstance(found, Response):
            return found
        return Response(found.content, media_type=found.content_type or "application/octet-stream",
                        headers={"Content-Disposition": f'attachment; filename="{found.filename}"'})

    app = Starlette(routes=[
        Route("/", index),
        Route("/api/info", info),
        Route("/api/uploads", upload, methods=["POST"]),
        Route("/api/jobs", jobs),
        Route("/api/jobs", submit, methods=["POST"]),
        Route("/api/jobs/{job_id}/events", events),
        Route("/api/jobs/{job_id}/cancel", cancel, methods=["POST"]),
        Route("/api/jobs/{job_id}/export/{format}", export),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ], lifespan=lifespan)
    return app


async def _call(call: Callable, job_id: str = "") -> object:
    """The SDK call's answer, or its error as a JSON response the page shows as it is."""
    try:
        return await run_in_threadpool(call)
    except SpeakerlinkError as err:
        return _error(_http_status(err), err.code, err.message, [*err.troubleshooting, *err.recovery])
    except ValueError as err:  # options the SDK refuses before any upload
        return _error(400, "INVALID_OPTIONS", str(err))


async def _sse(client: Client, job_id: str, request: Request) -> AsyncIterator[str]:
    """The job's events as Server-Sent Events, each a JSON object with a `kind`."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[dict | None] = asyncio.Queue()
    stop = threading.Event()

    def waiting(error: SpeakerlinkError, delay: float) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, {"kind": "waiting", "message": error.message})

    def pump() -> None:
        try:
            for event in client.watch(job_id, on_retry=waiting):
                if stop.is_set():
                    return
                loop.call_soon_threadsafe(queue.put_nowait, _event(event))
                if is_terminal(event):
                    break
        except TransportError:
            pass  # the service is away: the stream ends, and the page reconnects until it is back
        except SpeakerlinkError as err:
            loop.call_soon_threadsafe(queue.put_nowait, {"kind": "error", "code": err.code, "message": err.message,
                                                         "troubleshooting": [*err.troubleshooting, *err.recovery]})
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, None)

    threading.Thread(target=pump, name=f"watch-{job_id[:8]}", daemon=True).start()
    try:
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), timeout=15)
            except TimeoutError:
                yield ": still here\n\n"  # keeps proxies from closing a quiet stream
                continue
            if item is None or await request.is_disconnected():
                return
            yield f"data: {json.dumps(item)}\n\n"
    finally:
        stop.set()


def _event(event: pb.JobEvent) -> dict:
    if event.HasField("progress"):
        p = event.progress
        return {"kind": "progress", "stage": p.stage, "percent": p.percent, "clip": p.clip_index, "message": p.message}
    if event.HasField("result"):
        return {"kind": "result", "result": MessageToDict(event.result, preserving_proto_field_name=True)}
    if event.HasField("cancelled"):
        return {"kind": "cancelled"}
    if event.HasField("error"):
        return {"kind": "error", "code": event.error.code, "message": event.error.message,
                "troubleshooting": list(event.error.troubleshooting)}
    return {"kind": "accepted"}


def _status(status: pb.JobStatus) -> dict:
    return {"job_id": status.job_id, "state": pb.JobState.Name(status.state).removeprefix("JOB_STATE_").lower(),
            "clips": list(status.clip_names), "created": status.created_at.ToJsonString(),
            "percent": status.progress.percent, "stage": status.progress.stage}


def _http_status(err: SpeakerlinkError) -> int:
    return {"INVALID_ARGUMENT": 400, "NOT_FOUND": 404, "UNAUTHENTICATED": 401, "PERMISSION_DENIED": 403,
            "RESOURCE_EXHAUSTED": 429, "FAILED_PRECONDITION": 409, "UNAVAILABLE": 503}.get(err.status.name, 500)


def _error(status: int, code: str, message: str, troubleshooting: list[str] | None = None) -> JSONResponse:
    return JSONResponse({"code": code, "message": message, "troubleshooting": troubleshooting or []}, status_code=status)


def serve(target: str, connection: dict, host: str = "127.0.0.1", port: int = 8080) -> None:
    import uvicorn

    uvicorn.run(create_app(target, connection), host=host, port=port, log_level="info")
