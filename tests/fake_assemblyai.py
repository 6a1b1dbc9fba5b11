"""AssemblyAI's REST API on loopback, speaking the three endpoints the way the SDK calls them.

POST /v2/upload takes the raw bytes and answers {"upload_url"}; POST /v2/transcript takes the
JSON request and answers the transcript (id, status, audio_url); GET /v2/transcript/{id}
answers queued, then processing, then completed with the utterances scripted for that audio
(or error); GET /v2/transcript lists the newest transcripts; DELETE /v2/transcript/{id} blanks a
finished transcript. Requests without the right `authorization` header get 401, as the real
API does.

Tests script it: the utterances for each upload (by the audio's sha256), failures to inject
before a request succeeds (status, headers), creates whose answer is lost, how many polls a
transcript takes, and a transcript error. Every request is recorded with its arrival time.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


@dataclass
class Seen:
    at: float
    method: str
    path: str
    status: int
    headers: dict[str, str]
    body: dict = field(default_factory=dict)


class FakeAssemblyAI:
    def __init__(self, api_key: str) -> None:
        self.api_key = api_key
        self.utterances: dict[str, list[dict]] = {}  # sha256 of the audio -> utterances
        self.polls_to_finish = 2  # GETs answered queued/processing before the final status
        self.transcript_error: str | None = None
        self.lost_create_answers = 0  # creates that make the transcript, then answer 502
        self.requests: list[Seen] = []
        self._failures: dict[str, deque[tuple[int, dict[str, str]]]] = {}
        self._uploads: dict[str, str] = {}  # upload url -> sha256
        self._transcripts: dict[str, dict] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._http.daemon_threads = True
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._http.server_address[1]}"

    def start(self) -> FakeAssemblyAI:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()

    def reset(self) -> None:
        with self._lock:
            self.utterances.clear()
            self.polls_to_finish = 2
            self.transcript_error = None
            self.lost_create_answers = 0
            self.requests.clear()
            self._failures.clear()
            self._uploads.clear()
            self._transcripts.clear()

    def fail(self, route: str, status: int, times: int = 1, headers: dict[str, str] | None = None) -> None:
        """Answer the next `times` requests to route ("POST /v2/upload", "GET /v2/transcript";
        "LIST /v2/transcript" for the listing) with this status before serving them normally."""
        with self._lock:
            self._failures.setdefault(route, deque()).extend([(status, headers or {})] * times)

    def seen(self, route: str) -> list[Seen]:
        method, prefix = route.split(" ", 1)
        with self._lock:
            return [r for r in self.requests if r.method == method and r.path.startswith(prefix)]

    # ---------------------------------------------------------------- the API

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], dict]:
        base = path.split("?", 1)[0]
        if method == "GET" and base == "/v2/transcript":
            route = "LIST /v2/transcript"
        else:
            route = f"{method} {'/v2/transcript' if base.startswith('/v2/transcript') else base}"
        if headers.get("authorization") != self.api_key:
            return 401, {}, {"error": "Authentication error, API token missing/invalid"}
        with self._lock:
            pending = self._failures.get(route)
            if pending:
                status, extra = pending.popleft()
                return status, extra, {"error": f"injected {status}"}
        if route == "POST /v2/upload":
            digest = hashlib.sha256(body).hexdigest()
            url = f"{self.url}/cdn/upload/{next(self._ids)}"
            with self._lock:
                self._uploads[url] = digest
            return 200, {}, {"upload_url": url}
        if route == "POST /v2/transcript":
            request = json.loads(body)
            transcript = {"id": f"t{next(self._ids)}", "status": "queued", "audio_url": request["audio_url"],
                          "request": request, "polls": 0, "created": time.monotonic(), "finished": None}
            with self._lock:
                self._transcripts[transcript["id"]] = transcript
                if self.lost_create_answers:
                    self.lost_create_answers -= 1
                    return 502, {}, {"error": "Bad Gateway"}  # created, but the answer did not get through
            return 200, {}, self._public(transcript)
        if route == "LIST /v2/transcript":
            with self._lock:
                newest_first = sorted(self._transcripts.values(), key=lambda t: t["created"], reverse=True)
                items = [{"id": t["id"], "status": t["status"], "audio_url": t["audio_url"],
                          "resource_url": f"{self.url}/v2/transcript/{t['id']}", "created": "2026-01-01T00:00:00"}
                         for t in newest_first[: int(parse_qs(urlparse(path).query).get("limit", ["10"])[0])]]
            return 200, {}, {"transcripts": items, "page_details": {
                "limit": len(items), "result_count": len(items), "current_url": f"{self.url}{path}",
                "prev_url": None, "next_url": None}}
        if route == "DELETE /v2/transcript":
            with self._lock:
                transcript = self._transcripts.get(path.rsplit("/", 1)[-1])
                if transcript is None:
                    return 404, {}, {"error": "Transcript not found"}
                if transcript["finished"] is None:
                    return 400, {}, {"error": "Transcript is still processing"}
                transcript["deleted"] = True
            return 200, {}, self._public(transcript)
        if route == "GET /v2/transcript":
            with self._lock:
                transcript = self._transcripts.get(path.rsplit("/", 1)[-1])
                if transcript is None:
                    return 404, {}, {"error": "Transcript not found"}
                transcript["polls"] += 1
                if transcript["polls"] > self.polls_to_finish and transcript["finished"] is None:
                    transcript["status"] = "error" if self.transcript_error else "completed"
                    transcript["finished"] = time.monotonic()
                elif transcript["polls"] > 1:
                    transcript["status"] = "processing"
            return 200, {}, self._public(transcript)
        return 404, {}, {"error": f"no route {route}"}

    def _public(self, transcript: dict) -> dict:
        if transcript.get("deleted"):
            return {"id": transcript["id"], "status": transcript["status"], "audio_url": "http://deleted_by_user",
                    "text": "Deleted by user."}
        out = {"id": transcript["id"], "status": transcript["status"], "audio_url": transcript["audio_url"],
               "speaker_labels": transcript["request"].get("speaker_labels")}
        if transcript["status"] == "error":
            out["error"] = self.transcript_error
        if transcript["status"] == "completed":
            utterances = self.utterances.get(self._uploads.get(transcript["audio_url"], ""), [])
            out["utterances"] = utterances
            out["words"] = [w for u in utterances for w in u["words"]]
            out["text"] = " ".join(u["text"] for u in utterances)
        return out

    def undeleted(self) -> list[str]:
        """Ids of the transcripts still held, as AssemblyAI would keep them."""
        with self._lock:
            return [t["id"] for t in self._transcripts.values() if not t.get("deleted")]

    def transcript_requests(self) -> list[dict]:
        with self._lock:
            return [t["request"] for t in self._transcripts.values()]

    def most_in_flight(self) -> int:
        """The most transcripts that were pending (created, not yet finished) at one time."""
        with self._lock:
            spans = [(t["created"], t["finished"] or float("inf")) for t in self._transcripts.values()]
        return max((sum(a <= start < b for a, b in spans) for start, _ in spans), default=0)


def labelled_utterances(turns: list[tuple[float, float, str]], texts: list[str] | None = None) -> list[dict]:
    """A clip's (start, end, person) turns as AssemblyAI gives them: speakers lettered A, B, ...
    by first appearance, as its labels are."""
    letters: dict[str, str] = {}
    return [
        utterance(letters.setdefault(who, chr(ord("A") + len(letters))), start, end, texts[k] if texts else "")
        for k, (start, end, who) in enumerate(turns)
    ]


def utterance(speaker: str, start: float, end: float, text: str) -> dict:
    """One utterance as the API gives it: times in ms, words spread evenly over the turn."""
    tokens = text.split()
    step = (end - start) / max(len(tokens), 1)
    words = [
        {"text": token, "start": round(1000 * (start + k * step)), "end": round(1000 * (start + (k + 1) * step)),
         "confidence": 0.95, "speaker": speaker}
        for k, token in enumerate(tokens)
    ]
    return {"speaker": speaker, "start": round(1000 * start), "end": round(1000 * end), "text": text,
            "confidence": 0.95, "words": words}


def _handler(fake: FakeAssemblyAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def do_DELETE(self) -> None:
            self._serve("DELETE")

        def _serve(self, method: str) -> None:
            body = self._body()
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, extra, payload = fake.handle(method, self.path, headers, body)
            parsed = json.loads(body) if body and headers.get("content-type") == "application/json" else {}
            with fake._lock:
                fake.requests.append(Seen(time.monotonic(), method, self.path, status, headers, parsed))
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in extra.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> bytes:
            # The SDK (httpx) sends a file's length, so bodies always come with Content-Length.
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    return Handler
