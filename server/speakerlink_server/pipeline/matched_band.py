"""Voices heard through a phone line in one clip and in full band in another, compared as a
phone line would carry both.

The narrowband compensation (pipeline.channel) and the score space take much of a channel's
pull away, yet a person heard through a phone line in one clip and in full band in another
still scores lower than a person heard twice through one band: what the line removed, the
full-band voiceprint still holds. So when a job mixes bands, each full-band clip is decoded
again and each of its speakers' own speech (where they alone talk) is passed through a
telephone band, embedded and compensated as a narrowband clip's would be: the speaker's phone
print. Linking scores a pair across bands by the higher of its usual score and its phone
prints' score less `LinkingParams.phone_margin` (pipeline.linking). A narrowband speaker's
phone print is its voiceprint.

Only jobs that mix bands pay for the second pass, and in them only full-band speakers that
some narrowband speaker of another clip already comes within PHONE_REACH of the link floor of;
PHONE_WINDOWS windows per speaker at most. Enrollment hears a voice through real codecs the
same way (heard_through; enrollment.line_prints).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

import numpy as np

from speakerlink_server.audio_format import SAMPLE_RATE
from speakerlink_server.engines.base import Embedder, Hook, ScoreSpace, unit_rows
from speakerlink_server.params import LinkingParams, WindowParams
from speakerlink_server.pipeline import audio, channel
from speakerlink_server.pipeline.clip import ClipAnalysis, ClipInput
from speakerlink_server.pipeline.linking import LocalSpeaker, scores
from speakerlink_server.pipeline.segments import Turn
from speakerlink_server.pipeline.voices import without

# A minute of a speaker's own speech in 1.5 s windows, spread over the recording: a voiceprint
# steadies well before that, and a long recording costs no more than a short one.
PHONE_WINDOWS = 40
# On the dev sets, a phone print raised a pair across bands by 0.21 at most (0.38 -> 0.59); a
# pair further under the floor than this is left as it is.
PHONE_REACH = 0.2


def worth_a_phone_print(speakers: list[LocalSpeaker], params: LinkingParams, space: ScoreSpace | None) -> np.ndarray:
    """Which speakers to hear again through a phone line: full-band ones within PHONE_REACH of
    the link floor of a narrowband speaker of another clip. Shape: (speakers,), bool."""
    if not speakers:
        return np.zeros(0, dtype=bool)
    narrow = np.array([s.narrowband for s in speakers])
    clips = np.array([s.clip_index for s in speakers])
    vectors = np.stack([s.centroid for s in speakers])
    near = scores(vectors, vectors, space, params.raw_margin) >= params.threshold - PHONE_REACH
    across = narrow[None, :] & (clips[:, None] != clips[None, :])
    return ~narrow & (near & across).any(axis=1)


def phone_prints(
    clip: ClipInput, analysis: ClipAnalysis, wanted: np.ndarray, embedder: Embedder, windows: WindowParams,
    chunk_seconds: float, max_seconds: float, hook: Hook,
) -> np.ndarray:
    """One phone print per speaker of the clip, in the order of analysis.speakers: where
    `wanted`, their own speech heard through a phone line; elsewhere their voiceprint.
    Shape: (speakers, dim)."""
    prints = np.stack([s.centroid for s in analysis.speakers]) if analysis.speakers else np.zeros((0, embedder.dim))
    spans = {i: own_windows(analysis.turns, analysis.speakers[i].local_index, windows) for i in np.flatnonzero(wanted)}
    if not spans:
        return prints
    [sums] = heard_through([channel.phone_line], clip, spans, len(prints), embedder, chunk_seconds, max_seconds, hook)
    heard = np.linalg.norm(sums, axis=1) > 0
    prints[heard] = unit_rows(sums[heard])
    return prints


def heard_through(
    lines: Sequence[Callable[[np.ndarray], np.ndarray]], clip: ClipInput, spans: dict[int, list[tuple[float, float]]],
    count: int, embedder: Embedder, chunk_seconds: float, max_seconds: float, hook: Hook,
) -> np.ndarray:
    """The sum of the narrowband-compensated embeddings of each speaker's `spans` (seconds,
    by speaker index) of the clip, heard through each of `lines` (16 kHz audio in, 16 kHz out),
    from one decoding of the clip. Zero rows where a speaker has none. Shape: (lines, count, dim)."""
    sums = np.zeros((len(lines), count, embedder.dim))
    with contextlib.closing(audio.stream(clip.path, clip.index, clip.name, chunk_seconds, None, max_seconds)) as pieces:
        for offset, wav in pieces:
            end = offset + wav.size / SAMPLE_RATE
            items, owners = [], []
            for i, windows in spans.items():
                for start, stop in windows:
                    if start >= offset and stop <= end:
                        items.append([(round((start - offset) * SAMPLE_RATE), round((stop - offset) * SAMPLE_RATE))])
                        owners.append(i)
            if not items:
                continue
            for k, line in enumerate(lines):
                np.add.at(sums[k], owners, channel.embed(embedder, line(wav), items, True, hook, "link"))
    return sums


def own_windows(turns: list[Turn], speaker: int, windows: WindowParams) -> list[tuple[float, float]]:
    """(start, end) seconds of windows where `speaker` alone talks, at most PHONE_WINDOWS,
    spread evenly over the recording."""
    alone = without([(t.start, t.end) for t in turns if t.speaker == speaker],
                    [(t.start, t.end) for t in turns if t.speaker != speaker])
    cut = []
    for start, end in sorted(alone):
        while end - start >= windows.min_seconds:
            cut.append((start, min(end, start + windows.seconds)))
            start += windows.seconds
    if len(cut) > PHONE_WINDOWS:
        cut = [cut[int(k)] for k in np.linspace(0, len(cut) - 1, PHONE_WINDOWS)]
    return cut
