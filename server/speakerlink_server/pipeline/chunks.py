"""Long recordings (F14): one clip analysed in chunks, then its chunks linked like clips.

A recording longer than a chunk is decoded, embedded and clustered a chunk at a time, so
memory stays bounded by the chunk, not the file. Each chunk's local speakers are then linked
across chunks with the same constrained linking that links clips (two speakers of one chunk
are never one person), scored by cosine without AS-norm (see link_speakers), and every
speaker keeps one label across the whole recording.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from speakerlink_server.engines.base import Calibration, CountBounds, ScoreSpace, unit_rows
from speakerlink_server.params import LinkingParams
from speakerlink_server.pipeline.clustering import merge_to
from speakerlink_server.pipeline.linking import LocalSpeaker, link_speakers
from speakerlink_server.pipeline.segments import Turn


@dataclass(frozen=True)
class ChunkAnalysis:
    turns: list[Turn]  # in recording time
    speakers: list[LocalSpeaker]  # local to the chunk
    warnings: list[str] = field(default_factory=list)


def join_chunks(
    clip_index: int, chunks: list[ChunkAnalysis], params: LinkingParams, calibration: Calibration,
    space: ScoreSpace | None, bounds: CountBounds,
) -> tuple[list[Turn], list[LocalSpeaker]]:
    """The recording's turns and speakers, numbered by first appearance across the chunks.

    `bounds` are the recording's count, not each chunk's: the chunks were clustered with its
    maximum only, since a chunk may hold fewer. Linking across chunks stops at the minimum
    (speakers of one chunk stay apart, so the minimum holds while the chunks hold that many
    speakers between them), and past the maximum the most similar speakers of the whole
    recording merge until it is met."""
    members = [
        replace(s, clip_index=k) for k, c in enumerate(chunks) for s in c.speakers
    ]
    links = link_speakers(members, params, calibration, space, normalise=False, min_speakers=bounds.min_speakers)
    of = {(m.clip_index, m.local_index): link.global_index for m, link in zip(members, links, strict=True)}
    if bounds.max_speakers:
        of = _cap(of, members, bounds.max_speakers)
    count = 1 + max(of.values(), default=-1)
    sums = np.zeros((count, members[0].centroid.size if members else 0))
    speech = np.zeros(count)
    narrow = np.zeros(count)  # seconds heard through a narrowband channel
    for m in members:  # a speaker's voiceprint weighs each chunk by how much they spoke in it
        sums[of[(m.clip_index, m.local_index)]] += m.speech_seconds * m.centroid
        speech[of[(m.clip_index, m.local_index)]] += m.speech_seconds
        narrow[of[(m.clip_index, m.local_index)]] += m.speech_seconds * m.narrowband
    turns: list[Turn] = []
    latest: dict[int, int] = {}  # speaker -> index of their latest turn
    for k, chunk in enumerate(chunks):
        for turn in chunk.turns:
            who = of[(k, turn.speaker)]
            last = latest.get(who)
            if last is not None and abs(turn.start - turns[last].end) < 1e-6:
                turns[last] = Turn(turns[last].start, turn.end, who)  # a turn cut by a chunk boundary
            else:
                latest[who] = len(turns)
                turns.append(Turn(turn.start, turn.end, who))
    speakers = [LocalSpeaker(clip_index, g, vector, float(speech[g]), bool(narrow[g] > speech[g] / 2))
                for g, vector in enumerate(unit_rows(sums))]
    return turns, speakers


def _cap(of: dict[tuple[int, int], int], members: list[LocalSpeaker], max_speakers: int) -> dict[tuple[int, int], int]:
    """Merge the speakers with the most similar voiceprints until at most `max_speakers` remain,
    numbered again by first appearance."""
    keys = [(m.clip_index, m.local_index) for m in members]  # in chunk order
    weighted = np.stack([m.speech_seconds * m.centroid for m in members])
    merged = merge_to(weighted, np.array([of[key] for key in keys]), max_speakers).tolist()
    order = {g: i for i, g in enumerate(dict.fromkeys(merged))}
    return {key: order[g] for key, g in zip(keys, merged, strict=True)}
