"""``binarize``: turn an existing float model's layers into quantized ones, in place."""

from __future__ import annotations

from collections.abc import Iterable

from torch import nn

from onebit.errors import ConfigError, unknown_choice
from onebit.nn.layers import QuantConv1d, QuantConv2d, QuantizerSpec, QuantLinear
from onebit.nn.quantizers import get_quantizer

__all__ = ["binarize"]

_FLOAT_TO_QUANT: dict[type[nn.Module], type[nn.Module]] = {
    nn.Linear: QuantLinear,
    nn.Conv1d: QuantConv1d,
    nn.Conv2d: QuantConv2d,
}
ACTIVATIONS = ("hardtanh", "keep")


def binarize(
    model: nn.Module,
    input_quantizer: QuantizerSpec = "ste_sign",
    weight_quantizer: QuantizerSpec = "ste_sign",
    *,
    pad_value: float = 0.0,
    keep_first: bool = True,
    keep_last: bool = True,
    keep: Iterable[str] = (),
    activation: str = "hardtanh",
) -> nn.Module:
    """Replace ``nn.Linear``/``nn.Conv1d``/``nn.Conv2d`` modules by quantized ones, in place.

    Layers are taken in registration order; the first and last stay float unless
    ``keep_first``/``keep_last`` is False (as in every published BNN), as do the
    qualified names in ``keep``. Converted layers keep their weight and bias
    Parameters (the same objects, so an existing optimizer still holds them).

    A ReLU in front of a sign makes its input constant (+1), so with a ±1 input
    quantizer ``activation="hardtanh"`` (default) replaces ``nn.ReLU``/``nn.ReLU6``
    modules by ``nn.Hardtanh``, the BinaryNet activation; ``"keep"`` leaves them.
    Functional activations (``F.relu`` in a forward) cannot be seen and are left alone.
    Returns ``model``.
    """
    if activation not in ACTIVATIONS:
        raise unknown_choice("activation", activation, ACTIVATIONS)
    candidates = [(name, m) for name, m in model.named_modules() if type(m) in _FLOAT_TO_QUANT]
    if not candidates:
        raise ConfigError(
            "binarize found no nn.Linear, nn.Conv1d or nn.Conv2d layer to convert in "
            f"{type(model).__name__}"
        )
    if any(name == "" for name, _ in candidates):
        raise ConfigError("binarize converts layers inside a model; wrap a single layer in nn.Sequential")
    keep = set(keep)
    unknown = keep - {name for name, _ in candidates}
    if unknown:
        raise ConfigError(
            f"keep names {sorted(unknown)} are not convertible layers of the model; "
            f"valid names: {', '.join(name for name, _ in candidates)}"
        )
    if keep_first:
        keep.add(candidates[0][0])
    if keep_last:
        keep.add(candidates[-1][0])
    # Validate the quantizer specs once, before touching the model.
    get_quantizer(input_quantizer)
    get_quantizer(weight_quantizer)

    for name, layer in candidates:
        if name not in keep:
            _replace(model, name, _quantized_copy(layer, input_quantizer, weight_quantizer, pad_value))

    input_q = get_quantizer(input_quantizer)
    if activation == "hardtanh" and input_q is not None and input_q.signed and input_q.bits == 1:
        for name, m in list(model.named_modules()):
            if type(m) in (nn.ReLU, nn.ReLU6) and name:
                _replace(model, name, nn.Hardtanh())
    return model


def _quantized_copy(
    layer: nn.Module, input_quantizer: QuantizerSpec, weight_quantizer: QuantizerSpec, pad_value: float
) -> nn.Module:
    # Each layer needs its own quantizer module (some carry parameters), so specs that
    # are instances are only valid for a single layer: names are re-instantiated.
    quant = {"input_quantizer": input_quantizer, "weight_quantizer": weight_quantizer}
    if isinstance(layer, nn.Linear):
        new = QuantLinear(
            layer.in_features, layer.out_features, layer.bias is not None,
            device=layer.weight.device, dtype=layer.weight.dtype, **quant,
        )
    else:
        assert isinstance(layer, nn.Conv1d | nn.Conv2d)
        cls = QuantConv1d if isinstance(layer, nn.Conv1d) else QuantConv2d
        new = cls(
            layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride, layer.padding,
            layer.dilation, layer.groups, layer.bias is not None, layer.padding_mode,
            device=layer.weight.device, dtype=layer.weight.dtype,
            pad_value=pad_value if layer.padding_mode == "zeros" else 0.0, **quant,
        )
    new.weight = layer.weight
    new.bias = layer.bias
    new.train(layer.training)
    return new


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name), child, new)
