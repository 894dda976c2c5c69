"""Conditional 1-D GAN (generator + projection discriminator) for waveform augmentation.

Generator contract: ``forward(z, label)`` with ``z`` ``(B, latent_dim)`` standard normal and
``label`` ``(B,)`` int64 index into ``labels`` (default ``noise``, ``event``); returns
``(B, C, window_samples)`` peak-normalised waveforms in [-1, 1] (tanh), components in contract order.
"""


from typing import List, Sequence

import torch
from torch import Tensor, nn


class Generator(nn.Module):
    """Label embedding * latent -> linear -> (upsample x2, conv) * n_up -> tanh."""

    sampling_rate_hz: float
    window_samples: int
    latent_dim: int
    components: List[str]
    labels: List[str]

    def __init__(self, components: Sequence[str] = ("Z", "N", "E"),
                 labels: Sequence[str] = ("noise", "event"), sampling_rate_hz: float = 100.0,
                 window_samples: int = 1024, latent_dim: int = 32, base: int = 64,
                 n_up: int = 5) -> None:
        super().__init__()
        if window_samples % (2 ** n_up):
            raise ValueError(f"window_samples={window_samples} must be divisible by 2**{n_up}")
        self.sampling_rate_hz = float(sampling_rate_hz)
        self.window_samples = int(window_samples)
        self.latent_dim = int(latent_dim)
        self.components = [str(c) for c in components]
        self.labels = [str(lab) for lab in labels]
        self.base = int(base)
        self.start = self.window_samples // (2 ** n_up)
        self.embed = nn.Embedding(len(self.labels), latent_dim)
        self.fc = nn.Linear(2 * latent_dim, base * self.start)
        blocks: List[nn.Module] = []
        c = base
        for i in range(n_up):
            c_out = max(base // (2 ** (i + 1)), 8)
            blocks += [nn.Upsample(scale_factor=2.0, mode="nearest"),
                       nn.Conv1d(c, c_out, 9, padding=4), nn.BatchNorm1d(c_out), nn.LeakyReLU(0.2)]
            c = c_out
        self.body = nn.Sequential(*blocks)
        self.out = nn.Conv1d(c, len(self.components), 9, padding=4)

    def forward(self, z: Tensor, label: Tensor) -> Tensor:
        """Waveforms ``(B, C, window_samples)`` for latent ``z`` and class ``label``."""
        h = torch.cat([z, self.embed(label)], dim=1)
        h = self.fc(h).view(z.size(0), self.base, self.start)
        return torch.tanh(self.out(self.body(torch.relu(h))))


class Discriminator(nn.Module):
    """Strided convs -> global pool -> linear + label projection (Miyato & Koyama 2018)."""

    def __init__(self, n_channels: int = 3, n_labels: int = 2,
                 channels: Sequence[int] = (16, 32, 64, 64)) -> None:
        super().__init__()
        layers: List[nn.Module] = []
        c_prev = n_channels
        for c in channels:
            layers += [nn.Conv1d(c_prev, int(c), 9, stride=4, padding=4), nn.LeakyReLU(0.2)]
            c_prev = int(c)
        self.body = nn.Sequential(*layers)
        self.fc = nn.Linear(c_prev, 1)
        self.embed = nn.Embedding(n_labels, c_prev)

    def forward(self, x: Tensor, label: Tensor) -> Tensor:
        """Realness score ``(B,)`` (unbounded; hinge loss)."""
        h = self.body(x).mean(dim=2)
        return self.fc(h).squeeze(1) + (self.embed(label) * h).sum(dim=1)
