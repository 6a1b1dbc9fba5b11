"""Telling a narrowband channel from full band, and taking its pull off the embeddings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy import signal
from speakerlink import conditions
from speakerlink.condition_spec import parse
from speakerlink_server.engines.base import ChannelCompensation
from speakerlink_server.engines.campplus import CamppEmbedder
from speakerlink_server.pipeline import channel


@pytest.fixture(scope="module")
def speech(voices: dict[str, Path]) -> np.ndarray:
    """Two of the project's own voices, one after the other."""
    audio, rate = sf.read(voices["both"], dtype="float32")
    assert rate == conditions.RATE
    return audio


@pytest.mark.parametrize("spec", ["phone-ulaw", "phone-alaw", "phone-gsm", "voip-opus:kbps=6", "voip-opus:kbps=8"])
def test_phone_lines_and_low_bitrate_voip_are_narrowband(speech: np.ndarray, spec: str) -> None:
    heard = conditions.apply(parse(spec), speech, clip="both", seed=1).audio
    assert channel.upper_band_level(heard) < channel.NARROWBAND_BELOW_DB - 3
    assert channel.is_narrowband(heard)


@pytest.mark.parametrize("spec", ["clean", "mp3:kbps=24", "voip-opus:kbps=12", "voip-opus:kbps=16", "near-room", "noise-pink:snr=10"])
def test_full_band_stays_full_band(speech: np.ndarray, spec: str) -> None:
    heard = conditions.apply(parse(spec), speech, clip="both", seed=1).audio
    assert channel.upper_band_level(heard) > channel.NARROWBAND_BELOW_DB + 3
    assert not channel.is_narrowband(heard)


def test_a_low_pass_at_4_khz_is_narrowband_and_silence_is_not_judged(speech: np.ndarray) -> None:
    low = signal.sosfilt(signal.butter(10, 3800, fs=conditions.RATE, output="sos"), speech).astype(np.float32)
    assert channel.is_narrowband(low)
    assert channel.upper_band_level(np.zeros(16000, np.float32)) is None
    assert channel.upper_band_level(speech[:100]) is None
    assert not channel.is_narrowband(np.zeros(16000, np.float32))


def test_compensation_moves_heard_rows_and_keeps_silent_ones() -> None:
    rows = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.6, 0.8, 0.0], [0.0, 0.6, 0.8]])
    compensation = ChannelCompensation(shift=np.array([0.5, 0.0, 0.0]), nuisance=np.array([[0.0, 0.0, 1.0]]))
    moved = channel.compensate(rows, compensation)
    heard = [0, 2, 3]
    assert np.allclose(np.linalg.norm(moved[heard], axis=1), 1.0)
    assert np.array_equal(moved[1], [0.0, 0.0, 0.0])
    assert moved[2, 0] < rows[2, 0]  # away from the channel's mean direction
    assert np.allclose(moved[heard, 2], 0.0)  # nothing left along a nuisance direction
    assert channel.compensate(rows, None) is rows
    assert channel.compensate(np.zeros((0, 3)), compensation).shape == (0, 3)


def test_the_shipped_compensation_fits_the_embedder(tmp_path: Path) -> None:
    shipped = CamppEmbedder.narrowband
    assert shipped.shift.shape == (CamppEmbedder.dim,)
    assert shipped.nuisance.shape[1] == CamppEmbedder.dim
    assert np.allclose(shipped.nuisance @ shipped.nuisance.T, np.eye(len(shipped.nuisance)), atol=1e-5)
    # Narrowband embeddings sit well off the full-band ones: the shift is no rounding error.
    assert 0.2 < np.linalg.norm(shipped.shift) < 1.0
    shipped.save(tmp_path / "again.npz")
    again = ChannelCompensation.load(tmp_path / "again.npz")
    assert np.array_equal(again.shift, shipped.shift) and np.array_equal(again.nuisance, shipped.nuisance)


def test_full_band_through_a_phone_line_is_narrowband_and_as_long(speech: np.ndarray) -> None:
    """What pipeline.matched_band passes a full-band speaker's speech through."""
    line = channel.phone_line(speech)
    assert line.dtype == np.float32 and line.size == speech.size
    assert not channel.is_narrowband(speech) and channel.is_narrowband(line)
