"""Binary keyword spotting: a 1-D conv net over MFCC frames (spoken digits, onebit.audio).

``Conv1d k3 (float stem over the 13 MFCCs) → BN → Hardtanh → [binary conv k3 → BN → act →
MaxPool(2)] × depth → Flatten → Linear (float)``: :func:`onebit.models.cnn.binary_cnn1d`'s
blocks with a speech input (channels = MFCC coefficients, length = frames) and ReActNet's
blocks by default (RSign thresholds, a real-valued shortcut around every binary conv,
RPReLU; Liu et al. 2020), the choices that closed most of the gap on MNIST-1D
(docs/training.md). The stem and the classifier stay float, as in published BNNs and in
binary keyword-spotting nets; everything between them is binary and runs on packed bits.
"""

from __future__ import annotations

from torch import nn

from onebit.models.cnn import _conv_net
from onebit.models.registry import register_model
from onebit.nn import QuantizerSpec

PAPER = ("onebit keyword-spotting network over MFCC frames (Free Spoken Digit Dataset); blocks of "
         "ReActNet (Liu et al. 2020, arXiv:2003.03488)")


@register_model(family="onebit", paper=PAPER, in_shape=(13, 32), num_classes=10)
def binary_kws(
    num_classes: int,
    in_shape: tuple[int, ...],
    channels: int = 64,
    depth: int = 3,
    input_quantizer: QuantizerSpec = "rsign",
    weight_quantizer: QuantizerSpec = "ste_sign",
    pad_value: float = 1.0,
    widths: list[int] | tuple[int, ...] | None = None,
    shortcut: bool = True,
    activation: str = "rprelu",
    scaling: str | None = None,
) -> nn.Module:
    """Binary 1-D conv net over ``(coefficients, frames)`` MFCCs: float k3 stem, ``depth`` binary k3
    blocks each halving the frames, float classifier. Arguments as :func:`~onebit.models.cnn.binary_cnn1d`."""
    return _conv_net("binary_kws", 1, num_classes, in_shape, channels, depth, input_quantizer, weight_quantizer,
                     pad_value, widths, shortcut, activation, scaling, stem_kernel=3)
