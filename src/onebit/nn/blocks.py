"""Building blocks of the published BNNs: ReActNet's RSign and RPReLU, Bi-Real Net's block.

Channel-wise parameters broadcast over axis 1 (NCHW, NCL, or NC for dense inputs).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from onebit.errors import ConfigError
from onebit.nn.layers import QuantConv2d, QuantizerSpec
from onebit.nn.quantizers import Quantizer, approx_sign

__all__ = ["ACTIVATIONS", "BiRealBlock", "Hardtanh", "RPReLU", "RSign", "Residual", "channel_quantizer", "make_activation"]

ACTIVATIONS = ("hardtanh", "rprelu", "none")

Hardtanh = nn.Hardtanh  # BinaryNet's activation between binary layers: clip(x, -1, 1)


def _channel_view(p: Tensor, x: Tensor) -> Tensor:
    if x.dim() < 2 or x.shape[1] != p.numel():
        raise ConfigError(
            f"expected an input with {p.numel()} channels on axis 1, got shape {tuple(x.shape)}"
        )
    return p.view((1, -1) + (1,) * (x.dim() - 2))


def _check_channels(channels: int) -> int:
    if not isinstance(channels, int) or channels < 1:
        raise ConfigError(f"channels must be a positive integer, got {channels!r}")
    return channels


class RSign(Quantizer):
    """ReActNet's RSign: ``sign(x − β_c)`` with a learnable per-channel threshold β_c.

    The gradient is Bi-Real Net's ApproxSign. Usable as a layer's ``input_quantizer``;
    at export β_c folds into the previous layer's threshold.
    """

    name = "rsign"

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = _check_channels(channels)
        self.shift = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        return approx_sign(x - _channel_view(self.shift, x))

    def config(self) -> dict[str, Any]:
        return {"channels": self.channels}



class RPReLU(nn.Module):
    """ReActNet's RPReLU: ``PReLU_β(x − γ_c) + ζ_c``, all three per channel.

    PReLU_β(z) = z for z ≥ 0 and β_c·z otherwise; β starts at 0.25 as in PReLU.
    """

    def __init__(self, channels: int, init_slope: float = 0.25) -> None:
        super().__init__()
        self.channels = _check_channels(channels)
        self.shift_in = nn.Parameter(torch.zeros(channels))
        self.slope = nn.Parameter(torch.full((channels,), float(init_slope)))
        self.shift_out = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        z = x - _channel_view(self.shift_in, x)
        z = torch.where(z >= 0, z, _channel_view(self.slope, x) * z)
        return z + _channel_view(self.shift_out, x)

    def extra_repr(self) -> str:
        return f"channels={self.channels}"


class BiRealBlock(nn.Module):
    """Bi-Real Net's unit: a real-valued shortcut around *every* binary convolution.

    ``y = BN(QuantConv3x3(sign(x))) + shortcut(x)`` with ApproxSign activations and
    magnitude-aware weights by default. When the block changes resolution or width the
    shortcut is AvgPool2d(2) → float 1×1 conv → BN (Liu et al. 2018, option B with
    average pooling), which stays float in every Bi-Real implementation.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        *,
        input_quantizer: QuantizerSpec = "approx_sign",
        weight_quantizer: QuantizerSpec = "magnitude_aware_sign",
        pad_value: float = 0.0,
        padding: int | str = 1,
    ) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ConfigError(f"BiRealBlock stride must be 1 or 2, got {stride!r}")
        self.conv = QuantConv2d(  # padding="same": TensorFlow's (0, 1) at stride 2 on even inputs, as Larq zoo
            in_channels, out_channels, 3, stride=stride, padding=padding, bias=False,
            input_quantizer=input_quantizer, weight_quantizer=weight_quantizer, pad_value=pad_value,
        )
        self.bn = nn.BatchNorm2d(out_channels)
        if stride == 1 and in_channels == out_channels:
            self.shortcut: nn.Module = nn.Identity()
        else:
            self.shortcut = nn.Sequential(
                nn.AvgPool2d(stride) if stride > 1 else nn.Identity(),
                nn.Conv2d(in_channels, out_channels, 1, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: Tensor) -> Tensor:
        return self.bn(self.conv(x)) + self.shortcut(x)


class Residual(nn.Module):
    """``y = body(x) + shortcut(x)``: Bi-Real Net's real-valued shortcut around a binary layer.

    ``shortcut`` defaults to the identity (same shape in and out); give a float
    projection (1×1 conv → BN, Bi-Real option B) where the body changes the width.
    """

    def __init__(self, body: nn.Module, shortcut: nn.Module | None = None) -> None:
        super().__init__()
        self.body = body
        self.shortcut = nn.Identity() if shortcut is None else shortcut

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x) + self.shortcut(x)


def channel_quantizer(spec: QuantizerSpec, channels: int) -> QuantizerSpec:
    """An input quantizer for a layer fed ``channels`` channels: ``"rsign"`` builds ``RSign(channels)``
    (it holds one threshold per channel); any other spec is returned as it is."""
    return RSign(channels) if spec == "rsign" else spec


def make_activation(name: str, channels: int) -> nn.Module:
    """The activation between binary layers (:data:`ACTIVATIONS`): BinaryNet's Hardtanh,
    ReActNet's RPReLU (per channel), or none (Bi-Real Net: the sum goes to the next sign)."""
    if name == "hardtanh":
        return nn.Hardtanh()
    if name == "rprelu":
        return RPReLU(channels)
    if name == "none":
        return nn.Identity()
    from onebit.errors import unknown_choice

    raise unknown_choice("activation", name, ACTIVATIONS)
