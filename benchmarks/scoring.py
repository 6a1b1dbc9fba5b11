"""Scoring as ../shared/data/README.md defines it: 0.25 s collar, overlap scored.

Per-clip DER maps hypothesis to reference speakers in each clip on its own; global DER lays
the clips end to end on one timeline (with unscored gaps) so one mapping covers all of them
and a wrong cross-clip link costs as much as a wrong turn. Linking accuracy counts (clip,
speaker) pairs whose global label groups them with exactly their true other appearances.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from pyannote.core import Annotation, Segment, Timeline
from pyannote.metrics.diarization import DiarizationErrorRate

COLLAR = 0.5  # pyannote's collar is the total width: 0.25 s on each side
GAP = 100.0   # unscored seconds between clips on the global timeline

Turns = dict[str, list[tuple[float, float, str]]]


def read_rttm(path: Path) -> Turns:
    turns: Turns = defaultdict(list)
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 8 and parts[0] == "SPEAKER":
            start, dur = float(parts[3]), float(parts[4])
            turns[parts[1]].append((start, start + dur, parts[7]))
    return dict(turns)


def read_uem(path: Path) -> dict[str, tuple[float, float]]:
    spans = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 4:
            spans[parts[0]] = (float(parts[2]), float(parts[3]))
    return spans


def _annotation(turns: list[tuple[float, float, str]], offset: float = 0.0, into: Annotation | None = None) -> Annotation:
    ann = into if into is not None else Annotation()
    for start, end, who in turns:
        if end > start:
            ann[Segment(start + offset, end + offset), len(ann)] = who
    return ann


@dataclass
class Scores:
    per_clip_der: dict[str, float]
    mean_clip_der: float      # pooled over clips: total errors / total reference speech
    global_der: float
    linking_accuracy: float
    linked_items: int
    hyp_speakers: int
    ref_speakers: int
    exact_count_clips: int
    clips: int

    def lines(self) -> list[str]:
        return [
            f"per-clip DER (pooled): {100 * self.mean_clip_der:.2f}%",
            f"global DER:            {100 * self.global_der:.2f}%",
            f"linking accuracy:      {100 * self.linking_accuracy:.1f}% of {self.linked_items} (clip, speaker) pairs",
            f"global speakers:       {self.hyp_speakers} found, {self.ref_speakers} true",
            f"exact count per clip:  {self.exact_count_clips} of {self.clips}",
        ]


def score(reference: Turns, hypothesis: Turns, uem: dict[str, tuple[float, float]]) -> Scores:
    clip_metric = DiarizationErrorRate(collar=COLLAR, skip_overlap=False)
    per_clip = {}
    for clip in sorted(uem):
        lo, hi = uem[clip]
        per_clip[clip] = clip_metric(
            _annotation(reference.get(clip, [])), _annotation(hypothesis.get(clip, [])),
            uem=Timeline([Segment(lo, hi)]),
        )
    global_ref, global_hyp, spans = Annotation(), Annotation(), []
    offset = 0.0
    for clip in sorted(uem):
        lo, hi = uem[clip]
        _annotation(reference.get(clip, []), offset, global_ref)
        _annotation(hypothesis.get(clip, []), offset, global_hyp)
        spans.append(Segment(lo + offset, hi + offset))
        offset += hi + GAP
    global_der = DiarizationErrorRate(collar=COLLAR, skip_overlap=False)(global_ref, global_hyp, uem=Timeline(spans))
    accuracy, items = linking_accuracy(reference, hypothesis)
    exact = sum(
        len({w for *_, w in reference.get(c, [])}) == len({w for *_, w in hypothesis.get(c, [])}) for c in uem
    )
    return Scores(
        per_clip_der=per_clip,
        mean_clip_der=abs(clip_metric),
        global_der=global_der,
        linking_accuracy=accuracy,
        linked_items=items,
        hyp_speakers=len({w for turns in hypothesis.values() for *_, w in turns}),
        ref_speakers=len({w for turns in reference.values() for *_, w in turns}),
        exact_count_clips=exact,
        clips=len(uem),
    )


def linking_accuracy(reference: Turns, hypothesis: Turns) -> tuple[float, int]:
    """Share of reference (clip, speaker) pairs whose hypothesis global label is shared with
    exactly the pairs of the same true identity (no false merge, no false split)."""
    item_label: dict[tuple[str, str], str | None] = {}
    for clip, turns in reference.items():
        for who in {w for *_, w in turns}:
            overlap: dict[str, float] = defaultdict(float)
            for rs, re_, rw in turns:
                if rw != who:
                    continue
                for hs, he, hw in hypothesis.get(clip, []):
                    overlap[hw] += max(0.0, min(re_, he) - max(rs, hs))
            best = max(overlap, key=overlap.get) if overlap and max(overlap.values()) > 0 else None
            item_label[(clip, who)] = best
    correct = 0
    for (_, who), label in item_label.items():
        truth = {item for item in item_label if item[1] == who}
        found = {item for item, lab in item_label.items() if label is not None and lab == label}
        correct += label is not None and truth == found
    return (correct / len(item_label) if item_label else 1.0), len(item_label)
