"""The model registry: builders registered by name, each with its native input and classes.

Every model records the input shape and class count of the network its paper
published (``ModelInfo.in_shape``, ``ModelInfo.num_classes``): ``create_model(name)``
with no arguments builds that network, and ``onebit summary``/``onebit bench`` use it
unless told otherwise. ``create_model(name, num_classes=..., in_shape=...)`` sizes it for
other data. Where a paper or its reference code gives a parameter count,
``ModelInfo.params`` holds it (BatchNorm as four vectors, the Keras convention) and the
tests check the built network against it.

``create_model`` calls the builder and records ``{"name", "args"}`` on the model as
``model.onebit_config``, so a checkpoint can rebuild the model from the file alone. Every argument must therefore
be JSON-serializable (numbers, strings, None, lists). ``pretrained=True`` or
``pretrained="<data set>"`` loads weights shipped with onebit
(:mod:`onebit.models.pretrained`).
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from onebit.errors import ConfigError, unknown_choice

__all__ = ["IMAGENET", "ModelInfo", "check_model_args", "create_model", "list_models", "model_info", "register_model"]


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about a model: its builder, its native size and where it comes from.

    ``in_shape`` (no batch axis) and ``num_classes`` are those of the published network;
    ``params`` is its published parameter count at that size (``None`` where there is
    none) and ``params_source`` says where the figure comes from.
    """

    name: str
    builder: Callable[..., nn.Module]
    family: str
    paper: str
    description: str
    in_shape: tuple[int, ...]
    num_classes: int
    params: int | None = None
    params_source: str | None = None


_REGISTRY: dict[str, ModelInfo] = {}

IMAGENET = (3, 224, 224)  # the native input of the ImageNet families


def register_model(
    *, family: str, paper: str, in_shape: tuple[int, ...], num_classes: int,
    params: int | None = None, params_source: str | None = None,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: register a builder ``fn(num_classes, in_shape, **kwargs)`` under its name.

    ``in_shape`` and ``num_classes`` are the published network's (what ``create_model(name)``
    builds); ``params`` is its published parameter count, if any, from ``params_source``.
    """
    if (params is None) != (params_source is None):
        raise ConfigError("register_model: give params and params_source together")

    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if fn.__name__ in _REGISTRY:
            raise ConfigError(f"model {fn.__name__!r} is already registered")
        doc = inspect.getdoc(fn) or ""
        _REGISTRY[fn.__name__] = ModelInfo(
            fn.__name__, fn, family, paper, doc.split("\n")[0], tuple(in_shape), num_classes, params, params_source,
        )
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


def check_model_args(name: str, kwargs: dict[str, Any]) -> None:
    """Raise :class:`ConfigError` unless ``name`` is registered and its builder takes every key of ``kwargs``.

    Cheap (no model is built), so a command line can check its ``-M`` arguments before
    loading any data.
    """
    params = inspect.signature(model_info(name).builder).parameters
    unknown = sorted(set(kwargs) - set(params))
    if unknown:
        valid = [p for p in params if p not in ("num_classes", "in_shape")]
        close = [difflib.get_close_matches(u, valid, n=1, cutoff=0.75) for u in unknown]
        hint = "".join(f" (did you mean {c[0]!r} for {u!r}?)" for u, c in zip(unknown, close) if c)
        raise ConfigError(f"unknown argument(s) {unknown} for model {name!r}{hint}; valid: {', '.join(valid)}")


def create_model(
    name: str,
    *,
    num_classes: int | None = None,
    in_shape: tuple[int, ...] | list[int] | None = None,
    pretrained: bool | str = False,
    **kwargs: Any,
) -> nn.Module:
    """Build a registered model for inputs of shape ``in_shape`` (no batch axis).

    ``num_classes`` and ``in_shape`` default to the published network's
    (:attr:`ModelInfo.num_classes`, :attr:`ModelInfo.in_shape`). With
    ``pretrained=True`` (the model's first shipped data set) or ``pretrained="mnist1d"``
    (a named one) the model comes with shipped weights, in eval mode; the weights fix
    ``num_classes``, ``in_shape`` and the model arguments, and a different explicit
    value is a :class:`ConfigError` (see :func:`onebit.models.pretrained.load_pretrained`).
    """
    info = model_info(name)
    if pretrained is not False:
        from onebit.models.pretrained import load_pretrained

        return load_pretrained(name, pretrained, num_classes=num_classes, in_shape=in_shape, **kwargs)
    num_classes = info.num_classes if num_classes is None else num_classes
    in_shape = info.in_shape if in_shape is None else in_shape
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 2:
        raise ConfigError(f"num_classes must be an integer ≥ 2, got {num_classes!r}")
    if not isinstance(in_shape, tuple | list):
        raise ConfigError(f"in_shape must be a tuple of positive integers, got {in_shape!r}")
    in_shape = tuple(in_shape)
    if not in_shape or not all(isinstance(d, int) and d > 0 for d in in_shape):
        raise ConfigError(f"in_shape must be a tuple of positive integers, got {in_shape!r}")
    check_model_args(name, kwargs)
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
