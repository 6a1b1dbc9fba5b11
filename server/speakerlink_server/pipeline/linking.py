"""Cross-clip linking: which clips' local speakers are one person.

Constrained average-linkage clustering of per-speaker centroids: the most similar pair of
groups merges while their similarity clears the threshold and they share no clip (two
speakers of one clip are never one person: cannot-link). A voice heard in one clip only
stays its own global speaker, however many there are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Confidence is a logistic of the margin to the threshold: a margin of 0.05 cosine gives about
# 0.82, 0.1 gives 0.95. The slope suits the spread of GE2E and TitaNet centroid similarities.
CONFIDENCE_SLOPE = 30.0


@dataclass(frozen=True)
class LocalSpeaker:
    clip_index: int
    local_index: int
    centroid: np.ndarray
    speech_seconds: float


@dataclass(frozen=True)
class Link:
    global_index: int
    confidence: float


def link_speakers(speakers: list[LocalSpeaker], threshold: float) -> list[Link]:
    """A global speaker index (by first appearance) and a confidence for each local speaker."""
    if not speakers:
        return []
    vectors = np.stack([s.centroid for s in speakers])
    similarity = vectors @ vectors.T
    groups: list[list[int]] = [[i] for i in range(len(speakers))]
    while True:
        best, pair = threshold, None
        for a in range(len(groups)):
            clips_a = {speakers[i].clip_index for i in groups[a]}
            for b in range(a + 1, len(groups)):
                if clips_a & {speakers[i].clip_index for i in groups[b]}:
                    continue
                score = float(similarity[np.ix_(groups[a], groups[b])].mean())
                if score > best:
                    best, pair = score, (a, b)
        if pair is None:
            break
        a, b = pair
        groups[a] = groups[a] + groups[b]
        del groups[b]
    groups.sort(key=lambda g: min((speakers[i].clip_index, speakers[i].local_index) for i in g))
    group_of = {i: g for g, members in enumerate(groups) for i in members}
    links = []
    for i in range(len(speakers)):
        members = [j for j in groups[group_of[i]] if j != i]
        if members:
            margin = float(similarity[i, members].mean()) - threshold
        else:
            # Not linking is right as long as no other group is similar enough.
            others = [j for j in range(len(speakers)) if speakers[j].clip_index != speakers[i].clip_index]
            margin = threshold - (float(similarity[i, others].max()) if others else -1.0)
        links.append(Link(group_of[i], float(1.0 / (1.0 + np.exp(-CONFIDENCE_SLOPE * margin)))))
    return links
