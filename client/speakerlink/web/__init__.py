"""The web page over the service (F17): upload clips, watch the job, see who spoke where.

A small Starlette app, served by uvicorn (`speakerlink web`), that calls the gRPC service
through this SDK's AsyncClient, on the app's own event loop: it is one more client, with no
job system of its own. The page (static/index.html and app.js, plain modules, no build step)
uploads each file to it with its own progress bar; the app streams each to its spool
(spool.py), checks its size as it comes, and once all are in hands them to
`AsyncClient.iter_diarize` until the server accepts the job. Progress reaches the page as
Server-Sent Events from `AsyncClient.watch`, so a reload, or a server that went away and came
back, picks the job up again from the id in the page's URL. The Live tab sends the
microphone's 16-bit PCM over a WebSocket, which the app hands to `AsyncClient.live` as it
comes, sending back each update of the stream (F18). A refusal, the service's (a
SpeakerlinkError) or the page's own (guard.Refusal), is raised where it is found and answered
by one exception handler, as the JSON error app.js shows.

A token typed into the page is kept in the tab's sessionStorage and sent as an
`Authorization: Bearer` header; the app passes it on as that call's credentials over its one
channel (`AsyncClient.with_token`), so each person sees their tenant's jobs and a flood of
made-up tokens costs nothing. It never appears in a URL. guard.py keeps strangers out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import unquote

from google.protobuf.json_format import MessageToDict
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, HTTPConnection, Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect

from speakerlink.aio import AsyncClient
from speakerlink.channel import channel_credentials
from speakerlink.errors import SpeakerlinkError, TLSError, TransportError
from speakerlink.ids import JOB_ID
from speakerlink.options import EXPORT_FORMATS
from speakerlink.v1 import speakerlink_pb2 as pb
from speakerlink.web.guard import Guard, Refusal, check_host, error
from speakerlink.web.spool import Spool, name_problem

STATIC = Path(__file__).parent / "static"
TOKEN = re.compile(r"[!-~]+")  # what gRPC metadata can carry
UPLOAD_SECONDS = 3600.0  # an upload never submitted is deleted after this long
QUIET_SECONDS = 15.0  # a quiet event stream gets a comment this often, so proxies keep it open


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
        self._connection = connection | {"token": ""}  # tokens go with each call
        self._client: AsyncClient | None = None

    @contextlib.asynccontextmanager
    async def opened(self) -> AsyncIterator[None]:
        """The channel, while the app serves: grpc.aio binds it to the event loop that opens it."""
        async with AsyncClient(self.target, **self._connection) as self._client:
            yield

    def token(self, request: HTTPConnection) -> str:
        """The request's bearer token, else the page's own."""
        header = request.headers.get("authorization", "")
        return header[7:].strip() if header.lower().startswith("bearer ") else self._default

    def client(self, token: str) -> AsyncClient:
        """The client for a request carrying `token`; raises Refusal for one the page cannot send."""
        if not token:
            return self._client
        if not TOKEN.fullmatch(token):
            raise Refusal(401, "AUTH_INVALID", "the token holds characters no token has",
                          ["Paste the token again, without spaces or line breaks."])
        if self.plaintext:
            raise Refusal(400, "TOKEN_NEEDS_TLS", "the page reaches the service without TLS, so it sends no token",
                          ["Clear the token field, or start the page with --tls or --tls-ca."])
        return self._client.with_token(token)


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
        async with service.opened():
            sweeping = asyncio.create_task(janitor())
            try:
                yield
            finally:
                sweeping.cancel()
                spool.close()

    def client(request: Request) -> AsyncClient:
        return service.client(service.token(request))

    async def refused(request: Request, err: Refusal | SpeakerlinkError) -> Response:
        """The one exception handler: a refusal as the JSON error app.js shows. A service that
        does not answer is said in plain words, not in gRPC's."""
        if isinstance(err, Refusal):
            return error(err.status, err.code, err.message, err.troubleshooting)
        if isinstance(err, TransportError) and not isinstance(err, TLSError) and \
                err.code in ("UNAVAILABLE", "UNREACHABLE"):
            return error(503, "SERVICE_UNREACHABLE", f"the speakerlink service at {target} is not answering",
                         ["Is it running? Start it with `speakerlink serve`, or give the page its address with "
                          "--server."])
        return error(_http_status(err), err.code, err.message, [*err.troubleshooting, *err.recovery])

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html")

    async def info(request: Request) -> Response:
        found = await client(request).info()
        return JSONResponse({"max_file_bytes": found.limits.max_file_bytes, "max_clips": found.limits.max_clips,
                             "formats": list(found.formats),
                             "transcription": any(e.kind == "transcriber" and e.available for e in found.engines)})

    async def upload(request: Request) -> Response:
        """One file, streamed to the spool; refused as soon as it passes the service's file limit."""
        name = unquote(request.headers.get("x-file-name", "clip"))
        problem = name_problem(name)
        if problem:
            raise Refusal(400, "BAD_FILE_NAME", problem, ["Rename the file and pick it again."])
        limit = (await client(request).info()).limits.max_file_bytes
        upload_id, path = spool.place(name)
        size, kept = 0, False
        try:
            with open(path, "wb") as out:
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > limit:
                        raise Refusal(413, "FILE_TOO_LARGE", f"{name} is over the service's limit of "
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
            raise Refusal(400, "NOT_JSON", "the body is not JSON") from None
        ids = body.get("uploads") if isinstance(body, dict) else None
        if not ids or not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise Refusal(400, "NO_UPLOADS", "upload the clips first")
        token = service.token(request)
        caller = service.client(token)
        paths = spool.take(ids, token)
        if paths is None:
            raise Refusal(404, "UPLOAD_NOT_FOUND", "an upload is not here: sent with another token, already "
                          f"submitted, or older than {spool.max_age / 60:g} minutes",
                          ["Pick the files and upload them again."])
        options = {k: v for k, v in (body.get("options") or {}).items()
                   if k in ("num_speakers", "min_speakers", "max_speakers", "transcribe") and v not in (None, "")}
        try:
            return JSONResponse({"job_id": await _accepted(caller, paths, options)})
        finally:
            for path in paths:
                shutil.rmtree(path.parent, ignore_errors=True)

    async def jobs(request: Request) -> Response:
        return JSONResponse([_status(status) for status in await client(request).list_jobs(limit=20)])

    async def events(request: Request) -> Response:
        job_id = request.path_params["job_id"]
        if not JOB_ID.fullmatch(job_id):
            raise Refusal(400, "INVALID_JOB_ID", "not a job id")
        return StreamingResponse(_sse(client(request), job_id), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})

    async def cancel(request: Request) -> Response:
        return JSONResponse(_status(await client(request).cancel(request.path_params["job_id"])))

    async def export(request: Request) -> Response:
        job_id, name = request.path_params["job_id"], request.path_params["format"]
        if name not in EXPORT_FORMATS:
            raise Refusal(400, "UNKNOWN_FORMAT", f"formats: {', '.join(EXPORT_FORMATS)}")
        found = await client(request).export(job_id, name)
        return Response(found.content, media_type=found.content_type or "application/octet-stream",
                        headers={"Content-Disposition": f'attachment; filename="{found.filename}"'})

    async def live(websocket: WebSocket) -> None:
        """A live stream: a JSON config first (sample_rate, latency, token), then binary PCM
        frames, then the text "end"; each of the stream's events goes back as JSON, the last
        the stored result. A page that goes away ends the stream, which is kept as a job."""
        await websocket.accept()
        try:
            config = await websocket.receive_json()
            if not isinstance(config, dict):
                raise Refusal(400, "NOT_JSON", "the first message is the stream's config, a JSON object")
            caller = service.client(str(config.get("token") or "").strip() or service.token(websocket))
            options = {k: config[k] for k in ("sample_rate", "latency", "max_speakers") if config.get(k)}
            async for event in caller.live(_frames(websocket), name=str(config.get("name") or "microphone"), **options):
                await websocket.send_json(_live_event(event))
        except WebSocketDisconnect:
            return
        except (Refusal, SpeakerlinkError, ValueError) as err:
            await websocket.send_json(_live_error(err))
        await websocket.close()

    app = Starlette(routes=[
        Route("/", index),
        Route("/api/info", info),
        Route("/api/uploads", upload, methods=["POST"]),
        Route("/api/jobs", jobs),
        Route("/api/jobs", submit, methods=["POST"]),
        Route("/api/jobs/{job_id}/events", events),
        Route("/api/jobs/{job_id}/cancel", cancel, methods=["POST"]),
        Route("/api/jobs/{job_id}/export/{format}", export),
        WebSocketRoute("/api/live", live),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ], middleware=[Middleware(Guard, bound=bound, names=names)], lifespan=lifespan,
        exception_handlers={SpeakerlinkError: refused, Refusal: refused})
    app.state.spool = spool
    return app


async def _accepted(client: AsyncClient, paths: list[Path], options: dict) -> str:
    """The id of the job the service accepted for `paths`; the job goes on without us."""
    events = client.iter_diarize(paths, **options)
    try:
        return (await anext(events)).job_id  # the first event is Accepted
    except ValueError as err:  # options the SDK refuses before any upload
        raise Refusal(400, "INVALID_OPTIONS", str(err)) from err
    finally:
        await events.aclose()


async def _sse(client: AsyncClient, job_id: str) -> AsyncIterator[str]:
    """The job's events as Server-Sent Events, each a JSON object with a `kind`. The watch runs
    as a task beside the stream, so that its waits for a service that went away are said at
    once, and a quiet stream still gets its comment; it ends when the stream does."""
    queue: asyncio.Queue[dict | None] = asyncio.Queue()

    def waiting(err: SpeakerlinkError, delay: float) -> None:
        queue.put_nowait({"kind": "waiting"})

    async def follow() -> None:
        try:
            async for event in client.watch(job_id, on_retry=waiting):
                queue.put_nowait(_event(event))
        except TransportError:
            pass  # the service is away: the stream ends, and the page reconnects until it is back
        except SpeakerlinkError as err:
            queue.put_nowait({"kind": "error", "code": err.code, "message": err.message,
                              "troubleshooting": [*err.troubleshooting, *err.recovery]})
        finally:
            queue.put_nowait(None)

    following = asyncio.create_task(follow())
    try:
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), timeout=QUIET_SECONDS)
            except TimeoutError:
                yield ": still here\n\n"
                continue
            if item is None:
                await following  # raises what the watch raised unforeseen
                return
            yield f"data: {json.dumps(item)}\n\n"
    finally:
        following.cancel()


def _event(event: pb.JobEvent) -> dict:
    if event.HasField("progress"):
        p = event.progress
        return {"kind": "progress", "stage": p.stage, "percent": p.percent, "clip": p.clip_index, "message": p.message}
    if event.HasField("result"):
        return {"kind": "result", "result": MessageToDict(event.result, preserving_proto_field_name=True),
                "exports": list(EXPORT_FORMATS)}
    if event.HasField("cancelled"):
        return {"kind": "cancelled"}
    if event.HasField("error"):
        return {"kind": "error", "code": event.error.code, "message": event.error.message,
                "troubleshooting": list(event.error.troubleshooting)}
    return {"kind": "accepted"}


async def _frames(websocket: WebSocket) -> AsyncIterator[bytes]:
    """The page's PCM frames until it says "end" or goes away."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect" or message.get("text") == "end":
            return
        if message.get("bytes"):
            yield message["bytes"]


def _live_event(event: pb.StreamEvent) -> dict:
    def turns(found) -> list[dict]:
        return [{"start": t.start, "end": t.end, "speaker": t.speaker, "name": t.name} for t in found]

    if event.HasField("update"):
        u = event.update
        return {"kind": "update", "decided_until": u.decided_until, "heard_seconds": u.heard_seconds,
                "final": turns(u.final_turns), "provisional": turns(u.provisional_turns)}
    if event.HasField("result"):
        return {"kind": "result", "job_id": event.job_id}
    return {"kind": "accepted", "job_id": event.job_id}


def _live_error(err: Exception) -> dict:
    if isinstance(err, Refusal):
        return {"kind": "error", "code": err.code, "message": err.message, "troubleshooting": err.troubleshooting}
    if isinstance(err, SpeakerlinkError):
        return {"kind": "error", "code": err.code, "message": err.message,
                "troubleshooting": [*err.troubleshooting, *err.recovery]}
    return {"kind": "error", "code": "INVALID_OPTIONS", "message": str(err), "troubleshooting": []}


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
