"""A live stream's audio frames as 16 kHz mono float32, the live pipeline's decode step.

Frames arrive in whatever sizes the capture gives: a sample may be split between two messages,
so the bytes of a part sample wait for the next frame. Channels are averaged to one, and other
rates are resampled with soxr's streaming resampler, which carries its filter state from
frame to frame (no clicks at frame edges) and holds back a few tens of milliseconds of audio
until it has the samples its filter needs.
"""

from __future__ import annotations

import numpy as np
import soxr

from speakerlink_server.audio_format import SAMPLE_RATE

BYTES_PER_SAMPLE = 2  # 16-bit PCM


class PcmFrames:
    def __init__(self, sample_rate: int, channels: int) -> None:
        self.sample_rate, self.channels = sample_rate, channels
        self._pending = b""
        self._resampler = (soxr.ResampleStream(sample_rate, SAMPLE_RATE, 1, dtype="float32")
                           if sample_rate != SAMPLE_RATE else None)
        self.seconds = 0.0  # audio received, at the stream's own rate

    def decode(self, data: bytes) -> np.ndarray:
        """The samples of `data` (and of what an earlier frame left over) that are ready."""
        data = self._pending + data
        whole = len(data) - len(data) % (BYTES_PER_SAMPLE * self.channels)
        self._pending = data[whole:]
        samples = np.frombuffer(data[:whole], dtype="<i2").astype(np.float32) / 32768.0
        mono = samples.reshape(-1, self.channels).mean(axis=1, dtype=np.float32)
        self.seconds += mono.size / self.sample_rate
        return mono if self._resampler is None else self._resampler.resample_chunk(mono)

    def flush(self) -> np.ndarray:
        """What the resampler still holds, at the end of the stream; a part sample is dropped."""
        self._pending = b""
        if self._resampler is None:
            return np.zeros(0, dtype=np.float32)
        return self._resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
