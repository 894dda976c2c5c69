"""Small building blocks shared by the models (all TorchScript-compatible)."""


import torch.nn.functional as F
from torch import Tensor, nn


class ConvBNAct(nn.Module):
    """Conv1d (same padding for odd kernels, optional stride) -> BatchNorm1d -> activation."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 7, stride: int = 1,
                 act: str = "relu") -> None:
        super().__init__()
        self.conv = nn.Conv1d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False)
        self.bn = nn.BatchNorm1d(c_out)
        self.act: nn.Module = nn.LeakyReLU(0.2) if act == "lrelu" else nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.bn(self.conv(x)))


def match_length(x: Tensor, n: int) -> Tensor:
    """Crop or right-pad (with zeros) the last axis of ``x`` to exactly ``n`` samples."""
    length = x.size(2)
    if length > n:
        return x[:, :, :n]
    if length < n:
        return F.pad(x, [0, n - length])
    return x


__all__ = ["ConvBNAct", "match_length"]
