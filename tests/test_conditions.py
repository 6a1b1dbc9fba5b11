"""Recording conditions (speakerlink.conditions) on a few seconds of the project's own speech:
seeded, time-aligned, and doing what their names say."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sample_clips
from speakerlink import codecs, conditions
from speakerlink.condition_spec import CONDITIONS, parse, step_seed

RATE = conditions.RATE
# Conditions with nothing drawn: the same audio whatever the seed.
FIXED = {"clean", "phone-ulaw", "phone-alaw", "phone-gsm"}
ROOMS = {"room", "near-room", "far-room"}
NARROWBAND = ["phone-ulaw", "phone-alaw", "phone-gsm", "phone-amr"]


@pytest.fixture(scope="module")
def talk() -> tuple[np.ndarray, list[tuple[float, float, str]], np.ndarray]:
    """Two voices taking turns (about 5 s), their turns, and a third voice alone for babble."""
    audio, turns = sample_clips.make_conversation([
        (sample_clips.VOICES[0], "We should look at the budget."),
        (sample_clips.VOICES[1], "My sister keeps bees in the garden."),
    ])
    other, _ = sample_clips.make_conversation([(sample_clips.VOICES[3], "Please send me the report tonight.")], seed=1)
    return audio, turns, other


def run(spec: str, talk, seed: int = 1) -> np.ndarray:
    audio, turns, other = talk
    context = conditions.Context(turns, [other])
    return conditions.apply(parse(spec), audio, clip="talk", seed=seed, context=context).audio


def lag_of(out: np.ndarray, original: np.ndarray) -> int:
    corr = np.correlate(out[::2], original[::2], mode="full")  # every other sample: fast, 0.125 ms steps
    lags = np.arange(-len(original[::2]) + 1, len(out[::2]))
    near = np.abs(lags) < RATE // 20
    return int(lags[near][np.argmax(corr[near])]) * 2


def skip_missing_encoder(name: str) -> None:
    if name == "phone-amr" and "libopencore_amrnb" not in codecs.encoders():
        pytest.skip("this ffmpeg has no AMR-NB encoder (libopencore_amrnb)")


@pytest.mark.parametrize("name", list(CONDITIONS))
def test_each_condition_is_seeded_and_keeps_length_and_timing(name: str, talk) -> None:
    if name == "phone-amr" and "libopencore_amrnb" not in codecs.encoders():
        with pytest.raises(ValueError, match="this ffmpeg has no libopencore_amrnb encoder"):
            run(name, talk)
        return
    original = talk[0]
    first, again, other_seed = run(name, talk, seed=1), run(name, talk, seed=1), run(name, talk, seed=2)
    assert first.dtype == np.float32 and len(first) == len(original)
    assert np.all(np.isfinite(first)) and np.max(np.abs(first)) <= 1.0
    assert np.array_equal(first, again)
    assert np.array_equal(first, other_seed) == (name in FIXED)
    if name not in ROOMS:  # in a room the early reflections outweigh the direct sound: see below
        assert abs(lag_of(first, original)) <= RATE // 1000  # within 1 ms of the reference's timing


@pytest.mark.parametrize("name", sorted(ROOMS))
def test_rooms_keep_the_direct_sound_on_time(name: str) -> None:
    clicks = np.zeros(3 * RATE, dtype=np.float32)
    clicks[[RATE // 2, 2 * RATE]] = 0.5
    out = np.abs(conditions.apply(parse(name), clicks, clip="clicks", seed=5).audio)
    for at in (RATE // 2, 2 * RATE):
        arrival = at - RATE // 100 + int(np.argmax(out[at - RATE // 100: at + RATE // 100] > 0.2 * out[at: at + RATE // 100].max()))
        assert abs(arrival - at) <= RATE // 1000


@pytest.mark.parametrize("name", NARROWBAND)
def test_phone_lines_remove_what_is_above_4_khz(name: str, talk) -> None:
    skip_missing_encoder(name)

    def above_4k(audio: np.ndarray) -> float:
        power = np.abs(np.fft.rfft(audio)) ** 2
        return float(power[np.fft.rfftfreq(len(audio), 1 / RATE) > 4000].sum() / power.sum())

    assert above_4k(talk[0]) > 0.005
    assert above_4k(run(name, talk)) < 1e-4


def test_a_phone_line_passes_the_band_it_is_given(talk) -> None:
    def share(audio: np.ndarray, low: float, high: float) -> float:
        power = np.abs(np.fft.rfft(audio)) ** 2
        freqs = np.fft.rfftfreq(len(audio), 1 / RATE)
        return float(power[(freqs > low) & (freqs < high)].sum() / power.sum())

    standard, open_line = run("phone-ulaw", talk), run("phone-ulaw:low=100,high=3900", talk)
    assert share(open_line, 3600, 3800) > 2 * share(standard, 3600, 3800)
    assert share(open_line, 100, 250) > 10 * share(standard, 100, 250)
    with pytest.raises(ValueError, match="band must lie within 0-4000 Hz"):
        run("phone-gsm:high=4500", talk)


@pytest.mark.parametrize("name", ["noise-babble", "noise-white", "noise-pink", "noise-brown"])
@pytest.mark.parametrize("snr", [0, 12, 30])
def test_noise_is_added_at_the_snr_asked(name: str, snr: int, talk) -> None:
    original = talk[0]
    noise = run(f"{name}:snr={snr}", talk) - original
    measured = 10 * np.log10(np.mean(original.astype(np.float64) ** 2) / np.mean(noise.astype(np.float64) ** 2))
    assert abs(measured - snr) < 1.0


def test_far_rooms_ring_after_each_turn_and_near_ones_less(talk) -> None:
    audio, turns, _ = talk
    end = int(turns[0][1] * RATE)

    def ring(spec: str) -> float:  # energy 20-200 ms after the first turn, against the turn's own
        out = run(spec, talk).astype(np.float64)
        return float(np.mean(out[end + RATE // 50: end + RATE // 5] ** 2) / np.mean(out[end - RATE: end] ** 2))

    dry, near, far = ring("clean"), ring("room:rt60=0.2,distance=0.5"), ring("room:rt60=1.0,distance=4")
    assert dry < 1e-3 and near < far and far > 0.01


def test_gain_and_clipping(talk) -> None:
    original = talk[0]
    quieter = run("gain:db=-20", talk)
    assert np.allclose(quieter, original * 0.1, atol=1e-6)
    clipped = run("clipping:percent=5", talk)
    flat = np.mean(np.isclose(np.abs(clipped), np.max(np.abs(clipped))))
    assert 0.03 < flat < 0.07  # the loudest 5 % of samples sit at the clipping level


def test_chains_apply_in_order_and_seed_each_clip_on_its_own(tmp_path: Path, talk) -> None:
    audio, turns, other = talk
    for name, clip in (("a", audio), ("b", other)):
        conditions.write_wav(tmp_path / f"{name}.wav", clip)
    chain = parse("noise-white:snr=5..25+phone-gsm")
    forward = conditions.condition_files(chain, [tmp_path / "a.wav", tmp_path / "b.wav"], tmp_path / "f", seed=3)
    backward = conditions.condition_files(chain, [tmp_path / "b.wav", tmp_path / "a.wav"], tmp_path / "r", seed=3)
    assert sorted(p.read_bytes() for p in forward) == sorted(p.read_bytes() for p in backward)
    assert step_seed(3, "a", 0) != step_seed(3, "b", 0) and step_seed(3, "a", 1) != step_seed(3, "a", 0)
    done = conditions.apply(chain, conditions.load(tmp_path / "a.wav"), clip="a", seed=3)
    assert [name for name, _ in done.drawn] == ["noise-white", "phone-gsm"] and "noise-white(snr=" in done.describe()


def test_spec_errors_name_the_bad_part() -> None:
    with pytest.raises(ValueError, match=r"'far-rom'.*known conditions: clean, room"):
        parse("far-rom+phone-gsm")
    with pytest.raises(ValueError, match=r"no parameter 'rt'.*rt60, distance"):
        parse("room:rt=0.5")
    with pytest.raises(ValueError, match=r"room:rt60='1\.0\.\.0\.5'.*low end"):
        parse("room:rt60=1.0..0.5")
    with pytest.raises(ValueError, match="not a number"):
        parse("mp3:kbps=fast")
    with pytest.raises(ValueError, match="empty"):
        parse(" ")
    assert parse("room:rt60=0.4,distance=1..2").steps[0].params == {"rt60": (0.4, 0.4), "distance": (1.0, 2.0)}


def test_module_writes_conditioned_clips(tmp_path: Path, talk) -> None:
    audio, turns, _ = talk
    conditions.write_wav(tmp_path / "talk.wav", audio)
    rttm = tmp_path / "ref.rttm"
    rttm.write_text("".join(f"SPEAKER talk 1 {s:.3f} {e - s:.3f} <NA> <NA> {w} <NA> <NA>\n" for s, e, w in turns))
    out = tmp_path / "out"
    command = [sys.executable, "-m", "speakerlink.conditions", "near-room+mp3", str(tmp_path / "talk.wav"),
               "-r", str(rttm), "-o", str(out), "--seed", "4"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert len(conditions.load(out / "talk.wav")) == len(audio)
    bad = subprocess.run([*command[:3], "hall", *command[4:]], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "condition 'hall'" in bad.stderr and "far-room" in bad.stderr
