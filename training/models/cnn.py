"""PhaseNet-class 1-D U-Net phase picker.

Contract: input ``(B, C, N)`` float32, ``C = len(components)`` in contract order (default Z, N, E),
demeaned and divided by per-channel std (+eps); any ``N`` works (output length always equals
input length), the shipped model uses ``N = window_samples = 3001`` at 100 Hz.
Output ``(B, len(labels), N)`` class probabilities (softmax over dim 1), labels ``P, S, N``.

A stream scores only the stretch of each window it owns (the middle stride of a half-overlapping
window, the newest second of a latency-mode one), so the exported module also has
``forward_range(x, start, stop)``: the same probabilities for samples ``[start, stop)`` only.
The encoder still runs on the whole window (its deepest level sees all of it); the decoder runs
only where the range and its convolutions' margins need it, which at half a window saves about a
quarter of the arithmetic and at one second of thirty nearly half. It equals
``forward(x)[:, :, start:stop]`` up to float rounding:

>>> net = PhasePicker(window_samples=400, channels=(4, 8, 8), kernel=5).eval()
>>> x = torch.randn(2, 3, 400)
>>> with torch.no_grad():
...     full, part = net(x), net.forward_range(x, 150, 250)
>>> part.shape, bool(torch.allclose(full[:, :, 150:250], part, atol=1e-6))
(torch.Size([2, 3, 100]), True)
"""


from typing import List, Sequence, Tuple

import torch
from torch import Tensor, nn

from geosentry.training.models.layers import ConvBNAct, match_length


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

    def forward_range(self, x: Tensor, x_start: int, coarse_length: int, skip: Tensor,
                      start: int, stop: int) -> Tensor:
        """``forward`` at this level's samples ``[start, stop)`` only. ``x`` holds the coarser
        level's samples from ``x_start`` on (as many as ``coarse_range`` asks for) out of
        ``coarse_length``; ``skip`` is this level's whole skip connection."""
        half = self.conv.conv.kernel_size[0] // 2
        stride = self.up.stride[0]
        lo = max(0, start - half)
        hi = min(skip.size(2), stop + half)
        offset = stride * x_start  # this level's sample where the upsampled ``x`` begins
        up = self.up(x)[:, :, lo - offset:min(hi, stride * coarse_length) - offset]
        out = self.conv(torch.cat([match_length(up, hi - lo), skip[:, :, lo:hi]], dim=1))
        return out[:, :, start - lo:stop - lo]

    def coarse_range(self, start: int, stop: int, length: int, coarse_length: int) -> List[int]:
        """The coarser level's samples ``forward_range`` needs for ``[start, stop)`` of a level
        ``length`` long (the conv's margin, then the upsampling's stride)."""
        half = self.conv.conv.kernel_size[0] // 2
        stride = self.up.stride[0]
        lo = max(0, start - half) // stride
        hi = min(coarse_length, (min(length, stop + half) - 1) // stride + 1)
        return [lo, max(lo, hi)]


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
        if kernel % 2 == 0:  # "same" padding keeps every level's length (forward_range needs it)
            raise ValueError(f"kernel must be odd, got {kernel}")
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

    def encode(self, x: Tensor) -> Tuple[Tensor, List[Tensor]]:
        """The bottom level's features and every level's skip connection, finest first."""
        x = self.stem(x)
        skips: List[Tensor] = []
        for down in self.downs:
            pair = down(x)
            skips.append(pair[0])
            x = pair[1]
        return self.bottom(x), skips

    def logits(self, x: Tensor) -> Tensor:
        """Un-normalised class scores ``(B, len(labels), N)`` (used by the training loss)."""
        n = x.size(2)
        x, skips = self.encode(x)
        depth = len(skips)
        for i, up in enumerate(self.ups):
            x = up(x, skips[depth - 1 - i])
        return match_length(self.head(x), n)

    def forward(self, x: Tensor) -> Tensor:
        """Probabilities ``(B, len(labels), N)``; softmax over the label axis."""
        return torch.softmax(self.logits(x), dim=1)

    @torch.jit.export
    def forward_range(self, x: Tensor, start: int, stop: int) -> Tensor:
        """Probabilities ``(B, len(labels), stop - start)`` for samples ``[start, stop)``:
        ``forward(x)[:, :, start:stop]`` without decoding the rest of the window."""
        n = x.size(2)
        start = max(0, min(start, n))
        stop = max(start, min(stop, n))
        x, skips = self.encode(x)
        depth = len(skips)
        lengths = [s.size(2) for s in skips] + [x.size(2)]
        # ranges[level]: the samples each level must decode, from the output's range downwards
        ranges: List[List[int]] = [[0, 0] for _ in range(depth + 1)]
        ranges[0] = [start, stop]
        for level in range(depth):
            i = 0
            for up in self.ups:  # TorchScript indexes a ModuleList only in a loop over it
                if i == depth - 1 - level:
                    lo, hi = ranges[level]
                    # (iterating a ModuleList gives mypy nn.Module, whose attributes it types Tensor | Module)
                    ranges[level + 1] = up.coarse_range(lo, hi, lengths[level],  # type: ignore[operator]
                                                        lengths[level + 1])
                i += 1
        x = x[:, :, ranges[depth][0]:ranges[depth][1]]
        for i, up in enumerate(self.ups):
            level = depth - 1 - i
            x = up.forward_range(x, ranges[level + 1][0], lengths[level + 1], skips[level],  # type: ignore[operator]
                                 ranges[level][0], ranges[level][1])
        return torch.softmax(self.head(x), dim=1)
