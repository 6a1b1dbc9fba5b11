"""What a job asks for, in the pipeline's own terms.

The wire's DiarizeOptions is read once (uploads.job_request): engines chosen, the speaker
count resolved to one pair, the link threshold made the embedder's where none was given.
Everything below the upload reads this, so no stage interprets the request again.
"""

from __future__ import annotations

from dataclasses import dataclass

from speakerlink_server.engines.base import CountBounds


@dataclass(frozen=True)
class JobRequest:
    engine: str  # the embedder's name ("auto" already resolved)
    link_threshold: float  # cosine floor (embedder score space) for a cross-clip link: the request's, else the embedder's
    speakers: CountBounds = CountBounds()
    transcriber: str = ""  # the transcriber's name; "" diarizes with the segmenter
    recognize: bool = True  # name speakers that match an enrolled voice
    language: str = ""  # for the transcriber; "" for its default
