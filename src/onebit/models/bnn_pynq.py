"""BNN-PYNQ / FINN fully connected networks (Umuroglu et al. 2017): TFC, SFC, LFC.

Three hidden layers of 64 / 256 / 1024 units with 1-bit weights and activations.
Published W1A1 MNIST accuracies: TFC 93.17 %, SFC 97.81 %, LFC 98.88 %. FINN feeds
these networks binarized pixels; here the first layer takes the real-valued input
(binary weights) unless ``first_input_quantizer="ste_sign"`` is given for data
centred at 0.
"""

from __future__ import annotations

from torch import nn

from onebit.models.mlp import BinaryMLP
from onebit.models.registry import register_model
from onebit.nn import QuantizerSpec

PAPER = "Umuroglu et al. 2017, FINN: A Framework for Fast, Scalable Binarized Neural Network Inference"


def _fc(
    hidden: int,
    num_classes: int,
    in_shape: tuple[int, ...],
    input_quantizer: QuantizerSpec,
    weight_quantizer: QuantizerSpec,
    first_input_quantizer: QuantizerSpec,
    dropout: float,
) -> nn.Module:
    return BinaryMLP(
        num_classes, in_shape, hidden, 3,
        input_quantizer=input_quantizer, weight_quantizer=weight_quantizer,
        first_input_quantizer=first_input_quantizer, dropout_in=dropout, dropout=dropout,
    )


@register_model(family="BNN-PYNQ", paper=PAPER)
def tfc(
    num_classes: int,
    in_shape: tuple[int, ...],
    input_quantizer: QuantizerSpec = "ste_sign",
    weight_quantizer: QuantizerSpec = "ste_sign",
    first_input_quantizer: QuantizerSpec = None,
    dropout: float = 0.2,
) -> nn.Module:
    """TFC: 3 × 64 binary units (tiny fully connected)."""
    return _fc(64, num_classes, in_shape, input_quantizer, weight_quantizer, first_input_quantizer, dropout)


@register_model(family="BNN-PYNQ", paper=PAPER)
def sfc(
    num_classes: int,
    in_shape: tuple[int, ...],
    input_quantizer: QuantizerSpec = "ste_sign",
    weight_quantizer: QuantizerSpec = "ste_sign",
    first_input_quantizer: QuantizerSpec = None,
    dropout: float = 0.2,
) -> nn.Module:
    """SFC: 3 × 256 binary units (small fully connected)."""
    return _fc(256, num_classes, in_shape, input_quantizer, weight_quantizer, first_input_quantizer, dropout)


@register_model(family="BNN-PYNQ", paper=PAPER)
def lfc(
    num_classes: int,
    in_shape: tuple[int, ...],
    input_quantizer: QuantizerSpec = "ste_sign",
    weight_quantizer: QuantizerSpec = "ste_sign",
    first_input_quantizer: QuantizerSpec = None,
    dropout: float = 0.2,
) -> nn.Module:
    """LFC: 3 × 1024 binary units (large fully connected)."""
    return _fc(1024, num_classes, in_shape, input_quantizer, weight_quantizer, first_input_quantizer, dropout)
