"""1-D convolutional autoencoder for anomaly scoring (seismic or geomagnetic).

Contract: input ``(B, C, N)`` float32 prepared as the contract's normalisation says; output the
reconstruction ``(B, C, N)`` in the same units. The service scores a window by the mean squared
error between input and output and alarms above ``thresholds["anomaly"]``.

``channel_scale`` (a buffer, default ones) divides the input before encoding and multiplies the
reconstruction after decoding, so a model fed physical units (e.g. nT, normalisation ``none``)
still works on O(1) numbers internally.
"""


from typing import List, Optional, Sequence

import torch
from torch import Tensor, nn

from geosentry.training.models.layers import ConvBNAct, match_length


class ConvAutoencoder(nn.Module):
    """Strided-conv encoder to a narrow bottleneck, transposed-conv decoder."""

    sampling_rate_hz: float
    window_samples: int
    components: List[str]
    labels: List[str]
    channel_scale: Tensor  # a buffer (registered in __init__)

    def __init__(self, components: Sequence[str] = ("Z", "N", "E"),
                 sampling_rate_hz: float = 100.0, window_samples: int = 1000,
                 channels: Sequence[int] = (16, 32, 32), bottleneck: int = 4, kernel: int = 7,
                 channel_scale: Optional[Sequence[float]] = None) -> None:
        super().__init__()
        self.sampling_rate_hz = float(sampling_rate_hz)
        self.window_samples = int(window_samples)
        self.components = [str(c) for c in components]
        self.labels = ["anomaly"]
        c_in = len(self.components)
        scale = [1.0] * c_in if channel_scale is None else [float(s) for s in channel_scale]
        self.register_buffer("channel_scale", torch.tensor(scale, dtype=torch.float32).view(1, c_in, 1))
        enc: List[nn.Module] = []
        c_prev = c_in
        for c in channels:
            enc.append(ConvBNAct(c_prev, int(c), kernel, stride=2, act="lrelu"))
            c_prev = int(c)
        enc.append(nn.Conv1d(c_prev, bottleneck, 1))
        self.encoder = nn.Sequential(*enc)
        dec: List[nn.Module] = [nn.Conv1d(bottleneck, c_prev, 1), nn.LeakyReLU(0.2)]
        rev = [int(c) for c in channels][::-1][1:] + [int(channels[0])]
        for c in rev:
            dec.append(nn.ConvTranspose1d(c_prev, c, kernel_size=4, stride=2, padding=1))
            dec.append(nn.LeakyReLU(0.2))
            c_prev = c
        self.decoder = nn.Sequential(*dec)
        self.out = nn.Conv1d(c_prev, c_in, kernel, padding=kernel // 2)

    def forward(self, x: Tensor) -> Tensor:
        """Reconstruction of ``x`` ``(B, C, N)``, same units as the input."""
        n = x.size(2)
        z = self.encoder(x / self.channel_scale)
        y = self.out(match_length(self.decoder(z), n))
        return y * self.channel_scale

    @torch.jit.export
    def score(self, x: Tensor) -> Tensor:
        """Anomaly score per window ``(B,)``: mean squared reconstruction error."""
        return ((self.forward(x) - x) ** 2).mean(dim=(1, 2))
