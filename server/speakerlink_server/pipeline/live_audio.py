"""A live stream's audio frames as 16 kHz mono float32, the live pipeline's decode step.

16-bit PCM is decoded here: frames arrive in whatever sizes the capture gives, so a sample may
be split between two messages, and the bytes of a part sample wait for the next frame.
Channels are averaged to one, and other rates are resampled with soxr's streaming resampler,
which carries its filter state from frame to frame (no clicks at frame edges) and holds back a
few tens of milliseconds of audio until it has the samples its filter needs.

Every other encoding (G.711 from a telephony bridge, a container such as a browser's Ogg or
WebM Opus) goes through one ffmpeg process for the stream, fed as frames come; a thread reads
what it has decoded, and each frame takes what is ready by then.
"""

from __future__ import annotations

import subprocess
import threading
from typing import Protocol

import numpy as np
import soxr

from speakerlink_server import errors
from speakerlink_server.audio_format import SAMPLE_RATE

BYTES_PER_SAMPLE = 2  # 16-bit PCM, in and out
# ffmpeg reads this much of a container before it starts decoding: its header, not seconds of audio.
PROBE_BYTES = 8192
READ_BYTES = 65536
COMPLAINT_CHARS = 4000  # of ffmpeg's messages, kept for the error that names why a stream failed


class LiveDecoder(Protocol):
    def decode(self, data: bytes) -> np.ndarray:
        """The samples of `data` (and of earlier frames) that are ready."""

    def flush(self) -> np.ndarray:
        """What is left, at the end of the stream."""

    def close(self) -> None:
        """Let go of what decoding holds, however the stream ended."""


def live_decoder(encoding: str, sample_rate: int, channels: int, name: str) -> LiveDecoder:
    """The decoder for a stream's encoding: "pcm_s16le", "mulaw", "alaw" or "container"."""
    if encoding == "pcm_s16le":
        return PcmFrames(sample_rate, channels)
    raw = [] if encoding == "container" else ["-f", encoding, "-ar", str(sample_rate), "-ac", str(channels)]
    return FfmpegFrames(raw, name)


class PcmFrames:
    def __init__(self, sample_rate: int, channels: int) -> None:
        self.sample_rate, self.channels = sample_rate, channels
        self._pending = b""
        self._resampler = (soxr.ResampleStream(sample_rate, SAMPLE_RATE, 1, dtype="float32")
                           if sample_rate != SAMPLE_RATE else None)

    def decode(self, data: bytes) -> np.ndarray:
        data = self._pending + data
        whole = len(data) - len(data) % (BYTES_PER_SAMPLE * self.channels)
        self._pending = data[whole:]
        samples = np.frombuffer(data[:whole], dtype="<i2").astype(np.float32) / 32768.0
        mono = samples.reshape(-1, self.channels).mean(axis=1, dtype=np.float32)
        return mono if self._resampler is None else self._resampler.resample_chunk(mono)

    def flush(self) -> np.ndarray:
        """What the resampler still holds; a part sample is dropped."""
        self._pending = b""
        if self._resampler is None:
            return np.zeros(0, dtype=np.float32)
        return self._resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True)

    def close(self) -> None:
        pass


class FfmpegFrames:
    """One ffmpeg process decoding the stream's bytes as they come; `input_format` names the
    raw formats (G.711) that carry no header of their own."""

    def __init__(self, input_format: list[str], name: str) -> None:
        self._name = name
        self._process = subprocess.Popen(
            ["ffmpeg", "-hide_banner", "-loglevel", "error", "-probesize", str(PROBE_BYTES), "-analyzeduration", "0",
             *input_format, "-i", "pipe:0", "-map", "0:a:0", "-f", "s16le", "-ac", "1", "-ar", str(SAMPLE_RATE),
             "pipe:1"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        self._ready = bytearray()
        self._lock = threading.Lock()
        self._complaint = b""
        self._readers = [threading.Thread(target=self._read, daemon=True, name="live-ffmpeg-out"),
                         threading.Thread(target=self._listen, daemon=True, name="live-ffmpeg-err")]
        for reader in self._readers:
            reader.start()
        self._decoded = 0

    def decode(self, data: bytes) -> np.ndarray:
        try:
            self._process.stdin.write(data)
            self._process.stdin.flush()
        except (BrokenPipeError, ValueError):  # ffmpeg gave up on the stream
            self._process.wait()
            raise self._failure() from None
        return self._take()

    def flush(self) -> np.ndarray:
        try:
            self._process.stdin.close()
        except BrokenPipeError:
            pass
        self._process.wait()
        for reader in self._readers:
            reader.join()
        if self._process.returncode and not self._decoded and not self._ready:
            raise self._failure()
        return self._take()

    def close(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        for reader in self._readers:
            reader.join()
        for pipe in (self._process.stdin, self._process.stdout, self._process.stderr):
            try:
                pipe.close()
            except BrokenPipeError:
                pass

    def _take(self) -> np.ndarray:
        with self._lock:
            whole = len(self._ready) - len(self._ready) % BYTES_PER_SAMPLE
            data, self._ready = bytes(self._ready[:whole]), self._ready[whole:]
        self._decoded += whole
        return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0

    def _read(self) -> None:
        while chunk := self._process.stdout.read1(READ_BYTES):
            with self._lock:
                self._ready += chunk

    def _listen(self) -> None:
        while chunk := self._process.stderr.read1(READ_BYTES):
            self._complaint = (self._complaint + chunk)[-COMPLAINT_CHARS:]

    def _failure(self) -> errors.ServiceError:
        lines = self._complaint.decode(errors="replace").strip().splitlines()
        return errors.not_audio(0, self._name, lines[-1] if lines else "ffmpeg cannot decode the stream")
