"""Dev sets in which each person is heard through different recording conditions.

The real recordings of ../shared/data are each made in one condition; what users need is the
same person found again through another room, phone line or codec. This builds, with the
product's own condition simulator (speakerlink.conditions), seeded and from ../shared/data only:

- `linking/`: made-up conversations of LibriSpeech readers (librispeech-train-clean-100, leaving
  out the 32 readers of libri-dev-linking). Each linked reader's one utterance is cut at pauses
  into three parts: the first is their clean enrollment clip (`enroll/<reader>.wav`, listed in
  `enrollment.tsv`), the other two go to two conversations of DIFFERENT condition classes.
- `open/`: conversations of one-time voices (each reader in exactly one clip, none of them a
  linked reader), spread over the classes: links or names here are false.
- `ami/<class>/` and `libri/<class>/`: the ami-train and libri-dev-linking clips through each
  class, and `ami/mixed/` and `libri/mixed/`, each clip through another class, so their
  cross-clip links cross conditions too (libri-dev-linking's people speak 5-15 s a clip, longer
  than the parts of `linking/`).

Every folder has audio/*.wav (16 kHz), all.rttm, all.uem and truth.tsv (clip, class, what the
clip went through, its speakers); the LibriSpeech folders also sources.tsv (which span of which
utterance went where). Score each folder on its own and never tune on one alone.

    python benchmarks/condition_sets.py [--out build/condition-sets] [--seed 20261206] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import csv
import itertools
import random
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "client"))
from speakerlink import conditions  # noqa: E402
from speakerlink.condition_spec import parse  # noqa: E402
from speakerlink.evaluation import read_rttm  # noqa: E402

RATE = conditions.RATE
SEED = 20261206  # the default: the dev sets of benchmarks/QUALITY.md
# The condition classes, each a spec. Noise is kept at 5-20 dB SNR, where people still talk;
# babble is a crowd of 6-10 (with 3-5 voices at 8 dB, the system heard them as one more speaker
# the reference does not have: a different question from whether people stay apart).
CLASSES: dict[str, str] = {
    "clean": "clean",
    "near-room": "near-room",
    "far-room": "far-room",
    "babble": "noise-babble:snr=5..20,talkers=6..10",
    "noise": "noise-pink:snr=5..20",
    "phone-gsm": "phone-gsm",
    "phone-ulaw": "phone-ulaw",
    "voip-opus": "voip-opus",
    "mp3": "mp3",
}
ENROLL_SPEECH_S = 4.0  # a linked reader's enrollment part: the server wants 3 s of speech
PART_SPEECH_S = 2.5  # each of their two conversation parts (as in libri-dev-linking)
CUT_PAUSE_S = 0.12  # utterances are cut into parts and turns at silences this long
PAUSE_S = 0.3  # in the reference, shorter silences count as speech (as in libri-dev-linking)
BABBLE_READERS = 30  # the readers babble is made of: in no set
Turn = tuple[float, float, str]  # (start s, end s, reader) in a clip


@dataclass
class Utterance:
    reader: str
    utt: str
    audio: np.ndarray
    speech: list[tuple[float, float]]  # in the utterance's own time


@dataclass
class Part:
    """A span of one utterance that goes to one clip (or to enrollment)."""

    utt: Utterance
    start: float
    end: float

    def speech(self) -> list[tuple[float, float]]:
        return [(max(s, self.start), min(e, self.end)) for s, e in self.utt.speech if e > self.start and s < self.end]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "condition-sets")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    args = parser.parse_args(argv)
    started = time.monotonic()
    build(args.data, args.out, args.seed)
    print(f"built {args.out} in {time.monotonic() - started:.0f} s")
    return 0


def build(data: Path, out: Path, seed: int, classes: dict[str, str] = CLASSES, clips_per_class: int = 3,
          open_per_class: int = 2, real_clips: int | None = None, babble_readers: int = BABBLE_READERS) -> None:
    """All the sets into `out` (replaced)."""
    rng = random.Random(seed)
    if out.exists():
        shutil.rmtree(out)
    readers = draw_readers(data, rng, len(classes), clips_per_class, open_per_class, babble_readers)
    _write_linking(out / "linking", classes, clips_per_class, readers.linked, readers.babble, seed, rng)
    _write_open(out / "open", classes, open_per_class, readers.one_time, readers.babble, seed, rng)
    _write_through(data / "ami-train", out / "ami", classes, readers.babble, seed, real_clips)
    _write_through(data / "libri-dev-linking", out / "libri", classes, readers.babble, seed, real_clips)


def default_readers(data: Path) -> Readers:
    """The readers as the dev sets drew them with the default seed: measurements that must stay
    apart from every dev set (narrowband compensation and levels, the score space) take `.unused`."""
    return draw_readers(data, random.Random(SEED), len(CLASSES))


@dataclass
class Readers:
    linked: list[list[Part]]  # each linked reader's three parts
    one_time: list[Utterance]
    babble: list[np.ndarray]
    unused: list[dict[str, str]]  # the utterances.tsv rows of the readers in no set


def draw_readers(data: Path, rng: random.Random, classes: int, clips_per_class: int = 3, open_per_class: int = 2,
                 babble_readers: int = BABBLE_READERS) -> Readers:
    """The librispeech-train-clean-100 readers of each set, never one of libri-dev-linking's;
    the readers left over are apart from every dev set (benchmarks/narrowband_compensation.py)."""
    libri = data / "librispeech-train-clean-100"
    taken = {w for turns in read_rttm(data / "libri-dev-linking" / "all.rttm").values() for *_, w in turns}
    table = sorted(csv.DictReader((libri / "utterances.tsv").open(), delimiter="\t"), key=lambda r: r["utt_id"])
    rows = [r for r in table if r["speaker_id"] not in taken]
    rng.shuffle(rows)
    drawn = Readers([], [], [], [])
    need_linked = classes * clips_per_class * 3 // 2  # three readers to a clip on average
    need_open = classes * open_per_class * 3
    for used, row in enumerate(rows, start=1):
        audio = conditions.load(libri / row["path"])
        utt = Utterance(row["speaker_id"], row["utt_id"], audio, _speech(audio))
        if len(drawn.linked) < need_linked and (parts := _three_parts(utt)):
            drawn.linked.append(parts)
        elif len(drawn.one_time) < need_open and _total(utt.speech) >= 4.0:
            drawn.one_time.append(utt)
        elif len(drawn.babble) < babble_readers:
            drawn.babble.append(utt.audio)
        if len(drawn.linked) == need_linked and len(drawn.one_time) == need_open and len(drawn.babble) == babble_readers:
            drawn.unused = rows[used:]
            break
    return drawn


# --- LibriSpeech conversations -------------------------------------------------------------


def _write_linking(folder: Path, classes: dict[str, str], per_class: int, linked: list[list[Part]],
                   babble: list[np.ndarray], seed: int, rng: random.Random) -> None:
    """Each linked reader in two clips of different classes, per_class clips of each class with
    2-4 readers; their first part is their enrollment. A clip left with one reader is dropped,
    with its reader's other appearance, so every reader kept is in exactly two clips."""
    names = {f"lnk{n:02d}": cls for n, cls in enumerate(c for c in classes for _ in range(per_class))}
    free = {clip: 4 for clip in names}
    cast: dict[str, list[Part]] = {clip: [] for clip in names}
    for parts in linked:
        # the emptiest clip, then the emptiest of another class: clips fill evenly
        open_clips = sorted((c for c in names if free[c] > 0), key=lambda c: (-free[c], rng.random()))
        first = next(iter(open_clips), None)
        second = next((c for c in open_clips if first and names[c] != names[first]), None)
        if second is None:
            break
        for clip, part in ((first, parts[1]), (second, parts[2])):
            cast[clip].append(part)
            free[clip] -= 1
    while lonely := [clip for clip, parts in cast.items() if len(parts) < 2]:
        gone = {p.utt.reader for clip in lonely for p in cast.pop(clip)}
        cast = {clip: [p for p in parts if p.utt.reader not in gone] for clip, parts in cast.items()}
    kept = {p.utt.reader for parts in cast.values() for p in parts}
    enrollment = [parts[0] for parts in linked if parts[0].utt.reader in kept]
    (folder / "enroll").mkdir(parents=True)
    for part in enrollment:
        conditions.write_wav(folder / "enroll" / f"{part.utt.reader}.wav", _at_level(_cut(part), -26.0))
    (folder / "enrollment.tsv").write_text("reader\tpath\tutt_id\tsrc_start_s\tsrc_end_s\tspeech_s\n" + "".join(
        f"{p.utt.reader}\tenroll/{p.utt.reader}.wav\t{p.utt.utt}\t{p.start:.3f}\t{p.end:.3f}\t{_total(p.speech()):.2f}\n"
        for p in enrollment))
    _write_folder(folder, {clip: (names[clip], parts) for clip, parts in cast.items()}, classes, babble, seed, rng)


def _write_open(folder: Path, classes: dict[str, str], per_class: int, voices: list[Utterance],
                babble: list[np.ndarray], seed: int, rng: random.Random) -> None:
    """One-time voices, 2-4 to a clip, per_class clips of each class."""
    plan, queue = {}, list(voices)
    for n, cls in enumerate(c for c in classes for _ in range(per_class)):
        size = min(rng.choice((2, 3, 3, 4)), len(queue))
        if size < 2:
            break
        plan[f"opn{n:02d}"] = (cls, [_whole(u) for u in queue[:size]])
        queue = queue[size:]
    _write_folder(folder, plan, classes, babble, seed, rng)


def _write_folder(folder: Path, plan: dict[str, tuple[str, list[Part]]], classes: dict[str, str],
                  babble: list[np.ndarray], seed: int, rng: random.Random) -> None:
    rttm, uem = [], []
    truth = ["clip\tclass\tcondition\tspeakers"]
    sources = ["clip\tspeaker_id\tutt_id\tsrc_start_s\tsrc_end_s\tclip_start_s"]
    (folder / "audio").mkdir(parents=True, exist_ok=True)
    for clip, (cls, parts) in sorted(plan.items()):
        audio, turns, placed = _conversation(parts, rng, overlap=rng.random() < 0.5)
        done = conditions.apply(parse(classes[cls]), audio, clip=clip, seed=seed,
                                context=conditions.Context(turns, babble))
        conditions.write_wav(folder / "audio" / f"{clip}.wav", done.audio)
        rttm += [f"SPEAKER {clip} 1 {s:.3f} {e - s:.3f} <NA> <NA> {w} <NA> <NA>" for s, e, w in turns]
        uem.append(f"{clip} 1 0.000 {len(audio) / RATE:.3f}")
        truth.append(f"{clip}\t{cls}\t{done.describe()}\t{','.join(sorted({p.utt.reader for p in parts}))}")
        sources += [f"{clip}\t{p.utt.reader}\t{p.utt.utt}\t{p.start:.3f}\t{p.end:.3f}\t{at:.3f}" for p, at in placed]
    for name, lines in (("all.rttm", rttm), ("all.uem", uem), ("truth.tsv", truth), ("sources.tsv", sources)):
        (folder / name).write_text("\n".join(lines) + "\n")


def _conversation(parts: list[Part], rng: random.Random, overlap: bool) -> tuple[np.ndarray, list[Turn], list[tuple[Part, float]]]:
    """The parts cut into turns at their pauses and interleaved, 0.2-0.8 s apart; with `overlap`,
    a quarter of the turns start 0.3-1.5 s before the previous one ends (at most half of either).
    Each reader at their own level, -30 to -22 dBFS, over white noise at -66 dBFS."""
    queues = {p.utt.reader: _turns(p, rng) for p in parts}
    levels = {reader: rng.uniform(-30.0, -22.0) for reader in queues}
    order, last = [], None
    while any(queues.values()):
        ready = [r for r, q in queues.items() if q and r != last] or [r for r, q in queues.items() if q]
        last = max(ready, key=lambda r: (len(queues[r]), rng.random()))
        order.append(queues[last].pop(0))
    pieces, turns, placed = [], [], []
    cursor, previous = rng.uniform(0.3, 0.8), 0.0
    for turn in order:
        length = turn.end - turn.start
        start = cursor + rng.uniform(0.2, 0.8)
        if overlap and placed and placed[-1][0].utt.reader != turn.utt.reader and rng.random() < 0.25:
            start = cursor - min(rng.uniform(0.3, 1.5), previous / 2, length / 2)
        gain = 10 ** ((levels[turn.utt.reader] - _speech_level(turn)) / 20)
        pieces.append((start, _cut(turn) * gain))
        turns += [(start + s - turn.start, start + e - turn.start, turn.utt.reader) for s, e in _bridged(turn.speech(), PAUSE_S)]
        placed.append((turn, start))
        cursor, previous = start + length, length
    audio = np.random.default_rng(rng.getrandbits(32)).normal(0, 10 ** (-66 / 20), int((cursor + 0.5) * RATE))
    for start, piece in pieces:
        at = int(round(start * RATE))
        audio[at: at + len(piece)] += piece
    return audio.astype(np.float32), sorted(turns), placed


def _turns(part: Part, rng: random.Random) -> list[Part]:
    """A part cut at pauses into turns of about 2-6 s of speech."""
    turns, start, spoken, want = [], part.start, 0.0, rng.uniform(2.0, 6.0)
    speech = part.speech()
    for i, (s, e) in enumerate(speech):
        spoken += e - s
        if spoken >= want and i + 1 < len(speech) and _total(speech[i + 1:]) >= 1.5:
            cut = (e + speech[i + 1][0]) / 2
            turns.append(Part(part.utt, start, cut))
            start, spoken, want = cut, 0.0, rng.uniform(2.0, 6.0)
    return [*turns, Part(part.utt, start, part.end)]


def _three_parts(utt: Utterance) -> list[Part] | None:
    """The utterance cut at two pauses: an enrollment part of at least ENROLL_SPEECH_S (about a
    third of the speech), then the rest halved, each half with at least PART_SPEECH_S; or None."""
    total = _total(utt.speech)
    pauses = [((a[1] + b[0]) / 2, _total(utt.speech[: i + 1])) for i, (a, b) in enumerate(itertools.pairwise(utt.speech))]
    firsts = [p for p in pauses if p[1] >= ENROLL_SPEECH_S and total - p[1] >= 2 * PART_SPEECH_S]
    if not firsts:
        return None
    first = min(firsts, key=lambda p: abs(p[1] - max(ENROLL_SPEECH_S, total / 3)))
    seconds = [p for p in pauses if p[1] - first[1] >= PART_SPEECH_S and total - p[1] >= PART_SPEECH_S]
    if not seconds:
        return None
    second = min(seconds, key=lambda p: abs(p[1] - (first[1] + total) / 2))
    edges = [utt.speech[0][0], first[0], second[0], utt.speech[-1][1]]
    return [Part(utt, a, b) for a, b in itertools.pairwise(edges)]


def _whole(utt: Utterance) -> Part:
    return Part(utt, utt.speech[0][0], utt.speech[-1][1])


def _speech(audio: np.ndarray) -> list[tuple[float, float]]:
    """Where a clean utterance has speech: 10 ms frames (smoothed over 30 ms) above 30 % of the
    way from its noise floor to its loud frames, in dB; gaps under CUT_PAUSE_S bridged, blips
    under 0.1 s dropped. Read speech has few long pauses: these short ones are where it is cut."""
    hop = RATE // 100
    frames = audio[: len(audio) // hop * hop].reshape(-1, hop).astype(np.float64)
    level = np.convolve(10 * np.log10(np.mean(frames**2, axis=1) + 1e-12), np.ones(3) / 3, mode="same")
    floor, loud = np.percentile(level, 10), np.percentile(level, 95)
    voiced = level > floor + 0.3 * (loud - floor)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], voiced.astype(int), [0]])))
    spans = [(a / 100, b / 100) for a, b in zip(edges[::2], edges[1::2], strict=True)]
    return [(s, e) for s, e in _bridged(spans, CUT_PAUSE_S) if e - s >= 0.1]


def _bridged(spans: list[tuple[float, float]], gap: float) -> list[tuple[float, float]]:
    """Spans with the silences shorter than `gap` between them filled in."""
    merged: list[tuple[float, float]] = []
    for s, e in spans:
        if merged and s - merged[-1][1] < gap:
            merged[-1] = (merged[-1][0], e)
        else:
            merged.append((s, e))
    return merged


def _cut(part: Part) -> np.ndarray:
    return part.utt.audio[int(part.start * RATE): int(part.end * RATE)].astype(np.float64)


def _speech_level(part: Part) -> float:
    """dBFS of the part's speech."""
    audio = np.concatenate([part.utt.audio[int(s * RATE): int(e * RATE)] for s, e in part.speech()]).astype(np.float64)
    return 10 * np.log10(np.mean(audio**2) + 1e-12)


def _at_level(audio: np.ndarray, dbfs: float) -> np.ndarray:
    return audio * 10 ** ((dbfs - 10 * np.log10(np.mean(audio**2) + 1e-12)) / 20)


def _total(spans: list[tuple[float, float]]) -> float:
    return sum(e - s for s, e in spans)


# --- AMI -----------------------------------------------------------------------------------


def _write_through(source: Path, out: Path, classes: dict[str, str], babble: list[np.ndarray], seed: int,
                   limit: int | None) -> None:
    """A real folder's clips through each class, and `mixed`: clip i through class i (mod the classes)."""
    reference = read_rttm(source / "all.rttm")
    clips = sorted((source / "audio").glob("*.wav"))[:limit]
    audio = {p.stem: conditions.load(p) for p in clips}
    plans = {cls: {p.stem: cls for p in clips} for cls in classes}
    plans["mixed"] = {p.stem: list(classes)[i % len(classes)] for i, p in enumerate(clips)}
    for name, plan in plans.items():
        folder = out / name
        (folder / "audio").mkdir(parents=True, exist_ok=True)
        truth = ["clip\tclass\tcondition\tspeakers"]
        for clip, cls in plan.items():
            context = conditions.Context(reference.get(clip, []), babble)
            done = conditions.apply(parse(classes[cls]), audio[clip], clip=clip, seed=seed, context=context)
            conditions.write_wav(folder / "audio" / f"{clip}.wav", done.audio)
            truth.append(f"{clip}\t{cls}\t{done.describe()}\t{','.join(sorted({w for *_, w in reference.get(clip, [])}))}")
        keep = set(plan)
        for file, field in (("all.rttm", 1), ("all.uem", 0)):  # the field that names the clip
            lines = (source / file).read_text().splitlines()
            (folder / file).write_text("\n".join(line for line in lines if line.split()[field] in keep) + "\n")
        (folder / "truth.tsv").write_text("\n".join(truth) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
