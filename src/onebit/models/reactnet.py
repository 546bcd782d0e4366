"""ReActNet (Liu et al. 2020): binary nets with learnable thresholds (RSign) and shifted PReLUs (RPReLU).

Reference followed: liuzechun/ReActNet, ``mobilenet/2_step2/reactnet.py`` (ReActNet-A) and
``resnet/2_step2/birealnet.py`` (ReActNet on the Bi-Real Net-18 backbone).

**ReActNet-A** is MobileNet-V1 with every depthwise 3×3 conv made a *full* binary 3×3 conv
(``cin → cin``) and every pointwise conv a binary 1×1 conv, each with its own shortcut:

    y = RPReLU(BN(conv3x3(RSign(x))) + AvgPool2d(2)(x) if stride 2 else x)
    z = RPReLU(BN(conv1x1(RSign(y))) + y)                               same width
    z = RPReLU(cat(BN₁(conv1x1₁(RSign(y))) + y, BN₂(conv1x1₂(RSign(y))) + y))   width doubles

The stem is a float 3×3/2 conv → BN (no activation); the head is global average pooling and
a float linear layer. Stage widths are ``width`` × (1, 2, 4, 4, 8, 8, 16 × 6, 32, 32), stride 2
where the width changes except 32 → 64 (as in the reference's ``stage_out_channel``).

**ReActNet-ResNet18** is Bi-Real Net-18 (:class:`~onebit.nn.BiRealBlock`: binary 3×3 conv →
BN, plus the identity or AvgPool2d(2) → float 1×1 conv → BN shortcut) with RSign as the
conv's input quantizer and an RPReLU after the shortcut add; stem and head as Bi-Real Net.

Mapping of the reference's modules: ``LearnableBias`` + ``BinaryActivation`` → :class:`RSign`
(``sign(x + b)`` there is ``sign(x − β)`` here, β = −b); ``LearnableBias → PReLU →
LearnableBias`` → :class:`RPReLU`; ``HardBinaryConv`` (``mean|W_c| · sign(W)``, the scale
detached) → ``magnitude_aware_sign``. In the width-doubling blocks the reference applies
one ``move21`` bias before both 1×1 convs: here both convs hold the *same* RSign instance,
so the parameter exists once. Deliberate differences: sign(0) = +1 (the reference's
``torch.sign`` gives 0, on a measure-zero set); ``magnitude_aware_sign``'s weight gradient
is α_c · 1[|w| ≤ 1] · g where the reference's is 1[|w| ≤ 1] · g (a positive per-channel
factor that Adam, the reference's optimizer, normalizes away). Binary convs pad their ±1
input with 0 (``pad_value=0``), as ``F.conv2d(padding=1)`` does in the reference.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from onebit.errors import ConfigError
from onebit.models.registry import IMAGENET, register_model
from onebit.nn import BiRealBlock, QuantConv2d, QuantizerSpec, RPReLU, RSign

PAPER = ("Liu et al. 2020, ReActNet: Towards Precise Binary Neural Network with Generalized "
         "Activation Functions (arXiv:2003.03488)")

# ReActNet-A's stage widths in units of the stem width (reference: stage_out_channel / 32).
_REACTNET_A_STAGES = (1, 2, 4, 4, 8, 8, 16, 16, 16, 16, 16, 16, 32, 32)


def _check_in_shape(model: str, in_shape: tuple[int, ...]) -> None:
    if len(in_shape) != 3:
        raise ConfigError(f"{model} needs (channels, height, width) inputs, got in_shape {tuple(in_shape)}")
    h, w = in_shape[1:]
    if h < 32 or w < 32 or h % 32 or w % 32:
        raise ConfigError(
            f"{model} halves the resolution 5 times, with average-pool shortcuts that need even sizes: "
            f"height and width must be multiples of 32 (e.g. 32, 64, 224), got {h}x{w}"
        )


def _check_width(width: int) -> None:
    if not isinstance(width, int) or isinstance(width, bool) or width < 1:
        raise ConfigError(f"width must be a positive integer, got {width!r}")


class ReActBlock(nn.Module):
    """ReActNet-A's block: binary 3×3 conv and binary 1×1 conv(s), each with a shortcut.

    ``out_channels`` is ``in_channels`` (one 1×1 conv) or ``2 · in_channels`` (two 1×1
    convs on the same RSign output, each added to the shortcut, then concatenated).
    """

    def __init__(
        self, in_channels: int, out_channels: int, stride: int = 1, *,
        weight_quantizer: QuantizerSpec = "magnitude_aware_sign", pad_value: float = 0.0,
    ) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ConfigError(f"ReActBlock stride must be 1 or 2, got {stride!r}")
        if out_channels not in (in_channels, 2 * in_channels):
            raise ConfigError(
                f"ReActBlock keeps or doubles the width: out_channels must be {in_channels} or "
                f"{2 * in_channels}, got {out_channels}"
            )
        self.conv3x3 = QuantConv2d(
            in_channels, in_channels, 3, stride=stride, padding=1, bias=False,
            input_quantizer=RSign(in_channels), weight_quantizer=weight_quantizer, pad_value=pad_value,
        )
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.shortcut = nn.AvgPool2d(2) if stride == 2 else nn.Identity()
        self.act1 = RPReLU(in_channels)
        sign = RSign(in_channels)  # one threshold vector shared by the 1×1 conv(s), as in the reference
        count = out_channels // in_channels
        self.pointwise = nn.ModuleList(
            QuantConv2d(in_channels, in_channels, 1, bias=False, input_quantizer=sign,
                        weight_quantizer=weight_quantizer)
            for _ in range(count)
        )
        self.bn2 = nn.ModuleList(nn.BatchNorm2d(in_channels) for _ in range(count))
        self.act2 = RPReLU(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        y = self.act1(self.bn1(self.conv3x3(x)) + self.shortcut(x))
        parts = [bn(conv(y)) + y for conv, bn in zip(self.pointwise, self.bn2)]
        return self.act2(parts[0] if len(parts) == 1 else torch.cat(parts, dim=1))


class ReActBiRealBlock(BiRealBlock):
    """Bi-Real Net's block with ReActNet's activations: ``RPReLU(BN(conv(RSign(x))) + shortcut(x))``."""

    def __init__(
        self, in_channels: int, out_channels: int, stride: int = 1, *,
        weight_quantizer: QuantizerSpec = "magnitude_aware_sign", pad_value: float = 0.0,
    ) -> None:
        super().__init__(in_channels, out_channels, stride, input_quantizer=RSign(in_channels),
                         weight_quantizer=weight_quantizer, pad_value=pad_value)
        self.act = RPReLU(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(super().forward(x))


@register_model(family="ReActNet", paper=PAPER, in_shape=IMAGENET, num_classes=1000,
                params=29_365_480, params_source="liuzechun/ReActNet reactnet.py: 29,343,592 parameters + 21,888 BatchNorm running statistics")
def reactnet_a(
    num_classes: int, in_shape: tuple[int, ...], width: int = 32,
    weight_quantizer: QuantizerSpec = "magnitude_aware_sign", pad_value: float = 0.0,
) -> nn.Module:
    """ReActNet-A: binarized MobileNet-V1, 13 blocks of binary 3×3 and 1×1 convs with RSign/RPReLU."""
    _check_in_shape("ReActNet-A", in_shape)
    _check_width(width)
    layers: list[nn.Module] = [
        nn.Conv2d(in_shape[0], width, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(width),
    ]
    for prev, mult in zip(_REACTNET_A_STAGES, _REACTNET_A_STAGES[1:]):
        stride = 2 if mult != prev and mult != 2 else 1
        layers.append(ReActBlock(width * prev, width * mult, stride,
                                 weight_quantizer=weight_quantizer, pad_value=pad_value))
    channels = width * _REACTNET_A_STAGES[-1]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes)]
    return nn.Sequential(*layers)


@register_model(family="ReActNet", paper=PAPER, in_shape=IMAGENET, num_classes=1000,
                params=11_714_024, params_source="liuzechun/ReActNet birealnet.py: 11,704,424 parameters + 9,600 BatchNorm running statistics")
def reactnet_resnet18(
    num_classes: int, in_shape: tuple[int, ...], width: int = 64,
    weight_quantizer: QuantizerSpec = "magnitude_aware_sign", pad_value: float = 0.0,
    widths: list[int] | tuple[int, ...] | None = None,
) -> nn.Module:
    """ReActNet on Bi-Real Net-18: 16 binary 3×3 convs with RSign, real shortcuts and RPReLU.

    ``widths``: each binary conv's output width (16 integers; default ``width``, doubled per
    stage), the per-layer knob of width search (Shen et al. 2019); a conv whose width differs
    from its input's gets the float 1×1 shortcut of a width change.
    """
    _check_in_shape("ReActNet-ResNet18", in_shape)
    _check_width(width)
    if widths is None:
        widths = [width * 2**stage for stage in range(4) for _ in range(4)]
    if (not isinstance(widths, list | tuple) or len(widths) != 16
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in widths)):
        raise ConfigError(f"widths must be 16 positive integers (one per binary conv), got {widths!r}")
    layers: list[nn.Module] = [
        nn.Conv2d(in_shape[0], width, 7, stride=2, padding=3, bias=False), nn.BatchNorm2d(width),
        nn.MaxPool2d(3, stride=2, padding=1),
    ]
    channels = width
    for stage in range(4):
        for i in range(4):
            out = widths[4 * stage + i]
            stride = 2 if stage > 0 and i == 0 else 1
            layers.append(ReActBiRealBlock(channels, out, stride, weight_quantizer=weight_quantizer,
                                           pad_value=pad_value))
            channels = out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes)]
    return nn.Sequential(*layers)
