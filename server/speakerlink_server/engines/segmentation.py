"""Local speakers frame by frame with pyannote segmentation-3.0: the engine infers, it does not decide.

The model reads 10 s windows and gives, for each of 589 frames (every 16.9 ms), log-probabilities
over a powerset of up to 3 local speakers with at most 2 at once: that is what finds overlapped
speech. Windows slide at the pipeline's step and go through a MicroBatcher, so windows of
concurrent clips and jobs share forward passes. Binarizing, counting and every threshold are
the pipeline's (pipeline/activity.py). Local speaker slots mean different people in different
windows, so nothing is averaged across windows here.
"""

from __future__ import annotations

import numpy as np
import torch

from speakerlink_server.audio_format import SAMPLE_RATE
from speakerlink_server.engines.base import FrameTiming, Hook, Segmentation, noop_hook
from speakerlink_server.engines.batching import MicroBatcher
from speakerlink_server.engines.graphs import device_forward
from speakerlink_server.engines.models.pyannet import PyanNet, powerset_mapping

# Windows per forward pass. On a CPU 8 windows run as fast per window as 32 (35-40 ms each on
# one thread), and the first SincNet layer's output, 5 MB a window, stays small; a GPU fills
# with far more.
BATCH = {"cuda": 512, "cpu": 8}
# Windows one call hands to the batcher at a time (41 MB of float32 audio on a GPU); progress
# and cancellation are checked between groups, so on a CPU a group is about a second of work.
GROUP = {"cuda": 64, "cpu": 16}


class Segmentation3:
    name = "segmentation-3.0"

    def __init__(self, checkpoint: dict, device: str = "cpu", batch: int = 0) -> None:
        shape = checkpoint["model"]
        self.window_seconds = float(checkpoint["inference"]["duration"])
        self.device = device
        self._model = PyanNet()
        self._model.load_state_dict(checkpoint["state_dict"], strict=True)
        self._model.to(device).eval()
        self._window = int(self.window_seconds * SAMPLE_RATE)
        self._powerset = powerset_mapping().numpy()
        with torch.inference_mode():
            frames = self._model(torch.zeros(1, 1, self._window, device=device)).shape[1]
        self.timing = FrameTiming(shape["frame_start"], shape["frame_step"], shape["frame_duration"], frames)
        cuda = device.startswith("cuda")
        # fp32 always: on 32 windows of real speech on an H200, fp16 frame probabilities kept a
        # cosine of only 0.99983 with fp32 (0.9999 is the bar), though 99.94 % of frames kept
        # their class; the segmenter is a small part of a job's GPU time (benchmarks/gpu_speed.py).
        self._forward = device_forward(lambda x: self._run(x, False), device, self.name)
        self.batch, self._group = batch or BATCH["cuda" if cuda else "cpu"], GROUP["cuda" if cuda else "cpu"]
        self._batcher = MicroBatcher(self._forward, self.batch, self.name, steady=cuda)

    def describe(self) -> str:
        return f"{self.timing.count} frames per {self.window_seconds:g} s window, on {self.device}, fp32, batches of {self.batch}"

    def close(self) -> None:
        self._batcher.close()

    def window_starts(self, seconds: float, step: float) -> np.ndarray:
        """Windows every `step` s, the last one ending with the audio; one window for short audio."""
        last = max(seconds - self.window_seconds, 0.0)
        starts = np.arange(0.0, last + 1e-9, step)
        if last - starts[-1] > 1e-3:
            starts = np.append(starts, last)
        return starts

    def segment(self, wav: np.ndarray, step: float, hook: Hook = noop_hook) -> Segmentation:
        """Frame log-probabilities of windows every `step` seconds over the whole of `wav`."""
        starts = self.window_starts(wav.size / SAMPLE_RATE, step)
        out = np.zeros((len(starts), self.timing.count, self._powerset.shape[0]), dtype=np.float32)
        hook("segment", completed=0, total=len(starts))
        for first in range(0, len(starts), self._group):
            picked = starts[first : first + self._group]
            windows = np.zeros((len(picked), 1, self._window), dtype=np.float32)  # zeros pad short audio
            for row, start in enumerate(picked):
                begin = int(round(start * SAMPLE_RATE))
                piece = wav[begin : begin + self._window]
                windows[row, 0, : piece.size] = piece
            out[first : first + len(picked)] = self._batcher.run(windows)
            hook("segment", completed=first + len(picked), total=len(starts))
        return Segmentation(out, starts, self.timing, self._powerset, wav.size / SAMPLE_RATE)

    def _infer(self, windows: torch.Tensor, half: bool) -> torch.Tensor:
        return self._run(windows.to(self.device), half).cpu()

    def _run(self, windows: torch.Tensor, half: bool) -> torch.Tensor:
        with torch.inference_mode(), torch.autocast(windows.device.type, dtype=torch.float16, enabled=half):
            return self._model(windows).float()
