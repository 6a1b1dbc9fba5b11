"""Speech, not speakers, with Silero VAD (the `silero-vad` package and the weights in its wheel).

segmentation-3.0 was trained on close and meeting microphones; through a reverberant room at a
few metres it can hear almost nothing of a voice that is still loud (one far-room
libri-dev-linking clip: 4 % of its speech), where Silero's small recurrent model still finds
94-100 % (benchmarks/QUALITY.md). The pipeline keeps what it hears only where the segmenter
heard no one (pipeline.missed_speech).

Silero reads 32 ms chunks one after another, carrying its state; one chunk per call costs
0.3 ms on a CPU thread, so 10 minutes take 6-7 s. Audio of BATCHED_SECONDS or more is therefore
read as STREAMS parallel stretches in one batch (32 chunks cost 1.3 ms a call; 3 chunks cost
0.7 ms, so fewer streams gain little), each preceded by LEAD_CHUNKS of the audio before it so
that its state has settled where its own chunks begin: with a lead of 1 s it had not, in
reverberant rooms (a far-room clip's speech agreed with one sequential pass in 71 % of 10 ms
frames); with 10 s the far-room clips measured agreed in 99.5-100 %, and 10 minutes take
1.4-2 s. Shorter audio is read in one pass. Silero's own post-processing
(get_speech_timestamps_from_probs) then turns the probabilities into stretches of speech.

The model keeps its state between calls, so one model serves one call at a time: calls take a
model from a pool and put it back, and the pool grows to the number of calls made at once
(each model is 2 MB and loads in about 0.1 s).
"""

from __future__ import annotations

import queue
from importlib.metadata import version

import numpy as np
import torch

from speakerlink_server.audio_format import SAMPLE_RATE

# Importing silero_vad sets torch to one thread for the whole process: the segmenter and the
# embedder then ran on one core of two (a 10-minute job: 1.0 core busy instead of 1.5).
_threads = torch.get_num_threads()
from silero_vad import get_speech_timestamps_from_probs, load_silero_vad  # noqa: E402

torch.set_num_threads(_threads)

CHUNK = 512  # samples per step at 16 kHz, as Silero is trained
STREAMS = 32
LEAD_CHUNKS = 312  # 10 s
BATCHED_SECONDS = 60.0  # from here STREAMS stretches at once cost less than one pass
# Silero's own defaults: speech where its probability is 0.5 or more, in stretches of at least
# 250 ms with pauses of at least 100 ms between them, padded by 30 ms.
THRESHOLD = 0.5


class SileroSpeech:
    name = "silero-vad"

    def __init__(self) -> None:
        self._pool: queue.SimpleQueue = queue.SimpleQueue()
        self._pool.put(load_silero_vad())  # the first load fails here, at server start, if it must

    def describe(self) -> str:
        return f"Silero VAD {version('silero-vad')} from its wheel, on cpu"

    def speech(self, wav: np.ndarray) -> list[tuple[float, float]]:
        model = self._take()
        try:
            probs = self._probabilities(model, wav)
        finally:
            self._pool.put(model)
        return _stretches(probs, wav.size, 0)

    def stream(self) -> SileroStream:
        return SileroStream(self._take(), self._pool)

    def _take(self) -> torch.nn.Module:
        try:
            return self._pool.get_nowait()
        except queue.Empty:
            return load_silero_vad()

    @staticmethod
    def _probabilities(model: torch.nn.Module, wav: np.ndarray) -> np.ndarray:
        """Silero's speech probability of each 512-sample chunk of `wav`. Shape: (chunks,)."""
        chunks = -(-wav.size // CHUNK)
        if chunks == 0:
            return np.zeros(0, dtype=np.float32)
        streams, lead = (STREAMS, LEAD_CHUNKS) if wav.size >= BATCHED_SECONDS * SAMPLE_RATE else (1, 0)
        each = -(-chunks // streams)
        padded = np.zeros((lead + streams * each) * CHUNK, dtype=np.float32)  # silence before and after
        padded[lead * CHUNK : lead * CHUNK + wav.size] = wav
        steps = lead + each
        # Stream s reads chunks s * each - lead .. (s + 1) * each of the audio.
        starts = np.arange(streams) * each * CHUNK
        frames = np.stack([padded[start : start + steps * CHUNK] for start in starts]).reshape(streams, steps, CHUNK)
        batch = torch.from_numpy(frames)
        out = np.empty((streams, steps), dtype=np.float32)
        model.reset_states()
        with torch.inference_mode():
            for t in range(steps):
                out[:, t] = model(batch[:, t], SAMPLE_RATE)[:, 0].numpy()
        return out[:, lead:].reshape(-1)[:chunks]

    def close(self) -> None:
        while not self._pool.empty():
            self._pool.get_nowait()


class SileroStream:
    """Silero reading a live stream chunk after chunk, its state carried from one step to the
    next as it was trained to run: a step costs what its new audio costs (0.3 ms a chunk),
    whatever the length of the audio its speech is asked about."""

    def __init__(self, model: torch.nn.Module, pool: queue.SimpleQueue) -> None:
        self._model, self._pool = model, pool
        model.reset_states()
        self._pending = np.zeros(0, dtype=np.float32)  # fewer than CHUNK samples not read yet
        self._probs: list[float] = []  # each chunk's speech probability, from chunk self._first on
        self._first = 0

    def feed(self, samples: np.ndarray, final: bool = False) -> None:
        audio = np.concatenate([self._pending, samples.astype(np.float32, copy=False)])
        whole = audio.size // CHUNK
        if final and audio.size % CHUNK:
            audio, whole = np.pad(audio, (0, CHUNK - audio.size % CHUNK)), whole + 1
        with torch.inference_mode():
            for chunk in torch.from_numpy(audio[: whole * CHUNK].reshape(whole, 1, CHUNK)):
                self._probs.append(float(self._model(chunk, SAMPLE_RATE)[0, 0]))
        self._pending = audio[whole * CHUNK :]

    def speech(self, start: int, end: int) -> list[tuple[float, float]]:
        first = max(start // CHUNK, self._first)
        probs = np.array(self._probs[first - self._first : -(-end // CHUNK) - self._first], dtype=np.float32)
        heard = min(end, (self._first + len(self._probs)) * CHUNK) - first * CHUNK
        return _stretches(probs, heard, first * CHUNK)

    def forget(self, before: int) -> None:
        first = max(before // CHUNK, self._first)
        del self._probs[: first - self._first]
        self._first = first

    def close(self) -> None:
        if self._model is not None:
            self._pool.put(self._model)
            self._model = None


def _stretches(probs: np.ndarray, samples: int, offset: int) -> list[tuple[float, float]]:
    """(start, end) seconds of the speech in chunk probabilities over `samples` samples that
    begin at sample `offset`, by Silero's own post-processing."""
    if samples <= 0:
        return []
    stamps = get_speech_timestamps_from_probs(probs.tolist(), sampling_rate=SAMPLE_RATE, threshold=THRESHOLD,
                                              audio_length_samples=samples)
    return [((offset + s["start"]) / SAMPLE_RATE, (offset + s["end"]) / SAMPLE_RATE) for s in stamps]
