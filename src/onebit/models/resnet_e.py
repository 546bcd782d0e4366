"""BinaryResNetE18 (Bethge et al. 2019, as in Larq zoo): ResNet-18 with a shortcut around every binary conv.

Stem (ImageNet, inputs ≥ 50 px): float 7×7/2 conv → BN → ReLU → 3×3/2 max-pool → BN; for
smaller inputs one float 3×3 conv. Then 4 sections of 4 blocks (ResNet-18's 2 basic
blocks of 2 convs each, one conv per block), 64, 128, 256, 512 channels; a block is
``BN(conv(sign(x))) + shortcut(x)`` with a binary 3×3 conv (``ste_sign`` inputs and
weights, clip 1.25), the shortcut the identity, or where the width changes AvgPool2d(2) →
float 1×1 conv → BN; then ReLU, global average pooling and a float dense layer. BatchNorm
is Keras's (momentum 0.9, ε 1e-5). Larq zoo counts 11,699,368 parameters at 224 × 224 × 3
and 1000 classes (BatchNorm as 4 vectors). Convs pad as TensorFlow's ``"same"``; the
stem's max-pool pads 1 on each side (PyTorch's; Keras's "same" pads 0 before and 1 after
at even sizes), so with the small-input stem (inputs under 50 px) the network computes
exactly Larq zoo's, and a Larq-zoo file of that size converts onto it (``onebit.convert``);
``padding="keras"`` pads the max-pool as Keras does too (:mod:`onebit.models.same_padding`), so
the ImageNet stem is Larq zoo's at every size.
"""

from __future__ import annotations

from torch import Tensor, nn

from onebit.errors import ConfigError
from onebit.models.registry import IMAGENET, register_model
from onebit.models.same_padding import check_padding, max_pool
from onebit.nn import QuantConv2d, QuantizerSpec, get_quantizer

PAPER = "Bethge et al. 2019, Back to Simplicity: How to Train Accurate BNNs from Scratch? (arXiv:1906.08637)"
CLIP_VALUE = 1.25


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=1e-5, momentum=0.1)


def _quantizer(spec: QuantizerSpec) -> QuantizerSpec:
    return get_quantizer(spec, clip_value=CLIP_VALUE) if spec == "ste_sign" else get_quantizer(spec)


class ResNetEBlock(nn.Module):
    """``BN(conv3x3(sign(x))) + shortcut(x)``; the shortcut downsamples with AvgPool2d(2) → 1×1 conv → BN."""

    def __init__(self, cin: int, cout: int, stride: int, input_quantizer: QuantizerSpec,
                 weight_quantizer: QuantizerSpec) -> None:
        super().__init__()
        self.conv = QuantConv2d(cin, cout, 3, stride=stride, padding="same", bias=False,
                                input_quantizer=_quantizer(input_quantizer),
                                weight_quantizer=_quantizer(weight_quantizer))
        self.bn = _bn(cout)
        self.shortcut: nn.Module = nn.Identity() if cin == cout else nn.Sequential(
            nn.AvgPool2d(2, stride=2), nn.Conv2d(cin, cout, 1, bias=False), _bn(cout))

    def forward(self, x: Tensor) -> Tensor:
        return self.bn(self.conv(x)) + self.shortcut(x)


@register_model(family="BinaryResNetE", paper=PAPER, in_shape=IMAGENET, num_classes=1000,
                params=11_699_368, params_source="Larq zoo, Keras count with BatchNorm as 4 vectors")
def binary_resnet_e18(
    num_classes: int, in_shape: tuple[int, ...], width: int = 64,
    input_quantizer: QuantizerSpec = "ste_sign", weight_quantizer: QuantizerSpec = "ste_sign",
    padding: str = "symmetric",
) -> nn.Module:
    """BinaryResNetE18: 16 binary 3×3 convs, each with its own shortcut (11,699,368 parameters).

    ``padding``: the ImageNet stem's max-pool pads 1 on both sides (``"symmetric"``) or as Keras
    (``"keras"``, Larq zoo's); every conv pads as Keras either way."""
    check_padding("BinaryResNetE18", padding)
    if len(in_shape) != 3:
        raise ConfigError(f"BinaryResNetE18 needs (channels, height, width) inputs, got in_shape {tuple(in_shape)}")
    if not isinstance(width, int) or isinstance(width, bool) or width < 1:
        raise ConfigError(f"width must be a positive integer, got {width!r}")
    if min(in_shape[1:]) < 8:
        raise ConfigError(f"BinaryResNetE18 downsamples 8 times in its sections: inputs must be at least 8x8, "
                          f"got {in_shape[1]}x{in_shape[2]}")
    if min(in_shape[1:]) >= 50:
        stem: list[nn.Module] = [QuantConv2d(in_shape[0], width, 7, stride=2, padding="same", bias=False),
                                 _bn(width), nn.ReLU(),
                                 max_pool(3, 2, tuple(-(-n // 2) for n in in_shape[1:]), padding)[0],  # type: ignore[arg-type]
                                 _bn(width)]
    else:
        stem = [QuantConv2d(in_shape[0], width, 3, padding="same", bias=False)]
    for n in in_shape[1:]:  # the shortcut's unpadded AvgPool2d(2) must meet the conv's ⌈n/2⌉ three times
        m = -(-(-(-n // 2)) // 2) if min(in_shape[1:]) >= 50 else n
        if m % 8:
            raise ConfigError(f"BinaryResNetE18 halves its {m}x.. feature maps three times with unpadded 2x2 "
                              f"pooling on the shortcuts: the input ({in_shape[1]}x{in_shape[2]}) must give maps "
                              "divisible by 8 after the stem (e.g. 32, 64, 224)")
    layers = [*stem]
    channels = width
    for section in range(4):
        out = width * 2**section
        for i in range(4):
            layers.append(ResNetEBlock(channels, out, 2 if section > 0 and i == 0 else 1,
                                       input_quantizer, weight_quantizer))
            channels = out
    layers += [nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes)]
    return nn.Sequential(*layers)
