"""AssemblyAI transcription with speaker labels, through the `assemblyai` SDK.

The SDK's own Transcriber never retries and blocks while it polls, so this engine calls the
SDK's public request functions (assemblyai.api.upload_file, create_transcript,
get_transcript) itself: every call is retried on 429, 5xx and network errors with
engines.retry's backoff, honouring Retry-After; and polling waits through the job's `wait`, so
a cancelled job stops polling within a fraction of a second.

Once a transcript is read (completed or failed) it is deleted at AssemblyAI, which otherwise
keeps its text indefinitely: the job's result is the one copy, and DeleteJob or the TTL
removes it (F12). Deleting also starts AssemblyAI's two-day removal of the uploaded audio.
`--assemblyai-keep-transcripts` leaves them there, for operators who want them in their
AssemblyAI dashboard.

Each clip gets its own SDK client, because a client's `last_response` (where a 429's
Retry-After is read) belongs to the calls of that client alone. The API key never leaves
the SDK's request headers: errors carry AssemblyAI's message with the key redacted.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import assemblyai as aai
import httpx
from assemblyai import api, types

from speakerlink_server import errors
from speakerlink_server.engines.base import Hook, TranscribedWord, TranscriptionRequest, Utterance, Wait
from speakerlink_server.engines.retry import RetryPolicy, call_with_retries, retry_after_seconds

log = logging.getLogger(__name__)
T = TypeVar("T")

# How many of the account's newest transcripts a retried create looks through for its own.
RECENT_TRANSCRIPTS = 100
# Transcript status -> the clip's progress stage.
STAGES = {
    types.TranscriptStatus.queued: "transcribe-queued",
    types.TranscriptStatus.processing: "transcribe-processing",
}


class AssemblyAiTranscriber:
    name = "assemblyai"

    def __init__(
        self,
        api_key: str,
        base_url: str = "",
        concurrency: int = 5,
        poll_seconds: float = 3.0,
        timeout_seconds: float = 3 * 3600,
        retry: RetryPolicy | None = None,
        keep_transcripts: bool = False,
    ) -> None:
        if not api_key:
            raise ValueError("an AssemblyAI API key is needed")
        self._key = api_key
        self._settings = types.Settings(api_key=api_key, base_url=base_url or aai.settings.base_url)
        self.concurrency = concurrency
        self._poll_seconds = poll_seconds
        self._timeout_seconds = timeout_seconds
        self._retry = retry or RetryPolicy()
        self.keep_transcripts = keep_transcripts

    @property
    def base_url(self) -> str:
        return self._settings.base_url

    def transcribe(self, path: Path, request: TranscriptionRequest, hook: Hook, wait: Wait) -> list[Utterance]:
        client = aai.Client(settings=self._settings)
        try:
            hook("transcribe-uploading", message=f"AssemblyAI: uploading {path.stat().st_size} bytes")
            upload_url = self._call(client, lambda: self._upload(client, path), wait)
            body = _transcript_request(upload_url, request)
            transcript = self._create(client, body, wait)
            transcript = self._poll(client, transcript, hook, wait)
            if not self.keep_transcripts:
                self._delete(client, transcript.id or "", wait)
        finally:
            client.http_client.close()
        if transcript.status == types.TranscriptStatus.error:
            raise errors.transcription_failed(transcript.id or "", self._redact(transcript.error or "no reason given"))
        words = sum(len(u.words) for u in transcript.utterances or ())
        hook("transcribe-completed", message=f"AssemblyAI: transcript {transcript.id} has {words} words")
        return [_utterance(u) for u in transcript.utterances or ()]

    def _create(self, client: aai.Client, body: types.TranscriptRequest, wait: Wait) -> types.TranscriptResponse:
        """Start the transcript; a retry first adopts one that an earlier attempt may have started.

        A create whose answer was lost (a network error or 5xx after AssemblyAI took it) may
        still have started a transcript, and creating again would bill a second one that nobody
        reads or deletes. The upload URL belongs to this clip's upload alone, so a recent
        transcript of that URL is ours.
        """
        attempts = 0

        def create() -> types.TranscriptResponse:
            nonlocal attempts
            attempts += 1
            if attempts > 1:
                recent = api.list_transcripts(client.http_client, types.ListTranscriptParameters(limit=RECENT_TRANSCRIPTS))
                ours = next((t.id for t in recent.transcripts if t.audio_url == body.audio_url), None)
                if ours is not None:
                    log.info("adopting transcript %s, started by an attempt whose answer was lost", ours)
                    return api.get_transcript(client.http_client, ours)
            return api.create_transcript(client.http_client, body)

        return self._call(client, create, wait)

    @staticmethod
    def _upload(client: aai.Client, path: Path) -> str:
        with path.open("rb") as audio:  # opened per attempt: a retry sends the file from its start
            return api.upload_file(client.http_client, audio)

    def _poll(self, client: aai.Client, transcript: types.TranscriptResponse, hook: Hook, wait: Wait) -> types.TranscriptResponse:
        deadline = time.monotonic() + self._timeout_seconds
        transcript_id = transcript.id or ""
        fetch = functools.partial(api.get_transcript, client.http_client, transcript_id)
        reported = ""
        while transcript.status in STAGES:
            if STAGES[transcript.status] != reported:
                reported = STAGES[transcript.status]
                hook(reported, message=f"AssemblyAI: transcript {transcript_id} is {transcript.status.value}")
            if time.monotonic() > deadline:
                raise errors.transcription_timeout(transcript_id, self._timeout_seconds)
            wait(self._poll_seconds)
            transcript = self._call(client, fetch, wait)
        return transcript

    def _delete(self, client: aai.Client, transcript_id: str, wait: Wait) -> None:
        """A transcript that cannot be deleted does not fail the job; the log names it for the operator."""
        try:
            self._call(client, lambda: api.delete_transcript(client.http_client, transcript_id), wait)
        except errors.ServiceError as exc:
            log.warning("could not delete transcript %s at AssemblyAI (%s); delete it there by hand", transcript_id, exc)
        else:
            log.info("deleted transcript %s at AssemblyAI", transcript_id)

    def _call(self, client: aai.Client, call: Callable[[], T], wait: Wait) -> T:
        """One SDK call with retries; a final failure becomes the ServiceError that says what to do."""

        def classify(exc: Exception) -> float | None:
            if isinstance(exc, httpx.TransportError):
                log.warning("AssemblyAI unreachable (%s); retrying", type(exc).__name__)
                return 0.0
            status = getattr(exc, "status_code", None)
            if isinstance(exc, types.AssemblyAIError) and status is not None and (status == 429 or status >= 500):
                response = client.last_response
                asked = retry_after_seconds(response.headers.get("retry-after") if response is not None else None)
                log.warning("AssemblyAI answered %s; retrying (Retry-After %.1f s)", status, asked)
                return asked
            return None

        try:
            return call_with_retries(call, classify, self._retry, wait)
        except httpx.TransportError as exc:
            raise errors.transcriber_unreachable(self.base_url, self._redact(f"{type(exc).__name__}: {exc}")) from None
        except types.AssemblyAIError as exc:
            raise self._http_error(exc) from None

    def _http_error(self, exc: types.AssemblyAIError) -> errors.ServiceError:
        status, message = exc.status_code or 0, self._redact(str(exc))
        if status in (401, 403):
            return errors.transcriber_auth_failed(status, message)
        if status == 429:
            return errors.transcriber_rate_limited(message)
        if status >= 500 or status == 0:
            return errors.transcriber_unreachable(self.base_url, message)
        return errors.transcription_rejected(status, message)

    def _redact(self, text: str) -> str:
        return text.replace(self._key, "[api key]")


def _transcript_request(upload_url: str, request: TranscriptionRequest) -> types.TranscriptRequest:
    """The SDK's own TranscriptionConfig, so its validation of speaker counts applies."""
    count = request.speakers
    bounds = None
    if not count.exact and (count.min_speakers or count.max_speakers):
        bounds = aai.SpeakerOptions(
            min_speakers_expected=count.min_speakers or None, max_speakers_expected=count.max_speakers or None
        )
    config = aai.TranscriptionConfig(
        language_code=request.language or None,
        speaker_labels=True,
        speakers_expected=count.exact or None,
        speaker_options=bounds,
    )
    return types.TranscriptRequest(audio_url=upload_url, **config.raw.dict(exclude_none=True))


def _utterance(u: types.Utterance) -> Utterance:
    return Utterance(
        start=u.start / 1000.0,
        end=u.end / 1000.0,
        speaker=u.speaker or "?",
        text=u.text,
        words=tuple(TranscribedWord(w.start / 1000.0, w.end / 1000.0, w.text, w.confidence) for w in u.words),
    )
