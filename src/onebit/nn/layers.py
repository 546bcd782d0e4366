"""Quantized layers: ``nn.Linear``/``nn.Conv1d``/``nn.Conv2d`` with quantized inputs and weights.

Each layer keeps the PyTorch signature and adds keyword arguments:

- ``input_quantizer``, ``weight_quantizer``: a registered name (``"ste_sign"``), a
  :class:`~onebit.nn.quantizers.Quantizer` instance, or ``None`` for float;
- ``pad_value`` (convolutions): the value the *quantized* input is padded with,
  −1, 0 or +1. The runtime reproduces it exactly; ±1 padding costs nothing there,
  0 needs a per-position correction. ``QuantConv2d(padding="same")`` is TensorFlow's
  "same" at every stride (the odd pixel after: :meth:`QuantConv2d.same_padding`);
- ``scaling``: ``None`` or ``"learned"``, a trainable per-output-channel factor γ_c
  on the layer output (XNOR-Net++); weight-derived scales come from the
  ``magnitude_aware_sign``/``xnor_sign`` weight quantizers.

Forward: ``y = γ ⊙ op(q_in(x) padded with pad_value, q_w(W)) + b``. The latent
(float) weight is what the optimizer updates; ``quantized_weight()`` is what runs.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from onebit.errors import ConfigError, unknown_choice
from onebit.nn.quantizers import Quantizer, get_quantizer

__all__ = ["PAD_VALUES", "QuantConv1d", "QuantConv2d", "QuantLayer", "QuantLinear", "SCALINGS", "same_pads"]

PAD_VALUES = (-1.0, 0.0, 1.0)
SCALINGS = (None, "learned")

QuantizerSpec = str | Quantizer | None


def same_pads(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow's ``padding="same"`` along one axis: (before, after), the odd pixel after.

    Output ⌈size/stride⌉; total = max((⌈size/stride⌉ − 1)·stride + dilation·(kernel − 1) + 1 − size, 0).
    """
    out = -(-size // stride)
    total = max((out - 1) * stride + dilation * (kernel - 1) + 1 - size, 0)
    return total // 2, total - total // 2


class QuantLayer:
    """Mixin holding what every quantized layer shares: quantizers, scaling, the forward frame."""

    weight: nn.Parameter
    bias: nn.Parameter | None
    input_quantizer: Quantizer | None
    weight_quantizer: Quantizer | None
    scale: nn.Parameter | None

    def _init_quant(
        self,
        out_channels: int,
        input_quantizer: QuantizerSpec,
        weight_quantizer: QuantizerSpec,
        scaling: str | None,
    ) -> None:
        self.input_quantizer = get_quantizer(input_quantizer)
        self.weight_quantizer = get_quantizer(weight_quantizer)
        if scaling not in SCALINGS:
            raise unknown_choice("scaling", scaling, [str(s) for s in SCALINGS])
        self.scaling = scaling
        if scaling == "learned":
            self.scale = nn.Parameter(torch.ones(out_channels, device=self.weight.device, dtype=self.weight.dtype))
        else:
            self.register_parameter("scale", None)

    @property
    def input_bits(self) -> int:
        return 32 if self.input_quantizer is None else self.input_quantizer.bits

    @property
    def weight_bits(self) -> int:
        return 32 if self.weight_quantizer is None else self.weight_quantizer.bits

    @property
    def is_binary(self) -> bool:
        """Both operands are 1 bit: the layer runs as XNOR/AND-popcount in the engine."""
        return self.input_bits == 1 and self.weight_bits == 1

    def quantized_weight(self) -> Tensor:
        """The weight the forward uses: q_w(W), or W for a float weight."""
        if self.weight_quantizer is None:
            return self.weight
        return self.weight_quantizer(self.weight)

    def quantized_input(self, x: Tensor) -> Tensor:
        return x if self.input_quantizer is None else self.input_quantizer(x)

    def _finish(self, y: Tensor) -> Tensor:
        """Apply the learned scale and the bias, broadcasting over the channel axis 1."""
        shape = (1, -1) + (1,) * (y.dim() - 2)
        if self.scale is not None:
            y = y * self.scale.view(shape)
        if self.bias is not None:
            y = y + self.bias.view(shape)
        return y

    def quant_config(self) -> dict[str, Any]:
        """The quantization settings, as names and arguments (for summaries and export)."""
        return {
            "input_quantizer": None
            if self.input_quantizer is None
            else {"name": self.input_quantizer.name, **self.input_quantizer.config()},
            "weight_quantizer": None
            if self.weight_quantizer is None
            else {"name": self.weight_quantizer.name, **self.weight_quantizer.config()},
            "scaling": self.scaling,
        }

    def _quant_repr(self) -> str:
        # The quantizers print as child modules; only what they do not show goes here.
        return "" if self.scaling is None else f", scaling={self.scaling!r}"


class QuantLinear(QuantLayer, nn.Linear):
    """``nn.Linear`` with quantized input and weight: ``y = γ ⊙ (q_in(x) q_w(W)ᵀ) + b``."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
        *,
        input_quantizer: QuantizerSpec = None,
        weight_quantizer: QuantizerSpec = None,
        scaling: str | None = None,
    ) -> None:
        nn.Linear.__init__(self, in_features, out_features, bias, device, dtype)
        self._init_quant(out_features, input_quantizer, weight_quantizer, scaling)

    def forward(self, x: Tensor) -> Tensor:
        return self._finish(F.linear(self.quantized_input(x), self.quantized_weight()))

    def extra_repr(self) -> str:
        return nn.Linear.extra_repr(self) + self._quant_repr()


class _QuantConvNd(QuantLayer):
    """Shared forward of the quantized convolutions: quantize, pad with ``pad_value``, convolve."""

    _conv = staticmethod(F.conv2d)
    padding_mode: str
    _reversed_padding_repeated_twice: list[int]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    groups: int

    def _init_pad(self, pad_value: float) -> None:
        if pad_value not in PAD_VALUES:
            raise ConfigError(f"pad_value must be one of -1, 0, +1, got {pad_value!r}")
        if self.padding_mode != "zeros" and pad_value != 0:
            raise ConfigError(
                f"pad_value={pad_value} needs padding_mode='zeros' (got {self.padding_mode!r}); "
                "the non-constant padding modes pad with input values"
            )
        self.pad_value = float(pad_value)

    def forward(self, x: Tensor) -> Tensor:
        x = self.quantized_input(x)
        pads = self._reversed_padding_repeated_twice
        if getattr(self, "same_strided", False):
            pads = self.same_padding(*x.shape[-2:])
        if any(pads):
            if self.padding_mode == "zeros":
                x = F.pad(x, pads, mode="constant", value=self.pad_value)
            else:
                x = F.pad(x, pads, mode=self.padding_mode)
        y = self._conv(x, self.quantized_weight(), None, self.stride, 0, self.dilation, self.groups)
        return self._finish(y)

    def _conv_repr(self, base: str) -> str:
        pad = f", pad_value={self.pad_value:g}" if any(self._reversed_padding_repeated_twice) else ""
        return base + pad + self._quant_repr()


class QuantConv1d(_QuantConvNd, nn.Conv1d):
    """``nn.Conv1d`` with quantized input/weight and a declared binary padding value."""

    _conv = staticmethod(F.conv1d)

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int],
        stride: int | tuple[int] = 1,
        padding: str | int | tuple[int] = 0,
        dilation: int | tuple[int] = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device: Any = None,
        dtype: Any = None,
        *,
        input_quantizer: QuantizerSpec = None,
        weight_quantizer: QuantizerSpec = None,
        pad_value: float = 0.0,
        scaling: str | None = None,
    ) -> None:
        nn.Conv1d.__init__(
            self, in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
            padding_mode, device, dtype,
        )
        self._init_quant(out_channels, input_quantizer, weight_quantizer, scaling)
        self._init_pad(pad_value)

    def extra_repr(self) -> str:
        return self._conv_repr(nn.Conv1d.extra_repr(self))


class QuantConv2d(_QuantConvNd, nn.Conv2d):
    """``nn.Conv2d`` with quantized input/weight and a declared binary padding value.

    Grouped and depthwise (``groups == in_channels``) convolutions work as in PyTorch.
    """

    _conv = staticmethod(F.conv2d)

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: str | int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device: Any = None,
        dtype: Any = None,
        *,
        input_quantizer: QuantizerSpec = None,
        weight_quantizer: QuantizerSpec = None,
        pad_value: float = 0.0,
        scaling: str | None = None,
    ) -> None:
        # PyTorch refuses padding="same" for strides > 1; TensorFlow's rule covers them (same_padding).
        strided = padding == "same" and torch.nn.modules.utils._pair(stride) != (1, 1)
        nn.Conv2d.__init__(
            self, in_channels, out_channels, kernel_size, stride, 0 if strided else padding, dilation, groups, bias,
            padding_mode, device, dtype,
        )
        self.same_strided = strided
        if strided:
            if padding_mode != "zeros":
                raise ConfigError(f"padding='same' with stride {stride} needs padding_mode='zeros', got {padding_mode!r}")
            self.padding = "same"
        self._init_quant(out_channels, input_quantizer, weight_quantizer, scaling)
        self._init_pad(pad_value)

    def same_padding(self, height: int, width: int) -> list[int]:
        """F.pad widths ``[left, right, top, bottom]`` this layer uses on a ``height`` × ``width`` input.

        ``padding="same"`` follows TensorFlow for every stride: output ⌈n/s⌉, total padding
        ``max((⌈n/s⌉ − 1)·s + d·(k − 1) + 1 − n, 0)``, ⌊total/2⌋ before and the odd pixel after
        (a strided conv on an even input pads 0 before and 1 after for k = 3). Other paddings
        are fixed and returned as they are.
        """
        if not getattr(self, "same_strided", False):
            return list(self._reversed_padding_repeated_twice)
        (top, bottom), (left, right) = (
            same_pads(n, k, s, d) for n, k, s, d in zip((height, width), self.kernel_size, self.stride, self.dilation)
        )
        return [left, right, top, bottom]

    def _conv_repr(self, base: str) -> str:
        pad = f", pad_value={self.pad_value:g}" if self.same_strided or any(self._reversed_padding_repeated_twice) else ""
        return base + pad + self._quant_repr()

    def extra_repr(self) -> str:
        return self._conv_repr(nn.Conv2d.extra_repr(self))
