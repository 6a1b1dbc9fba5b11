"""Cross-clip linking: which clips' local speakers are one person.

Constrained complete-linkage clustering of per-speaker centroids: the pair of groups with the
best score merges while every cross pair of members clears the bar and the groups share no
clip (two speakers of one clip are never one person: cannot-link). A voice heard in one clip
only stays its own global speaker, however many there are. Complete rather than average
linkage, so a third voice that resembles one member of a linked pair cannot ride on the
pair's average (on libri-dev-linking a distractor joined a true pair that way).

Scores. Centroids are compared in the embedder's score space (engines.base.ScoreSpace):
centred and whitened against what a room, a phone line or a codec does to one voice, so a
person heard through two conditions scores closer to how they score through one; a pair heard
through one condition keeps its raw cosine, less `raw_margin`, where that is higher (see
`scores`); a pair heard through a phone line on one side only is also compared as the line
would carry both (pipeline.matched_band). Even so a cosine means different things for
different voices: some voices sit close to many others.
When the job has enough speakers, each pair is therefore also scored with adaptive symmetric
score normalisation (AS-norm) against a cohort taken from the job itself: for the pair (i, j),
i's cohort is the TOP_COHORT speakers of other clips (j left out) most similar to i, leaving
out those cosine alone already links to i, and

    z(i, j) = ((s - mean_i) / std_i + (s - mean_j) / std_j) / 2.

A pair links when z clears LINK_Z and its cosine clears `threshold` (the engine's or the
request's cosine floor); merges go in order of z. With too small a cohort (a job of 2-3 small
clips) the statistics are meaningless, so the cosine alone decides, with the stricter bar
`threshold + small_job_margin`, because nothing else guards against a look-alike voice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from speakerlink_server.engines.base import Calibration, ScoreSpace, compared, unit_rows
from speakerlink_server.params import LinkingParams

TOP_COHORT = 5       # cohort size for AS-norm
MIN_COHORT = 8       # fewest other-clip speakers (beyond the pair) for AS-norm to be used
LINK_Z = 1.1         # AS-norm bar; libri-dev-linking is perfect for 1.0..1.25
FLOOR_Z_GAP = 0.5    # how far under LINK_Z a pair below the cosine floor is put
# A voice heard in many clips fills its own AS-norm cohort with itself and is never linked
# (nine clips of one five-person cast came out as 20 speakers). A clique of at least RECURRING speakers
# of different clips, every pair at cosine threshold + sure_margin or more (the engine's
# LinkingParams), is taken as one recurring person and kept out of its own members' cohorts.
RECURRING = 3


@dataclass(frozen=True)
class LocalSpeaker:
    clip_index: int
    local_index: int
    centroid: np.ndarray
    speech_seconds: float
    narrowband: bool = False  # heard through a narrowband channel (pipeline.channel)


@dataclass(frozen=True)
class Link:
    global_index: int
    confidence: float


def link_speakers(speakers: list[LocalSpeaker], params: LinkingParams, calibration: Calibration,
                  space: ScoreSpace | None, normalise: bool = True, min_speakers: int = 0,
                  phone: np.ndarray | None = None, vouched: np.ndarray | None = None) -> list[Link]:
    """A global speaker index (by first appearance) and a confidence for each local speaker.

    normalise=False scores by cosine against `threshold` alone: right for the chunks of one
    recording, where a speaker recurs in every chunk and so would fill their own AS-norm
    cohort, and where one channel and session make cosines comparable. Linking stops
    before fewer than `min_speakers` global speakers would remain (0: no floor). `phone`, where
    the job mixes bands, holds each speaker's phone print (pipeline.matched_band): a pair across
    bands also scores its phone prints' score less `phone_margin`, where that is higher.
    `vouched` (pipeline.recognize.vouched): a pair that an enrolled voice vouches for scores at
    least what the voice gives it.
    """
    if not speakers:
        return []
    threshold = params.threshold
    vectors = np.stack([s.centroid for s in speakers])
    clips = np.array([s.clip_index for s in speakers])
    similarity = scores(vectors, vectors, space, params.raw_margin)
    if phone is not None:
        narrow = np.array([s.narrowband for s in speakers])
        matched = scores(phone, phone, space, params.raw_margin) - params.phone_margin
        similarity = np.where(narrow[:, None] != narrow[None, :], np.maximum(similarity, matched), similarity)
    if vouched is not None:
        similarity = np.maximum(similarity, vouched)
    other_clip = clips[:, None] != clips[None, :]
    cohort = other_clip & ~_surely_same(similarity, clips, threshold + params.sure_margin) if normalise else None
    if cohort is None:
        score, bar = similarity, threshold
    elif int(cohort.sum(axis=1).min()) - 1 >= MIN_COHORT:
        normalised = as_norm(similarity, cohort, TOP_COHORT)
        bar = LINK_Z
        # Below the cosine floor a pair can never link: its z is capped under the bar (and
        # kept finite, so it still tells how sure a decision not to link is).
        score = np.where(similarity >= threshold, normalised, np.minimum(normalised, bar - FLOOR_Z_GAP))
    else:
        score, bar = similarity, threshold + params.small_job_margin
    groups = _constrained_complete_linkage(score, clips, bar, min_speakers)
    groups.sort(key=lambda g: min((speakers[i].clip_index, speakers[i].local_index) for i in g))
    group_of = {i: g for g, members in enumerate(groups) for i in members}
    same = calibration.same_person(similarity)
    links = []
    for i in range(len(speakers)):
        members = [j for j in groups[group_of[i]] if j != i]
        if members:
            confidence = float(same[i, members].min())
        else:
            others = np.flatnonzero(other_clip[i])
            confidence = 1.0 - (float(same[i, others].max()) if others.size else 0.0)
        links.append(Link(group_of[i], confidence))
    return links


def scores(a: np.ndarray, b: np.ndarray, space: ScoreSpace | None, raw_margin: float) -> np.ndarray:
    """Each row of a against each row of b as linking scores them: the score-space cosine, or
    the raw cosine less raw_margin where that is higher. Two experts: the space for a voice
    heard through two conditions, raw cosines for one heard twice through the same, where the
    space can pull a pair apart. Shape: (len(a), len(b))."""
    return np.maximum(compared(a, space) @ compared(b, space).T, unit_rows(a) @ unit_rows(b).T - raw_margin)


@dataclass(frozen=True)
class Voiceprint:
    """A voice as recognition compares it and the voice library keeps it."""

    embedding: np.ndarray  # unit length
    speech_seconds: float
    narrowband: bool = False  # most of its speech came through a narrowband channel
    # Its phone print (pipeline.matched_band), unit length, where one was taken or its speech
    # was narrowband; else None.
    phone: np.ndarray | None = None


def pooled(prints: Sequence[Voiceprint]) -> Voiceprint:
    """One voice heard as several (a global speaker's local speakers, an enrollment's clusters,
    a name's enrollments): the speech-weighted mean of their embeddings, and of the phone
    prints of those that have one."""
    weights = np.array([max(p.speech_seconds, 1e-3) for p in prints])
    embedding = unit_rows((weights @ np.stack([p.embedding for p in prints]))[None])[0]
    lined = [k for k, p in enumerate(prints) if p.phone is not None]
    phone = unit_rows((weights[lined] @ np.stack([prints[k].phone for k in lined]))[None])[0] if lined else None
    narrowband = 2 * sum(w for w, p in zip(weights, prints, strict=True) if p.narrowband) > weights.sum()
    return Voiceprint(embedding, float(sum(p.speech_seconds for p in prints)), bool(narrowband), phone)


def global_voiceprints(speakers: list[LocalSpeaker], links: list[Link],
                       phone: list[np.ndarray | None] | None = None) -> list[Voiceprint]:
    """Each global speaker's voiceprint, by global index, pooled from its local speakers'
    centroids and phone prints (`phone`, by local speaker; a narrowband speaker's is its centroid)."""
    groups: list[list[Voiceprint]] = [[] for _ in range(1 + max((link.global_index for link in links), default=-1))]
    for i, (speaker, link) in enumerate(zip(speakers, links, strict=True)):
        heard = speaker.centroid if speaker.narrowband else None if phone is None else phone[i]
        groups[link.global_index].append(Voiceprint(speaker.centroid, speaker.speech_seconds, speaker.narrowband, heard))
    return [pooled(group) for group in groups]


def _surely_same(similarity: np.ndarray, clips: np.ndarray, bar: float) -> np.ndarray:
    """Pairs of one recurring person (see RECURRING), who are not each other's impostors."""
    group = np.arange(len(similarity))
    for members in _constrained_complete_linkage(similarity, clips, bar):
        if len(members) >= RECURRING:
            group[members] = members[0]
    return group[:, None] == group[None, :]


def as_norm(similarity: np.ndarray, cohort_of: np.ndarray, top: int) -> np.ndarray:
    """Symmetric AS-norm of a square cosine matrix; cohort_of[i] marks i's possible impostors
    (speakers of other clips not surely i).

    For the pair (i, j), i's statistics come from its `top` most similar cohort speakers with
    j itself left out, so a true partner does not inflate its own cohort.
    """
    n = len(similarity)
    mean = np.zeros((n, n))
    std = np.ones((n, n))
    for i in range(n):
        cohort = np.flatnonzero(cohort_of[i])
        ranked = cohort[np.argsort(-similarity[i, cohort], kind="stable")][: top + 1]
        head = similarity[i, ranked]
        if head.size == 0:
            continue
        # Most partners are not among the top: their statistics are those of the top `top`.
        mean[i], std[i] = head[:top].mean(), max(float(head[:top].std()), 0.02)  # floor: a flat cohort is no evidence
        for k, j in enumerate(ranked):  # a partner that is in the top is left out of its own cohort
            rest = np.delete(head, k)[:top]
            if rest.size:
                mean[i, j], std[i, j] = rest.mean(), max(float(rest.std()), 0.02)
            else:
                mean[i, j], std[i, j] = 0.0, 1.0
    return 0.5 * ((similarity - mean) / std + (similarity - mean.T) / std.T)


def _constrained_complete_linkage(score: np.ndarray, clips: np.ndarray, bar: float, fewest: int = 0) -> list[list[int]]:
    """Groups of indices: merge the best pair of groups (by their worst cross score) while that
    score clears `bar`, the groups share no clip, and more than `fewest` groups remain. Vectorised over pairs: an hour-long
    recording in 10-minute chunks links a few hundred chunk speakers at once."""
    n = len(score)
    groups: list[list[int]] = [[i] for i in range(n)]
    worst = score.astype(np.float64).copy()  # worst cross score between groups
    np.fill_diagonal(worst, -np.inf)
    _, clip_ids = np.unique(clips, return_inverse=True)
    holds = np.zeros((n, clip_ids.max() + 1 if n else 0), dtype=bool)  # which clips each group holds
    holds[np.arange(n), clip_ids] = True
    alive = np.ones(n, dtype=bool)
    while True:
        allowed = alive[:, None] & alive[None, :] & ~(holds.astype(np.int32) @ holds.T.astype(np.int32)).astype(bool)
        candidates = np.where(allowed, worst, -np.inf)
        a, b = np.unravel_index(int(np.argmax(candidates)), candidates.shape) if n else (0, 0)
        if n == 0 or candidates[a, b] < bar or alive.sum() <= fewest:
            return [groups[i] for i in range(n) if alive[i]]
        a, b = min(a, b), max(a, b)
        groups[a] += groups[b]
        worst[a, :] = worst[:, a] = np.minimum(worst[a, :], worst[b, :])
        worst[a, a] = -np.inf
        holds[a] |= holds[b]
        alive[b] = False
