"""BinaryAlexNet (Hubara et al. 2016, as in Larq zoo): AlexNet with binary convs and a binary classifier.

Five convolutions (11×11/4 float-input, 5×5, 3×3, 3×3, 3×3; 64, 192, 384, 384, 256
channels), max-pools 3×3/2 after the 1st, 2nd and 5th, and three binary dense layers
(4096, 4096, classes). Every layer has binary (``ste_sign``) weights and no bias; every
layer but the first binarizes its input; each is followed by a BatchNorm without scale
(Keras ``BatchNormalization(scale=False, momentum=0.9)``: β, mean and variance, no γ —
3 vectors per channel). Larq zoo counts 61,859,192 parameters at 224 × 224 × 3 and 1000
classes. Convolutions pad as TensorFlow's ``"same"`` (``QuantConv2d(padding="same")``),
pools are unpadded, as in Larq zoo; Larq zoo's 1 × 1 convs on a reshaped image are dense
layers here (the same weights, flattened in PyTorch's (C, H, W) order).
"""

from __future__ import annotations

import torch
from torch import nn

from onebit.errors import ConfigError
from onebit.models.registry import IMAGENET, register_model
from onebit.nn import QuantConv2d, QuantizerSpec, QuantLinear

PAPER = "Hubara et al. 2016, Binarized Neural Networks (NIPS); Larq zoo's BinaryAlexNet"


def _bn_no_scale(cls: type[nn.Module], channels: int) -> nn.Module:
    """Keras ``BatchNormalization(scale=False, momentum=0.9)``: γ fixed at 1 (a non-persistent buffer,
    so neither trained, saved nor counted), β learned, ε 1e-3."""
    bn = cls(channels, eps=1e-3, momentum=0.1)
    del bn.weight
    bn.register_buffer("weight", torch.ones(channels), persistent=False)
    return bn


def _pooled(n: int) -> int:
    return (n - 3) // 2 + 1


@register_model(family="BinaryAlexNet", paper=PAPER, in_shape=IMAGENET, num_classes=1000,
                params=61_859_192, params_source="Larq zoo, Keras count (BatchNorm without scale: 3 vectors)")
def binary_alexnet(
    num_classes: int, in_shape: tuple[int, ...], dense: int = 4096, input_quantizer: QuantizerSpec = "ste_sign",
    weight_quantizer: QuantizerSpec = "ste_sign",
    channels: list[int] | tuple[int, ...] = (64, 192, 384, 384, 256),
) -> nn.Module:
    """BinaryAlexNet: 5 binary convs and 3 binary dense layers, BatchNorm without scale (61,859,192 parameters).

    ``dense``: the width of the two hidden dense layers (Larq zoo's: 4096). ``channels``: the
    five convs' widths (Larq zoo's ``inflation_ratio`` r gives (64r, 192r, 384r, 384r, 256)).
    """
    if not isinstance(dense, int) or isinstance(dense, bool) or dense < 1:
        raise ConfigError(f"dense must be a positive integer, got {dense!r}")
    if (not isinstance(channels, list | tuple) or len(channels) != 5
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in channels)):
        raise ConfigError(f"channels must be 5 positive integers (one per conv), got {channels!r}")
    if len(in_shape) != 3:
        raise ConfigError(f"BinaryAlexNet needs (channels, height, width) inputs, got in_shape {tuple(in_shape)}")
    h, w = (-(-n // 4) for n in in_shape[1:])  # the 11x11/4 "same" conv
    h, w = _pooled(_pooled(_pooled(h))), _pooled(_pooled(_pooled(w)))
    if min(h, w) < 1:
        raise ConfigError(f"BinaryAlexNet needs inputs of at least 61x61, got {in_shape[1]}x{in_shape[2]}")
    layers: list[nn.Module] = []
    cin = in_shape[0]
    for i, (out, kernel, stride, pool) in enumerate(zip(channels, (11, 5, 3, 3, 3), (4, 1, 1, 1, 1),
                                                        (True, True, False, False, True))):
        layers.append(QuantConv2d(cin, out, kernel, stride=stride, padding="same", bias=False,
                                  input_quantizer=None if i == 0 else input_quantizer,
                                  weight_quantizer=weight_quantizer))
        if pool:
            layers.append(nn.MaxPool2d(3, stride=2))
        layers.append(_bn_no_scale(nn.BatchNorm2d, out))
        cin = out
    layers.append(nn.Flatten())
    features = cin * h * w
    for out in (dense, dense, num_classes):
        layers += [QuantLinear(features, out, bias=False, input_quantizer=input_quantizer,
                               weight_quantizer=weight_quantizer), _bn_no_scale(nn.BatchNorm1d, out)]
        features = out
    return nn.Sequential(*layers)
