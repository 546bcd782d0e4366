"""TensorFlow's ``padding="same"`` for the zoo models that Larq zoo defines in Keras.

Keras pads ``total = max((⌈n/s⌉ − 1)·s + k − n, 0)`` with the odd pixel after (bottom/right);
PyTorch pads k//2 on both sides. A stride-2 7×7 conv or 3×3 max-pool on an even input then
differs by one pixel: Keras pads (2, 3) and (0, 1), PyTorch (3, 3) and (1, 1). ``padding="keras"``
on a zoo model (Bi-Real Net, BinaryDenseNet, BinaryResNetE18, Real-to-Binary Net) pads as
Keras does, so a Larq-zoo file's weights compute Larq zoo's function in it
(:mod:`onebit.convert.zoo`); ``"symmetric"`` keeps PyTorch's padding (the same shapes on even
inputs, the window shifted by one pixel).
"""

from __future__ import annotations

import math

from torch import nn

from onebit.errors import unknown_choice
from onebit.nn import QuantConv2d
from onebit.nn.layers import same_pads

__all__ = ["PADDINGS", "check_padding", "max_pool", "stem_conv"]

PADDINGS = ("symmetric", "keras")


def check_padding(model: str, padding: str) -> None:
    if padding not in PADDINGS:
        raise unknown_choice(f"{model} padding", padding, PADDINGS)


def stem_conv(cin: int, cout: int, kernel: int, stride: int, padding: str) -> nn.Conv2d:
    """A float conv without bias: Keras "same" (``QuantConv2d(padding="same")``) or k//2 on both sides."""
    if padding == "keras":
        return QuantConv2d(cin, cout, kernel, stride=stride, padding="same", bias=False)
    return nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False)


def max_pool(kernel: int, stride: int, hw: tuple[int, int], padding: str) -> tuple[nn.Module, tuple[int, int]]:
    """A ``kernel``/``stride`` max-pool on an ``hw`` map and its output size.

    ``"keras"``: TensorFlow's "same" (output ⌈n/s⌉); an asymmetric pad is −∞ before the pool,
    which never wins, as :mod:`onebit.convert` builds it. ``"symmetric"``: k//2 on both sides."""
    if padding != "keras":
        out = tuple((n + 2 * (kernel // 2) - kernel) // stride + 1 for n in hw)
        return nn.MaxPool2d(kernel, stride=stride, padding=kernel // 2), out  # type: ignore[return-value]
    (t, b), (left, r) = (same_pads(n, kernel, stride) for n in hw)
    out = (math.ceil(hw[0] / stride), math.ceil(hw[1] / stride))
    if (t, left) == (b, r):
        return nn.MaxPool2d(kernel, stride=stride, padding=(t, left)), out
    return nn.Sequential(nn.ConstantPad2d((left, r, t, b), -math.inf), nn.MaxPool2d(kernel, stride=stride)), out
