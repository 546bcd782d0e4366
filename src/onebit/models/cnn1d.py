"""A small binary 1-D convolutional net for sequences such as MNIST-1D (Greydanus 2020).

``Conv1d (float stem) → BN → Hardtanh → [QuantConv1d k3 → BN → Hardtanh → MaxPool1d(2)] × depth
→ Flatten → Linear (float head)``. The stem and head stay float, as in published BNNs:
the stem sees the real-valued signal, the head produces the logits. Binary convs pad
with +1, which the engine implements for free. Max-pooling before the next sign
commutes with it (sign is monotone), so the engine pools packed bits.
"""

from __future__ import annotations

from torch import nn

from onebit.errors import ConfigError
from onebit.models.registry import register_model
from onebit.nn import QuantConv1d, QuantizerSpec

PAPER = "onebit reference network for MNIST-1D (Greydanus 2020, arXiv:2011.14439)"


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
) -> nn.Module:
    """Small binary 1-D conv net: float stem, ``depth`` binary conv blocks, float head.

    ``widths`` gives each binary conv its own output width (``depth`` integers; the
    per-layer knob of width search, Shen et al. 2019); by default all take ``channels``,
    which is also the float stem's width.
    """
    if len(in_shape) != 2:
        raise ConfigError(f"binary_cnn1d needs (channels, length) inputs, got in_shape {tuple(in_shape)}")
    in_channels, length = in_shape
    if length >> depth < 1:
        raise ConfigError(f"binary_cnn1d with depth {depth} needs length ≥ {2**depth}, got {length}")
    if widths is None:
        widths = [channels] * depth
    if (not isinstance(widths, list | tuple) or len(widths) != depth
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in widths)):
        raise ConfigError(f"widths must be {depth} positive integers (one per binary conv), got {widths!r}")
    layers: list[nn.Module] = [
        nn.Conv1d(in_channels, channels, 5, padding=2, bias=False),
        nn.BatchNorm1d(channels),
        nn.Hardtanh(),
    ]
    width = channels
    for out in widths:
        layers += [
            QuantConv1d(
                width, out, 3, padding=1, bias=False, pad_value=pad_value,
                input_quantizer=input_quantizer, weight_quantizer=weight_quantizer,
            ),
            nn.BatchNorm1d(out),
            nn.Hardtanh(),
            nn.MaxPool1d(2),
        ]
        length //= 2
        width = out
    layers += [nn.Flatten(), nn.Linear(width * length, num_classes)]
    return nn.Sequential(*layers)
