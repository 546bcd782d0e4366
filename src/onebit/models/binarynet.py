"""BinaryNet (Courbariaux, Hubara, Soudry, El-Yaniv, Bengio 2016)."""

from __future__ import annotations

from torch import nn

from onebit.errors import ConfigError
from onebit.models.mlp import BinaryMLP
from onebit.models.registry import register_model
from onebit.nn import QuantConv2d, QuantizerSpec, QuantLinear, channel_quantizer

PAPER = "Courbariaux et al. 2016, Binarized Neural Networks (arXiv:1602.02830)"


@register_model(family="BinaryNet", paper=PAPER, in_shape=(1, 28, 28), num_classes=10)
def binarynet_mlp(
    num_classes: int,
    in_shape: tuple[int, ...],
    hidden: int = 4096,
    depth: int = 3,
    input_quantizer: QuantizerSpec = "ste_sign",
    weight_quantizer: QuantizerSpec = "ste_sign",
    dropout_in: float = 0.0,
    dropout: float = 0.0,
    shortcut: bool = False,
    activation: str = "hardtanh",
    scaling: str | None = None,
) -> nn.Module:
    """BinaryNet's MNIST MLP: 3 × 4096 binary units, BN after every layer, binary output layer.

    The paper's Theano run used dropout 0.2 on the input and 0.5 on hidden layers;
    both default to 0 here (set them with ``dropout_in``/``dropout``). ``shortcut``,
    ``activation`` and ``scaling`` are the recipes' choices (:class:`~onebit.models.mlp.BinaryMLP`).
    """
    return BinaryMLP(
        num_classes, in_shape, hidden, depth,
        input_quantizer=input_quantizer, weight_quantizer=weight_quantizer,
        dropout_in=dropout_in, dropout=dropout, shortcut=shortcut, activation_name=activation, scaling=scaling,
    )


@register_model(family="BinaryNet", paper=PAPER, in_shape=(3, 32, 32), num_classes=10)
def binarynet_cnn(
    num_classes: int,
    in_shape: tuple[int, ...],
    channels: list[int] | tuple[int, ...] = (128, 256, 512),
    hidden: int = 1024,
    input_quantizer: QuantizerSpec = "ste_sign",
    weight_quantizer: QuantizerSpec = "ste_sign",
    pad_value: float = 0.0,
    widths: list[int] | tuple[int, ...] | None = None,
) -> nn.Module:
    """BinaryNet's CIFAR-10 VGG-small: (2×128C3)-MP2-(2×256C3)-MP2-(2×512C3)-MP2-(2×1024FC)-10.

    Every layer is conv/linear → (max-pool) → BatchNorm → Hardtanh, the sign being the
    next layer's input quantizer; the first conv sees the real-valued image (binary
    weights). Convolutions pad with 0 as the paper's Theano code did (``pad_value=1``
    costs nothing in the engine; 0 needs a per-position correction).

    ``widths`` gives each of the six convolutions its own output width (the per-layer
    knob of width search, Shen et al. 2019: "VGG-Auto-A" is ``[64, 256, 256, 256, 512,
    256]``); by default each stage's two convs take ``channels[stage]``.
    """
    if len(in_shape) != 3:
        raise ConfigError(f"binarynet_cnn needs (channels, height, width) inputs, got in_shape {tuple(in_shape)}")
    if len(channels) != 3 or min(channels) < 1:
        raise ConfigError(f"channels must be three positive widths, got {channels!r}")
    if widths is None:
        widths = [out for out in channels for _ in range(2)]
    if (not isinstance(widths, list | tuple) or len(widths) != 6
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in widths)):
        raise ConfigError(f"widths must be six positive integers (one per convolution), got {widths!r}")
    c, h, w = in_shape
    if h < 8 or w < 8:
        raise ConfigError(f"binarynet_cnn pools three times: inputs must be at least 8x8, got {h}x{w}")
    layers: list[nn.Module] = []
    width = c
    for stage in range(3):
        for j in range(2):
            out = widths[2 * stage + j]
            first = stage == 0 and j == 0
            layers.append(QuantConv2d(
                width, out, 3, padding=1, bias=False, pad_value=pad_value,
                input_quantizer=None if first else channel_quantizer(input_quantizer, width),
                weight_quantizer=weight_quantizer,
            ))
            if j == 1:
                layers.append(nn.MaxPool2d(2))
            layers += [nn.BatchNorm2d(out, eps=1e-4), nn.Hardtanh()]
            width = out
    layers.append(nn.Flatten())
    width *= (h // 8) * (w // 8)
    for out in (hidden, hidden, num_classes):
        layers += [
            QuantLinear(width, out, bias=False, input_quantizer=channel_quantizer(input_quantizer, width),
                        weight_quantizer=weight_quantizer),
            nn.BatchNorm1d(out, eps=1e-4),
        ]
        if out != num_classes:
            layers.append(nn.Hardtanh())
        width = out
    return nn.Sequential(*layers)
