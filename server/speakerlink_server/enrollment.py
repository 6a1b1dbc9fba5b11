"""A voice for the library, from audio of one person or from a speaker of a finished job.

Enrollment audio goes through the same pipeline as a job, so a voice is embedded exactly as
the speakers it will be compared with. The audio must hold one voice: a second one, however
short, refuses the enrollment, because a name must never reach another person. Speakers the
job would not tell apart across clips (every pair at the embedder's link cosine or more) are
taken as the one person the diarization split.
"""

from __future__ import annotations

import functools

import numpy as np
from speakerlink import codecs

from speakerlink_server import errors
from speakerlink_server.engines.base import Embedder, Hook, Segmenter, SpeechDetector, unit_rows
from speakerlink_server.params import WindowParams
from speakerlink_server.pipeline.clip import ClipInput
from speakerlink_server.pipeline.linking import Voiceprint, pooled, scores
from speakerlink_server.pipeline.matched_band import heard_through, own_windows
from speakerlink_server.pipeline.run import DiarizationPipeline
from speakerlink_server.pipeline.segments import Turn

# The phone lines an enrolled voice is also heard through, by the encoder ffmpeg names them with:
# G.711 µ-law, GSM 06.10 and Opus at 8 kbps, the narrowband channels calls most often take. Each
# takes from a voice something of its own, which the narrowband compensation leaves in.
LINES = {
    "pcm_mulaw": functools.partial(codecs.phone_line, codec="pcm_mulaw", fmt="wav"),
    "libgsm": functools.partial(codecs.phone_line, codec="libgsm", fmt="gsm"),
    "libopus": functools.partial(codecs.opus, kbps=8.0),
}
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
) -> tuple[Voiceprint, np.ndarray]:
    """The one voice in `clips`, and its line prints (see line_prints); `hook` follows the
    steps (and stops them)."""
    pipeline = DiarizationPipeline(segmenter, speech, embedder, chunk_seconds=chunk_seconds, max_clip_seconds=MAX_AUDIO_SECONDS)
    diarized = pipeline.run(clips, pipeline.default_request(), hook)
    prints = list(diarized.voiceprints.values())
    if not prints:
        raise errors.no_speech_to_enroll()
    vectors = np.stack([p.embedding for p in prints])
    linking = pipeline.params.linking
    if scores(vectors, vectors, embedder.space, linking.raw_margin).min() < linking.threshold:
        raise errors.several_voices([p.speech_seconds for p in prints])
    # Clusters of one clip that the cross-clip bar calls one person are one voice split in two
    # (a reader's long utterance can drift apart within a clip): their speech-weighted mean.
    voice = pooled(prints)
    check_speech(voice.speech_seconds)
    turns = [[Turn(s.start, s.end, 0) for s in clip.segments] for clip in diarized.result.clips]
    return voice, line_prints(clips, turns, embedder, pipeline.params.windows, hook, chunk_seconds)


def line_prints(clips: list[ClipInput], turns: list[list[Turn]], embedder: Embedder, windows: WindowParams,
                hook: Hook, chunk_seconds: float) -> np.ndarray:
    """The voice's own speech (`turns`, by clip) heard through each of LINES this server's
    ffmpeg can encode, embedded as a narrowband clip's would be: one unit row per line, none
    where the embedder has no narrowband compensation. A speaker later heard through a phone
    line is compared with these as well (pipeline.recognize). Shape: (lines, dim)."""
    if embedder.narrowband is None:
        return np.zeros((0, embedder.dim))
    usable = [line for name, line in LINES.items() if name in codecs.encoders()]
    sums = np.zeros((len(usable), embedder.dim))
    for clip, heard in zip(clips, turns, strict=True):
        spans = {0: own_windows(heard, 0, windows)}
        sums += heard_through(usable, clip, spans, 1, embedder, chunk_seconds, MAX_AUDIO_SECONDS, hook)[:, 0]
    return unit_rows(sums[np.linalg.norm(sums, axis=1) > 0])


def check_speech(seconds: float) -> float:
    if seconds < MIN_SPEECH_SECONDS:
        raise errors.too_little_speech(seconds, MIN_SPEECH_SECONDS)
    return seconds
