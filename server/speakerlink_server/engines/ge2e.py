"""Speaker embeddings with Resemblyzer's GE2E encoder, whose weights ship inside its wheel.

The encoder was trained on 1.6 s partials of 40-band mel frames at 10 ms; we cut windows of
that scale from one mel spectrogram per clip and run them through the LSTM in batches.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

with warnings.catch_warnings():  # resemblyzer's webrtcvad still imports pkg_resources
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
    from resemblyzer import VoiceEncoder
    from resemblyzer.audio import wav_to_mel_spectrogram

from speakerlink_server.engines.base import groups_by_length, unit_rows
from speakerlink_server.engines.batching import MicroBatcher
from speakerlink_server.pipeline.audio import SAMPLE_RATE

HOP_SAMPLES = SAMPLE_RATE // 100  # one mel frame every 10 ms
BATCH = 64


class Ge2eEmbedder:
    name = "ge2e"
    dim = 256
    # 1.2 s windows every 0.3 s: shorter than the encoder's 1.6 s partials, so fewer windows
    # straddle a speaker change, and a denser hop, so short turns still get several windows.
    # On libri-dev-linking this beat 1.5/0.5, 1.5/0.25 and 1.0/0.25 (clip DER 2.9 vs 3.3-6.9 %).
    window_seconds = 1.2
    hop_seconds = 0.3
    min_window_seconds = 0.5
    # Calibrated on ../shared/data: cluster_threshold is the centroid cosine above which two
    # within-clip clusters are one speaker (pipeline/clustering.py); link_threshold is the raw
    # centroid cosine floor for a cross-clip link, on top of the job-normalised score
    # (pipeline/linking.py). libri-dev-linking is perfect for 0.80-0.84 and a floor <= 0.78.
    cluster_threshold = 0.82
    link_threshold = 0.76

    def __init__(self, device: str = "cpu") -> None:
        self.device = device
        self._encoder = VoiceEncoder(device, verbose=False)
        self._encoder.eval()
        self._batcher = MicroBatcher(self._forward, BATCH, self.name)

    def close(self) -> None:
        self._batcher.close()

    def _forward(self, frames: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return self._encoder(torch.from_numpy(frames).to(self.device)).cpu().numpy()

    def embed(self, wav: np.ndarray, windows: list[tuple[int, int]]) -> np.ndarray:
        if not windows:
            return np.zeros((0, self.dim), dtype=np.float32)
        mel = wav_to_mel_spectrogram(_normalize_speech_level(wav, windows))
        spans = [(start // HOP_SAMPLES, max(start // HOP_SAMPLES + 1, end // HOP_SAMPLES)) for start, end in windows]
        spans = [(a, min(b, len(mel))) for a, b in spans]
        out = np.zeros((len(spans), self.dim), dtype=np.float32)
        for rows, length in groups_by_length(spans, 16 * BATCH):
            out[rows] = self._batcher.run(np.stack([mel[spans[i][0] : spans[i][0] + length] for i in rows]))
        return unit_rows(out)


TARGET_DBFS = -30.0  # the level Resemblyzer's own preprocessing brings speech to


def _normalize_speech_level(wav: np.ndarray, windows: list[tuple[int, int]]) -> np.ndarray:
    """Scale the clip so its speech sits at TARGET_DBFS: the encoder's mel input is linear power."""
    mask = np.zeros(wav.size, dtype=bool)
    for start, end in windows:
        mask[start:end] = True
    rms = float(np.sqrt(np.mean(np.square(wav[mask], dtype=np.float64)))) if mask.any() else 0.0
    if rms < 1e-6:
        return wav
    return (wav * (10 ** (TARGET_DBFS / 20) / rms)).astype(np.float32)
