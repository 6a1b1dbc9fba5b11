"""Pure pieces of the pipeline and exporters, on data built here."""

from __future__ import annotations

import csv
import io
import random
import zipfile

import numpy as np
import pytest
from speakerlink.v1 import speakerlink_pb2 as pb
from speakerlink_server import errors
from speakerlink_server.engines.base import Calibration, CountBounds, FrameTiming, Segmentation, Utterance
from speakerlink_server.engines.retry import RetryPolicy, call_with_retries, retry_after_seconds
from speakerlink_server.exporters import export, to_csv, to_rttm, to_srt, to_text, to_vtt
from speakerlink_server.params import (
    ClusteringParams,
    LinkingParams,
    RecognitionParams,
    SlotParams,
    TurnParams,
    WindowParams,
)
from speakerlink_server.pipeline.activity import binarize, frame_grid, grid_runs, single_speaker_runs, speaker_count
from speakerlink_server.pipeline.clustering import cluster_windows, count_warning
from speakerlink_server.pipeline.linking import LocalSpeaker, link_speakers
from speakerlink_server.pipeline.recognize import Voice, recognize
from speakerlink_server.pipeline.reconstruct import frame_labels, label_frames, to_turns
from speakerlink_server.pipeline.slots import UNASSIGNED, assign_by_frames, attach, unassigned_slots
from speakerlink_server.pipeline.voices import MAX_MONOLOGUES, VOICE_SECONDS, voice_spans, without
from speakerlink_server.pipeline.windows import run_windows, sample_spans

CALIBRATION = Calibration(slope=30.0, offset=-21.0)


def voices(n: int, dim: int = 32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((n, dim))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def noisy(center: np.ndarray, count: int, spread: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = center + spread * rng.standard_normal((count, center.size))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def linking(threshold: float) -> LinkingParams:
    return LinkingParams(threshold, small_job_margin=0.06, sure_margin=0.14)


def speaker(clip: int, local: int, vector: np.ndarray) -> LocalSpeaker:
    return LocalSpeaker(clip, local, vector / np.linalg.norm(vector), 5.0)


def test_linking_joins_the_same_voice_and_keeps_new_voices_apart() -> None:
    a, b, c, d = voices(4)
    speakers = [speaker(0, 0, a), speaker(0, 1, b), speaker(1, 0, a + 0.05 * c), speaker(1, 1, d)]
    links = link_speakers(speakers, linking(0.7), CALIBRATION)
    assert [link.global_index for link in links] == [0, 1, 0, 2]
    assert all(0.5 < link.confidence <= 1.0 for link in links)
    # The confidence is the calibrated probability: of one person for a link, of two for no link.
    assert links[0].confidence == pytest.approx(float(CALIBRATION.same_person(np.float64(speakers[0].centroid @ speakers[2].centroid))))
    assert links[3].confidence == pytest.approx(1 - float(CALIBRATION.same_person(np.float64(max(speakers[3].centroid @ speakers[k].centroid for k in (0, 1))))))


def test_cannot_link_two_speakers_of_one_clip() -> None:
    a = voices(1)[0]
    speakers = [speaker(0, 0, a), speaker(0, 1, a), speaker(1, 0, a)]
    links = link_speakers(speakers, linking(-1.0), CALIBRATION)
    assert links[0].global_index != links[1].global_index
    assert len({link.global_index for link in links}) == 2


def test_linking_nothing() -> None:
    assert link_speakers([], linking(0.5), CALIBRATION) == []


def labels_of(windows: np.ndarray, bounds: CountBounds | None = None) -> list[int]:
    return cluster_windows(windows, bounds or CountBounds(), ClusteringParams(0.5, fold_similarity=0.1)).labels.tolist()


def test_clustering_honours_counts() -> None:
    a, b, c = voices(3)
    windows = np.vstack([noisy(a, 20, 0.05, 1), noisy(b, 20, 0.05, 2), noisy(c, 20, 0.05, 3)])
    assert len(set(labels_of(windows))) == 3
    assert len(set(labels_of(windows, CountBounds(2, 2)))) == 2
    assert len(set(labels_of(windows, CountBounds(max_speakers=2)))) == 2
    assert len(set(labels_of(windows[:20], CountBounds(min_speakers=2)))) == 2
    assert labels_of(windows[:0]) == []


def test_a_count_the_audio_cannot_hold_is_a_warning() -> None:
    one = voices(1)[0][None]
    clusters = cluster_windows(one, CountBounds(3, 3), ClusteringParams(0.5, fold_similarity=0.1))
    assert clusters.labels.tolist() == [0]
    assert "3 speakers were asked for" in count_warning(CountBounds(3, 3), len(clusters.centroids))
    assert count_warning(CountBounds(max_speakers=3), 1) == ""


def test_a_few_stray_windows_fold_into_their_speaker_but_a_distinct_short_voice_stays() -> None:
    a, b, c = voices(3)
    stray = (a + 2 * b) / np.linalg.norm(a + 2 * b)  # cosine 0.45 with A: under the bar, close enough to fold
    windows = np.vstack([noisy(a, 20, 0.05, 1), noisy(stray, 2, 0.01, 2), noisy(a, 20, 0.05, 3)])
    assert labels_of(windows) == [0] * 42
    windows = np.vstack([noisy(a, 20, 0.05, 1), noisy(c, 2, 0.05, 2), noisy(a, 20, 0.05, 3)])
    assert labels_of(windows) == [0] * 20 + [1] * 2 + [0] * 20


def segmentation(classes: list[list[int]], starts: list[float], step: float = 0.5) -> Segmentation:
    """A toy segmenter output: per window, the powerset class of each frame, frames every `step` s."""
    powerset = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1], [0, 1, 1]], dtype=np.float32)
    log_probs = np.log(np.full((len(classes), len(classes[0]), 7), 1e-3))
    for w, row in enumerate(classes):
        log_probs[w, np.arange(len(row)), row] = 0.0
    timing = FrameTiming(start=0.0, step=step, duration=step, count=len(classes[0]))
    return Segmentation(log_probs, np.array(starts), timing, powerset, starts[-1] + len(classes[0]) * step)


def test_overlap_carries_both_speakers() -> None:
    # Frames every 0.5 s. Window 0: A (slot 0) alone, A and B together, then B (slot 1) alone.
    # Window 1, from 2 s: the same overlap and B, with B in slot 0.
    seg = segmentation([[1, 1, 1, 4, 4, 2, 2, 2], [4, 1, 1, 1, 1, 0, 0, 0]], [0.0, 2.0])
    activity = binarize(seg)
    grid = frame_grid(seg)
    count = speaker_count(seg, grid)
    assert count.tolist() == [1, 1, 1, 2, 2, 1, 1, 1, 1, 0, 0, 0]
    runs = single_speaker_runs(activity, grid, count)
    assert runs == [(0, 3), (5, 9)]
    # One window labelled A in A's stretch, one labelled B in B's: the overlap gets both.
    frame_label = frame_labels(runs, np.array([1.5, 7.0]), np.array([0, 1]), grid.size)
    assign = assign_by_frames(activity, grid, frame_label, 2)
    assert assign.tolist() == [[0, 1, UNASSIGNED], [1, UNASSIGNED, UNASSIGNED]]
    speaking = label_frames(frame_label, assign, activity, grid, count, 2)
    assert speaking[:, 0].tolist() == [True] * 5 + [False] * 7
    assert speaking[:, 1].tolist() == [False] * 3 + [True] * 6 + [False] * 3
    turns = to_turns(speaking, grid, offset=10.0, duration=6.0, params=TurnParams(bridge_seconds=0.0))
    assert [(t.start, t.end, t.speaker) for t in turns] == [(10.0, 12.5, 0), (11.5, 14.5, 1)]


def test_a_voice_heard_only_in_overlap_gets_a_speaker_never_its_windows_other_one() -> None:
    # One window, frames every 0.5 s: slot 0 alone (labelled speaker 0), then slots 0 and 1 together for 2 s.
    seg = segmentation([[1, 1, 1, 1, 4, 4, 4, 4]], [0.0])
    activity, grid = binarize(seg), frame_grid(seg)
    frame_label = np.array([0, 0, 0, 0, -1, -1, -1, -1])
    assign = assign_by_frames(activity, grid, frame_label, 1)
    assert assign.tolist() == [[0, UNASSIGNED, UNASSIGNED]]
    slots = unassigned_slots(activity, grid, assign, SlotParams())
    assert slots == [(0, 1)]
    a, b, c = voices(3)

    def attached(voice: np.ndarray, centroids: np.ndarray, most: int = 0) -> tuple[list, int]:
        found, cents = attach(assign, slots, voice[None], centroids, activity, grid, CountBounds(max_speakers=most), 0.5,
                              SlotParams())
        return found.tolist(), len(cents)

    # Like a known speaker who is not in the window: that speaker.
    assert attached(b, np.vstack([a, b])) == ([[0, 1, UNASSIGNED]], 2)
    # Like the speaker of the window's other slot only: a new speaker, not the same one twice.
    assert attached(a, a[None]) == ([[0, 1, UNASSIGNED]], 2)
    # Unlike everyone: a new speaker, unless the count asked for is already reached.
    assert attached(c, np.vstack([a, b])) == ([[0, 2, UNASSIGNED]], 3)
    assert attached(c, np.vstack([a, b]), most=2) == ([[0, UNASSIGNED, UNASSIGNED]], 2)
    # Too little speech to be a person of its own.
    assert attach(assign, slots, c[None], a[None], activity, grid, CountBounds(), 0.5,
                  SlotParams(new_speaker_seconds=4.0))[0].tolist() == [[0, UNASSIGNED, UNASSIGNED]]


def test_a_change_of_speaker_without_a_pause_cuts_a_stretch() -> None:
    seg = segmentation([[1, 1, 2, 2, 0]], [0.0])
    activity = binarize(seg)
    grid = frame_grid(seg)
    assert single_speaker_runs(activity, grid, speaker_count(seg, grid)) == [(0, 2), (2, 4)]


def test_pauses_shorter_than_the_bridge_stay_inside_a_turn() -> None:
    seg = segmentation([[1, 1, 0, 1, 0, 0, 0, 1]], [0.0])
    grid = frame_grid(seg)
    speaking = (binarize(seg)[0, :, :1] > 0)
    turns = to_turns(speaking, grid, 0.0, 4.0, TurnParams(bridge_seconds=0.6))
    assert [(t.start, t.end) for t in turns] == [(0.0, 2.0), (3.5, 4.0)]


def test_windows_cover_one_speaker_stretches() -> None:
    seg = segmentation([[0] * 40], [0.0], step=0.1)
    grid = frame_grid(seg)
    windows = run_windows([(0, 40), (50, 52), (60, 68)], grid, WindowParams(seconds=1.5, hop_seconds=0.5, min_seconds=0.5))
    assert windows[:2] == [(0, 15), (5, 20)] and windows[-1] == (60, 68)
    assert (50, 52) not in windows  # 0.2 s is too short to embed
    assert (25, 40) in windows  # the tail window ends with its stretch
    assert sample_spans([(0, 15)], grid) == [[(0, 24000)]]
    assert grid_runs(np.array([True, True, False, True])) == [(0, 2), (3, 4)]


def test_items_of_different_lengths_batch_with_their_own_frames_repeated() -> None:
    from speakerlink_server.engines.batching import MicroBatcher

    seen: list[np.ndarray] = []
    batcher = MicroBatcher(lambda x: (seen.append(x.copy()), x[:, :2].astype(np.float32))[1], batch=8, name="test")
    try:
        items = [np.arange(3), np.arange(0), np.arange(10, 15), np.arange(20, 24)]
        out = batcher.run_ragged(items, unit=4, group=8, width=2)
    finally:
        batcher.close()
    assert out.tolist() == [[0, 1], [0, 0], [10, 11], [20, 21]]  # the empty item gets a zero row
    assert sorted(batch.shape for batch in seen) == [(1, 8), (2, 4)]  # 5 rounds up to 8, 3 and 4 to 4
    assert [0, 1, 2, 0] in [row.tolist() for batch in seen for row in batch]  # repeated, not zero-padded
def test_a_steady_batcher_pads_forward_passes_to_a_few_sizes_and_hands_back_only_real_rows() -> None:
    from speakerlink_server.engines.batching import MicroBatcher, steady_size

    assert [steady_size(n, 1024) for n in (1, 3, 64, 65, 1000)] == [1, 4, 64, 128, 1024]
    assert steady_size(700, 512) == 700  # never below the rows there are
    seen: list[int] = []
    batcher = MicroBatcher(lambda x: (seen.append(len(x)), x * 2.0)[1], batch=256, name="test", steady=True)
    try:
        items = np.arange(70 * 3, dtype=np.float32).reshape(70, 3)
        out = batcher.run(items)
    finally:
        batcher.close()
    assert seen == [128] and np.array_equal(out, items * 2.0)


@pytest.fixture()
def result() -> pb.DiarizationResult:
    r = pb.DiarizationResult(job_id="j1")
    r.speakers.add(label="S1", speech_seconds=3.0, clip_indices=[0, 1])
    r.speakers.add(label="S2", speech_seconds=1.0, clip_indices=[1])
    c0 = r.clips.add(index=0, name="my call.wav", duration_seconds=5.0)
    c0.speakers.add(local_label="L0", global_label="S1", confidence=0.9, speech_seconds=2.0)
    c0.segments.add(start=0.5, end=2.5, speaker="S1", local_speaker="L0")
    c1 = r.clips.add(index=1, name="b.mp3", duration_seconds=4.0)
    c1.speakers.add(local_label="L0", global_label="S2", confidence=0.8, speech_seconds=1.0)
    c1.speakers.add(local_label="L1", global_label="S1", confidence=0.95, speech_seconds=1.0)
    c1.segments.add(start=0.0, end=1.0, speaker="S2", local_speaker="L0")
    c1.segments.add(start=1.0, end=2.0, speaker="S1", local_speaker="L1")
    r.summary.clips, r.summary.unique_speakers = 2, 2
    return r


def test_rttm(result: pb.DiarizationResult) -> None:
    assert to_rttm(result).splitlines() == [
        "SPEAKER my_call 1 0.500 2.000 <NA> <NA> S1 <NA> <NA>",
        "SPEAKER b 1 0.000 1.000 <NA> <NA> S2 <NA> <NA>",
        "SPEAKER b 1 1.000 1.000 <NA> <NA> S1 <NA> <NA>",
    ]


def test_csv_and_text(result: pb.DiarizationResult) -> None:
    rows = to_csv(result).splitlines()
    assert rows[0].startswith("clip,clip_index,start,end,duration,speaker,name,name_score,local_speaker,link_confidence")
    assert rows[1] == "my call.wav,0,0.500,2.500,2.000,S1,,,L0,0.900,"
    text = to_text(result)
    assert "S1" in text and "== b.mp3" in text and "[00:01.00 - 00:02.00] S1" in text


def test_enrolled_names_replace_labels_in_exports(result: pb.DiarizationResult) -> None:
    named = pb.DiarizationResult()
    named.CopyFrom(result)
    named.speakers[0].name, named.speakers[0].name_score = "Ann Lee", 0.97
    assert "S1 (Ann Lee, 0.97)" in to_text(named) and "] Ann Lee" in to_text(named)
    assert " Ann_Lee <NA>" in to_rttm(named) and "S1,Ann Lee,0.970," in to_csv(named)
    named.speakers[0].name = "S2"  # a name that reads as another speaker's label keeps its own
    assert to_rttm(named).splitlines()[0].endswith("<NA> <NA> S1 <NA> <NA>")


def test_recognition_gives_each_voice_to_one_speaker_who_was_heard_enough() -> None:
    def unit(*v: float) -> np.ndarray:
        return np.array(v) / np.linalg.norm(v)

    ann, bob = Voice("Ann", unit(1, 0, 0), 10.0), Voice("Bob", unit(0, 1, 0), 10.0)
    calibration = Calibration(slope=66.4, offset=-29.6)
    prints = [(unit(1, 0.3, 0), 5.0), (unit(1, 0.1, 0), 5.0), (unit(0, 0, 1), 5.0), (unit(0, 1, 0.1), 1.0)]
    matches = recognize(prints, [ann, bob], RecognitionParams(0.65), calibration)
    # Ann goes to the closer of her two look-alikes only; a stranger and a 1 s speaker stay unnamed.
    assert [m.name if m else None for m in matches] == [None, "Ann", None, None]
    assert matches[1].score > 0.99
    assert recognize(prints, [], RecognitionParams(0.65), calibration) == [None] * 4


def test_hostile_clip_names_make_safe_file_names_and_inert_csv_cells() -> None:
    r = pb.DiarizationResult(job_id="j2")
    r.speakers.add(label="S1", speech_seconds=1.0, clip_indices=list(range(5)))
    names = ["../../evil.wav", "/etc/cron.d/job.wav", "a\0b\nc.wav", "day1/meeting.wav", "day2/meeting.wav"]
    for index, name in enumerate(names):
        clip = r.clips.add(index=index, name=name, duration_seconds=2.0)
        clip.speakers.add(local_label="L0", global_label="S1", confidence=1.0, speech_seconds=1.0)
        clip.segments.add(start=0.0, end=1.0, speaker="S1", local_speaker="L0", text="=HYPERLINK(\"http://x\")")
    response = export(r, pb.EXPORT_FORMAT_SRT)
    entries = zipfile.ZipFile(io.BytesIO(response.content)).namelist()
    assert entries == ["evil.srt", "job.srt", "a_b_c.srt", "meeting.wav-3.srt", "meeting.wav-4.srt"]
    assert [line.split()[1] for line in to_rttm(r).splitlines()] == ["evil", "job", "a_b_c", "meeting.wav-3", "meeting.wav-4"]
    rows = list(csv.reader(io.StringIO(to_csv(r))))
    assert rows[1][0] == "../../evil.wav"  # a cell, not a path: kept as sent
    assert all(row[-1].startswith("'=") for row in rows[1:])
    r.clips[0].name = "@SUM(A1)"
    assert list(csv.reader(io.StringIO(to_csv(r))))[1][0] == "'@SUM(A1)"
    forged = errors.not_audio(0, "x.wav\n2026-01-01 INFO job accepted", "bad")
    assert "\n" not in str(forged) and "\n" not in forged.clip_name  # no forged log lines


def test_batcher_merges_concurrent_callers_and_keeps_their_rows_apart() -> None:
    import threading
    import time

    from speakerlink_server.engines.batching import MicroBatcher

    sizes = []
    entered, gate = threading.Event(), threading.Event()

    def forward(batch: np.ndarray) -> np.ndarray:
        entered.set()
        gate.wait(5)  # let every other caller queue up before the first pass ends
        sizes.append(len(batch))
        return batch[:, :2].astype(np.float32) * 2

    batcher = MicroBatcher(forward, batch=8, name="test")
    results: dict[int, np.ndarray] = {}

    def call(k: int, rows: int) -> None:
        results[k] = batcher.run(np.full((rows, 3), float(k)))

    threads = [threading.Thread(target=call, args=(k, rows)) for k, rows in enumerate([3, 5, 6, 1])]
    threads[0].start()
    assert entered.wait(10)  # the first call alone is in the (blocked) first pass
    for thread in threads[1:]:
        thread.start()
    deadline = time.monotonic() + 10
    while len(batcher._pending) < 3:  # the rest wait together
        assert time.monotonic() < deadline
        time.sleep(0.001)
    gate.set()
    for thread in threads:
        thread.join(10)
    batcher.close()
    assert sum(sizes) == 15 and max(sizes) <= 8 and len(sizes) == 3  # merged, never over the batch size
    for k, rows in enumerate([3, 5, 6, 1]):
        assert results[k].shape == (rows, 2) and np.all(results[k] == 2 * k)


def test_batcher_hands_a_failure_to_its_callers_and_goes_on() -> None:
    from speakerlink_server.engines.batching import MicroBatcher

    def forward(batch: np.ndarray) -> np.ndarray:
        if np.any(batch < 0):
            raise RuntimeError("device fault")
        return batch.astype(np.float32)

    batcher = MicroBatcher(forward, batch=4, name="test")
    with pytest.raises(RuntimeError, match="device fault"):
        batcher.run(-np.ones((6, 2)))
    assert np.all(batcher.run(np.ones((6, 2))) == 1)
    batcher.close()


def test_long_clips_cluster_in_bounded_memory(monkeypatch) -> None:
    from speakerlink_server.pipeline import clustering

    monkeypatch.setattr(clustering, "MAX_LINKAGE_WINDOWS", 60)
    a, b = voices(2)
    windows = np.vstack([noisy(a, 150, 0.05, 1), noisy(b, 100, 0.05, 2), noisy(a, 50, 0.05, 3)])
    assert labels_of(windows) == [0] * 150 + [1] * 100 + [0] * 50


class Flaky:
    """Fails `times` times with the given error, then returns "ok"; records when it was called."""

    def __init__(self, times: int, error: Exception) -> None:
        self.times, self.error, self.calls = times, error, 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.times:
            raise self.error
        return "ok"


class Clock:
    def __init__(self) -> None:
        self.now, self.waits = 0.0, []

    def wait(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


def test_retries_back_off_with_jitter_and_honour_retry_after() -> None:
    policy = RetryPolicy(attempts=6, base_seconds=1.0, cap_seconds=4.0, total_seconds=100.0)
    clock = Clock()
    flaky = Flaky(4, ConnectionError())
    assert call_with_retries(flaky, lambda e: 0.0, policy, clock.wait, random.Random(1), lambda: clock.now) == "ok"
    assert flaky.calls == 5 and all(0 <= w <= min(4.0, 2**k) for k, w in enumerate(clock.waits))
    clock = Clock()
    call_with_retries(Flaky(2, ConnectionError()), lambda e: 7.0, policy, clock.wait, random.Random(1), lambda: clock.now)
    assert clock.waits == [7.0, 7.0]  # the server's Retry-After beats a shorter backoff


def test_retries_are_bounded_in_attempts_time_and_kind() -> None:
    clock = Clock()
    policy = RetryPolicy(attempts=3, base_seconds=0.1, total_seconds=100.0)
    flaky = Flaky(10, ConnectionError())
    with pytest.raises(ConnectionError):
        call_with_retries(flaky, lambda e: 0.0, policy, clock.wait, random.Random(1), lambda: clock.now)
    assert flaky.calls == 3
    flaky = Flaky(10, ConnectionError())  # Retry-After of 40 s twice would pass the 60 s budget
    with pytest.raises(ConnectionError):
        call_with_retries(flaky, lambda e: 40.0, RetryPolicy(total_seconds=60.0), clock.wait, clock=lambda: clock.now)
    assert flaky.calls == 2
    flaky = Flaky(10, ValueError())
    with pytest.raises(ValueError):
        call_with_retries(flaky, lambda e: None, policy, clock.wait)
    assert flaky.calls == 1


def test_retry_after_in_seconds_or_as_a_date() -> None:
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds(None) == 0.0 and retry_after_seconds("soon") == 0.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0


def test_voiceprints_come_from_the_longest_monologues() -> None:
    turns = [Utterance(float(10 * k), float(10 * k) + length, "A", "", ()) for k, length in enumerate([1, 9, 3, 8, 0.3, 7, 6, 5, 4])]
    spans = voice_spans(turns, duration=100.0)
    lengths = [round(end - start, 1) for start, end in spans]
    assert len(spans) <= MAX_MONOLOGUES and sum(lengths) <= VOICE_SECONDS + 1e-6
    assert lengths[:3] == [8.8, 7.8, 6.8]  # longest first, edges trimmed
    assert [round(s) for s, _ in spans[:3]] == [10, 30, 50]
    short = voice_spans([Utterance(3.0, 3.2, "B", "", ())], duration=10.0)
    assert short == [(2.85, 3.35)]  # too short: the least audio a voiceprint takes, around it


def test_overlapped_speech_is_left_out_of_voiceprints() -> None:
    assert without([(0.0, 10.0), (20.0, 25.0)], [(2.0, 3.0), (9.0, 21.0)]) == [(0.0, 2.0), (3.0, 9.0), (21.0, 25.0)]


def test_subtitles(result: pb.DiarizationResult) -> None:
    seg = result.clips[1].segments[1]
    seg.text = "hello there & welcome"
    for k, token in enumerate(seg.text.split()):
        seg.words.add(start=1.5 + k, end=2.0 + k, text=token, speaker=seg.speaker)
    names = {s.label: s.name or s.label for s in result.speakers}
    srt = to_srt(result.clips[1], names)
    assert srt.startswith("1\n00:00:00,000 --> 00:00:01,000\nS2\n\n2\n00:00:01,500 --> 00:00:05,000\nS1: hello there")
    vtt = to_vtt(result.clips[1], names)
    assert vtt.startswith("WEBVTT\n\n00:00:00.000 --> 00:00:01.000\n<v S2>S2\n\n")
    assert "<v S1>hello there &amp; welcome" in vtt
    one = export(result, pb.EXPORT_FORMAT_SRT, clip_index=1)
    assert one.filename == "b.srt" and one.content.decode() == srt
    both = export(result, pb.EXPORT_FORMAT_VTT)
    assert both.content_type == "application/zip"
    assert zipfile.ZipFile(io.BytesIO(both.content)).read("b.vtt").decode() == vtt


def test_long_turns_split_into_readable_cues() -> None:
    clip = pb.ClipResult(index=0, name="a.wav")
    seg = clip.segments.add(start=0.0, end=30.0, speaker="S1", text="word " * 60)
    for k in range(60):
        seg.words.add(start=0.5 * k, end=0.5 * k + 0.4, text="word", speaker="S1")
    cues = to_srt(clip, {"S1": "S1"}).split("\n\n")
    assert len(cues) >= 5 and all(len(c.splitlines()[2]) <= 84 + len("S1: ") for c in cues)


def test_one_clip_of_a_result(result: pb.DiarizationResult) -> None:
    text = export(result, pb.EXPORT_FORMAT_TEXT, clip_index=0).content.decode()
    assert "my call.wav" in text and "b.mp3" not in text and "S2" not in text


def test_client_and_async_client_are_twins() -> None:
    """The same public calls with the same parameters; only their awaiting differs."""
    import inspect

    from speakerlink import AsyncClient, Client

    def calls(cls: type) -> dict[str, list[inspect.Parameter]]:
        return {name: list(inspect.signature(f).parameters.values())
                for name, f in vars(cls).items() if callable(f) and not name.startswith("_")}

    assert calls(Client) == calls(AsyncClient)
