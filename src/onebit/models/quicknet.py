"""QuickNet (Larq 2020): a binary ResNet designed for fast inference in Larq Compute Engine.

Follows larq/zoo ``larq_zoo/sota/quicknet.py`` (QuickNet v1.0: ``QuickNetSmall``,
``QuickNet``, ``QuickNetLarge``) layer for layer:

- stem (float): 3×3/2 conv (filters/4) → BN → ReLU → depthwise 3×3/2 conv → BN without
  γ/β → 1×1 conv (filters) → BN;
- residual block: ``x + BN(ReLU(binary 3×3 conv(sign(x))))``: ste_sign input and weights
  (clip 1.25), ``pad_values=1.0`` (padding with +1), ReLU on the conv output before BN;
- transition (float) before each section whose width changes: ReLU → 2×2/1 max-pool
  (valid) → fixed (not trained) blur-pool depthwise 3×3/2 conv, kernel
  ``[1, 2, 1]ᵀ[1, 2, 1] / 16`` → 1×1 conv → BN;
- head: ReLU → global average pool → float dense with bias (logits; the softmax is left
  to the loss).

Section blocks and widths: Small (4, 4, 4, 4) × (32, 64, 256, 512); QuickNet
(4, 4, 4, 4) × (64, 128, 256, 512); Large (6, 8, 12, 6) × (64, 128, 256, 512). BatchNorm
keeps Keras's settings (stem: momentum 0.99, ε = 1e-3; blocks and transitions: 0.9,
1e-5; PyTorch's momentum is 1 − Keras's) and the weights Keras's initializers (he_normal,
glorot_normal: truncated normals; glorot_uniform for the stem's depthwise conv). The
latent-weight clip (``WeightClip(1.25)``) belongs to the optimizer: train with
``onebit.optim.make_optimizer(model, ..., latent_clip=1.25)``.

Padding: Keras ``"same"`` pads ``total = max((⌈n/s⌉ − 1)·s + k − n, 0)`` with the odd
pixel at the bottom/right, where PyTorch pads symmetrically. ``padding="keras"`` (the
default) makes the three kinds of stride-2 float convs (the stem's conv and depthwise conv,
the transitions' blur-pool) ``QuantConv2d(padding="same")``, TensorFlow's rule at every input
size: at 224×224 the two stem convs pad (0, 1) (the transitions' depthwise convs see odd
sizes and pad (1, 1)); the engine runs the same padding exactly. ``padding="symmetric"``
pads k//2 on every side: the same shapes, parameters and cost, the input shifted by one
pixel in the two stem convs.

Checkpoints saved before 2026-12-07 (second session) built Keras's asymmetric padding as an
``nn.ZeroPad2d`` before the conv, which shifted the later indices of the stem (and of a
transition whose input was even) by one: at 224×224 ``stem.1`` → ``stem.0``, ``stem.2`` →
``stem.1``, ``stem.5`` → ``stem.3``, ``stem.6``/``7``/``8`` → ``stem.4``/``5``/``6``.
``load_state_dict`` reads such checkpoints as they are (a pre-hook renames the keys); the
outputs are identical.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
from torch import Tensor, nn

from onebit.errors import ConfigError, unknown_choice
from onebit.models.registry import IMAGENET, register_model
from onebit.nn import QuantConv2d, QuantizerSpec, get_quantizer

PAPER = ("Bannink et al. 2021, Larq Compute Engine: Design, Benchmark, and Deploy State-of-the-Art "
         "Binarized Neural Networks (arXiv:2011.09398); larq/zoo larq_zoo/sota/quicknet.py (v1.0)")

PADDINGS = ("keras", "symmetric")
CLIP_VALUE = 1.25  # larq zoo: SteSign(clip_value=1.25) for inputs and weights, WeightClip(1.25)
_TRUNC_STD = 0.87962566103423978  # std of a unit normal truncated to [−2, 2]: Keras divides by it


def _keras_init(weight: Tensor, mode: str) -> None:
    """Keras's ``he_normal`` (2/fan_in) or ``glorot_normal`` (2/(fan_in + fan_out)) initializer:
    a normal truncated at two standard deviations, std = sqrt(variance) / 0.8796."""
    receptive = weight[0, 0].numel() if weight.dim() > 2 else 1
    fan_in, fan_out = weight.shape[1] * receptive, weight.shape[0] * receptive
    variance = 2.0 / fan_in if mode == "he" else 2.0 / (fan_in + fan_out)
    std = math.sqrt(variance) / _TRUNC_STD
    with torch.no_grad():  # redraw what falls outside ±2 std (torch's erfinv-based trunc_normal_ is slow)
        flat = weight.view(-1).normal_(0.0, std)
        outside = (flat.abs() > 2 * std).nonzero().squeeze(1)
        while len(outside):
            flat[outside] = torch.randn(len(outside), dtype=weight.dtype) * std
            outside = outside[flat[outside].abs() > 2 * std]


def _same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """Keras ``"same"``: (before, after) padding of one axis; the odd pixel goes after."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _same_conv(cin: int, cout: int, kernel: int, stride: int, hw: tuple[int, int], padding: str,
               groups: int = 1) -> tuple[nn.Conv2d, tuple[int, int], bool]:
    """A float conv with Keras ``"same"`` output size ⌈n/s⌉, padded as ``padding`` says; (conv, output size,
    whether the construction before TF-style "same" put an ``nn.ZeroPad2d`` before it: asymmetric pads)."""
    out_hw = (math.ceil(hw[0] / stride), math.ceil(hw[1] / stride))
    if padding == "symmetric":
        return nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False), out_hw, False
    (top, bottom), (left, right) = _same_pads(hw[0], kernel, stride), _same_pads(hw[1], kernel, stride)
    conv = QuantConv2d(cin, cout, kernel, stride, padding="same", groups=groups, bias=False)
    return conv, out_hw, (top, left) != (bottom, right)


class _ZeroPadKeys:
    """``load_state_dict`` pre-hook: read checkpoints saved before QuickNet's Keras padding became
    ``QuantConv2d(padding="same")``, when an ``nn.ZeroPad2d`` (no state) stood before each conv with
    asymmetric padding (``padded``: those convs' indices now) and shifted the later indices by one,
    e.g. at 224 × 224 the stem's ``stem.1``, ``stem.2``, ``stem.5``, ... became ``stem.0``, ``stem.1``,
    ``stem.3``, ..."""

    def __init__(self, padded: list[int]) -> None:
        self.padded = list(padded)

    def __call__(self, module: nn.Module, state_dict: dict, prefix: str, *args: object) -> None:
        old_len = len(module) + len(self.padded)
        if f"{prefix}{old_len - 1}.running_mean" not in state_dict:  # the last BatchNorm's old key: a new checkpoint
            return
        old_to_new, old = {}, 0
        for i in range(len(module)):
            old += i in self.padded
            old_to_new[old], old = i, old + 1
        moved = {}
        for key in [k for k in state_dict if k.startswith(prefix)]:
            index, _, rest = key[len(prefix):].partition(".")
            if index.isdigit() and int(index) in old_to_new:
                moved[f"{prefix}{old_to_new[int(index)]}.{rest}"] = state_dict.pop(key)
        state_dict.update(moved)


def _keras_sequential(layers: list[nn.Module], padded: list[int]) -> nn.Sequential:
    seq = nn.Sequential(*layers)
    if padded:
        seq.register_load_state_dict_pre_hook(_ZeroPadKeys(padded))
    return seq


def _bn(channels: int, keras_default: bool = False, affine: bool = True) -> nn.BatchNorm2d:
    """Keras BatchNormalization(): momentum 0.99, ε 1e-3; QuickNet's (0.9, 1e-5) elsewhere."""
    if keras_default:
        return nn.BatchNorm2d(channels, eps=1e-3, momentum=0.01, affine=affine)
    return nn.BatchNorm2d(channels, eps=1e-5, momentum=0.1, affine=affine)


def _quantizer(spec: QuantizerSpec, clip_value: float) -> QuantizerSpec:
    """A fresh quantizer per layer; ``ste_sign`` gets QuickNet's clip value."""
    return get_quantizer(spec, clip_value=clip_value) if spec == "ste_sign" else get_quantizer(spec)


class QuickNetBlock(nn.Module):
    """``x + BN(ReLU(conv(sign(x))))``: a binary 3×3 conv padded with +1, ReLU, BN, identity shortcut."""

    def __init__(self, channels: int, input_quantizer: QuantizerSpec, weight_quantizer: QuantizerSpec,
                 clip_value: float) -> None:
        super().__init__()
        self.conv = QuantConv2d(channels, channels, 3, padding=1, bias=False, pad_value=1.0,
                                input_quantizer=_quantizer(input_quantizer, clip_value),
                                weight_quantizer=_quantizer(weight_quantizer, clip_value))
        _keras_init(self.conv.weight, "glorot")
        self.act = nn.ReLU()
        self.bn = _bn(channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.bn(self.act(self.conv(x))) + x


def _blurpool(conv: nn.Conv2d) -> None:
    """Fix a depthwise 3×3 conv to the blur kernel ``[1, 2, 1]ᵀ[1, 2, 1] / 16`` (not trained)."""
    k = torch.tensor([1.0, 2.0, 1.0])
    with torch.no_grad():
        conv.weight.copy_((torch.outer(k, k) / 16).expand_as(conv.weight))
    conv.weight.requires_grad_(False)


def _stem(cin: int, filters: int, hw: tuple[int, int], padding: str) -> tuple[nn.Sequential, tuple[int, int]]:
    conv, hw, conv_padded = _same_conv(cin, filters // 4, 3, 2, hw, padding)
    _keras_init(conv.weight, "he")
    depthwise, hw, depthwise_padded = _same_conv(filters // 4, filters // 4, 3, 2, hw, padding, groups=filters // 4)
    # Keras DepthwiseConv2D's glorot_uniform on its (3, 3, C, 1) kernel: fan_in 9·C, fan_out 9.
    limit = math.sqrt(6.0 / (9 * (filters // 4) + 9))
    nn.init.uniform_(depthwise.weight, -limit, limit)
    pointwise = nn.Conv2d(filters // 4, filters, 1, bias=False)
    _keras_init(pointwise.weight, "he")
    layers = [conv, _bn(filters // 4, keras_default=True), nn.ReLU(),
              depthwise, _bn(filters // 4, keras_default=True, affine=False),
              pointwise, _bn(filters, keras_default=True)]
    return _keras_sequential(layers, [0] * conv_padded + [3] * depthwise_padded), hw


def _transition(cin: int, cout: int, hw: tuple[int, int], padding: str) -> tuple[nn.Sequential, tuple[int, int]]:
    hw = (hw[0] - 1, hw[1] - 1)  # 2×2 max-pool, stride 1, no padding
    blur, hw, padded = _same_conv(cin, cin, 3, 2, hw, padding, groups=cin)
    _blurpool(blur)
    pointwise = nn.Conv2d(cin, cout, 1, bias=False)
    _keras_init(pointwise.weight, "glorot")
    return _keras_sequential([nn.ReLU(), nn.MaxPool2d(2, stride=1), blur, pointwise, _bn(cout)], [2] * padded), hw


def _quicknet(
    blocks: tuple[int, ...], filters: tuple[int, ...], num_classes: int, in_shape: tuple[int, ...], width: int,
    input_quantizer: QuantizerSpec, weight_quantizer: QuantizerSpec, clip_value: float, padding: str,
) -> nn.Sequential:
    if len(in_shape) != 3:
        raise ConfigError(f"QuickNet needs (channels, height, width) inputs, got in_shape {tuple(in_shape)}")
    if padding not in PADDINGS:
        raise unknown_choice("QuickNet padding", padding, PADDINGS)
    if not isinstance(width, int) or isinstance(width, bool) or width < 4 or width % 4:
        raise ConfigError(f"QuickNet width (the first section's channels) must be a positive multiple of 4, "
                          f"got {width!r}")
    filters = tuple(f * width // filters[0] for f in filters)
    hw = tuple(in_shape[1:])
    stem, hw = _stem(in_shape[0], filters[0], hw, padding)
    sections: list[tuple[str, nn.Module]] = [("stem", stem)]
    channels = filters[0]
    for i, (count, out) in enumerate(zip(blocks, filters)):
        layers: list[nn.Module] = []
        if out != channels:
            if min(hw) < 2:
                raise ConfigError(f"QuickNet downsamples 32 times: inputs must be at least 29x29, got "
                                  f"{in_shape[1]}x{in_shape[2]} (a {hw[0]}x{hw[1]} map reaches section {i + 1})")
            transition, hw = _transition(channels, out, hw, padding)
            layers.append(transition)
            channels = out
        layers += [QuickNetBlock(channels, input_quantizer, weight_quantizer, clip_value) for _ in range(count)]
        sections.append((f"section{i + 1}", nn.Sequential(*layers)))
    dense = nn.Linear(channels, num_classes)
    _keras_init(dense.weight, "glorot")
    nn.init.zeros_(dense.bias)
    sections.append(("head", nn.Sequential(nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), dense)))
    return nn.Sequential(OrderedDict(sections))


@register_model(family="QuickNet", paper=PAPER, in_shape=IMAGENET, num_classes=1000,
                params=12_664_344, params_source="Larq zoo, Keras count with BatchNorm as 4 vectors")
def quicknet_small(
    num_classes: int, in_shape: tuple[int, ...], width: int = 32,
    input_quantizer: QuantizerSpec = "ste_sign", weight_quantizer: QuantizerSpec = "ste_sign",
    clip_value: float = CLIP_VALUE, padding: str = "keras",
) -> nn.Module:
    """QuickNetSmall: 16 binary 3×3 convs in sections of (32, 64, 256, 512) channels (12,664,344 parameters)."""
    return _quicknet((4, 4, 4, 4), (32, 64, 256, 512), num_classes, in_shape, width,
                     input_quantizer, weight_quantizer, clip_value, padding)


@register_model(family="QuickNet", paper=PAPER, in_shape=IMAGENET, num_classes=1000,
                params=13_243_720, params_source="Larq zoo, Keras count with BatchNorm as 4 vectors")
def quicknet(
    num_classes: int, in_shape: tuple[int, ...], width: int = 64,
    input_quantizer: QuantizerSpec = "ste_sign", weight_quantizer: QuantizerSpec = "ste_sign",
    clip_value: float = CLIP_VALUE, padding: str = "keras",
) -> nn.Module:
    """QuickNet: 16 binary 3×3 convs in sections of (64, 128, 256, 512) channels."""
    return _quicknet((4, 4, 4, 4), (64, 128, 256, 512), num_classes, in_shape, width,
                     input_quantizer, weight_quantizer, clip_value, padding)


@register_model(family="QuickNet", paper=PAPER, in_shape=IMAGENET, num_classes=1000,
                params=23_359_304, params_source="Larq zoo, Keras count with BatchNorm as 4 vectors")
def quicknet_large(
    num_classes: int, in_shape: tuple[int, ...], width: int = 64,
    input_quantizer: QuantizerSpec = "ste_sign", weight_quantizer: QuantizerSpec = "ste_sign",
    clip_value: float = CLIP_VALUE, padding: str = "keras",
) -> nn.Module:
    """QuickNetLarge: 32 binary 3×3 convs, sections of (6, 8, 12, 6) blocks at (64, 128, 256, 512) channels."""
    return _quicknet((6, 8, 12, 6), (64, 128, 256, 512), num_classes, in_shape, width,
                     input_quantizer, weight_quantizer, clip_value, padding)
