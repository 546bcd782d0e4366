"""BinaryNet (Courbariaux, Hubara, Soudry, El-Yaniv, Bengio 2016)."""

from __future__ import annotations

from torch import nn

from onebit.models.mlp import BinaryMLP
from onebit.models.registry import register_model
from onebit.nn import QuantizerSpec

PAPER = "Courbariaux et al. 2016, Binarized Neural Networks (arXiv:1602.02830)"


@register_model(family="BinaryNet", paper=PAPER)
def binarynet_mlp(
    num_classes: int,
    in_shape: tuple[int, ...],
    hidden: int = 4096,
    depth: int = 3,
    input_quantizer: QuantizerSpec = "ste_sign",
    weight_quantizer: QuantizerSpec = "ste_sign",
    dropout_in: float = 0.0,
    dropout: float = 0.0,
) -> nn.Module:
    """BinaryNet's MNIST MLP: 3 × 4096 binary units, BN after every layer, binary output layer.

    The paper's Theano run used dropout 0.2 on the input and 0.5 on hidden layers;
    both default to 0 here (set them with ``dropout_in``/``dropout``).
    """
    return BinaryMLP(
        num_classes, in_shape, hidden, depth,
        input_quantizer=input_quantizer, weight_quantizer=weight_quantizer,
        dropout_in=dropout_in, dropout=dropout,
    )
