"""XNOR-Net (Rastegari, Ordonez, Redmon, Farhadi 2016): AlexNet and ResNet-18 with binary
weights scaled per output channel and binary activations.

Every binary layer is jiecaoyu/XNOR-Net-PyTorch's ``BinConv2d`` unit (ImageNet
``model_list/alexnet.py``): BatchNorm → sign → (dropout) → conv or linear → ReLU, with
weights ``α_c · sign(W)``, α_c = mean |W_c| per output channel (the ``xnor_sign``
quantizer), a float bias, and zero padding of the signed input (``pad_value=0``, as
``nn.Conv2d`` pads after BinActive). The first conv and the last linear layer stay float.
A max-pool follows the unit's ReLU, so the next binary layer sees conv → ReLU → max-pool →
BatchNorm → sign; the exporter folds all of it into integer thresholds on the popcount.

The activation scaling factor K of the paper (mean |x| over channels, box-filtered to the
kernel) is not implemented, as in jiecaoyu's and Larq's implementations: it multiplies each
output position by its own float, which needs a float convolution per binary layer at
inference and stops BatchNorm + sign from folding into per-channel integer thresholds
(a per-position factor would need a threshold per position); the BatchNorm before each
sign already normalizes every channel.

``xnornet_alexnet`` follows jiecaoyu's AlexNet layer for layer (96-256-384-384-256 convs,
4096-4096 binary classifier with BatchNorm1d on the 9,216 flattened features, dropout 0.5
after the second binary linear layer's sign and before the float classifier, BatchNorm ε
1e-4, 1e-3 on the last) with one deliberate difference: the first conv pads by 2, as in the
authors' Torch release (allenai/XNOR-Net ``models/alexnetxnor.lua``), so a 224×224 input
gives the 6×6×256 features that jiecaoyu obtains from 227×227 crops without padding.

``xnornet_alexnet(variant="larq")`` is Larq zoo's XNORNet (``larq_zoo/literature/xnornet.py``,
v0.2.0 weights), another network: no biases, no ReLU after the binary layers but the last, every
BatchNorm without scale (Keras ``scale=False``: β, mean, variance; ε 1e-5 after the stem,
1e-4 before each binary layer, 1e-3 last), the pools before the BatchNorm, and the first
dense layer a binary 6×6 conv (unpadded: inputs of at least 217×217) followed by a binary
1×1 conv, BN → ReLU and a float dense layer without bias: 62,396,768 parameters at
224×224 and 1000 classes (Keras counting). The stem is a float 11×11/4 conv with
TensorFlow's "same" padding ((3, 4) at 224: ``QuantConv2d(padding="same")``); the binary convs
pad with 0 after the sign, as Larq's default ``pad_values=0``. Larq's weight quantizer
``xnor_weight_scale`` is α_c · sign(clip(w, ±1)), α_c = mean |clip(w_c)|: onebit's ``xnor_sign``
on latent weights kept in [−1, 1], as Larq's ``weight_clip`` constraint keeps them (train with
``latent_clip=1.0``; :mod:`onebit.convert` clips the file's weights when it loads them).

``xnornet_resnet18``: the paper reports XNOR ResNet-18 without releasing it, and neither
reference above has one. It is ResNet-18 (torchvision's stages, strides and stem) with
each basic block's two 3×3 convs made ``BinConv2d`` units — the paper's BN → sign → binary
conv order, which is the pre-activation ResNet (He et al. 2016b) with sign for ReLU — and a
float shortcut: identity, or a 1×1 stride-2 conv → BN where the shape changes (float in
Bi-Real Net and in OpenVINO's resnet18-xnor-binary). As in pre-activation ResNets, the last
block is followed by BN → ReLU before the global average pooling.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from onebit.errors import ConfigError, unknown_choice
from onebit.models.registry import IMAGENET, register_model
from onebit.nn import QuantConv2d, QuantizerSpec, QuantLinear

PAPER = "Rastegari et al. 2016, XNOR-Net: ImageNet Classification Using Binary Convolutional Neural Networks (arXiv:1603.05279)"


class SignDropoutLinear(QuantLinear):
    """``QuantLinear`` whose binarized input goes through dropout while training.

    jiecaoyu's BinConv2d drops *after* BinActive, so a dropped input is 0 (it leaves the
    dot product) rather than sign(0) = +1; in eval mode this is a plain ``QuantLinear``.
    """

    def __init__(self, in_features: int, out_features: int, *, dropout: float = 0.0, **kwargs: Any) -> None:
        super().__init__(in_features, out_features, **kwargs)
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {dropout!r}")
        self.dropout = float(dropout)

    def quantized_input(self, x: Tensor) -> Tensor:
        return F.dropout(super().quantized_input(x), self.dropout, self.training)


class XnorUnit(nn.Sequential):
    """jiecaoyu's ``BinConv2d``: BatchNorm → sign → binary conv (or linear) with α-scaled weights → ReLU.

    ``kernel=None`` makes it the linear variant (BatchNorm1d, optional dropout after the sign).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int | None = None, stride: int = 1,
                 padding: int = 0, *, bias: bool = True, dropout: float = 0.0, pad_value: float = 0.0,
                 input_quantizer: QuantizerSpec = "ste_sign", weight_quantizer: QuantizerSpec = "xnor_sign") -> None:
        quant = {"input_quantizer": input_quantizer, "weight_quantizer": weight_quantizer, "bias": bias}
        if kernel is None:
            bn: nn.Module = nn.BatchNorm1d(in_channels, eps=1e-4)
            layer: nn.Module = SignDropoutLinear(in_channels, out_channels, dropout=dropout, **quant)
        else:
            bn = nn.BatchNorm2d(in_channels, eps=1e-4)
            layer = QuantConv2d(in_channels, out_channels, kernel, stride=stride, padding=padding,
                                pad_value=pad_value, **quant)
        super().__init__(OrderedDict(bn=bn, conv=layer, relu=nn.ReLU()))


def _image_shape(name: str, in_shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(in_shape) != 3:
        raise ConfigError(f"{name} needs (channels, height, width) inputs, got in_shape {tuple(in_shape)}")
    return in_shape  # type: ignore[return-value]


def _widths(name: str, value: list[int] | tuple[int, ...], count: int) -> list[int]:
    if len(value) != count or not all(isinstance(v, int) and v > 0 for v in value):
        raise ConfigError(f"{name} must be {count} positive integers, got {value!r}")
    return list(value)


VARIANTS = ("jiecaoyu", "larq")


def _bn_no_scale(cls: type[nn.Module], channels: int, eps: float) -> nn.Module:
    """Keras ``BatchNormalization(scale=False, momentum=0.9)``: γ fixed at 1 (a non-persistent buffer, so
    neither trained, saved nor counted), β learned: 3 vectors per channel."""
    bn = cls(channels, eps=eps, momentum=0.1)
    del bn.weight
    bn.register_buffer("weight", torch.ones(channels), persistent=False)
    return bn


def _larq_alexnet(c: int, h: int, w: int, channels: list[int], hidden: int, num_classes: int, pad_value: float,
                  input_quantizer: QuantizerSpec, weight_quantizer: QuantizerSpec) -> nn.Module:
    """Larq zoo's XNORNet (``larq_zoo/literature/xnornet.py``) layer for layer; see the module docstring."""
    c1, c2, c3, c4, c5 = channels
    h_out, w_out = -(-h // 4), -(-w // 4)  # the 11×11/4 "same" conv
    for _ in range(3):  # three 3×3/2 max-pools; the binary 3×3 and 5×5 convs keep the size
        h_out, w_out = (h_out - 3) // 2 + 1, (w_out - 3) // 2 + 1
    h_out, w_out = h_out - 5, w_out - 5  # the 6×6 conv, unpadded
    if min(h_out, w_out) < 1:
        raise ConfigError(f"xnornet_alexnet (variant 'larq') ends in an unpadded 6×6 conv on a map downsampled 32 "
                          f"times: inputs must be at least 217x217, got {h}x{w}")

    def binary(cin: int, cout: int, kernel: int, padding: int = 0) -> QuantConv2d:  # Keras "same" = k//2 at stride 1
        return QuantConv2d(cin, cout, kernel, padding=padding, pad_value=pad_value, bias=False,
                           input_quantizer=input_quantizer, weight_quantizer=weight_quantizer)

    features = nn.Sequential(
        QuantConv2d(c, c1, 11, stride=4, padding="same", bias=False), _bn_no_scale(nn.BatchNorm2d, c1, 1e-5),
        nn.ReLU(), nn.MaxPool2d(3, stride=2),
        _bn_no_scale(nn.BatchNorm2d, c1, 1e-4), binary(c1, c2, 5, 2), nn.MaxPool2d(3, stride=2),
        _bn_no_scale(nn.BatchNorm2d, c2, 1e-4), binary(c2, c3, 3, 1),
        _bn_no_scale(nn.BatchNorm2d, c3, 1e-4), binary(c3, c4, 3, 1),
        _bn_no_scale(nn.BatchNorm2d, c4, 1e-4), binary(c4, c5, 3, 1), nn.MaxPool2d(3, stride=2),
    )
    classifier = nn.Sequential(
        _bn_no_scale(nn.BatchNorm2d, c5, 1e-4), binary(c5, hidden, 6),
        _bn_no_scale(nn.BatchNorm2d, hidden, 1e-4), binary(hidden, hidden, 1),
        _bn_no_scale(nn.BatchNorm2d, hidden, 1e-3), nn.ReLU(), nn.Flatten(),
        nn.Linear(hidden * h_out * w_out, num_classes, bias=False),
    )
    return nn.Sequential(OrderedDict(features=features, classifier=classifier))


@register_model(family="XNOR-Net", paper=PAPER, in_shape=IMAGENET, num_classes=1000,
                params=62_452_840, params_source='jiecaoyu/XNOR-Net-PyTorch AlexNet, BatchNorm as 4 vectors')
def xnornet_alexnet(
    num_classes: int, in_shape: tuple[int, ...], channels: list[int] | tuple[int, ...] = (96, 256, 384, 384, 256),
    hidden: int = 4096, dropout: float | None = None, pad_value: float = 0.0,
    input_quantizer: QuantizerSpec = "ste_sign", weight_quantizer: QuantizerSpec = "xnor_sign",
    variant: str = "jiecaoyu",
) -> nn.Module:
    """XNOR-Net AlexNet (jiecaoyu/XNOR-Net-PyTorch): float 11×11/4 conv, 4 binary convs, 2 binary FC, float FC.

    ``variant="larq"``: Larq zoo's XNORNet instead (no biases, a ReLU only before the classifier, a binary
    6×6 conv as the first dense layer, BatchNorm without scale; 62,396,768 parameters at 224×224 and
    1000 classes, Keras counting). ``dropout`` (default 0.5) is the jiecaoyu variant's; Larq's has none.
    """
    if variant not in VARIANTS:
        raise unknown_choice("xnornet_alexnet variant", variant, VARIANTS)
    c, h, w = _image_shape("xnornet_alexnet", in_shape)
    c1, c2, c3, c4, c5 = _widths("channels", channels, 5)
    if not isinstance(hidden, int) or hidden < 1:
        raise ConfigError(f"hidden must be a positive integer, got {hidden!r}")
    if variant == "larq":
        if dropout is not None:
            raise ConfigError("dropout is the jiecaoyu variant's: Larq zoo's XNORNet (variant 'larq') has no dropout")
        return _larq_alexnet(c, h, w, [c1, c2, c3, c4, c5], hidden, num_classes, pad_value,
                             input_quantizer, weight_quantizer)
    dropout = 0.5 if dropout is None else dropout
    h_out, w_out = ((s + 4 - 11) // 4 + 1 for s in (h, w))
    for _ in range(3):  # three 3×3/2 max-pools; the binary convs keep the size
        h_out, w_out = (h_out - 3) // 2 + 1, (w_out - 3) // 2 + 1
    if min(h_out, w_out) < 1:
        raise ConfigError(f"xnornet_alexnet downsamples 32 times (11×11/4 conv and three 3×3/2 pools): "
                          f"inputs must be at least 63x63, got {h}x{w}")
    unit = {"pad_value": pad_value, "input_quantizer": input_quantizer, "weight_quantizer": weight_quantizer}
    features = nn.Sequential(
        nn.Conv2d(c, c1, 11, stride=4, padding=2), nn.BatchNorm2d(c1, eps=1e-4), nn.ReLU(),
        nn.MaxPool2d(3, stride=2),
        XnorUnit(c1, c2, 5, padding=2, **unit), nn.MaxPool2d(3, stride=2),
        XnorUnit(c2, c3, 3, padding=1, **unit),
        XnorUnit(c3, c4, 3, padding=1, **unit),
        XnorUnit(c4, c5, 3, padding=1, **unit), nn.MaxPool2d(3, stride=2),
        nn.Flatten(),
    )
    fc = {"input_quantizer": input_quantizer, "weight_quantizer": weight_quantizer}
    classifier = nn.Sequential(
        XnorUnit(c5 * h_out * w_out, hidden, **fc),
        XnorUnit(hidden, hidden, dropout=dropout, **fc),
        nn.BatchNorm1d(hidden, eps=1e-3), nn.Dropout(dropout), nn.Linear(hidden, num_classes),
    )
    return nn.Sequential(OrderedDict(features=features, classifier=classifier))


class XnorBasicBlock(nn.Module):
    """``units(x) + shortcut(x)``: two binary 3×3 ``XnorUnit``s, the first with the block's stride;
    the shortcut is the identity or, where the shape changes, a float 1×1 conv → BatchNorm."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, **unit: Any) -> None:
        super().__init__()
        self.units = nn.Sequential(
            XnorUnit(in_channels, out_channels, 3, stride=stride, padding=1, bias=False, **unit),
            XnorUnit(out_channels, out_channels, 3, padding=1, bias=False, **unit),
        )
        if stride == 1 and in_channels == out_channels:
            self.shortcut: nn.Module = nn.Identity()
        else:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(out_channels))

    def forward(self, x: Tensor) -> Tensor:
        return self.units(x) + self.shortcut(x)


@register_model(family="XNOR-Net", paper=PAPER, in_shape=IMAGENET, num_classes=1000,
                params=11_699_368, params_source="ResNet-18 with XNOR-Net's BN-sign-conv blocks, Rastegari et al. 2016, BatchNorm as 4 vectors")
def xnornet_resnet18(
    num_classes: int, in_shape: tuple[int, ...], width: int = 64, pad_value: float = 0.0,
    input_quantizer: QuantizerSpec = "ste_sign", weight_quantizer: QuantizerSpec = "xnor_sign",
) -> nn.Module:
    """XNOR-Net ResNet-18: float 7×7/2 stem, 16 binary 3×3 convs in BN → sign → conv → ReLU units, float FC."""
    c, h, w = _image_shape("xnornet_resnet18", in_shape)
    if not isinstance(width, int) or width < 1:
        raise ConfigError(f"width must be a positive integer, got {width!r}")
    if min(h, w) < 32:
        raise ConfigError(f"xnornet_resnet18 downsamples 32 times: inputs must be at least 32x32, got {h}x{w}")
    unit = {"pad_value": pad_value, "input_quantizer": input_quantizer, "weight_quantizer": weight_quantizer}
    layers: list[nn.Module] = [
        nn.Conv2d(c, width, 7, stride=2, padding=3, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
        nn.MaxPool2d(3, stride=2, padding=1),
    ]
    channels = width
    for stage in range(4):
        out = width * 2**stage
        for i in range(2):
            layers.append(XnorBasicBlock(channels, out, 2 if stage > 0 and i == 0 else 1, **unit))
            channels = out
    layers += [nn.BatchNorm2d(channels), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
               nn.Linear(channels, num_classes)]
    return nn.Sequential(*layers)
