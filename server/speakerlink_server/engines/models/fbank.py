"""Kaldi-compatible log mel filterbank in batched torch, on whatever device the audio is on.

It matches the features 3D-Speaker trains and evaluates CAM++ on, which come from
torchaudio.compliance.kaldi.fbank with its defaults on 16 kHz audio in [-1, 1] (not rescaled
to 16-bit integers): 25 ms povey-windowed frames every 10 ms, only frames that fit whole
(snip_edges), DC offset removed, pre-emphasis 0.97, no dither, a 512-point power spectrum,
triangular mel bins from 20 Hz to Nyquist, and the log floored at float32 epsilon. Doing it
in torch lets a clip's features be computed on the GPU next to the model, in one vectorised
pass over all frames, instead of frame by frame on the CPU.

Mean normalisation over time is left to the caller, who knows which frames form one item.
"""

from __future__ import annotations

import functools
import math

import torch

from speakerlink_server.audio_format import SAMPLE_RATE

FRAME_LENGTH = SAMPLE_RATE * 25 // 1000  # 400 samples
FRAME_SHIFT = SAMPLE_RATE * 10 // 1000  # 160 samples
N_FFT = 512  # the frame length rounded up to a power of two, as Kaldi does
PREEMPHASIS = 0.97
LOW_FREQ = 20.0
LOG_FLOOR = torch.finfo(torch.float32).eps


def _mel(freq: float) -> float:
    return 1127.0 * math.log1p(freq / 700.0)


@functools.cache
def _constants(num_mel_bins: int, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Povey window (FRAME_LENGTH,) and mel matrix (N_FFT // 2 + 1, num_mel_bins), built once per device and dtype.

    Both are computed in float64 and then cast. As in Kaldi, bins are equally spaced on the
    mel scale, and the Nyquist FFT bin gets no weight.
    """
    window = torch.hann_window(FRAME_LENGTH, periodic=False, dtype=torch.float64).pow(0.85)
    edges = torch.linspace(_mel(LOW_FREQ), _mel(SAMPLE_RATE / 2), num_mel_bins + 2, dtype=torch.float64)
    left, center, right = edges[:-2], edges[1:-1], edges[2:]
    fft_freq = torch.arange(N_FFT // 2, dtype=torch.float64) * (SAMPLE_RATE / N_FFT)
    fft_mel = 1127.0 * torch.log1p(fft_freq / 700.0).unsqueeze(1)
    rising = (fft_mel - left) / (center - left)
    falling = (right - fft_mel) / (right - center)
    weights = torch.minimum(rising, falling).clamp_min(0.0)
    weights = torch.cat([weights, weights.new_zeros(1, num_mel_bins)])  # the Nyquist bin
    return window.to(device, dtype), weights.to(device, dtype)


def kaldi_fbank(wav: torch.Tensor, num_mel_bins: int = 80) -> torch.Tensor:
    """(samples,) or (batch, samples) 16 kHz audio in [-1, 1] -> (..., frames, num_mel_bins) log mel energies.

    Frame j covers samples [160 j, 160 j + 400). Audio shorter than one frame gives 0 frames.
    """
    if not wav.is_floating_point():
        raise TypeError(f"kaldi_fbank wants float audio in [-1, 1], got {wav.dtype}")
    window, mel = _constants(num_mel_bins, wav.device, wav.dtype)
    if wav.shape[-1] < FRAME_LENGTH:
        return wav.new_zeros(*wav.shape[:-1], 0, num_mel_bins)
    frames = wav.unfold(-1, FRAME_LENGTH, FRAME_SHIFT)  # a view: (..., frames, FRAME_LENGTH)
    frames = frames - frames.mean(dim=-1, keepdim=True)
    # Pre-emphasis; Kaldi treats the sample before each frame's first as that sample itself.
    previous = torch.cat([frames[..., :1], frames[..., :-1]], dim=-1)
    frames = (frames - PREEMPHASIS * previous) * window
    spectrum = torch.fft.rfft(frames, n=N_FFT)
    power = spectrum.real.square() + spectrum.imag.square()
    return torch.matmul(power, mel).clamp_min(LOG_FLOOR).log()
