"""A voice for the library, from audio of one person or from a speaker of a finished job.

Enrollment audio goes through the same pipeline as a job, so a voice is embedded exactly as
the speakers it will be compared with. The audio must hold one voice: a second one, however
short, refuses the enrollment, because a name must never reach another person. Speakers the
job would not tell apart across clips (every pair at the embedder's link cosine or more) are
taken as the one person the diarization split.
"""

from __future__ import annotations

import numpy as np

from speakerlink_server import errors
from speakerlink_server.engines.base import Embedder, Hook, Segmenter, SpeechDetector
from speakerlink_server.pipeline.clip import ClipInput
from speakerlink_server.pipeline.linking import scores
from speakerlink_server.pipeline.run import DiarizationPipeline

# CAM++ and TitaNet embeddings steady from a few seconds of speech (the linking of
# libri-dev-linking holds with 3.3 s a side, benchmarks/QUALITY.md).
MIN_SPEECH_SECONDS = 3.0
# Enrollment runs while the caller waits, in one of the workers' slots (capacity.py): ten
# minutes of audio is a few seconds of work on a CPU and more than a voice needs.
MAX_AUDIO_SECONDS = 600.0
MAX_NAME_CHARS = 100


def check_name(name: str) -> str:
    if not name:
        raise errors.invalid_voice_name("cannot be empty")
    if len(name) > MAX_NAME_CHARS:
        raise errors.invalid_voice_name(f"has {len(name)} characters; at most {MAX_NAME_CHARS}")
    if not name.isprintable():
        raise errors.invalid_voice_name("cannot hold control characters")
    if name != name.strip():
        raise errors.invalid_voice_name("cannot start or end with a space")
    return name


def check_length(seconds: float) -> None:
    if seconds > MAX_AUDIO_SECONDS:
        raise errors.enrollment_too_long(seconds, MAX_AUDIO_SECONDS)


def voice_from_audio(
    clips: list[ClipInput], segmenter: Segmenter, speech: SpeechDetector, embedder: Embedder, hook: Hook,
    chunk_seconds: float,
) -> tuple[np.ndarray, float]:
    """(embedding, speech seconds) of the one voice in `clips`; `hook` follows the steps (and stops them)."""
    pipeline = DiarizationPipeline(segmenter, speech, embedder, chunk_seconds=chunk_seconds, max_clip_seconds=MAX_AUDIO_SECONDS)
    diarized = pipeline.run(clips, pipeline.default_request(), hook)
    prints = list(diarized.voiceprints.values())
    if not prints:
        raise errors.no_speech_to_enroll()
    vectors = np.stack([vector for vector, _ in prints])
    linking = pipeline.params.linking
    if scores(vectors, vectors, embedder.space, linking.raw_margin).min() < linking.threshold:
        raise errors.several_voices([speech for _, speech in prints])
    # Clusters of one clip that the cross-clip bar calls one person are one voice split in two
    # (a reader's long utterance can drift apart within a clip): their speech-weighted mean.
    total = sum(speech * vector for vector, speech in prints)
    speech = sum(speech for _, speech in prints)
    return total / np.linalg.norm(total), check_speech(speech)


def check_speech(seconds: float) -> float:
    if seconds < MIN_SPEECH_SECONDS:
        raise errors.too_little_speech(seconds, MIN_SPEECH_SECONDS)
    return seconds
