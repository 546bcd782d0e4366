"""onebit's small binary conv nets for small inputs: MNIST-1D sequences and 8×8 / 28×28 images.

``Conv (float stem) → BN → Hardtanh → [QuantConv k3 → BN → act → MaxPool(2)] × depth
→ Flatten → Linear (float head)``. The stem and head stay float, as in published BNNs:
the stem sees the real-valued signal, the head produces the logits. Binary convs pad
with +1, which the engine implements for free. Max-pooling after the activation
commutes with the next sign (sign is monotone), so the engine pools packed bits.

The training recipes' model choices (docs/training.md): ``shortcut=True`` adds Bi-Real
Net's real-valued shortcut around every binary conv (``x + BN(conv(sign(x)))``, with a
float 1×1 conv → BN projection where the width changes) before the activation and the
pooling; ``activation`` is Hardtanh, RPReLU or none; ``scaling="learned"`` a learned
scale per output channel; ``input_quantizer="rsign"`` ReActNet's RSign per conv.
"""

from __future__ import annotations

from torch import nn

from onebit.errors import ConfigError
from onebit.models.registry import register_model
from onebit.nn import QuantConv1d, QuantConv2d, QuantizerSpec, Residual, channel_quantizer, make_activation

PAPER = "onebit reference network for MNIST-1D (Greydanus 2020, arXiv:2011.14439)"
PAPER_2D = "onebit reference network for small images (8x8 digits, 28x28 MNIST); binary_cnn1d in 2-D"

_LAYERS = {
    1: (nn.Conv1d, QuantConv1d, nn.BatchNorm1d, nn.MaxPool1d),
    2: (nn.Conv2d, QuantConv2d, nn.BatchNorm2d, nn.MaxPool2d),
}


def _conv_net(
    name: str, dims: int, num_classes: int, in_shape: tuple[int, ...], channels: int, depth: int,
    input_quantizer: QuantizerSpec, weight_quantizer: QuantizerSpec, pad_value: float,
    widths: list[int] | tuple[int, ...] | None, shortcut: bool, activation: str, scaling: str | None,
    stem_kernel: int,
) -> nn.Module:
    if len(in_shape) != dims + 1:
        axes = "(channels, length)" if dims == 1 else "(channels, height, width)"
        raise ConfigError(f"{name} needs {axes} inputs, got in_shape {tuple(in_shape)}")
    in_channels, *size = in_shape
    if min(size) >> depth < 1:
        raise ConfigError(f"{name} with depth {depth} pools {depth} times: inputs must be at least {2**depth} long "
                          f"on every axis, got {tuple(size)}")
    if widths is None:
        widths = [channels] * depth
    if (not isinstance(widths, list | tuple) or len(widths) != depth
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in widths)):
        raise ConfigError(f"widths must be {depth} positive integers (one per binary conv), got {widths!r}")
    conv, quant_conv, batch_norm, max_pool = _LAYERS[dims]
    layers: list[nn.Module] = [
        conv(in_channels, channels, stem_kernel, padding=stem_kernel // 2, bias=False),
        batch_norm(channels),
        nn.Hardtanh(),
    ]
    width = channels
    for out in widths:
        unit: list[nn.Module] = [
            quant_conv(
                width, out, 3, padding=1, bias=False, pad_value=pad_value,
                input_quantizer=channel_quantizer(input_quantizer, width), weight_quantizer=weight_quantizer,
                scaling=scaling,
            ),
            batch_norm(out),
        ]
        if shortcut:
            projection = None if out == width else nn.Sequential(conv(width, out, 1, bias=False), batch_norm(out))
            unit = [Residual(nn.Sequential(*unit), projection)]
        layers += [*unit, make_activation(activation, out), max_pool(2)]
        size = [s // 2 for s in size]
        width = out
    features = width
    for s in size:
        features *= s
    layers += [nn.Flatten(), nn.Linear(features, num_classes)]
    return nn.Sequential(*layers)


@register_model(family="onebit", paper=PAPER, in_shape=(1, 40), num_classes=10)
def binary_cnn1d(
    num_classes: int,
    in_shape: tuple[int, ...],
    channels: int = 64,
    depth: int = 3,
    input_quantizer: QuantizerSpec = "ste_sign",
    weight_quantizer: QuantizerSpec = "ste_sign",
    pad_value: float = 1.0,
    widths: list[int] | tuple[int, ...] | None = None,
    shortcut: bool = False,
    activation: str = "hardtanh",
    scaling: str | None = None,
) -> nn.Module:
    """Small binary 1-D conv net: float stem (k5), ``depth`` binary conv blocks, float head.

    ``widths`` gives each binary conv its own output width (``depth`` integers; the
    per-layer knob of width search, Shen et al. 2019); by default all take ``channels``,
    which is also the float stem's width. ``shortcut``, ``activation``, ``scaling``:
    the recipes' choices (module docstring).
    """
    return _conv_net("binary_cnn1d", 1, num_classes, in_shape, channels, depth, input_quantizer, weight_quantizer,
                     pad_value, widths, shortcut, activation, scaling, stem_kernel=5)


@register_model(family="onebit", paper=PAPER_2D, in_shape=(1, 8, 8), num_classes=10)
def binary_cnn2d(
    num_classes: int,
    in_shape: tuple[int, ...],
    channels: int = 64,
    depth: int = 2,
    input_quantizer: QuantizerSpec = "ste_sign",
    weight_quantizer: QuantizerSpec = "ste_sign",
    pad_value: float = 1.0,
    widths: list[int] | tuple[int, ...] | None = None,
    shortcut: bool = False,
    activation: str = "hardtanh",
    scaling: str | None = None,
) -> nn.Module:
    """Small binary 2-D conv net: float stem (3×3), ``depth`` binary 3×3 conv blocks, float head.

    The 2-D sibling of :func:`binary_cnn1d` for small images (8×8 digits with ``depth=2``,
    28×28 MNIST with ``depth=3``); the same arguments.
    """
    return _conv_net("binary_cnn2d", 2, num_classes, in_shape, channels, depth, input_quantizer, weight_quantizer,
                     pad_value, widths, shortcut, activation, scaling, stem_kernel=3)
