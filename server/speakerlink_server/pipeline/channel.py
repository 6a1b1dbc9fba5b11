"""Whether audio came through a narrowband channel, and undoing that channel's pull on voice
embeddings.

A telephone line (G.711, GSM) or a codec at a bitrate too low to keep the upper band leaves
nothing above about 4 kHz, wherever the audio was recorded. An embedder trained mostly on full
band hears that loss as part of every voice: through such a channel, embeddings of different
people crowd toward one direction (CAM++: the mean of unit window embeddings has length 0.25 in
full band, 0.42-0.61 through G.711, GSM and Opus at 6-8 kbps), so a codec merges people within
a clip and keeps the same person apart across a phone call and a full-band recording. Subtracting the
embedder's mean narrowband-minus-full-band difference and projecting out the few directions in
which narrowband channels differ among themselves, both measured on readers apart from every
dev set (benchmarks/narrowband_compensation.py), takes most of that pull away, whatever the
line's pass band or codec (benchmarks/QUALITY.md).

The detector compares, frame by frame, the energy in 5-7.5 kHz with that in the telephone band
(1-3.4 kHz): fricatives put full-band speech's upper band level with or above the telephone
band's, while a narrowband channel leaves only its filters' leakage there. At the 97th percentile
of the loud frames (benchmarks/narrowband_levels.py), full band measures -27.2 dB or more
(LibriSpeech and AMI, clean, through rooms, pink noise and Opus at 12-16 kbps), G.711, GSM and
Opus at 6-8 kbps -35.6 dB or less. The telephone band is the reference, not the whole spectrum,
because hum and rumble below it would make a full-band recording look narrow. MP3's encoder
low-passes some clips at low bit rates: at 16 kbps they measure -74 to +38 dB and 4 of 98 fall
under the bar, at 24 kbps 1 does; those are narrowband as far as the embedder can tell.
"""

from __future__ import annotations

import numpy as np
from scipy import fft, signal

from speakerlink_server.audio_format import SAMPLE_RATE
from speakerlink_server.engines.base import ChannelCompensation, Embedder, Hook, Spans, noop_hook

FRAME = 512  # 32 ms at 16 kHz
UPPER_BAND_HZ = (5000.0, 7500.0)
# What every narrowband channel passes; a phone line's 300 Hz floor is left out with the hum.
TELEPHONE_BAND_HZ = (1000.0, 3400.0)
# Frames within this many dB of the loud end of the audio are speech enough to judge.
LOUD_DB = 10.0
# The level the loud frames reach: a high percentile, since a fricative is where full band
# shows, and most frames are vowels.
LEVEL_PERCENTILE = 97.0
NARROWBAND_BELOW_DB = -31.0  # halfway, in dB, between the two groups above
# A telephone line's pass band, at its 8 kHz rate (pipeline.matched_band).
PHONE_LINE = signal.butter(8, (300.0, 3400.0), btype="bandpass", fs=SAMPLE_RATE // 2, output="sos")


def upper_band_level(wav: np.ndarray) -> float | None:
    """The energy in 5-7.5 kHz against that in 1-3.4 kHz (dB) that the loud frames reach, or
    None where the audio has no frame loud enough to judge."""
    count = wav.size // FRAME
    if count == 0:
        return None
    frames = wav[: count * FRAME].reshape(count, FRAME).astype(np.float32) * np.hanning(FRAME).astype(np.float32)
    spectra = fft.rfft(frames, axis=1)  # float32 in, complex64 out: half the work of float64
    freqs = fft.rfftfreq(FRAME, 1.0 / SAMPLE_RATE)
    upper, telephone = (np.sum(np.abs(spectra[:, (freqs >= low) & (freqs <= high)]) ** 2, axis=1, dtype=np.float64)
                        for low, high in (UPPER_BAND_HZ, TELEPHONE_BAND_HZ))
    total = upper + telephone
    loud = (total >= np.percentile(total, 95) * 10 ** (-LOUD_DB / 10)) & (total > 1e-10 * FRAME)
    if not loud.any():
        return None
    ratio = upper[loud] / np.maximum(telephone[loud], 1e-12 * total[loud])
    return float(10 * np.log10(max(np.percentile(ratio, LEVEL_PERCENTILE), 1e-30)))


def is_narrowband(wav: np.ndarray) -> bool:
    level = upper_band_level(wav)
    return level is not None and level < NARROWBAND_BELOW_DB


def embed(embedder: Embedder, wav: np.ndarray, items: list[Spans], narrowband: bool,
          hook: Hook = noop_hook, step: str = "embed") -> np.ndarray:
    """embedder.embed, with a narrowband channel's pull taken away where `narrowband`."""
    embeddings = embedder.embed(wav, items, hook, step)
    return compensate(embeddings, embedder.narrowband) if narrowband else embeddings


def compensate(embeddings: np.ndarray, compensation: ChannelCompensation | None) -> np.ndarray:
    """Unit embeddings of narrowband audio moved by -shift, with the directions in which
    narrowband channels differ projected out, and renormalised; zero rows (items with no audio)
    stay zero. Without a compensation (an embedder it was not measured for) they are returned
    as they are."""
    if compensation is None or embeddings.size == 0:
        return embeddings
    heard = np.linalg.norm(embeddings, axis=1) > 0
    moved = embeddings[heard] - compensation.shift
    moved -= (moved @ compensation.nuisance.T) @ compensation.nuisance
    out = embeddings.copy()
    out[heard] = moved / np.linalg.norm(moved, axis=1, keepdims=True)
    return out


def phone_line(wav: np.ndarray) -> np.ndarray:
    """16 kHz audio as a telephone line would pass it: down to 8 kHz, 300-3400 Hz, and back."""
    narrow = signal.sosfilt(PHONE_LINE, signal.resample_poly(wav, 1, 2))
    return signal.resample_poly(narrow, 2, 1)[: wav.size].astype(np.float32)
