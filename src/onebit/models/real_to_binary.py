"""Real-to-Binary Net (Martinez et al. 2020, as in Larq zoo's ``RealToBinaryNet``, the BNN variant).

ResNet-18 layout whose 16 binary 3×3 convs each sit in a "half block": BN → binary conv
(``ste_sign`` inputs and weights) whose output is multiplied per channel by a data-dependent
gate computed from the conv's input (global average pool → dense C/8 + ReLU → dense C_out +
sigmoid, no biases; Section 4.3 of the paper), then a per-channel PReLU, plus a shortcut
(identity, or AvgPool2d(2) → float 1×1 conv → BN where the width doubles). Stem: float
7×7/2 conv → BN → PReLU → 3×3/2 max-pool; head: global average pool and a dense layer.
BatchNorm is Keras's default (momentum 0.99, ε 1e-3). Larq zoo counts 11,995,624 parameters
at 224 × 224 × 3 and 1000 classes (BatchNorm as 4 vectors). Convs pad as TensorFlow's
``"same"``; the stem's max-pool pads 1 on each side (PyTorch's).

The gate (a mean over the image, two small dense layers and a product) is not one of the
engine's operations: this model trains and runs in PyTorch, and ``onebit export`` names
the operation it cannot take.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from onebit.errors import ConfigError
from onebit.models.registry import IMAGENET, register_model
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
) -> nn.Module:
    """Real-to-Binary Net: 16 binary 3×3 convs with data-dependent output gates (11,995,624 parameters)."""
    if len(in_shape) != 3:
        raise ConfigError(f"Real-to-Binary Net needs (channels, height, width) inputs, got in_shape {tuple(in_shape)}")
    if not isinstance(width, int) or isinstance(width, bool) or width < SCALING_R:
        raise ConfigError(f"width must be an integer ≥ {SCALING_R}, got {width!r}")
    if min(in_shape[1:]) < 32:
        raise ConfigError(f"Real-to-Binary Net downsamples 32 times: inputs must be at least 32x32, "
                          f"got {in_shape[1]}x{in_shape[2]}")
    layers: list[nn.Module] = [nn.Conv2d(in_shape[0], width, 7, stride=2, padding=3, bias=False), _bn(width),
                               nn.PReLU(width), nn.MaxPool2d(3, stride=2, padding=1)]
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
