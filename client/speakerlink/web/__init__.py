"""The web page over the service (F17): upload clips, watch the job, see who spoke where.

A small Starlette app, served by uvicorn (`speakerlink web`), that calls the gRPC service
through this SDK: it is one more client, with no job system of its own. The page
(static/index.html and app.js, plain modules, no build step) uploads each file to it with its
own progress bar; the app streams each to its spool (spool.py), checks its size as it comes,
and once all are in hands them to `Client.iter_diarize` until the server accepts the job.
Progress reaches the page as Server-Sent Events from `Client.watch`, so a reload, or a server
that went away and came back, picks the job up again from the id in the page's URL.

A token typed into the page is kept in the tab's sessionStorage and sent as an
`Authorization: Bearer` header; the app passes it on as that call's credentials over its one
channel (`Client.with_token`), so each person sees their tenant's jobs and a flood of made-up
tokens costs nothing. It never appears in a URL. guard.py keeps strangers out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from urllib.parse import unquote

from google.protobuf.json_format import MessageToDict
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from speakerlink.channel import channel_credentials
from speakerlink.client import Client
from speakerlink.errors import SpeakerlinkError, TLSError, TransportError
from speakerlink.events import is_terminal
from speakerlink.v1 import speakerlink_pb2 as pb
from speakerlink.web.guard import Guard, check_host, error
from speakerlink.web.spool import Spool, name_problem

STATIC = Path(__file__).parent / "static"
HEX_ID = re.compile(r"[0-9a-f]{32}")  # upload and job ids
TOKEN = re.compile(r"[!-~]+")  # what gRPC metadata can carry
EXPORTS = ("json", "csv", "text", "rttm", "srt", "vtt")
UPLOAD_SECONDS = 3600.0  # an upload never submitted is deleted after this long


class Service:
    """One channel to the service for everyone; each request's token rides on its calls.

    The page's own token (--token-file, or SPEAKERLINK_TOKEN) serves requests that bring none.
    A token on a plaintext channel is refused here, before it is sent, as the SDK refuses it.
    """

    def __init__(self, target: str, connection: dict) -> None:
        self.target = target
        self.plaintext = channel_credentials(**connection) is None  # raises for a token on plaintext
        token = connection.get("token")
        self._default = os.environ.get("SPEAKERLINK_TOKEN", "") if token is None else token
        self._client = Client(target, **(connection | {"token": ""}))  # tokens go with each call

    def token(self, request: Request) -> str:
        """The request's bearer token, else the page's own."""
        header = request.headers.get("authorization", "")
        return header[7:].strip() if header.lower().startswith("bearer ") else self._default

    def client(self, token: str) -> Client:
        """The client for a request carrying `token` (checked by `refusal` first)."""
        return self._client.with_token(token) if token else self._client

    def refusal(self, token: str) -> Response | None:
        if not token:
            return None
        if not TOKEN.fullmatch(token):
            return error(401, "AUTH_INVALID", "the token holds characters no token has",
                         ["Paste the token again, without spaces or line breaks."])
        if self.plaintext:
            return error(400, "TOKEN_NEEDS_TLS", "the page reaches the service without TLS, so it sends no token",
                         ["Clear the token field, or start the page with --tls or --tls-ca."])
        return None

    def close(self) -> None:
        self._client.close()


def create_app(target: str, connection: dict | None = None, *, bound: str = "127.0.0.1",
               names: tuple[str, ...] = (), upload_seconds: float = UPLOAD_SECONDS) -> Starlette:
    """The page and its API, calling the service at `target` (with `connection`: tls, cert,
    token). It answers requests for `bound`, loopback and `names` (guard.py); uploads never
    submitted go after `upload_seconds`."""
    service = Service(target, connection or {})
    spool = Spool(upload_seconds)

    async def janitor() -> None:
        while True:
            await asyncio.sleep(min(60.0, upload_seconds / 4))
            spool.expire()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        sweeping = asyncio.create_task(janitor())
        try:
            yield
        finally:
            sweeping.cancel()
            service.close()
            spool.close()

    async def call(request: Request, method: Callable[[Client], object]) -> object:
        """The SDK call's answer for this request's token, or a refusal as a JSON response."""
        token = service.token(request)
        return service.refusal(token) or await _call(lambda: method(service.client(token)), service.target)

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html")

    async def info(request: Request) -> Response:
        found = await call(request, lambda c: c.info())
        if isinstance(found, Response):
            return found
        return JSONResponse({"max_file_bytes": found.limits.max_file_bytes, "max_clips": found.limits.max_clips,
                             "formats": list(found.formats),
                             "transcription": any(e.kind == "transcriber" and e.available for e in found.engines)})

    async def upload(request: Request) -> Response:
        """One file, streamed to the spool; refused as soon as it passes the service's file limit."""
        name = unquote(request.headers.get("x-file-name", "clip"))
        problem = name_problem(name)
        if problem:
            return error(400, "BAD_FILE_NAME", problem, ["Rename the file and pick it again."])
        found = await call(request, lambda c: c.info())
        if isinstance(found, Response):
            return found
        limit = found.limits.max_file_bytes
        upload_id, path = spool.place(name)
        size, kept = 0, False
        try:
            with open(path, "wb") as out:
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > limit:
                        return error(413, "FILE_TOO_LARGE", f"{name} is over the service's limit of "
                                     f"{limit / 2**20:.0f} MiB a file")
                    out.write(chunk)
            spool.keep(upload_id, path, service.token(request))
            kept = True
        except ClientDisconnect:
            return Response(status_code=400)  # nobody is left to read it
        finally:
            if not kept:
                spool.discard(upload_id)
        return JSONResponse({"upload": upload_id, "name": name, "bytes": size})

    async def submit(request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return error(400, "NOT_JSON", "the body is not JSON")
        ids = body.get("uploads") if isinstance(body, dict) else None
        if not ids or not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            return error(400, "NO_UPLOADS", "upload the clips first")
        paths = spool.take(ids, service.token(request))
        if paths is None:
            return error(404, "UPLOAD_NOT_FOUND", "an upload is not here: sent with another token, already "
                         f"submitted, or older than {spool.max_age / 60:g} minutes",
                         ["Pick the files and upload them again."])
        options = {k: v for k, v in (body.get("options") or {}).items()
                   if k in ("num_speakers", "min_speakers", "max_speakers", "transcribe") and v not in (None, "")}

        def accepted(client: Client) -> str:
            events = client.iter_diarize(paths, **options)
            try:
                return next(events).job_id  # the first event is Accepted; the job goes on without us
            finally:
                events.close()

        try:
            found = await call(request, accepted)
        finally:
            for path in paths:
                shutil.rmtree(path.parent, ignore_errors=True)
        return found if isinstance(found, Response) else JSONResponse({"job_id": found})

    async def jobs(request: Request) -> Response:
        found = await call(request, lambda c: c.list_jobs(limit=20))
        if isinstance(found, Response):
            return found
        return JSONResponse([_status(status) for status in found])

    async def events(request: Request) -> Response:
        job_id = request.path_params["job_id"]
        if not HEX_ID.fullmatch(job_id):
            return error(400, "INVALID_JOB_ID", "not a job id")
        token = service.token(request)
        refusal = service.refusal(token)
        if refusal is not None:
            return refusal
        return StreamingResponse(_sse(service.client(token), job_id, request), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})

    async def cancel(request: Request) -> Response:
        job_id = request.path_params["job_id"]
        found = await call(request, lambda c: c.cancel(job_id))
        return found if isinstance(found, Response) else JSONResponse(_status(found))

    async def export(request: Request) -> Response:
        job_id, name = request.path_params["job_id"], request.path_params["format"]
        if name not in EXPORTS:
            return error(400, "UNKNOWN_FORMAT", f"formats: {', '.join(EXPORTS)}")
        found = await call(request, lambda c: c.export(job_id, name))
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
    ], middleware=[Middleware(Guard, bound=bound, names=names)], lifespan=lifespan)
    app.state.spool = spool
    return app


async def _call(call: Callable, target: str) -> object:
    """The SDK call's answer, or its error as a JSON response the page shows as it is. A
    service that does not answer is said in plain words, not in gRPC's."""
    try:
        return await run_in_threadpool(call)
    except TransportError as err:
        if isinstance(err, TLSError) or err.code not in ("UNAVAILABLE", "UNREACHABLE"):
            return _refusal(err)
        return error(503, "SERVICE_UNREACHABLE", f"the speakerlink service at {target} is not answering",
                     ["Is it running? Start it with `speakerlink serve`, or give the page its address with --server."])
    except SpeakerlinkError as err:
        return _refusal(err)
    except ValueError as err:  # options the SDK refuses before any upload
        return error(400, "INVALID_OPTIONS", str(err))


def _refusal(err: SpeakerlinkError) -> Response:
    return error(_http_status(err), err.code, err.message, [*err.troubleshooting, *err.recovery])


async def _sse(client: Client, job_id: str, request: Request) -> AsyncIterator[str]:
    """The job's events as Server-Sent Events, each a JSON object with a `kind`."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[dict | None] = asyncio.Queue()
    stop = threading.Event()

    def waiting(err: SpeakerlinkError, delay: float) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, {"kind": "waiting"})

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


def serve(target: str, connection: dict, host: str = "127.0.0.1", port: int = 8080, *, insecure: bool = False,
          names: tuple[str, ...] = ()) -> None:
    """Serve the page; off loopback only with `insecure` (guard.check_host)."""
    import uvicorn

    check_host(host, insecure)
    shown = f"[{host}]" if ":" in host else host
    print(f"speakerlink web page on http://{shown}:{port}/ for the service at {target}", flush=True)
    uvicorn.run(create_app(target, connection, bound=host, names=names), host=host, port=port, log_level="info")
