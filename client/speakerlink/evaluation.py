"""Scoring a result against a reference RTTM: what `speakerlink eval` prints.

Needs pyannote.metrics (`pip install 'speakerlink[eval]'`). The convention is the one the
field uses (md-eval / dscore): a 0.25 s collar on each side of every reference boundary
(pyannote's `collar=0.5` is the total width) and overlapped speech scored.

- Per-clip DER and JER map hypothesis to reference speakers in each clip on its own.
- Global DER lays the clips end to end on one timeline, with unscored gaps, so one mapping
  covers all of them: a wrong cross-clip link costs as much as a wrong turn.
- Linking looks at each reference (clip, speaker) item and the global label that covers most
  of its speech. A false merge is a pair of items of different people, in different clips,
  with one label; a false split is a pair of items of one person, in different clips, with
  different labels. Pair precision is the share of the cross-clip pairs with one label that are
  one person. An item is linked exactly when its label groups it with precisely the items of
  the same person.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass
from itertools import combinations
from pathlib import Path

from pyannote.core import Annotation, Segment, Timeline
from pyannote.metrics.diarization import DiarizationErrorRate, JaccardErrorRate

from speakerlink.text import plural
from speakerlink.v1 import speakerlink_pb2 as pb

COLLAR = 0.5  # total width: 0.25 s on each side
GAP = 100.0  # unscored seconds between clips on the global timeline

Turns = dict[str, list[tuple[float, float, str]]]
"""clip id (file name without extension) -> (start, end, speaker) turns."""


def read_rttm(path: Path) -> Turns:
    turns: Turns = defaultdict(list)
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        parts = line.split()
        if not parts or parts[0] != "SPEAKER":
            continue
        if len(parts) < 8:
            raise ValueError(f"{path}:{number}: an RTTM SPEAKER line has at least 8 fields")
        start, duration = float(parts[3]), float(parts[4])
        turns[parts[1]].append((start, start + duration, parts[7]))
    return dict(turns)


def read_uem(path: Path) -> dict[str, tuple[float, float]]:
    spans = {}
    for line in Path(path).read_text().splitlines():
        parts = line.split()
        if len(parts) >= 4:
            spans[parts[0]] = (float(parts[2]), float(parts[3]))
    return spans


def clip_id(name: str) -> str:
    return Path(name).stem


def hypothesis_of(result: pb.DiarizationResult) -> Turns:
    return {clip_id(c.name): [(s.start, s.end, s.speaker) for s in c.segments] for c in result.clips}


@dataclass
class ClipScore:
    clip: str
    der: float
    jer: float
    ref_speakers: int
    hyp_speakers: int


@dataclass
class Linking:
    items: int
    exact: int  # items whose label groups them with exactly their own person's items
    false_merges: int  # pairs across clips
    false_splits: int
    links: int = 0  # pairs of items in different clips given one label, right or wrong

    @property
    def accuracy(self) -> float:
        return self.exact / self.items if self.items else 1.0

    @property
    def pair_precision(self) -> float:
        """Of the cross-clip pairs given one label, the share that are one person."""
        return (self.links - self.false_merges) / self.links if self.links else 1.0


@dataclass
class Report:
    clips: list[ClipScore]
    clip_der: float  # pooled: all clips' errors over all their reference speech
    clip_jer: float
    global_der: float
    ref_speakers: int
    hyp_speakers: int
    linking: Linking
    audio_seconds: float = 0.0
    processing_seconds: float = 0.0  # on the server
    wall_seconds: float = 0.0  # as the client saw it, upload included

    @property
    def exact_count_clips(self) -> int:
        return sum(c.ref_speakers == c.hyp_speakers for c in self.clips)

    @property
    def count_error(self) -> float:
        """Mean absolute difference between found and true speakers per clip."""
        return sum(abs(c.hyp_speakers - c.ref_speakers) for c in self.clips) / max(len(self.clips), 1)

    @property
    def real_time_factor(self) -> float:
        return self.processing_seconds / self.audio_seconds if self.audio_seconds else 0.0

    def table(self) -> str:
        width = max([len("clip"), *(len(c.clip) for c in self.clips)])
        rows = [f"{'clip':<{width}}  {'ref':>3}  {'hyp':>3}  {'DER':>6}  {'JER':>6}"]
        rows += [
            f"{c.clip:<{width}}  {c.ref_speakers:>3}  {c.hyp_speakers:>3}  {100 * c.der:5.1f}%  {100 * c.jer:5.1f}%"
            for c in self.clips
        ]
        link = self.linking
        rows += [
            "",
            f"per-clip DER (pooled)  {100 * self.clip_der:.2f}%   JER {100 * self.clip_jer:.2f}%",
            f"global DER             {100 * self.global_der:.2f}%",
            f"speakers               {self.hyp_speakers} found, {self.ref_speakers} true; exact in "
            f"{self.exact_count_clips} of {plural(len(self.clips), 'clip')}, mean error {self.count_error:.2f} per clip",
            f"linking                {100 * link.accuracy:.1f}% of {link.items} (clip, speaker) items exact; "
            f"{plural(link.false_merges, 'false merge')}, {plural(link.false_splits, 'false split')} (pairs across clips), "
            f"pair precision {100 * link.pair_precision:.1f}%",
        ]
        if self.audio_seconds:
            rows.append(
                f"real-time factor       {self.real_time_factor:.4f} ({self.processing_seconds:.1f} s for "
                f"{self.audio_seconds:.1f} s of audio; {self.wall_seconds:.1f} s with upload)"
            )
        return "\n".join(rows)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["linking"]["accuracy"] = self.linking.accuracy
        out["linking"]["pair_precision"] = self.linking.pair_precision
        out |= {"exact_count_clips": self.exact_count_clips, "count_error": self.count_error,
                "real_time_factor": self.real_time_factor}
        return out


def score(reference: Turns, hypothesis: Turns, uem: dict[str, tuple[float, float]]) -> Report:
    """Scores over the clips `uem` lists (clip id -> scored span)."""
    der = DiarizationErrorRate(collar=COLLAR, skip_overlap=False)
    jer = JaccardErrorRate(collar=COLLAR, skip_overlap=False)
    clips = []
    for clip in sorted(uem):
        ref, hyp = _annotation(reference.get(clip, [])), _annotation(hypothesis.get(clip, []))
        span = Timeline([Segment(*uem[clip])])
        clips.append(ClipScore(clip, der(ref, hyp, uem=span), jer(ref, hyp, uem=span),
                               len(ref.labels()), len(hyp.labels())))
    global_ref, global_hyp, spans = Annotation(), Annotation(), []
    offset = 0.0
    for clip in sorted(uem):
        lo, hi = uem[clip]
        _annotation(reference.get(clip, []), offset, global_ref)
        _annotation(hypothesis.get(clip, []), offset, global_hyp)
        spans.append(Segment(lo + offset, hi + offset))
        offset += hi + GAP
    global_der = DiarizationErrorRate(collar=COLLAR, skip_overlap=False)(global_ref, global_hyp, uem=Timeline(spans))
    return Report(
        clips=clips, clip_der=abs(der), clip_jer=abs(jer), global_der=global_der,
        ref_speakers=len(global_ref.labels()), hyp_speakers=len(global_hyp.labels()),
        linking=linking({c: reference.get(c, []) for c in uem}, hypothesis),
    )


def main_labels(reference: Turns, hypothesis: Turns) -> dict[tuple[str, str], str | None]:
    """Each reference (clip, speaker) item's hypothesis label: the one over most of its speech."""
    label: dict[tuple[str, str], str | None] = {}
    for clip, turns in reference.items():
        for who in {w for *_, w in turns}:
            overlap: dict[str, float] = defaultdict(float)
            for rs, re_, rw in turns:
                if rw == who:
                    for hs, he, hw in hypothesis.get(clip, []):
                        overlap[hw] += max(0.0, min(re_, he) - max(rs, hs))
            best = max(overlap, key=overlap.get) if overlap and max(overlap.values()) > 0 else None
            label[(clip, who)] = best
    return label


def linking(reference: Turns, hypothesis: Turns) -> Linking:
    label = main_labels(reference, hypothesis)
    exact = 0
    for (_, who), found in label.items():
        same_person = {item for item in label if item[1] == who}
        same_label = {item for item, lab in label.items() if found is not None and lab == found}
        exact += found is not None and same_person == same_label
    merges = splits = links = 0
    for (a, la), (b, lb) in combinations(label.items(), 2):
        if a[0] == b[0]:
            continue  # one clip: a matter of diarization, not linking
        linked = la is not None and la == lb
        links += linked
        if a[1] == b[1]:
            splits += not linked
        else:
            merges += linked
    return Linking(items=len(label), exact=exact, false_merges=merges, false_splits=splits, links=links)


def _annotation(turns: list[tuple[float, float, str]], offset: float = 0.0, into: Annotation | None = None) -> Annotation:
    ann = into if into is not None else Annotation()
    for start, end, who in turns:
        if end > start:
            ann[Segment(start + offset, end + offset), len(ann)] = who
    return ann
