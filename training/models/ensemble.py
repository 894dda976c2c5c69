"""``PickerEnsemble``: the mean of several pickers' probabilities, one TorchScript file.

Every member takes the same input ``(B, C, N)`` and gives ``(B, labels, N)`` probabilities; the
ensemble's ``forward`` and ``forward_range`` are their means, so the service serves it as one
picker (the contract is the members' own: window, labels, normalisation). It costs one member's
inference per member.

>>> import torch
>>> from geosentry.training.models.cnn import PhasePicker
>>> a, b = (PhasePicker(("Z", "N", "E"), ("P", "S", "N"), 100.0, 400) for _ in range(2))
>>> e = PickerEnsemble([a, b]).eval()
>>> x = torch.randn(1, 3, 400)
>>> bool(torch.allclose(e(x), (a.eval()(x) + b.eval()(x)) / 2, atol=1e-6))
True
>>> bool(torch.allclose(e.forward_range(x, 100, 200), e(x)[:, :, 100:200], atol=1e-5))
True
"""

from typing import List

import torch
from torch import Tensor, nn


class PickerEnsemble(nn.Module):
    def __init__(self, members: List[nn.Module]) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)
        self.n_members = float(len(members))

    def forward(self, x: Tensor) -> Tensor:
        out = torch.zeros(0)
        first = True
        for m in self.members:
            y = m(x)
            out = y if first else out + y
            first = False
        return out / self.n_members

    @torch.jit.export
    def forward_range(self, x: Tensor, start: int, stop: int) -> Tensor:
        """The members' mean ``forward_range`` (each member must export one)."""
        out = torch.zeros(0)
        first = True
        for m in self.members:
            y = m.forward_range(x, start, stop)  # type: ignore[operator]
            out = y if first else out + y
            first = False
        return out / self.n_members
