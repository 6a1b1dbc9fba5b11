"""fp16 on a GPU only where it keeps the model's output as it is in fp32, by measurement."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import torch

from speakerlink_server.audio_format import SAMPLE_RATE

log = logging.getLogger(__name__)

# Half precision is used only where every row of a warm-up batch keeps at least this cosine
# with fp32; speaker embeddings then rank and cluster as they would in fp32.
MIN_HALF_COSINE = 0.9999


def choose_half(
    infer: Callable[[torch.Tensor, bool], torch.Tensor], probe: torch.Tensor, name: str, least: float = MIN_HALF_COSINE
) -> bool:
    """Run `probe` through infer(x, half) both ways and say whether fp16 keeps cosine `least` to fp32."""
    full = infer(probe, False).flatten(1).float()
    half = infer(probe, True).flatten(1).float()
    cosine = torch.nn.functional.cosine_similarity(full, half, dim=1).min().item()
    log.info("%s: fp16 keeps cosine %.7f of fp32 (needed: %g)", name, cosine, least)
    return cosine >= least


def voiced_probe(batch: int, seconds: float) -> torch.Tensor:
    """Speech-like test audio, shape (batch, samples): harmonics of a gliding pitch in syllable
    bursts over a little noise. Noise alone is no test: fp16 errors that wreck real speech
    (e.g. rounded sinc filter phases) leave noise almost untouched."""
    generator = torch.Generator().manual_seed(0)
    t = torch.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    rows = []
    for b in range(batch):
        pitch = 110.0 + 40.0 * b + 30.0 * torch.sin(2 * math.pi * 0.7 * t)
        phase = 2 * math.pi * torch.cumsum(pitch, 0) / SAMPLE_RATE
        voice = sum(torch.sin(h * phase) / h for h in range(1, 25))
        syllables = (torch.sin(2 * math.pi * 3.0 * t + b) > -0.3).float()
        rows.append(0.1 * voice * syllables + 0.003 * torch.randn(t.shape, generator=generator))
    return torch.stack(rows).float()
