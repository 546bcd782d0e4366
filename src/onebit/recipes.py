"""Training recipes: how a (model, data set) pair is trained, and the multi-stage procedures.

A :class:`Recipe` holds the epochs, batch size, learning rate, model arguments and the
procedure (``kind``):

- ``"single"``: one run of :func:`onebit.train.fit` with binary weights and activations;
- ``"two-stage"`` (Martinez et al. 2020, ReActNet): stage 1 trains binary weights with
  float activations (``input_quantizer=None``) for ``epochs // 2`` epochs; stage 2
  trains the fully binary network, initialised from stage 1's weights, for the rest;
- ``"distill"``: a float teacher (the float twin of the same architecture, trained
  first for ``epochs`` epochs, or a given checkpoint) guides the binary student through
  :func:`onebit.train.distillation_loss`, ``KL(softmax(teacher) ‖ softmax(student))``
  mixed with ``ce_weight`` × cross-entropy.

``recipe_for(model, data)`` gives the recipe ``onebit train`` uses; the pairs in
:data:`PRETRAINED` are the ones whose weights ship with onebit, trained by
:func:`train_with_recipe` with exactly that recipe and seed 0 (``scripts/train_pretrained.py``),
so ``onebit train --model M --data D`` reproduces them.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from onebit.data import Dataset
from onebit.errors import ConfigError, unknown_choice
from onebit.train import FitResult, fit, set_seed

__all__ = [
    "PRETRAINED", "RECIPE_KINDS", "Recipe", "RecipeResult", "recipe_for", "train_distilled", "train_single",
    "train_two_stage", "train_with_recipe",
]

RECIPE_KINDS = ("single", "two-stage", "distill")


@dataclass(frozen=True)
class Recipe:
    """Everything that fixes a training run besides the seed and the optimizer settings."""

    epochs: int = 20
    batch_size: int = 64
    lr: float = 1e-3
    kind: str = "single"
    model_args: dict[str, Any] = field(default_factory=dict)
    ce_weight: float = 0.0  # distill only: weight of cross-entropy beside the KL term
    threads: int | None = None  # torch CPU threads while training; None keeps torch's setting

    def __post_init__(self) -> None:
        if self.kind not in RECIPE_KINDS:
            raise unknown_choice("recipe", self.kind, RECIPE_KINDS)
        if self.kind == "two-stage" and self.epochs < 2:
            raise ConfigError(f"the two-stage recipe needs at least 2 epochs (one per stage), got {self.epochs}")
        if self.threads is not None and (isinstance(self.threads, bool) or not isinstance(self.threads, int)
                                         or self.threads < 1):
            raise ConfigError(f"threads must be a positive integer or None, got {self.threads!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


DEFAULT = Recipe()

# Float sums on CPU depend on how torch splits them over threads, so a recipe that
# must repeat bit for bit (the shipped weights) fixes its thread count. One thread:
# these models are small, and on a busy 2-core machine two threads run up to 100x
# slower (OpenMP spin-waits for a core; OMP_WAIT_POLICY=PASSIVE avoids that). The
# default run, binarynet_mlp on digits, keeps the 2 threads its README numbers were
# measured with.
_DIGITS = Recipe(epochs=30, batch_size=64, lr=3e-3, threads=1)
_MNIST1D = Recipe(epochs=40, batch_size=64, lr=3e-3, threads=1)
# BinaryNet's 4096 units are sized for MNIST and take minutes per epoch on 2 cores;
# 1024 units reach the same accuracy on digits and MNIST-1D in seconds.
_MLP_1024 = {"hidden": 1024}
# A reduced VGG-small (BinaryNet CIFAR-10 layout) that trains on 8x8 digits in seconds.
_SMALL_VGG = {"channels": [32, 64, 128], "hidden": 256}

# (model, data set name) -> recipe; "*" matches any model or data set.
_RECIPES: dict[tuple[str, str], Recipe] = {
    ("*", "digits"): _DIGITS,
    ("*", "mnist1d"): _MNIST1D,
    ("binarynet_mlp", "digits"): replace(_DIGITS, model_args=_MLP_1024, threads=2),
    ("binarynet_mlp", "mnist1d"): replace(_MNIST1D, model_args=_MLP_1024),
    ("binarynet_cnn", "digits"): replace(_DIGITS, model_args=_SMALL_VGG),
}

# The pairs whose weights ship in onebit/models/weights/, in the order pretrained=True
# picks a model's data set (its first pair here).
PRETRAINED: tuple[tuple[str, str], ...] = (
    ("binarynet_mlp", "digits"),
    ("binarynet_mlp", "mnist1d"),
    ("tfc", "digits"),
    ("tfc", "mnist1d"),
    ("sfc", "digits"),
    ("sfc", "mnist1d"),
    ("lfc", "digits"),
    ("lfc", "mnist1d"),
    ("binarynet_cnn", "digits"),
    ("binary_cnn1d", "mnist1d"),
)


def recipe_for(model: str, data: str) -> Recipe:
    """The most specific recipe for ``model`` trained on ``data``."""
    for key in ((model, data), (model, "*"), ("*", data)):
        if key in _RECIPES:
            return _RECIPES[key]
    return DEFAULT


@dataclass
class RecipeResult:
    """What a recipe returns: the trained model, its last stage's fit, and the earlier stages."""

    model: nn.Module
    result: FitResult
    stages: dict[str, FitResult] = field(default_factory=dict)  # "stage1" or "teacher", when trained
    teacher: nn.Module | None = None


def _build(name: str, data: Dataset, model_args: dict[str, Any], **override: Any) -> nn.Module:
    from onebit.models import create_model

    return create_model(name, num_classes=data.num_classes, in_shape=data.in_shape, **{**model_args, **override})


def _needs_quantizer_args(name: str, recipe: str) -> None:
    import inspect

    from onebit.models import model_info

    params = inspect.signature(model_info(name).builder).parameters
    if not {"input_quantizer", "weight_quantizer"} <= set(params):
        raise ConfigError(
            f"the {recipe} recipe switches quantizers off, but model {name!r} has no "
            f"input_quantizer/weight_quantizer arguments; use --recipe single"
        )


def _sub(out_dir: str | os.PathLike | None, name: str) -> Path | None:
    return None if out_dir is None else Path(out_dir) / name


def train_single(
    name: str, data: Dataset, *, epochs: int, model_args: dict[str, Any] | None = None, seed: int = 0,
    **fit_kwargs: Any,
) -> RecipeResult:
    """One ``fit`` of the binary model; the seed fixes the initial weights too."""
    set_seed(seed)
    model = _build(name, data, model_args or {})
    return RecipeResult(model, fit(model, data, epochs=epochs, seed=seed, **fit_kwargs))


def train_two_stage(
    name: str, data: Dataset, *, epochs: int, model_args: dict[str, Any] | None = None, seed: int = 0,
    out_dir: str | os.PathLike | None = None, **fit_kwargs: Any,
) -> RecipeResult:
    """Stage 1: binary weights, float activations, ``epochs // 2`` epochs (run folder ``out_dir/stage1``).

    Stage 2: the fully binary model starts from stage 1's best weights (same parameter
    names: only the activation quantizers differ) and trains ``epochs − epochs // 2``
    epochs with a fresh optimizer and schedule, into ``out_dir``.
    """
    _needs_quantizer_args(name, "two-stage")
    if epochs < 2:
        raise ConfigError(f"the two-stage recipe needs at least 2 epochs (one per stage), got {epochs}")
    args = model_args or {}
    first = epochs // 2
    set_seed(seed)
    stage1 = _build(name, data, args, input_quantizer=None)
    r1 = fit(stage1, data, epochs=first, seed=seed, out_dir=_sub(out_dir, "stage1"), **fit_kwargs)
    model = _build(name, data, args)
    model.load_state_dict(stage1.state_dict())
    r2 = fit(model, data, epochs=epochs - first, seed=seed, out_dir=out_dir, **fit_kwargs)
    return RecipeResult(model, r2, {"stage1": r1})


def train_distilled(
    name: str, data: Dataset, *, epochs: int, model_args: dict[str, Any] | None = None, seed: int = 0,
    teacher: nn.Module | str | os.PathLike | None = None, ce_weight: float = 0.0,
    out_dir: str | os.PathLike | None = None, **fit_kwargs: Any,
) -> RecipeResult:
    """Distil a float teacher into the binary model.

    ``teacher`` is a module, a checkpoint path (:func:`onebit.checkpoint.load_checkpoint`),
    or None: then the float twin of the same architecture (both quantizers None) is
    trained first for ``epochs`` epochs into ``out_dir/teacher``.
    """
    args = model_args or {}
    stages: dict[str, FitResult] = {}
    if teacher is None:
        _needs_quantizer_args(name, "distill")
        set_seed(seed)
        teacher = _build(name, data, args, input_quantizer=None, weight_quantizer=None)
        stages["teacher"] = fit(teacher, data, epochs=epochs, seed=seed, out_dir=_sub(out_dir, "teacher"), **fit_kwargs)
    elif isinstance(teacher, str | os.PathLike):
        from onebit.checkpoint import load_checkpoint

        teacher, meta = load_checkpoint(teacher)
        recorded = tuple(meta["model"]["args"].get("in_shape", ()))
        if recorded and recorded != tuple(data.in_shape):
            raise ConfigError(
                f"the teacher takes inputs of shape {recorded}, data set {data.name!r} has {data.in_shape}"
            )
    elif not isinstance(teacher, nn.Module):
        raise ConfigError(f"teacher must be a module, a checkpoint path or None, got {type(teacher).__name__}")
    set_seed(seed)
    student = _build(name, data, args)
    result = fit(student, data, epochs=epochs, seed=seed, out_dir=out_dir, teacher=teacher, ce_weight=ce_weight,
                 **fit_kwargs)
    return RecipeResult(student, result, stages, teacher)


def train_with_recipe(
    name: str, data: Dataset, recipe: Recipe, *, seed: int = 0, model_args: dict[str, Any] | None = None,
    teacher: nn.Module | str | os.PathLike | None = None, **fit_kwargs: Any,
) -> RecipeResult:
    """Train ``name`` on ``data`` the way ``recipe`` says (``onebit train`` and the shipped weights use this).

    ``model_args`` add to (and override) the recipe's; ``fit_kwargs`` go to every ``fit``.
    torch runs ``recipe.threads`` CPU threads meanwhile (restored afterwards).
    """
    previous = torch.get_num_threads()
    if recipe.threads is not None:
        torch.set_num_threads(recipe.threads)
    try:
        return _train(name, data, recipe, seed, model_args, teacher, fit_kwargs)
    finally:
        torch.set_num_threads(previous)


def _train(
    name: str, data: Dataset, recipe: Recipe, seed: int, model_args: dict[str, Any] | None,
    teacher: nn.Module | str | os.PathLike | None, fit_kwargs: dict[str, Any],
) -> RecipeResult:
    args = {**recipe.model_args, **(model_args or {})}
    common = dict(epochs=recipe.epochs, batch_size=recipe.batch_size, lr=recipe.lr, model_args=args, seed=seed)
    if teacher is not None and recipe.kind != "distill":
        raise ConfigError(f"a teacher is only used by the distill recipe, not by {recipe.kind!r}")
    if recipe.kind == "two-stage":
        return train_two_stage(name, data, **common, **fit_kwargs)
    if recipe.kind == "distill":
        return train_distilled(name, data, **common, teacher=teacher, ce_weight=recipe.ce_weight, **fit_kwargs)
    if recipe.ce_weight != 0.0:
        raise ConfigError("ce_weight belongs to the distill recipe")
    return train_single(name, data, **common, **fit_kwargs)
