"""CRED-class event detector: convolutional front end + bidirectional GRU.

Contract: input ``(B, C, N)`` float32, demeaned and std-normalised per channel (components in
contract order, a missing component all zeros). Output ``(B, 1, N // output_step_samples)``:
event probability per step (sigmoid inside), label ``event``. ``output_step_samples`` is the
product of the front end's strides (default 2 * 5 = 10 samples = 0.1 s at 100 Hz).
"""


from typing import List, Sequence

import torch
from torch import Tensor, nn

from geosentry.training.models.layers import ConvBNAct


class EventDetector(nn.Module):
    """Conv (strided) -> BiGRU -> per-step sigmoid (Mousavi et al. 2019, CRED, shrunk)."""

    sampling_rate_hz: float
    window_samples: int
    output_step_samples: int
    components: List[str]
    labels: List[str]

    def __init__(self, components: Sequence[str] = ("Z", "N", "E"),
                 sampling_rate_hz: float = 100.0, window_samples: int = 2000,
                 strides: Sequence[int] = (2, 5), channels: Sequence[int] = (16, 32, 32),
                 hidden: int = 32) -> None:
        super().__init__()
        self.sampling_rate_hz = float(sampling_rate_hz)
        self.window_samples = int(window_samples)
        self.components = [str(c) for c in components]
        self.labels = ["event"]
        step = 1
        for s in strides:
            step *= int(s)
        self.output_step_samples = step
        layers: List[nn.Module] = [ConvBNAct(len(self.components), channels[0], 9)]
        c_prev = int(channels[0])
        for i, s in enumerate(strides):
            c = int(channels[min(i + 1, len(channels) - 1)])
            layers.append(ConvBNAct(c_prev, c, 2 * int(s) + 1, stride=int(s)))
            c_prev = c
        self.front = nn.Sequential(*layers)
        self.rnn = nn.GRU(c_prev, hidden, num_layers=1, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * hidden, 1)

    def logits(self, x: Tensor) -> Tensor:
        """Per-step event logits ``(B, 1, N // output_step_samples)``."""
        steps = x.size(2) // self.output_step_samples
        h = self.front(x)[:, :, :steps]
        out, _ = self.rnn(h.transpose(1, 2))
        return self.head(out).transpose(1, 2)

    def forward(self, x: Tensor) -> Tensor:
        """Per-step event probability ``(B, 1, N // output_step_samples)``."""
        return torch.sigmoid(self.logits(x))
