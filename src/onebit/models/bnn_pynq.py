"""BNN-PYNQ / FINN networks (Umuroglu et al. 2017): fully connected TFC, SFC, LFC and convolutional CNV.

TFC/SFC/LFC: three hidden layers of 64 / 256 / 1024 units with 1-bit weights and activations.
Published W1A1 MNIST accuracies: TFC 93.17 %, SFC 97.81 %, LFC 98.88 %. FINN feeds
these networks binarized pixels; here the first layer takes the real-valued input
(binary weights) unless ``first_input_quantizer="ste_sign"`` is given for data
centred at 0.

CNV (CIFAR-10, 32×32×3; W1A1 84.22 % in Xilinx/brevitas ``brevitas_examples/bnn_pynq``):
see :func:`cnv`.
"""

from __future__ import annotations

from torch import nn

from onebit.errors import ConfigError
from onebit.models.mlp import BinaryMLP
from onebit.models.registry import register_model
from onebit.nn import QuantConv2d, QuantizerSpec, QuantLinear

PAPER = "Umuroglu et al. 2017, FINN: A Framework for Fast, Scalable Binarized Neural Network Inference"


def _fc(
    hidden: int,
    num_classes: int,
    in_shape: tuple[int, ...],
    input_quantizer: QuantizerSpec,
    weight_quantizer: QuantizerSpec,
    first_input_quantizer: QuantizerSpec,
    dropout: float,
    shortcut: bool,
    activation: str,
    scaling: str | None,
) -> nn.Module:
    return BinaryMLP(
        num_classes, in_shape, hidden, 3,
        input_quantizer=input_quantizer, weight_quantizer=weight_quantizer,
        first_input_quantizer=first_input_quantizer, dropout_in=dropout, dropout=dropout,
        shortcut=shortcut, activation_name=activation, scaling=scaling,
    )


@register_model(family="BNN-PYNQ", paper=PAPER, in_shape=(1, 28, 28), num_classes=10)
def tfc(
    num_classes: int,
    in_shape: tuple[int, ...],
    input_quantizer: QuantizerSpec = "ste_sign",
    weight_quantizer: QuantizerSpec = "ste_sign",
    first_input_quantizer: QuantizerSpec = None,
    dropout: float = 0.2,
    shortcut: bool = False,
    activation: str = "hardtanh",
    scaling: str | None = None,
) -> nn.Module:
    """TFC: 3 × 64 binary units (tiny fully connected)."""
    return _fc(64, num_classes, in_shape, input_quantizer, weight_quantizer, first_input_quantizer, dropout,
               shortcut, activation, scaling)


@register_model(family="BNN-PYNQ", paper=PAPER, in_shape=(1, 28, 28), num_classes=10)
def sfc(
    num_classes: int,
    in_shape: tuple[int, ...],
    input_quantizer: QuantizerSpec = "ste_sign",
    weight_quantizer: QuantizerSpec = "ste_sign",
    first_input_quantizer: QuantizerSpec = None,
    dropout: float = 0.2,
    shortcut: bool = False,
    activation: str = "hardtanh",
    scaling: str | None = None,
) -> nn.Module:
    """SFC: 3 × 256 binary units (small fully connected)."""
    return _fc(256, num_classes, in_shape, input_quantizer, weight_quantizer, first_input_quantizer, dropout,
               shortcut, activation, scaling)


@register_model(family="BNN-PYNQ", paper=PAPER, in_shape=(1, 28, 28), num_classes=10)
def lfc(
    num_classes: int,
    in_shape: tuple[int, ...],
    input_quantizer: QuantizerSpec = "ste_sign",
    weight_quantizer: QuantizerSpec = "ste_sign",
    first_input_quantizer: QuantizerSpec = None,
    dropout: float = 0.2,
    shortcut: bool = False,
    activation: str = "hardtanh",
    scaling: str | None = None,
) -> nn.Module:
    """LFC: 3 × 1024 binary units (large fully connected)."""
    return _fc(1024, num_classes, in_shape, input_quantizer, weight_quantizer, first_input_quantizer, dropout,
               shortcut, activation, scaling)


@register_model(family="BNN-PYNQ", paper=PAPER, in_shape=(3, 32, 32), num_classes=10,
                params=1_550_568, params_source="BNN-PYNQ's CNV topology, Brevitas cnv.py, BatchNorm as 4 vectors")
def cnv(
    num_classes: int,
    in_shape: tuple[int, ...],
    width: int = 64,
    input_quantizer: QuantizerSpec = "ste_sign",
    weight_quantizer: QuantizerSpec = "ste_sign",
) -> nn.Module:
    """CNV: 3×3 unpadded convs 64-64-MP2-128-128-MP2-256-256, then FC 512-512-classes, all binary weights.

    Follows Xilinx/brevitas ``bnn_pynq/models/CNV.py`` (CNV_1W1A): every conv/linear has no
    bias and is followed by BatchNorm (ε = 1e-4) and a 1-bit activation (here Hardtanh, the
    sign being the next layer's input quantizer); the first conv takes the real-valued image
    (binary weights, float input: FINN quantizes it to 8 bits in [−1, 1), brevitas maps
    pixels with 2x − 1 first, so feed data scaled to [−1, 1]). brevitas pools after the
    sign; max-pool commutes with the monotone sign, so pooling after Hardtanh is the same
    function. ``width`` scales every layer (convs w-w-2w-2w-4w-4w, FC 8w-8w; 64 is CNV).
    Deliberate difference: brevitas ends in TensorNorm, a BatchNorm with one shared
    (γ, β, μ, σ²) over all logits (BNN-PYNQ's BatchNormLayer(axes=(0, 1)) likewise); here a
    per-class BatchNorm1d, of which that scalar norm is the special case with equal entries,
    so the exporter folds it into the last layer. Parameters at 32×32×3, 10 classes (BN as
    four vectors): 1,542,848 binary weights + 4·(896 + 1,024 + 10) BN = 1,550,568 (brevitas:
    1,550,532, its final norm being 4 scalars). Needs inputs of at least 32×32 (three unpadded
    conv pairs and two pools); larger inputs widen the first FC layer.
    """
    if len(in_shape) != 3:
        raise ConfigError(f"cnv needs (channels, height, width) inputs, got in_shape {tuple(in_shape)}")
    if not isinstance(width, int) or isinstance(width, bool) or width < 1:
        raise ConfigError(f"cnv: width must be a positive integer, got {width!r}")
    c, h, w = in_shape
    if min(h, w) < 32:
        raise ConfigError(f"cnv's unpadded 3x3 convs and two 2x2 pools need inputs of at least 32x32, got {h}x{w}")
    layers: list[nn.Module] = []
    channels = c
    for i, (mult, pool) in enumerate(((1, False), (1, True), (2, False), (2, True), (4, False), (4, False))):
        out = width * mult
        layers += [
            QuantConv2d(channels, out, 3, bias=False, input_quantizer=None if i == 0 else input_quantizer,
                        weight_quantizer=weight_quantizer),
            nn.BatchNorm2d(out, eps=1e-4), nn.Hardtanh(),
        ]
        if pool:
            layers.append(nn.MaxPool2d(2))
            h, w = (h - 4) // 2, (w - 4) // 2
        channels = out
    layers.append(nn.Flatten())
    features = channels * (h - 4) * (w - 4)
    for i, out in enumerate((8 * width, 8 * width, num_classes)):
        layers += [
            QuantLinear(features, out, bias=False, input_quantizer=input_quantizer, weight_quantizer=weight_quantizer),
            nn.BatchNorm1d(out, eps=1e-4),
        ]
        if i < 2:
            layers.append(nn.Hardtanh())
        features = out
    return nn.Sequential(*layers)
