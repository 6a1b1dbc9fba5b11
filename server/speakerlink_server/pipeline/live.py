"""Live diarization (F18): who speaks now, decided within a chosen latency, on the offline engines.

Audio comes in as it is captured. Every `step` seconds of it, the segmenter reads the window
(10 s) that ends there. The windows that still cover undecided audio make a short chunk that
goes through the offline steps (pipeline.clip): speaker counts (with the speech the segmenter
missed, from a speech detector that reads each sample once), one-speaker stretches, short
windows inside them, embedded once each; all the stream's windows are clustered again, as
offline, under a bar that follows how spread they are, and the clusters keep their speakers
from one step to the next (pipeline.tracking);
then frames are labelled as offline (pipeline.reconstruct). A frame is decided once `latency`
seconds of audio follow it, less one step (windows end only every step) and a tenth of a step
left for the analysis itself, and it never changes. Frames not yet decided are sent as
provisional turns. Memory stays bounded over any length of stream: a window of audio, the
segmenter windows over it, and a bounded set of embedded windows (pipeline.tracking).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from speakerlink_server.audio_format import SAMPLE_RATE
from speakerlink_server.engines.base import CountBounds, Embedder, Segmentation, Segmenter, SpeechDetector
from speakerlink_server.params import PipelineParams
from speakerlink_server.pipeline import channel, missed_speech
from speakerlink_server.pipeline.activity import FrameGrid, binarize, grid_runs, single_speaker_runs, speaker_count
from speakerlink_server.pipeline.linking import Voiceprint
from speakerlink_server.pipeline.recognize import Match, Voice, recognize
from speakerlink_server.pipeline.reconstruct import frame_labels, label_frames
from speakerlink_server.pipeline.segments import Turn
from speakerlink_server.pipeline.slots import assign_by_frames
from speakerlink_server.pipeline.tracking import NEW, SpeakerMemory
from speakerlink_server.pipeline.windows import run_windows, sample_spans

# Windows end every `step` seconds: half the latency, so that a frame is seen by at least two
# windows before it is decided, within these bounds (a shorter step costs CPU time in proportion).
MIN_STEP, MAX_STEP = 0.25, 1.0
MIN_LATENCY, MAX_LATENCY = 0.5, 5.0
# The share of a step the latency keeps for the analysis itself: the step's work, and the wait
# for the engines where streams share them. Without it, a frame's speaker was sent `latency`
# of audio after it was heard plus that time; a quarter of a step cost ami-train 2.9 points of
# DER at 2 s (benchmarks/QUALITY.md).
COMPUTE_SHARE = 0.1
# Segmenter windows are kept while they end less than this before the first undecided frame:
# the stretches they find reach back that far.
CONTEXT_SECONDS = 1.0


def step_seconds(latency: float) -> float:
    return min(max(latency / 2, MIN_STEP), MAX_STEP)


@dataclass(frozen=True)
class LiveUpdate:
    """What one window of audio changed. Turns' speakers are the stream's speaker numbers
    (0 for S1, ...), in the order their first final frame came."""

    decided_until: float  # seconds: the speaker of every moment before this is final
    final: list[Turn]  # turns that ended before decided_until: sent once, never changed
    provisional: list[Turn]  # every turn not final, as it stands now; replaces the previous ones
    heard_seconds: float  # audio analysed so far


@dataclass
class _Open:
    start: float
    end: float


@dataclass(frozen=True)
class _Window:
    """One segmenter window: where it starts and ends (seconds) and its frames' log-probabilities."""

    start: float
    end: float
    log_probs: np.ndarray  # shape: (num_frames, num_classes)


@dataclass
class LiveDiarizer:
    """One stream's state: feed() audio as it comes, finish() at its end.

    Not thread-safe: one stream, one caller. The engines are shared with offline jobs (their
    batches meet in the same device batches)."""

    segmenter: Segmenter
    speech: SpeechDetector
    embedder: Embedder
    params: PipelineParams
    latency: float
    max_speakers: int
    voices: list[Voice] = field(default_factory=list)
    # The fraction of a step by which this stream's windows end early (0 <= phase < 1): streams
    # started in the same instant then step at different instants. Frames are still decided
    # `latency` after they are heard at most.
    phase: float = 0.0

    def __post_init__(self) -> None:
        timing = self.segmenter.timing
        self.step = step_seconds(self.latency)
        self.lookahead = self.latency - self.step * (1 + COMPUTE_SHARE)  # audio after a frame when it is decided
        self._window = int(round(self.segmenter.window_seconds * SAMPLE_RATE))
        self._step = int(round(self.step * SAMPLE_RATE))
        self._frame = timing.step
        self._first = timing.start + timing.duration / 2  # centre of a window's first frame
        live = self.params.live
        clustering = replace(self.params.clustering, min_cluster_windows=live.min_cluster_windows,
                             fold_similarity=live.fold_similarity)
        self.memory = SpeakerMemory(self.embedder.dim, CountBounds(max_speakers=self.max_speakers), clustering,
                                    self.params.spread, live.merge_similarity, live.max_windows, live.anchors)
        self._audio = np.zeros(0, dtype=np.float32)
        self._audio_start = 0  # sample index of self._audio[0]
        self._heard = self.speech.stream()  # the speech detector, fed each sample once
        self._received = 0  # samples fed
        if not 0.0 <= self.phase < 1.0:
            raise ValueError(f"phase {self.phase} is not in [0, 1)")
        self._end = -int(round(self.phase * self._step))  # samples analysed: where the last window ended
        self._windows: list[_Window] = []  # the segmenter windows that still cover undecided audio
        self._cache: dict[tuple[int, int], np.ndarray] = {}  # embeddings of windows not yet settled, by grid frames
        self._last: dict[tuple[int, int], int] = {}  # their speakers, as the last step gave them
        self._embedded: set[tuple[int, int]] = set()  # the cached windows embedded for themselves
        # Whether a frame is decided a hop or more after it is heard: a stretch then has its next
        # window before its newest frames are decided, and its windows have settled when cut.
        self._ahead = self.lookahead >= self.params.windows.hop_seconds
        self._who = np.zeros((0, 0), dtype=bool)  # who speaks in the chunk's frames, as it stands
        self._origin = 0  # grid frame of self._who's first row
        self._powerset = np.zeros((0, 0))
        self._decided = 0  # frames before this one are final
        self._open: dict[int, _Open] = {}
        self.turns: list[Turn] = []  # every final turn, by stream speaker
        self.order: list[int] = []  # stream speakers in the order of their first final frame
        self.speech = np.zeros(0)  # seconds of final speech of each stream speaker
        self.names: dict[int, Match] = {}
        self.narrowband: bool | None = None

    # ---------------------------------------------------------------- input

    def feed(self, samples: np.ndarray) -> list[LiveUpdate]:
        """16 kHz mono float32 samples as they come; an update for each window they complete."""
        self._audio = np.concatenate([self._audio, samples.astype(np.float32, copy=False)])
        self._received += samples.size
        updates = []
        while self._end + self._step <= self._received:
            self._analyse(self._end + self._step, final=False)
            updates.append(self._settle(final=False))
        return updates

    def finish(self) -> LiveUpdate:
        """Analyse what is left and decide every frame: the stream's last update."""
        if self._received > self._end or not self._windows:
            self._analyse(self._received, final=True)
        self._heard.close()
        return self._settle(final=True)

    @property
    def heard_seconds(self) -> float:
        return max(self._end, 0) / SAMPLE_RATE

    @property
    def received(self) -> int:
        """Samples fed so far, analysed or not."""
        return self._received

    def label(self, speaker: int) -> int:
        """The stream's number for a speaker with final speech: its place among first final frames."""
        return self.order.index(speaker)

    def voiceprints(self) -> np.ndarray:
        """Each stream speaker's unit voiceprint. Shape: (speakers, dim)."""
        return self.memory.voiceprints()

    # ---------------------------------------------------------------- one step

    def _analyse(self, end: int, final: bool) -> None:
        start = max(0, end - self._window)
        wav = self._audio[start - self._audio_start : end - self._audio_start]
        if self.narrowband is None and (wav.size == self._window or final):
            self.narrowband = channel.is_narrowband(wav)
        new = max(self._end, 0)
        self._heard.feed(self._audio[new - self._audio_start : end - self._audio_start], final)
        if wav.size:
            segmentation = self.segmenter.segment(wav, self.segmenter.window_seconds)
            self._powerset = segmentation.powerset
            self._windows.append(_Window(start / SAMPLE_RATE, end / SAMPLE_RATE, segmentation.log_probs[0]))
        self._end = end
        if self._windows:
            self._label(self._upto(final), final)
        self._recognize()

    def _upto(self, final: bool) -> int:
        """The first grid frame left undecided once this step is settled. Nothing is decided
        before a step and the lookahead are heard: the stream's first window holds too little
        audio to decide from (it took a click at the start of a call for a speaker)."""
        heard = self._end / SAMPLE_RATE
        if final:
            return max(self._frame_at(heard), self._decided)
        if heard < self.step + self.lookahead:
            return self._decided
        return max(self._frame_at(heard - self.lookahead), self._decided)

    def _label(self, upto: int, final: bool) -> None:
        """Who speaks in each frame the kept segmenter windows cover, as offline labels a chunk."""
        segmentation, grid, origin = self._chunk()
        activity = binarize(segmentation) * grid.valid[:, :, None]  # shape: (num_windows, num_frames, local_speakers)
        count = self._missed(grid, speaker_count(segmentation, grid))
        runs = single_speaker_runs(activity, grid, count)
        hop = round(self.params.windows.hop_seconds / self._frame)
        windows = run_windows(runs, grid, self.params.windows)
        if self._ahead:
            windows = _closed_tails(windows, runs, grid.size, hop)
        fresh = self._fresh(windows, origin, hop)
        self._embed(fresh, grid, origin)
        before = np.array([self._prior(a, b) for a, b in fresh], dtype=np.int64)
        settle = final | (fresh[:, 1] <= upto)
        embeddings = np.array([self._cache[(a, b)] for a, b in fresh]).reshape(len(fresh), self.embedder.dim)
        speakers = self.memory.update(embeddings, fresh, before, settle)
        current = [(int(a), int(b)) for a, b in fresh[~settle]]
        self._cache = {key: self._cache[key] for key in current}
        self._embedded &= set(current)
        self._last = dict(zip(current, speakers[~settle].tolist(), strict=True))
        inside = self.memory.frames[:, 1] > origin
        frames = np.vstack([self.memory.frames[inside], fresh[~settle]]) - origin
        labels = np.concatenate([self.memory.speakers[inside], speakers[~settle]])
        order = np.argsort(frames[:, 0], kind="stable")
        frame_label = frame_labels(runs, frames[order].mean(axis=1), labels[order], grid.size)
        assign = assign_by_frames(activity, grid, frame_label, self.memory.count)
        self._who = label_frames(frame_label, assign, activity, grid, count, self.memory.count)
        self._origin = origin

    def _missed(self, grid: FrameGrid, count: np.ndarray) -> np.ndarray:
        """`count` with the speech the segmenter missed filled in, as offline (pipeline.missed_speech),
        over the audio kept: through a reverberant room the segmenter hears little of some voices."""
        offset = self._audio_start / SAMPLE_RATE
        wav = self._audio[: self._end - self._audio_start]
        kept = replace(grid, first_centre=grid.first_centre - offset)  # in seconds of the audio kept

        def heard() -> list[tuple[float, float]]:
            return [(a - offset, b - offset) for a, b in self._heard.speech(self._audio_start, self._end)]

        return missed_speech.fill(wav, kept, count, heard, self.params.missed_speech)

    def _fresh(self, windows: list[tuple[int, int]], origin: int, hop: int) -> np.ndarray:
        """The chunk's windows that reach undecided frames and are not kept already (nor the
        same speech cut again a frame or two away), in grid frames. Shape: (n, 2)."""
        kept = self.memory.frames[self.memory.frames[:, 1] > origin]
        fresh = [(a + origin, b + origin) for a, b in windows
                 if b + origin > self._decided and not _overlaps(a + origin, b + origin, kept, hop)]
        return np.array(fresh, dtype=np.int64).reshape(len(fresh), 2)

    def _embed(self, windows: np.ndarray, grid: FrameGrid, origin: int) -> None:
        """Embeddings of the windows not embedded at an earlier step, into the cache. Where the
        latency leaves a hop ahead, a window of the same length as one embedded for itself, cut
        again less than half a hop away (its stretch's start moved as more segmenter windows
        saw it), takes that one's embedding (benchmarks/QUALITY.md)."""
        shift = self.params.windows.hop_seconds / self._frame / 2 if self._ahead else 0.0
        missing = []
        for a, b in windows.tolist():
            if (a, b) in self._cache:
                continue
            near = [k for k in self._embedded if abs(k[0] - a) < shift and abs((k[1] - k[0]) - (b - a)) <= 2]
            if near:
                self._cache[(a, b)] = self._cache[near[0]]
            else:
                missing.append((a, b))
        if not missing:
            return
        spans = [[(a - self._audio_start, b - self._audio_start) for a, b in span]
                 for span in sample_spans([(a - origin, b - origin) for a, b in missing], grid)]
        embeddings = channel.embed(self.embedder, self._audio, spans, bool(self.narrowband))
        self._cache.update(zip(missing, embeddings, strict=True))
        self._embedded.update(missing)

    def _prior(self, first: int, end: int) -> int:
        """The speaker of the last step's window that shares most of these grid frames (the
        same speech, cut again a frame or two away), or NEW."""
        best, speaker = (end - first) / 2, NEW
        for (a, b), label in self._last.items():
            shared = min(b, end) - max(a, first)
            if shared > best:
                best, speaker = shared, label
        return speaker

    def _chunk(self) -> tuple[Segmentation, FrameGrid, int]:
        """The kept windows as one segmentation on a frame grid, and the grid frame it starts at."""
        timing = self.segmenter.timing
        starts = np.array([int(round(w.start / self._frame)) for w in self._windows])
        origin = int(starts.min())
        heard = self._end / SAMPLE_RATE
        size = max(1, self._frame_at(heard) - origin)
        index = (starts - origin)[:, None] + np.arange(timing.count)[None, :]
        centre = np.array([w.start for w in self._windows])[:, None] + self._first + self._frame * np.arange(timing.count)
        ends = np.array([w.end for w in self._windows])[:, None]
        valid = (index < size) & (centre < ends)
        log_probs = np.stack([w.log_probs for w in self._windows])
        segmentation = Segmentation(log_probs, starts * self._frame, timing, self._powerset, heard)
        grid = FrameGrid(np.minimum(index, size - 1), valid, size, self._frame, self._first + origin * self._frame)
        return segmentation, grid, origin
    def _recognize(self) -> None:
        """Names for speakers heard long enough, once: a name given is never taken back."""
        if not self.voices:
            return
        taken = {m.name for m in self.names.values()}
        waiting = [s for s in range(len(self.speech)) if s not in self.names
                   and self.speech[s] >= self.params.recognition.min_speech_seconds]
        voices = [v for v in self.voices if v.name not in taken]
        if not waiting or not voices:
            return
        prints = self.memory.voiceprints()
        narrowband = bool(self.narrowband)
        heard = [Voiceprint(prints[s], float(self.speech[s]), narrowband, prints[s] if narrowband else None) for s in waiting]
        found = recognize(heard, voices, self.params.recognition,
                          self.embedder.calibration, self.embedder.space)
        for speaker, match in zip(waiting, found, strict=True):
            if match is not None:
                self.names[speaker] = match

    # ---------------------------------------------------------------- decisions

    def _settle(self, final: bool) -> LiveUpdate:
        """Decide the frames that have `lookahead` of audio after them (all of them at the end),
        close the turns that ended, and describe the rest as provisional."""
        heard = self._end / SAMPLE_RATE
        upto = self._upto(final)
        speaking = self._speaking(self._decided, upto)
        self.speech = np.pad(self.speech, (0, max(0, speaking.shape[1] - len(self.speech))))
        self.speech[: speaking.shape[1]] += speaking.sum(axis=0) * self._frame
        closed = self._close(speaking, self._decided, heard if final else None)
        self._decided = upto
        decided_until = heard if final else min(self._edge(upto), heard)
        if final:
            closed += [Turn(o.start, min(o.end, heard), s) for s, o in self._open.items()]
            self._open.clear()
        else:
            closed += self._close_quiet(decided_until)
        closed.sort(key=lambda t: (t.start, t.speaker))
        self.turns += closed
        provisional = self._provisional(upto, heard)
        self._forget()
        # A speaker heard only in provisional turns so far is numbered after the final ones, by
        # where its speech starts: what it will be if it is decided as it stands.
        waiting = sorted({t.speaker for t in provisional} - set(self.order),
                         key=lambda s: min(t.start for t in provisional if t.speaker == s))
        number = {s: n for n, s in enumerate([*self.order, *waiting])}
        return LiveUpdate(decided_until, [Turn(t.start, t.end, number[t.speaker]) for t in closed],
                          [Turn(t.start, t.end, number[t.speaker]) for t in provisional], heard)

    def _speaking(self, lo: int, hi: int) -> np.ndarray:
        """Who speaks in grid frames lo..hi, as the last step labelled them. Shape: (hi - lo, speakers)."""
        rows = self._who[max(0, lo - self._origin) : max(0, hi - self._origin)]
        return np.pad(rows, ((0, max(0, hi - lo - len(rows))), (0, self.memory.count - rows.shape[1])))

    def _close(self, speaking: np.ndarray, first: int, heard: float | None) -> list[Turn]:
        """Carry the decided frames into the open turns: runs of a speaker closer than the
        bridge join its open turn; a run after a longer pause closes it and opens another."""
        bridge = self.params.turns.bridge_seconds
        closed = []
        for speaker in range(speaking.shape[1]):
            for a, b in grid_runs(speaking[:, speaker]):
                start, end = max(self._edge(first + a), 0.0), self._edge(first + b)
                if heard is not None:
                    end = min(end, heard)
                held = self._open.get(speaker)
                if held is not None and start - held.end < bridge:
                    held.end = end
                    continue
                if held is not None:
                    closed.append(Turn(held.start, held.end, speaker))
                if speaker not in self.order:
                    self.order.append(speaker)
                self._open[speaker] = _Open(start, end)
        return closed

    def _close_quiet(self, decided_until: float) -> list[Turn]:
        """Open turns whose speaker has been quiet for longer than the bridge: they are over."""
        bridge = self.params.turns.bridge_seconds
        over = [s for s, o in self._open.items() if decided_until - o.end >= bridge]
        return [Turn(self._open[s].start, self._open.pop(s).end, s) for s in over]

    def _provisional(self, upto: int, heard: float) -> list[Turn]:
        """Open turns and the undecided frames' turns, joined across the bridge."""
        bridge = self.params.turns.bridge_seconds
        spans: dict[int, list[list[float]]] = {s: [[o.start, o.end]] for s, o in self._open.items()}
        speaking = self._speaking(upto, self._origin + len(self._who))
        for speaker in range(speaking.shape[1]):
            for a, b in grid_runs(speaking[:, speaker]):
                start, end = self._edge(upto + a), min(self._edge(upto + b), heard)
                runs = spans.setdefault(speaker, [])
                if runs and start - runs[-1][1] < bridge:
                    runs[-1][1] = end
                elif end > start:
                    runs.append([start, end])
        return sorted((Turn(a, b, s) for s, runs in spans.items() for a, b in runs), key=lambda t: (t.start, t.speaker))

    def _forget(self) -> None:
        """Let go of the segmenter windows, settled windows and audio no undecided frame needs."""
        decided = self._edge(self._decided)
        self._windows = [w for w in self._windows if w.end > decided - CONTEXT_SECONDS]
        if not self._windows:
            return
        keep_from = min(int(round(self._windows[0].start * SAMPLE_RATE)), max(0, self._end + self._step - self._window))
        self._audio = self._audio[max(0, keep_from - self._audio_start) :]
        self._audio_start = max(keep_from, self._audio_start)
        self._heard.forget(self._audio_start)

    def _frame_at(self, seconds: float) -> int:
        """The first grid frame whose centre is at or after `seconds`."""
        return max(0, int(np.ceil((seconds - self._first) / self._frame)))

    def _edge(self, frame: int) -> float:
        """Seconds where grid frame `frame` begins."""
        return self._first + (frame - 0.5) * self._frame



def _overlaps(first: int, end: int, frames: np.ndarray, hop: float) -> bool:
    """Whether a window covers more of one of `frames` (windows already kept) than a window one
    hop on would: a window cut again where a stretch moved by a frame or two."""
    if not len(frames):
        return False
    shared = np.minimum(frames[:, 1], end) - np.maximum(frames[:, 0], first)
    return bool((shared > (end - first) - hop).any())


def _closed_tails(windows: list[tuple[int, int]], runs: list[tuple[int, int]], size: int,
                  hop: int) -> list[tuple[int, int]]:
    """The windows without the tail window of a stretch still going on at the newest audio: it
    moves with every step until the stretch ends, and where the stretch's next window comes
    before its frames are decided, embedding it at every step is waste."""
    open_runs = [(a, b) for a, b in runs if b >= size - 1 and b - a > hop]
    return [(a, b) for a, b in windows
            if not any(first <= a and b == end and (a - first) % hop for first, end in open_runs)]
