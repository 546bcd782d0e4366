"""The binary multi-layer perceptron shared by BinaryNet and BNN-PYNQ (FINN).

Layer order (Courbariaux et al. 2016; Umuroglu et al. 2017):
``Flatten → [Linear → BN → Hardtanh → Dropout] × depth → Linear → BN``.
The sign of each binary layer is its input quantizer, applied to Hardtanh's output,
so BN → sign is the binary activation (BinaryNet's binary_tanh = sign ∘ hardtanh; the
Hardtanh is then a no-op in the forward and matches the STE clip in the backward).
With both quantizers None the same module is the float twin of the network.
The first layer takes the real-valued input (binary weights, float input), as in
BinaryNet; its weights are still binary.
"""

from __future__ import annotations

import math

from torch import nn

from onebit.errors import ConfigError
from onebit.nn import QuantizerSpec, QuantLinear, Residual, channel_quantizer, make_activation


class BinaryMLP(nn.Sequential):
    """Binary MLP: ``depth`` hidden layers of ``hidden`` units, BN after every layer.

    The training recipes' model choices (docs/training.md): ``shortcut=True`` puts
    Bi-Real Net's real-valued shortcut around every hidden→hidden binary layer
    (``x + BN(QuantLinear(sign(x)))``); ``activation`` is Hardtanh (BinaryNet), RPReLU
    (ReActNet) or none; ``scaling="learned"`` gives each binary layer a learned scale per
    output; ``input_quantizer="rsign"`` gives each binary layer ReActNet's RSign.
    """

    def __init__(
        self,
        num_classes: int,
        in_shape: tuple[int, ...],
        hidden: int,
        depth: int,
        *,
        input_quantizer: QuantizerSpec = "ste_sign",
        weight_quantizer: QuantizerSpec = "ste_sign",
        first_input_quantizer: QuantizerSpec = None,
        dropout_in: float = 0.0,
        dropout: float = 0.0,
        bn_momentum: float = 0.1,
        bn_eps: float = 1e-4,
        shortcut: bool = False,
        activation_name: str = "hardtanh",
        scaling: str | None = None,
    ) -> None:
        if not isinstance(hidden, int) or hidden < 1 or not isinstance(depth, int) or depth < 1:
            raise ConfigError(f"hidden and depth must be positive integers, got {hidden!r}, {depth!r}")
        for p in (dropout_in, dropout):
            if not 0.0 <= p < 1.0:
                raise ConfigError(f"dropout must be in [0, 1), got {p!r}")
        layers: list[nn.Module] = [nn.Flatten()]
        if dropout_in:
            layers.append(nn.Dropout(dropout_in))
        width = math.prod(in_shape)
        for i in range(depth + 1):
            out = num_classes if i == depth else hidden
            unit = [
                QuantLinear(
                    width, out, bias=False,
                    input_quantizer=channel_quantizer(first_input_quantizer if i == 0 else input_quantizer, width),
                    weight_quantizer=weight_quantizer, scaling=scaling if i < depth else None,
                ),
                nn.BatchNorm1d(out, eps=bn_eps, momentum=bn_momentum),
            ]
            if shortcut and 0 < i < depth:
                layers.append(Residual(nn.Sequential(*unit)))
            else:
                layers += unit
            if i < depth:
                layers.append(make_activation(activation_name, out))
                if dropout:
                    layers.append(nn.Dropout(dropout))
            width = out
        super().__init__(*layers)
