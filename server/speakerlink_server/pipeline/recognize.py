"""Names for a job's speakers from the tenant's enrolled voices (F13).

After linking, each global speaker's voiceprint is compared with every enrolled voice of the
same embedder. One assignment (Hungarian, on cosine) gives each voice to at most one speaker
and each speaker at most one voice, so two speakers of a job never share a name; a pair is
kept only where its cosine in the embedder's score space (engines.base.ScoreSpace) clears the
embedder's recognition threshold, and only for a speaker with `min_speech_seconds` of speech
(params.RecognitionParams). Open set first: a voice not enrolled stays unnamed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from speakerlink_server.engines.base import Calibration, ScoreSpace, compared
from speakerlink_server.params import RecognitionParams


@dataclass(frozen=True)
class Voice:
    """An enrolled voice as one embedding of one embedder (VoiceLibrary.voiceprints, store/voices.py)."""

    name: str
    embedding: np.ndarray  # unit length
    speech_seconds: float


@dataclass(frozen=True)
class Match:
    name: str
    score: float  # the calibrated probability that the speaker is the enrolled person


def recognize(prints: list[tuple[np.ndarray, float]], voices: list[Voice], params: RecognitionParams,
              calibration: Calibration, space: ScoreSpace | None) -> list[Match | None]:
    """For each speaker's (voiceprint, speech seconds), its enrolled voice, or None."""
    matches: list[Match | None] = [None] * len(prints)
    if not prints or not voices:
        return matches
    threshold = params.threshold
    similarity = compared(np.stack([vector for vector, _ in prints]), space) @ compared(np.stack([v.embedding for v in voices]), space).T
    heard_enough = np.array([speech >= params.min_speech_seconds for _, speech in prints])
    similarity[~heard_enough] = -1.0  # shape: (speakers, voices)
    rows, cols = linear_sum_assignment(np.where(similarity >= threshold, similarity, -1.0), maximize=True)
    same = calibration.same_person(similarity)
    for speaker, voice in zip(rows, cols, strict=True):
        if similarity[speaker, voice] >= threshold:
            matches[speaker] = Match(voices[voice].name, float(same[speaker, voice]))
    return matches
