"""PhaseNet-class 1-D U-Net phase picker.

Contract: input ``(B, C, N)`` float32, ``C = len(components)`` in contract order (default Z, N, E),
demeaned and divided by per-channel std (+eps); any ``N`` works (output length always equals
input length), the shipped model uses ``N = window_samples = 3001`` at 100 Hz.
Output ``(B, len(labels), N)`` class probabilities (softmax over dim 1), labels ``P, S, N``.
"""


from typing import List, Sequence

import torch
from torch import Tensor, nn

from training.models.layers import ConvBNAct, match_length


class Down(nn.Module):
    """A conv at this resolution, then a strided conv; returns (skip, downsampled).

    ``widen_first`` (the original layout) widens to ``c_out`` before downsampling, so the skip
    has ``c_out`` channels; otherwise (PhaseNet's layout, cheaper at full resolution) the conv
    keeps ``c_in`` channels and the strided conv widens.
    """

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 2,
                 widen_first: bool = True) -> None:
        super().__init__()
        c_mid = c_out if widen_first else c_in
        self.conv = ConvBNAct(c_in, c_mid, kernel)
        self.down = ConvBNAct(c_mid, c_out, kernel, stride=stride)

    def forward(self, x: Tensor) -> List[Tensor]:
        skip = self.conv(x)
        return [skip, self.down(skip)]


class Up(nn.Module):
    """Transposed-conv upsampling x stride, crop to the skip's length, concatenate, conv."""

    def __init__(self, c_in: int, c_skip: int, c_out: int, kernel: int, stride: int = 2) -> None:
        super().__init__()
        self.up = nn.ConvTranspose1d(c_in, c_skip, kernel_size=stride, stride=stride)
        self.conv = ConvBNAct(2 * c_skip, c_out, kernel)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        x = match_length(self.up(x), skip.size(2))
        return self.conv(torch.cat([x, skip], dim=1))


class PhasePicker(nn.Module):
    """Small U-Net: P/S/noise probabilities per sample (PhaseNet, Zhu & Beroza 2019, shrunk)."""

    sampling_rate_hz: float
    window_samples: int
    components: List[str]
    labels: List[str]

    def __init__(self, components: Sequence[str] = ("Z", "N", "E"),
                 labels: Sequence[str] = ("P", "S", "N"), sampling_rate_hz: float = 100.0,
                 window_samples: int = 3001, channels: Sequence[int] = (8, 16, 32, 48, 64),
                 kernel: int = 7, down_stride: int = 2, widen_first: bool = True) -> None:
        super().__init__()
        self.sampling_rate_hz = float(sampling_rate_hz)
        self.window_samples = int(window_samples)
        self.components = [str(c) for c in components]
        self.labels = [str(lab) for lab in labels]
        chans = [int(c) for c in channels]
        self.stem = ConvBNAct(len(self.components), chans[0], kernel)
        self.downs = nn.ModuleList(
            [Down(chans[i], chans[i + 1], kernel, down_stride, widen_first)
             for i in range(len(chans) - 1)])
        self.bottom = ConvBNAct(chans[-1], chans[-1], kernel)
        ups: List[nn.Module] = []
        for i in range(len(chans) - 1, 0, -1):
            c_skip = chans[i] if widen_first else chans[i - 1]
            ups.append(Up(chans[i], c_skip, chans[i - 1], kernel, down_stride))
        self.ups = nn.ModuleList(ups)
        self.head = nn.Conv1d(chans[0], len(self.labels), 1)

    def logits(self, x: Tensor) -> Tensor:
        """Un-normalised class scores ``(B, len(labels), N)`` (used by the training loss)."""
        n = x.size(2)
        x = self.stem(x)
        skips: List[Tensor] = []
        for down in self.downs:
            pair = down(x)
            skips.append(pair[0])
            x = pair[1]
        x = self.bottom(x)
        depth = len(skips)
        for i, up in enumerate(self.ups):
            x = up(x, skips[depth - 1 - i])
        return match_length(self.head(x), n)

    def forward(self, x: Tensor) -> Tensor:
        """Probabilities ``(B, len(labels), N)``; softmax over the label axis."""
        return torch.softmax(self.logits(x), dim=1)
