"""Names for a job's speakers from the tenant's enrolled voices (F13).

After linking, each global speaker's voiceprint is compared with every enrolled voice of the
same embedder. One assignment (Hungarian, on cosine) gives each voice to at most one speaker
and each speaker at most one voice, so two speakers of a job never share a name; a pair is
kept only where its cosine in the embedder's score space (engines.base.ScoreSpace) clears the
embedder's recognition threshold, and only for a speaker with `min_speech_seconds` of speech
(params.RecognitionParams). Open set first: a voice not enrolled stays unnamed.

A speaker heard through a phone line is also compared with the voice as phone lines carry it
(its line prints: enrollment.line_prints): the speaker's phone print against each, the best
less `phone_margin`, where that is higher. A codec takes from a voice something of its own
that the narrowband compensation and the score space leave in; heard through the same line,
the enrolled voice has lost it too.

Enrolled voices also vouch for links (`vouched`): before linking, each clip's speakers are
scored against them the same way, and two speakers of different clips whose best voice is the
same, each at the recognition bar or more, score as a pair at least the weaker of the two. A
person heard through a phone line in one clip and in a room in another may sit under the link
floor to each other and still clear the naming bar to their enrolled voice from both sides.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from speakerlink_server.engines.base import Calibration, ScoreSpace, compared
from speakerlink_server.params import RecognitionParams
from speakerlink_server.pipeline.linking import LocalSpeaker, Voiceprint


@dataclass(frozen=True)
class Voice:
    """An enrolled voice as one embedding of one embedder (VoiceLibrary.voiceprints, store/voices.py)."""

    name: str
    embedding: np.ndarray  # unit length
    speech_seconds: float
    lines: np.ndarray | None = None  # its line prints, unit rows; None where no enrollment took any


@dataclass(frozen=True)
class Match:
    name: str
    score: float  # the calibrated probability that the speaker is the enrolled person


def recognize(prints: list[Voiceprint], voices: list[Voice], params: RecognitionParams,
              calibration: Calibration, space: ScoreSpace | None) -> list[Match | None]:
    """For each speaker's voiceprint, its enrolled voice, or None."""
    matches: list[Match | None] = [None] * len(prints)
    if not prints or not voices:
        return matches
    threshold = params.threshold
    similarity = voice_scores(prints, voices, params, space)
    rows, cols = linear_sum_assignment(np.where(similarity >= threshold, similarity, -1.0), maximize=True)
    same = calibration.same_person(similarity)
    for speaker, voice in zip(rows, cols, strict=True):
        if similarity[speaker, voice] >= threshold:
            matches[speaker] = Match(voices[voice].name, float(same[speaker, voice]))
    return matches


def vouched(speakers: list[LocalSpeaker], voices: list[Voice], params: RecognitionParams,
            space: ScoreSpace | None) -> np.ndarray | None:
    """The score each pair of local speakers of different clips takes from an enrolled voice
    both match best, at the recognition bar or more (the weaker of the two); -1 elsewhere.
    None without voices. Shape: (speakers, speakers)."""
    if not speakers or not voices:
        return None
    heard = [Voiceprint(s.centroid, s.speech_seconds, s.narrowband, s.centroid if s.narrowband else None) for s in speakers]
    similarity = voice_scores(heard, voices, params, space)
    best, top = similarity.argmax(axis=1), similarity.max(axis=1)
    clips = np.array([s.clip_index for s in speakers])
    named = top >= params.threshold
    pairs = named[:, None] & named[None, :] & (best[:, None] == best[None, :]) & (clips[:, None] != clips[None, :])
    return np.where(pairs, np.minimum(top[:, None], top[None, :]), -1.0)


def voice_scores(prints: list[Voiceprint], voices: list[Voice], params: RecognitionParams,
                 space: ScoreSpace | None) -> np.ndarray:
    """Each speaker against each voice: the score-space cosine, for a mostly narrowband
    speaker also its phone print's best cosine to the voice's line prints less phone_margin,
    where that is higher; -1 for a speaker heard under min_speech_seconds. Shape: (speakers, voices)."""
    similarity = compared(np.stack([p.embedding for p in prints]), space) @ compared(np.stack([v.embedding for v in voices]), space).T
    narrow = [i for i, p in enumerate(prints) if p.narrowband and p.phone is not None]
    if narrow:
        heard = compared(np.stack([prints[i].phone for i in narrow]), space)
        for k, voice in enumerate(voices):
            if voice.lines is not None and len(voice.lines):
                best = (heard @ compared(voice.lines, space).T).max(axis=1)
                similarity[narrow, k] = np.maximum(similarity[narrow, k], best - params.phone_margin)
    heard_enough = np.array([p.speech_seconds >= params.min_speech_seconds for p in prints])
    similarity[~heard_enough] = -1.0
    return similarity
