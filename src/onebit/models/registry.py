"""The model registry: builders registered by name, created with the data's shape.

``create_model(name, num_classes=10, in_shape=(1, 28, 28), **kwargs)`` calls the
builder and records ``{"name", "args"}`` on the model as ``model.onebit_config``, so a
checkpoint can rebuild the model from the file alone. Every argument must therefore
be JSON-serializable (numbers, strings, None, lists). ``pretrained=True`` or
``pretrained="<data set>"`` loads weights shipped with onebit
(:mod:`onebit.models.pretrained`).
"""

from __future__ import annotations

import fnmatch
import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from onebit.errors import ConfigError, unknown_choice

__all__ = ["ModelInfo", "create_model", "list_models", "model_info", "register_model"]


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about a model: its builder and where it comes from."""

    name: str
    builder: Callable[..., nn.Module]
    family: str
    paper: str
    description: str


_REGISTRY: dict[str, ModelInfo] = {}


def register_model(*, family: str, paper: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: register a builder ``fn(num_classes, in_shape, **kwargs)`` under its name."""

    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if fn.__name__ in _REGISTRY:
            raise ConfigError(f"model {fn.__name__!r} is already registered")
        doc = inspect.getdoc(fn) or ""
        _REGISTRY[fn.__name__] = ModelInfo(fn.__name__, fn, family, paper, doc.split("\n")[0])
        return fn

    return wrap


def list_models(pattern: str | None = None) -> list[str]:
    """Registered model names, sorted; ``pattern`` filters with shell wildcards (``"*fc"``)."""
    names = sorted(_REGISTRY)
    return names if pattern is None else fnmatch.filter(names, pattern)


def model_info(name: str) -> ModelInfo:
    if name not in _REGISTRY:
        raise unknown_choice("model", name, _REGISTRY)
    return _REGISTRY[name]


def create_model(
    name: str,
    *,
    num_classes: int | None = None,
    in_shape: tuple[int, ...] | list[int] | None = None,
    pretrained: bool | str = False,
    **kwargs: Any,
) -> nn.Module:
    """Build a registered model for inputs of shape ``in_shape`` (no batch axis).

    ``num_classes`` defaults to 10 and ``in_shape`` to ``(1, 28, 28)``. With
    ``pretrained=True`` (the model's first shipped data set) or ``pretrained="mnist1d"``
    (a named one) the model comes with shipped weights, in eval mode; the weights fix
    ``num_classes``, ``in_shape`` and the model arguments, and a different explicit
    value is a :class:`ConfigError` (see :func:`onebit.models.pretrained.load_pretrained`).
    """
    info = model_info(name)
    if pretrained is not False:
        from onebit.models.pretrained import load_pretrained

        return load_pretrained(name, pretrained, num_classes=num_classes, in_shape=in_shape, **kwargs)
    num_classes = 10 if num_classes is None else num_classes
    in_shape = (1, 28, 28) if in_shape is None else in_shape
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 2:
        raise ConfigError(f"num_classes must be an integer ≥ 2, got {num_classes!r}")
    if not isinstance(in_shape, tuple | list):
        raise ConfigError(f"in_shape must be a tuple of positive integers, got {in_shape!r}")
    in_shape = tuple(in_shape)
    if not in_shape or not all(isinstance(d, int) and d > 0 for d in in_shape):
        raise ConfigError(f"in_shape must be a tuple of positive integers, got {in_shape!r}")
    params = inspect.signature(info.builder).parameters
    unknown = set(kwargs) - set(params)
    if unknown:
        valid = [p for p in params if p not in ("num_classes", "in_shape")]
        raise ConfigError(
            f"unknown argument(s) {sorted(unknown)} for model {name!r}; valid: {', '.join(valid)}"
        )
    args = {"num_classes": num_classes, "in_shape": list(in_shape), **kwargs}
    try:
        json.dumps(args)
    except TypeError as exc:
        raise ConfigError(
            f"model arguments must be JSON values (numbers, strings, None, lists) so checkpoints "
            f"can record them: {exc}"
        ) from None
    model = info.builder(num_classes=num_classes, in_shape=in_shape, **kwargs)
    model.onebit_config = {"name": name, "args": args}
    return model
