"""Real-to-Binary Net (Martinez et al. 2020, as in Larq zoo's ``RealToBinaryNet``, the BNN variant).

ResNet-18 layout whose 16 binary 3×3 convs each sit in a "half block": BN → binary conv
(``ste_sign`` inputs and weights) whose output is multiplied per channel by a data-dependent
gate computed from the conv's input (global average pool → dense C/8 + ReLU → dense C_out +
sigmoid, no biases; Section 4.3 of the paper), then a per-channel PReLU, plus a shortcut
(identity, or AvgPool2d(2) → float 1×1 conv → BN where the width doubles). Stem: float
7×7/2 conv → BN → PReLU → 3×3/2 max-pool; head: global average pool and a dense layer.
BatchNorm is Keras's default (momentum 0.99, ε 1e-3). Larq zoo counts 11,995,624 parameters
at 224 × 224 × 3 and 1000 classes (BatchNorm as 4 vectors). The block convs pad as TensorFlow's
``"same"``; the stem's 7×7/2 conv and 3×3/2 max-pool pad 3 and 1 on each side (PyTorch's,
``padding="symmetric"``) or as Keras (``padding="keras"``, Larq zoo's: (2, 3) and (0, 1) on even
inputs; :mod:`onebit.models.same_padding`), where a Larq-zoo file computes Larq zoo's function
(:mod:`onebit.convert.zoo`).

The gate exports to the engine as a global ``avgpool2d``, two float ``dense`` nodes, a
``sigmoid`` and a ``channel_mul`` (see :mod:`onebit.export.graph`); the 16 gated convs run
XNOR-popcount.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from onebit.errors import ConfigError
from onebit.models.registry import IMAGENET, register_model
from onebit.models.same_padding import check_padding, max_pool, stem_conv
from onebit.nn import QuantConv2d, QuantizerSpec, get_quantizer

PAPER = "Martinez et al. 2020, Training Binary Neural Networks with Real-to-Binary Convolutions (ICLR)"
SCALING_R = 8


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=1e-3, momentum=0.01)


class RealToBinaryHalfBlock(nn.Module):
    """``PReLU(conv(sign(BN(x))) ⊙ gate(BN(x))) + shortcut(x)``, gate = σ(W₂ ReLU(W₁ mean_hw(BN(x))))."""

    def __init__(self, cin: int, cout: int, stride: int, input_quantizer: QuantizerSpec,
                 weight_quantizer: QuantizerSpec) -> None:
        super().__init__()
        self.shortcut: nn.Module = nn.Identity() if cin == cout else nn.Sequential(
            nn.AvgPool2d(2, stride=2), nn.Conv2d(cin, cout, 1, bias=False), _bn(cout))
        self.bn = _bn(cin)
        self.conv = QuantConv2d(cin, cout, 3, stride=stride, padding="same", bias=False,
                                input_quantizer=get_quantizer(input_quantizer),
                                weight_quantizer=get_quantizer(weight_quantizer))
        self.reduce = nn.Linear(cin, cin // SCALING_R, bias=False)
        self.expand = nn.Linear(cin // SCALING_R, cout, bias=False)
        self.prelu = nn.PReLU(cout)

    def forward(self, x: Tensor) -> Tensor:
        y = self.bn(x)
        gate = torch.sigmoid(self.expand(torch.relu(self.reduce(y.mean(dim=(2, 3))))))
        return self.prelu(self.conv(y) * gate[:, :, None, None]) + self.shortcut(x)


@register_model(family="Real-to-Binary Net", paper=PAPER, in_shape=IMAGENET, num_classes=1000,
                params=11_995_624, params_source="Larq zoo, Keras count with BatchNorm as 4 vectors")
def real_to_binary_net(
    num_classes: int, in_shape: tuple[int, ...], width: int = 64,
    input_quantizer: QuantizerSpec = "ste_sign", weight_quantizer: QuantizerSpec = "ste_sign",
    padding: str = "symmetric",
) -> nn.Module:
    """Real-to-Binary Net: 16 binary 3×3 convs with data-dependent output gates (11,995,624 parameters).

    ``padding``: the stem's, ``"symmetric"`` (PyTorch's) or ``"keras"`` (Larq zoo's)."""
    check_padding("Real-to-Binary Net", padding)
    if len(in_shape) != 3:
        raise ConfigError(f"Real-to-Binary Net needs (channels, height, width) inputs, got in_shape {tuple(in_shape)}")
    if not isinstance(width, int) or isinstance(width, bool) or width < SCALING_R:
        raise ConfigError(f"width must be an integer ≥ {SCALING_R}, got {width!r}")
    if min(in_shape[1:]) < 32:
        raise ConfigError(f"Real-to-Binary Net downsamples 32 times: inputs must be at least 32x32, "
                          f"got {in_shape[1]}x{in_shape[2]}")
    for n in in_shape[1:]:  # the shortcut's unpadded AvgPool2d(2) must meet the conv's ⌈n/2⌉ three times
        if -(-(-(-n // 2)) // 2) % 8:
            raise ConfigError(f"Real-to-Binary Net halves its feature maps three times with unpadded 2x2 pooling on "
                              f"the shortcuts: the input ({in_shape[1]}x{in_shape[2]}) must give maps divisible by 8 "
                              "after the stem's two halvings (e.g. 32, 64, 224)")
    pool, _ = max_pool(3, 2, tuple(-(-n // 2) for n in in_shape[1:]), padding)  # type: ignore[arg-type]
    layers: list[nn.Module] = [stem_conv(in_shape[0], width, 7, 2, padding), _bn(width), nn.PReLU(width), pool]
    channels = width
    for block in range(2, 10):  # Larq zoo's blocks 2..9, two half blocks each; 4, 6 and 8 downsample
        down = block % 2 == 0 and block > 3
        for half in range(2):
            out = channels * 2 if down and half == 0 else channels
            layers.append(RealToBinaryHalfBlock(channels, out, 2 if down and half == 0 else 1,
                                                input_quantizer, weight_quantizer))
            channels = out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes)]
    return nn.Sequential(*layers)
