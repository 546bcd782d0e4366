"""BinaryDenseNet 28 / 37 / 45 / 37-dilated (Bethge et al. 2019) as larq/zoo ``literature/densenet.py`` builds them.

Papers: "BinaryDenseNet: Developing an Architecture for Binary Neural Networks" (ICCV-W 2019)
and "Back to Simplicity: How to Train Accurate BNNs from Scratch?" (arXiv:1906.08637), whose
trained models larq zoo publishes; the layer structure below is larq zoo's code.

- Stem (inputs at least 50 pixels high): float 7×7/2 conv → BN → ReLU → 3×3/2 max-pool;
  below 50 pixels (CIFAR) larq zoo uses a lone float 3×3/1 conv instead, and so does this.
- Dense layer ("densely connected block"): ``x ← concat(x, conv(sign(BN(x))))`` with a binary
  3×3 conv of ``growth_rate`` outputs (SteSign(clip 1.3) on input and weights, zero "same"
  padding, no bias). The concatenated tensor stays float: every later BN reads it.
- Transition between dense blocks: BN → 2×2/2 max-pool (skipped where the next block is
  dilated) → ReLU → float 1×1 conv to ``round(C // reduction / 32) · 32`` channels.
- Head: BN → ReLU → global average pool → float dense layer with bias.

Variants (dense layers per block, transition reductions): 28: (6, 6, 6, 5), (2.7, 2.7, 2.2);
37: (6, 8, 12, 6), (3.3, 3.3, 4); 45: (6, 12, 14, 8), (2.7, 3.3, 4); 37-dilated: as 37 with
dilation (1, 1, 2, 4), hence no pooling before its last two blocks. Parameter counts at
224×224×3, 1000 classes, BN as four vectors (larq zoo docstrings): 5,150,504 / 8,734,120 /
13,939,240 / 8,734,120. Published ImageNet top-1 (larq zoo): 60.91 / 62.89 / 64.59 / 64.34 %.

Deliberate differences from the Keras reference: TensorFlow's "same" padding of the strided
stem conv and max-pool pads 2 before / 3 after (conv) and 0 / 1 (pool); PyTorch's symmetric
``padding=3`` / ``padding=1`` gives the same output sizes one pixel shifted, which matters only
for loading Keras weights: ``padding="keras"`` pads as Keras does (:mod:`onebit.models.same_padding`;
the dense layers' stride-1 convs pad the same either way), so a Larq-zoo file computes Larq zoo's
function in it (:mod:`onebit.convert.zoo`). BatchNorm momentum 0.9 in Keras is PyTorch's 0.1 (the default);
larq's WeightClip(1.3) kernel constraint is a training setting: use
``onebit.optim.clip_latent_weights(optimizer, params, 1.3)``.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import Tensor, nn

from onebit.errors import ConfigError
from onebit.models.registry import IMAGENET, register_model
from onebit.models.same_padding import check_padding, max_pool, stem_conv
from onebit.nn import QuantConv2d, Quantizer, QuantizerSpec, SteSign, get_quantizer

PAPER = "Bethge et al. 2019, BinaryDenseNet: Developing an Architecture for Binary Neural Networks (ICCV-W)"

CLIP_VALUE = 1.3  # larq zoo's SteSign(clip_value=1.3) on inputs and kernels


def _quantizer(spec: QuantizerSpec, clip_value: float) -> Quantizer | None:
    """``"ste_sign"`` becomes SteSign(clip_value) as in larq zoo; any other spec is taken as given."""
    return SteSign(clip_value) if spec == "ste_sign" else get_quantizer(spec)


class DenseLayer(nn.Module):
    """``concat(x, conv3x3(sign(BN(x))))``: one binary conv whose ``growth_rate`` outputs join the features."""

    def __init__(
        self, channels: int, growth_rate: int, dilation: int, input_quantizer: QuantizerSpec,
        weight_quantizer: QuantizerSpec, clip_value: float, pad_value: float,
    ) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, eps=1e-5)
        self.conv = QuantConv2d(
            channels, growth_rate, 3, padding=dilation, dilation=dilation, bias=False, pad_value=pad_value,
            input_quantizer=_quantizer(input_quantizer, clip_value),
            weight_quantizer=_quantizer(weight_quantizer, clip_value),
        )

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([x, self.conv(self.bn(x))], dim=1)


def _transition(channels: int, out: int, pool: bool) -> nn.Sequential:
    """BN → (2×2/2 max-pool) → ReLU → float 1×1 conv: the real-valued downsampling between blocks."""
    layers: dict[str, nn.Module] = {"bn": nn.BatchNorm2d(channels, eps=1e-5)}
    if pool:
        layers["pool"] = nn.MaxPool2d(2, stride=2)
    layers |= {"relu": nn.ReLU(), "conv": nn.Conv2d(channels, out, 1, bias=False)}
    return nn.Sequential(OrderedDict(layers))


def _densenet(
    name: str, blocks: tuple[int, ...], reduction: tuple[float, ...], dilation: tuple[int, ...],
    num_classes: int, in_shape: tuple[int, ...], initial_filters: int, growth_rate: int,
    input_quantizer: QuantizerSpec, weight_quantizer: QuantizerSpec, clip_value: float, pad_value: float,
    padding: str = "symmetric",
) -> nn.Sequential:
    if len(in_shape) != 3:
        raise ConfigError(f"{name} needs (channels, height, width) inputs, got in_shape {tuple(in_shape)}")
    for arg, v in (("initial_filters", initial_filters), ("growth_rate", growth_rate)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ConfigError(f"{name}: {arg} must be a positive integer, got {v!r}")
    check_padding(name, padding)
    c, h, w = in_shape
    imagenet_stem = h >= 50  # larq zoo: `if image_input.shape[1] < 50` picks the CIFAR stem
    if imagenet_stem:
        layers: dict[str, nn.Module] = {
            "stem_conv": stem_conv(c, initial_filters, 7, 2, padding),
            "stem_bn": nn.BatchNorm2d(initial_filters, eps=1e-5), "stem_relu": nn.ReLU(),
            "stem_pool": max_pool(3, 2, ((h + 1) // 2, (w + 1) // 2), padding)[0],
        }
        sizes = [(s + 1) // 2 for s in ((h + 1) // 2, (w + 1) // 2)]
    else:
        layers = {"stem_conv": nn.Conv2d(c, initial_filters, 3, padding=1, bias=False)}
        sizes = [h, w]
    pools = sum(d == 1 for d in dilation[1:])
    if min(sizes) >> pools < 1:
        raise ConfigError(
            f"{name}: in_shape {tuple(in_shape)} is too small: its stem gives {sizes[0]}x{sizes[1]}, which the "
            f"transitions halve {pools} more times (the stem must give at least {2 ** pools}x{2 ** pools})"
        )
    channels = initial_filters
    for block, count in enumerate(blocks):
        for i in range(count):
            layers[f"block{block + 1}_layer{i + 1}"] = DenseLayer(
                channels, growth_rate, dilation[block], input_quantizer, weight_quantizer, clip_value, pad_value
            )
            channels += growth_rate
        if block < len(blocks) - 1:
            out = round(channels // reduction[block] / 32) * 32
            if out < 1:
                raise ConfigError(
                    f"{name}: transition {block + 1} would have 0 channels ({channels} // {reduction[block]}, "
                    "rounded to a multiple of 32); raise initial_filters or growth_rate"
                )
            layers[f"transition{block + 1}"] = _transition(channels, out, pool=dilation[block + 1] == 1)
            channels = out
    layers |= {
        "head_bn": nn.BatchNorm2d(channels, eps=1e-5), "head_relu": nn.ReLU(), "pool": nn.AdaptiveAvgPool2d(1),
        "flatten": nn.Flatten(), "classifier": nn.Linear(channels, num_classes),
    }
    return nn.Sequential(OrderedDict(layers))


@register_model(family="BinaryDenseNet", paper=PAPER, in_shape=IMAGENET, num_classes=1000,
                params=5_150_504, params_source="Larq zoo, Keras count with BatchNorm as 4 vectors")
def binarydensenet28(
    num_classes: int, in_shape: tuple[int, ...], initial_filters: int = 64, growth_rate: int = 64,
    input_quantizer: QuantizerSpec = "ste_sign", weight_quantizer: QuantizerSpec = "ste_sign",
    clip_value: float = CLIP_VALUE, pad_value: float = 0.0, padding: str = "symmetric",
) -> nn.Module:
    """BinaryDenseNet28: dense blocks of 6, 6, 6, 5 binary 3×3 convs; reductions 2.7, 2.7, 2.2."""
    return _densenet("binarydensenet28", (6, 6, 6, 5), (2.7, 2.7, 2.2), (1, 1, 1, 1), num_classes, in_shape,
                     initial_filters, growth_rate, input_quantizer, weight_quantizer, clip_value, pad_value,
                     padding)


@register_model(family="BinaryDenseNet", paper=PAPER, in_shape=IMAGENET, num_classes=1000,
                params=8_734_120, params_source="Larq zoo, Keras count with BatchNorm as 4 vectors")
def binarydensenet37(
    num_classes: int, in_shape: tuple[int, ...], initial_filters: int = 64, growth_rate: int = 64,
    input_quantizer: QuantizerSpec = "ste_sign", weight_quantizer: QuantizerSpec = "ste_sign",
    clip_value: float = CLIP_VALUE, pad_value: float = 0.0, padding: str = "symmetric",
) -> nn.Module:
    """BinaryDenseNet37: dense blocks of 6, 8, 12, 6 binary 3×3 convs; reductions 3.3, 3.3, 4."""
    return _densenet("binarydensenet37", (6, 8, 12, 6), (3.3, 3.3, 4), (1, 1, 1, 1), num_classes, in_shape,
                     initial_filters, growth_rate, input_quantizer, weight_quantizer, clip_value, pad_value,
                     padding)


@register_model(family="BinaryDenseNet", paper=PAPER, in_shape=IMAGENET, num_classes=1000,
                params=8_734_120, params_source="Larq zoo, Keras count with BatchNorm as 4 vectors")
def binarydensenet37_dilated(
    num_classes: int, in_shape: tuple[int, ...], initial_filters: int = 64, growth_rate: int = 64,
    input_quantizer: QuantizerSpec = "ste_sign", weight_quantizer: QuantizerSpec = "ste_sign",
    clip_value: float = CLIP_VALUE, pad_value: float = 0.0, padding: str = "symmetric",
) -> nn.Module:
    """BinaryDenseNet37 Dilated: as 37, the last two blocks dilated 2 and 4 instead of pooled (stride 8)."""
    return _densenet("binarydensenet37_dilated", (6, 8, 12, 6), (3.3, 3.3, 4), (1, 1, 2, 4), num_classes, in_shape,
                     initial_filters, growth_rate, input_quantizer, weight_quantizer, clip_value, pad_value,
                     padding)


@register_model(family="BinaryDenseNet", paper=PAPER, in_shape=IMAGENET, num_classes=1000,
                params=13_939_240, params_source="Larq zoo, Keras count with BatchNorm as 4 vectors")
def binarydensenet45(
    num_classes: int, in_shape: tuple[int, ...], initial_filters: int = 64, growth_rate: int = 64,
    input_quantizer: QuantizerSpec = "ste_sign", weight_quantizer: QuantizerSpec = "ste_sign",
    clip_value: float = CLIP_VALUE, pad_value: float = 0.0, padding: str = "symmetric",
) -> nn.Module:
    """BinaryDenseNet45: dense blocks of 6, 12, 14, 8 binary 3×3 convs; reductions 2.7, 3.3, 4."""
    return _densenet("binarydensenet45", (6, 12, 14, 8), (2.7, 3.3, 4), (1, 1, 1, 1), num_classes, in_shape,
                     initial_filters, growth_rate, input_quantizer, weight_quantizer, clip_value, pad_value,
                     padding)
