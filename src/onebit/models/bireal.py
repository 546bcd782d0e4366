"""Bi-Real Net (Liu et al. 2018): ResNet-18/34 with a real-valued shortcut around every binary conv.

Stem: float 7×7/2 conv → BN → 3×3/2 max-pool. Then 4 stages of Bi-Real blocks (each
one binary 3×3 conv with ApproxSign activations and magnitude-aware weights, plus its
own shortcut: identity, or AvgPool2d(2) → float 1×1 conv → BN where the resolution or
width changes), global average pooling and a float classifier. ResNet-18's two convs
per basic block become two blocks; stage depths are 2·(2, 2, 2, 2) for 18 layers and
2·(3, 4, 6, 3) for 34.

``padding="symmetric"`` (the default) pads k//2 on both sides, as the authors' PyTorch code;
``padding="keras"`` pads as Larq zoo's ``BiRealNet`` (TensorFlow's "same": the stem conv,
max-pool and stride-2 convs put the odd pixel after, :mod:`onebit.models.same_padding`),
so a Larq-zoo file computes the same function in it (:mod:`onebit.convert.zoo`), with
``bn_eps=1e-3`` (Keras's BatchNormalization default, which Larq zoo keeps; PyTorch's is 1e-5).
"""

from __future__ import annotations

from torch import nn

from onebit.errors import ConfigError
from onebit.models.registry import IMAGENET, register_model
from onebit.models.same_padding import check_padding, max_pool, stem_conv
from onebit.nn import BiRealBlock, QuantizerSpec

PAPER = "Liu et al. 2018, Bi-Real Net: Enhancing the Performance of 1-bit CNNs (arXiv:1808.00278)"


def _bireal(
    blocks: tuple[int, ...], num_classes: int, in_shape: tuple[int, ...], width: int,
    input_quantizer: QuantizerSpec, weight_quantizer: QuantizerSpec, pad_value: float,
    widths: list[int] | tuple[int, ...] | None = None, padding: str = "symmetric", bn_eps: float = 1e-5,
) -> nn.Sequential:
    """``widths``: the output width of each binary conv (``2 · sum(blocks)`` integers), default
    ``width · 2**stage``. A conv whose width differs from its input's gets the float 1×1
    shortcut that Bi-Real Net uses where the width changes."""
    if len(in_shape) != 3:
        raise ConfigError(f"Bi-Real Net needs (channels, height, width) inputs, got in_shape {tuple(in_shape)}")
    if min(in_shape[1:]) < 32:
        raise ConfigError(f"Bi-Real Net downsamples 32 times: inputs must be at least 32x32, got {in_shape[1:]}")
    check_padding("Bi-Real Net", padding)
    if isinstance(bn_eps, bool) or not isinstance(bn_eps, int | float) or not bn_eps > 0:
        raise ConfigError(f"bn_eps must be a positive number, got {bn_eps!r}")
    convs = 2 * sum(blocks)
    if widths is None:
        widths = [width * 2**stage for stage, count in enumerate(blocks) for _ in range(2 * count)]
    if (not isinstance(widths, list | tuple) or len(widths) != convs
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in widths)):
        raise ConfigError(f"widths must be {convs} positive integers (one per binary conv), got {widths!r}")
    widths = iter(widths)
    pool, _ = max_pool(3, 2, tuple(-(-n // 2) for n in in_shape[1:]), padding)  # type: ignore[arg-type]
    layers: list[nn.Module] = [stem_conv(in_shape[0], width, 7, 2, padding), nn.BatchNorm2d(width), pool]
    channels = width
    for stage, count in enumerate(blocks):
        for i in range(2 * count):
            out = next(widths)
            stride = 2 if stage > 0 and i == 0 else 1
            layers.append(BiRealBlock(channels, out, stride, input_quantizer=input_quantizer,
                                      weight_quantizer=weight_quantizer, pad_value=pad_value,
                                      padding="same" if padding == "keras" else 1))
            channels = out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes)]
    model = nn.Sequential(*layers)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eps = float(bn_eps)
    return model


@register_model(family="Bi-Real Net", paper=PAPER, in_shape=IMAGENET, num_classes=1000,
                params=11_699_112, params_source="Larq zoo, Keras count with BatchNorm as 4 vectors")
def birealnet18(
    num_classes: int, in_shape: tuple[int, ...], width: int = 64,
    input_quantizer: QuantizerSpec = "approx_sign", weight_quantizer: QuantizerSpec = "magnitude_aware_sign",
    pad_value: float = 0.0, widths: list[int] | tuple[int, ...] | None = None, padding: str = "symmetric",
    bn_eps: float = 1e-5,
) -> nn.Module:
    """Bi-Real Net-18: 16 binary 3×3 convs, each with a real-valued shortcut.

    ``widths``: each binary conv's output width (16 integers; default ``width``,
    doubled per stage), the per-layer knob of width search (Shen et al. 2019). ``padding``:
    ``"symmetric"`` (PyTorch's) or ``"keras"`` (Larq zoo's TensorFlow "same"). ``bn_eps``: every
    BatchNorm's ε (Larq zoo's: Keras's 1e-3).
    """
    return _bireal((2, 2, 2, 2), num_classes, in_shape, width, input_quantizer, weight_quantizer, pad_value,
                   widths, padding, bn_eps)


@register_model(family="Bi-Real Net", paper=PAPER, in_shape=IMAGENET, num_classes=1000)
def birealnet34(
    num_classes: int, in_shape: tuple[int, ...], width: int = 64,
    input_quantizer: QuantizerSpec = "approx_sign", weight_quantizer: QuantizerSpec = "magnitude_aware_sign",
    pad_value: float = 0.0, widths: list[int] | tuple[int, ...] | None = None, padding: str = "symmetric",
    bn_eps: float = 1e-5,
) -> nn.Module:
    """Bi-Real Net-34: 32 binary 3×3 convs, each with a real-valued shortcut.

    ``widths``: each binary conv's output width (32 integers; default as ``width`` says).
    """
    return _bireal((3, 4, 6, 3), num_classes, in_shape, width, input_quantizer, weight_quantizer, pad_value,
                   widths, padding, bn_eps)
