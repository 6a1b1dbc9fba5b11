"""Speech the segmenter did not hear (pipeline.missed_speech), and the detector that hears it
(engines.silero), on the project's own espeak-ng voices."""

from __future__ import annotations

import math
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from speakerlink_server.engines import silero
from speakerlink_server.engines.silero import SileroSpeech
from speakerlink_server.params import MissedSpeechParams
from speakerlink_server.pipeline import missed_speech
from speakerlink_server.pipeline.activity import FrameGrid

RATE = 16000
STEP = 0.016875  # segmentation-3.0's frame step


@pytest.fixture(scope="module")
def detector() -> SileroSpeech:
    found = SileroSpeech()
    yield found
    found.close()


def load(path: Path) -> np.ndarray:
    audio, rate = sf.read(path, dtype="float32")
    assert rate == RATE
    return audio


def quiet(seconds: float) -> np.ndarray:
    return np.random.default_rng(1).normal(0, 1e-4, int(seconds * RATE)).astype(np.float32)


def mask(spans: list[tuple[float, float]], samples: int) -> np.ndarray:
    """Which 10 ms frames of `samples` samples the spans cover."""
    marked = np.zeros(samples // 160 + 1, dtype=bool)
    for start, end in spans:
        marked[int(start * 100):int(end * 100)] = True
    return marked


def grid_for(wav: np.ndarray) -> FrameGrid:
    size = math.ceil(wav.size / RATE / STEP)
    return FrameGrid(np.zeros((0, 0), dtype=np.int64), np.zeros((0, 0), dtype=bool), size, STEP, STEP / 2)


def frames(grid: FrameGrid, start: float, end: float) -> slice:
    return slice(int(start / grid.step), int(end / grid.step))


def test_the_detector_leaves_torch_its_threads() -> None:
    """silero_vad sets torch to one thread when imported; the engine puts the count back."""
    code = ("import torch; torch.set_num_threads(2); import speakerlink_server.engines.silero; "
            "print(torch.get_num_threads())")
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert ran.stdout.strip() == "2"


def test_the_detector_hears_a_voice_and_not_the_silence_around_it(detector: SileroSpeech, voices: dict[str, Path]) -> None:
    alice = load(voices["alice"])
    spans = detector.speech(np.concatenate([quiet(2.0), alice, quiet(2.0)]))
    assert spans and 1.8 <= spans[0][0] <= 2.6 and 2.0 + alice.size / RATE - 0.8 <= spans[-1][1] <= 2.3 + alice.size / RATE
    assert detector.speech(quiet(3.0)) == [] and detector.speech(np.zeros(0, dtype=np.float32)) == []


def test_long_audio_read_in_parallel_stretches_agrees_with_one_pass(detector: SileroSpeech, voices: dict[str, Path],
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    both = np.concatenate([load(voices["both"]), quiet(1.5)])
    long = np.tile(both, math.ceil(silero.BATCHED_SECONDS * 1.3 * RATE / both.size))
    batched = detector.speech(long)
    monkeypatch.setattr(silero, "BATCHED_SECONDS", math.inf)
    one_pass = detector.speech(long)
    assert len(batched) >= 10 and (mask(batched, long.size) == mask(one_pass, long.size)).mean() >= 0.99


def test_calls_at_once_each_keep_their_own_state(detector: SileroSpeech, voices: dict[str, Path]) -> None:
    clips = [load(voices[name]) for name in ("alice", "bob", "both", "silence")] * 2
    alone = [detector.speech(clip) for clip in clips]
    with ThreadPoolExecutor(max_workers=4) as pool:
        assert list(pool.map(detector.speech, clips)) == alone


def test_a_stream_read_step_by_step_hears_what_one_pass_hears(detector: SileroSpeech, voices: dict[str, Path]) -> None:
    """A live stream's detector, fed 100 ms frames, finds the stretches one pass over the same
    audio finds, asked about all of it, then about its second half once the first is forgotten."""
    wav = np.concatenate([quiet(1.0), load(voices["alice"]), quiet(1.2), load(voices["bob"]), quiet(0.71)])
    stream = detector.stream()
    try:
        frames_of = range(0, wav.size, 1600)
        for n, start in enumerate(frames_of):
            stream.feed(wav[start : start + 1600], final=n == len(frames_of) - 1)
        assert stream.speech(0, wav.size) == detector.speech(wav)
        half = wav.size // 2 // silero.CHUNK * silero.CHUNK
        stream.forget(half)
        assert stream.speech(0, wav.size) == stream.speech(half, wav.size)
        later = stream.speech(half, wav.size)
        assert later and all(half / RATE <= a < b <= wav.size / RATE for a, b in later)
        assert (mask(later, wav.size) == mask(detector.speech(wav), wav.size))[half // 160 :].mean() >= 0.99
    finally:
        stream.close()
    assert stream.speech(0, 0) == []


def test_a_voice_the_segmenter_missed_becomes_one_speaker_frames(detector: SileroSpeech, voices: dict[str, Path]) -> None:
    alice = load(voices["alice"])
    wav = np.concatenate([quiet(2.0), alice, quiet(2.0)])
    grid = grid_for(wav)
    heard_nothing = np.zeros(grid.size, dtype=np.int64)
    filled = missed_speech.fill(wav, grid, heard_nothing, lambda: detector.speech(wav), MissedSpeechParams())
    assert set(np.unique(filled)) <= {0, 1}
    assert filled[frames(grid, 2.3, 2.0 + alice.size / RATE - 0.3)].mean() >= 0.5
    assert not filled[frames(grid, 0.0, 1.5)].any() and not filled[frames(grid, wav.size / RATE - 1.5, wav.size / RATE)].any()


@pytest.mark.parametrize(("gain_db", "kept"), [(-6.0, True), (-20.0, False)])
def test_a_voice_far_under_the_talkers_is_left_silent(detector: SileroSpeech, voices: dict[str, Path],
                                                       gain_db: float, kept: bool) -> None:
    """alice as the segmenter heard her, then bob, whom it did not: kept at 6 dB under her,
    left out at 20 dB under (a crowd behind the talkers)."""
    alice, bob = load(voices["alice"]), load(voices["bob"])
    wav = np.concatenate([alice, quiet(1.0), bob * 10 ** (gain_db / 20), quiet(1.0)])
    grid = grid_for(wav)
    count = np.zeros(grid.size, dtype=np.int64)
    count[frames(grid, 0.0, alice.size / RATE)] = 1
    filled = missed_speech.fill(wav, grid, count, lambda: detector.speech(wav), MissedSpeechParams())
    bob_frames = frames(grid, alice.size / RATE + 1.3, wav.size / RATE - 1.3)
    assert (filled[bob_frames].mean() >= 0.5) == kept  # espeak-ng leaves pauses between lines
    assert (filled[frames(grid, 0.0, alice.size / RATE)] == 1).all()


def test_a_piece_shorter_than_min_seconds_is_left_silent(detector: SileroSpeech, voices: dict[str, Path]) -> None:
    alice = load(voices["alice"])
    wav = np.concatenate([quiet(2.0), alice, quiet(2.0)])
    grid = grid_for(wav)
    longest = max(end - start for start, end in detector.speech(wav))
    filled = missed_speech.fill(wav, grid, np.zeros(grid.size, dtype=np.int64), lambda: detector.speech(wav),
                                MissedSpeechParams(min_seconds=longest + 0.5))
    assert not filled.any()
