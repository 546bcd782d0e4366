"""Training recipes: the named, reproducible sets of choices that train a binary network.

A :class:`Recipe` fixes everything about a run but the seed:

- **schedule of work**: epochs, batch size, peak learning rate, optimizer (Adam with the
  latent-weight clip, or Bop for the binary weights with Adam for the rest; weight decay
  never touches binary weights, :func:`onebit.optim.make_optimizer`), learning-rate
  schedule (cosine, linear, constant, step) after ``warmup_epochs`` of linear warm-up;
- **loss**: cross-entropy with label smoothing, BinaryNet's squared hinge, or (``distill``)
  ReActNet's distributional loss against a float teacher, ``(1 − w)·KL(p_t ‖ p_s) +
  w·CE``, plus Real-to-Binary's attention transfer (``attention_weight``);
- **procedure**: one run, or two steps (``two_step="activations"``: binary activations
  with real weights first, as Real-to-Binary and ReActNet do; ``"weights"``: binary
  weights with real activations first), the second step starting from the first's best
  weights with a fresh optimizer; with ``distill`` a float twin teacher is trained first;
- **data and model**: augmentation of the training batches (:mod:`onebit.augment`, by
  the data's shape), BatchNorm momentum, and model arguments (quantizers, Bi-Real
  shortcuts, RPReLU, learned scales) where the model takes them.

:data:`RECIPE_NAMES` are the field's recipes (:func:`named_recipe`): ``binarynet``,
``bireal``, ``reactnet``, ``real2binary``, and ``default``, the tuned recipe of each
(model, data set) pair that ``onebit train`` uses (:func:`recipe_for`); the pairs in
:data:`PRETRAINED` ship weights trained by :func:`train_with_recipe` with their default
recipe and seed 0 (``scripts/train_pretrained.py``), so ``onebit train --model M --data D``
reproduces them bit for bit. docs/training.md has the measurements behind each choice.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from onebit.augment import default_augmentation
from onebit.data import Dataset
from onebit.errors import ConfigError, unknown_choice
from onebit.optim import OPTIMIZERS
from onebit.train import LOSSES, SCHEDULES, EpochRecord, FitResult, fit, set_seed, torch_threads
from onebit.train_state import STATE_FILE

__all__ = [
    "PRETRAINED", "PROCEDURES", "RECIPE_CHOICES", "RECIPE_NAMES", "TWO_STEPS", "Recipe", "RecipeResult",
    "named_recipe", "recipe_for", "train_with_recipe",
]

log = logging.getLogger(__name__)

RECIPE_NAMES = ("default", "binarynet", "bireal", "reactnet", "real2binary")
# The procedures alone, on top of the pair's default recipe (onebit 0.1's --recipe values).
PROCEDURES = ("single", "two-stage", "distill")
RECIPE_CHOICES = RECIPE_NAMES + PROCEDURES
TWO_STEPS = ("activations", "weights")


@dataclass(frozen=True)
class Recipe:
    """Everything that fixes a training run besides the seed (see the module docstring)."""

    name: str = "custom"
    epochs: int = 20
    batch_size: int = 64
    lr: float = 1e-3
    optimizer: str = "adam"
    weight_decay: float = 0.0  # real weights only (never binary latent weights, BatchNorm or scales)
    schedule: str = "cosine"
    warmup_epochs: int = 0
    loss: str = "cross_entropy"
    label_smoothing: float = 0.0
    augment: bool = False  # shifts for images, time warp/shift/noise for sequences, nothing for vectors
    bn_momentum: float | None = None  # None keeps the model's (torch's 0.1)
    two_step: str | None = None  # "activations" or "weights": which is binary in the first step
    distill: bool = False  # train the float twin first and distil it into the binary network
    ce_weight: float = 0.0  # distill: weight of cross-entropy beside the KL term
    attention_weight: float = 0.0  # distill: β of Real-to-Binary's attention transfer
    model_args: dict[str, Any] = field(default_factory=dict)
    threads: int | None = None  # torch CPU threads while training; None keeps torch's setting

    def __post_init__(self) -> None:
        def positive_int(key: str, minimum: int = 1) -> None:
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
                raise ConfigError(f"recipe {key} must be an integer ≥ {minimum}, got {v!r}")

        def number(key: str, low: float, high: float, *, low_open: bool = False, high_open: bool = False) -> None:
            v = getattr(self, key)
            ok = isinstance(v, int | float) and not isinstance(v, bool)
            ok = ok and (v > low if low_open else v >= low) and (v < high if high_open else v <= high)
            if not ok:
                interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
                raise ConfigError(f"recipe {key} must be a number in {interval}, got {v!r}")

        positive_int("epochs")
        positive_int("batch_size")
        positive_int("warmup_epochs", 0)
        number("lr", 0.0, 10.0, low_open=True)
        number("weight_decay", 0.0, 1.0)
        number("label_smoothing", 0.0, 1.0, high_open=True)
        number("ce_weight", 0.0, 1.0)
        number("attention_weight", 0.0, 1e6)
        for key, value, choices in (("optimizer", self.optimizer, OPTIMIZERS), ("schedule", self.schedule, SCHEDULES),
                                    ("loss", self.loss, LOSSES)):
            if value not in choices:
                raise unknown_choice(f"recipe {key}", value, choices)
        if self.two_step is not None and self.two_step not in TWO_STEPS:
            raise unknown_choice("two_step setting", self.two_step, TWO_STEPS)
        if not isinstance(self.augment, bool) or not isinstance(self.distill, bool):
            raise ConfigError(f"recipe augment and distill are true or false, got {self.augment!r}, {self.distill!r}")
        if self.bn_momentum is not None:
            number("bn_momentum", 0.0, 1.0, low_open=True)
        if self.warmup_epochs >= self.stage_epochs()[-1]:
            raise ConfigError(f"warmup_epochs ({self.warmup_epochs}) must be fewer than the epochs of each step")
        if self.two_step is not None and self.epochs < 2:
            raise ConfigError(f"a two-step recipe needs at least 2 epochs (one per step), got {self.epochs}")
        if not self.distill and (self.ce_weight or self.attention_weight):
            raise ConfigError("ce_weight and attention_weight belong to distillation (distill=True)")
        if self.distill and (self.loss != "cross_entropy" or self.label_smoothing):
            raise ConfigError("a distilled recipe's loss is the distributional loss; leave loss and label_smoothing")
        if self.threads is not None and (isinstance(self.threads, bool) or not isinstance(self.threads, int)
                                         or self.threads < 1):
            raise ConfigError(f"threads must be a positive integer or None, got {self.threads!r}")
        if not isinstance(self.model_args, dict):
            raise ConfigError(f"recipe model_args must be a dict, got {type(self.model_args).__name__}")

    @property
    def kind(self) -> str:
        """``single``, ``two-stage``, ``distill`` or ``two-stage+distill``: the procedure, in one word."""
        parts = (["two-stage"] if self.two_step else []) + (["distill"] if self.distill else [])
        return "+".join(parts) or "single"

    def stage_epochs(self) -> tuple[int, ...]:
        """Epochs per step: ``(epochs,)``, or ``(epochs // 2, epochs − epochs // 2)`` for two steps."""
        if self.two_step is None or self.epochs < 2:
            return (self.epochs,)
        return (self.epochs // 2, self.epochs - self.epochs // 2)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Recipe:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise unknown_choice("recipe setting", unknown[0], sorted(known))
        return cls(**values)

    def fit_kwargs(self, sample_shape: tuple[int, ...]) -> dict[str, Any]:
        """The :func:`onebit.train.fit` arguments this recipe sets (not epochs: they depend on the step)."""
        return {
            "batch_size": self.batch_size, "lr": self.lr, "optimizer": self.optimizer,
            "weight_decay": self.weight_decay, "schedule": self.schedule, "warmup_epochs": self.warmup_epochs,
            "loss": self.loss, "label_smoothing": self.label_smoothing,
            "augment": default_augmentation(sample_shape) if self.augment else None,
        }


# --------------------------------------------------------------------------- the recipes

# Float sums on CPU depend on how torch splits them over threads, so a recipe that
# must repeat bit for bit (the shipped weights) fixes its thread count. One thread:
# these models are small, and on a busy 2-core machine two threads run up to 100x
# slower (OpenMP spin-waits for a core; OMP_WAIT_POLICY=PASSIVE avoids that).
_DIGITS = Recipe(name="default", epochs=30, batch_size=64, lr=3e-3, threads=1)
_MNIST1D = Recipe(name="default", epochs=40, batch_size=64, lr=3e-3, threads=1)
_ANY = Recipe(name="default")  # any other (model, data set): 20 epochs, lr 1e-3, torch's threads
# BinaryNet's 4096 units are sized for MNIST and take minutes per epoch on 2 cores;
# 1024 units reach the same accuracy on digits and MNIST-1D in seconds.
_MLP_1024 = {"hidden": 1024}
# A reduced VGG-small (BinaryNet CIFAR-10 layout) that trains on 8x8 digits in seconds.
_SMALL_VGG = {"channels": [32, 64, 128], "hidden": 256}

# ReActNet's blocks: RSign, RPReLU and a real-valued shortcut around every binary conv.
_REACT = {"shortcut": True, "input_quantizer": "rsign", "activation": "rprelu"}

# (model, data set name) -> default recipe; "*" matches any model or data set.
_RECIPES: dict[tuple[str, str], Recipe] = {
    ("*", "digits"): _DIGITS,
    ("*", "mnist1d"): _MNIST1D,
    # Two threads: onebit 0.1's default run, whose shipped weights were trained with two.
    ("binarynet_mlp", "digits"): replace(_DIGITS, model_args=_MLP_1024, threads=2),
    ("binarynet_mlp", "mnist1d"): replace(_MNIST1D, model_args=_MLP_1024),
    ("binarynet_cnn", "digits"): replace(_DIGITS, model_args=_SMALL_VGG),
    # The default run (onebit train): ReActNet's blocks with magnitude-aware weights in a
    # 32-channel binary CNN; single step, no augmentation (1-pixel shifts of 8x8 digits
    # cost accuracy here, as did distillation: docs/training.md).
    ("binary_cnn2d", "digits"): replace(_DIGITS, epochs=60, model_args={
        "channels": 32, **_REACT, "weight_quantizer": "magnitude_aware_sign"}),
    # ReActNet's blocks, MNIST-1D's augmentation, distilled from the float twin.
    ("binary_cnn1d", "mnist1d"): replace(_MNIST1D, epochs=60, augment=True, distill=True, model_args=_REACT),
    # LFC on MNIST-like images (BNN-PYNQ's MNIST network; the 8,000/2,000 split of the MNIST
    # test set here): ReActNet's blocks around its hidden layers, ±2-pixel shifts, 80 epochs
    # (40 reached 97.43 %, distillation lowered it: docs/training.md).
    ("lfc", "*"): Recipe(name="default", epochs=80, batch_size=64, lr=1e-3, augment=True, threads=1,
                         model_args={**_REACT, "weight_quantizer": "magnitude_aware_sign"}),
    ("lfc", "digits"): _DIGITS,
    ("lfc", "mnist1d"): _MNIST1D,
    # Spoken digits (MFCC frames): binary_kws's own ReActNet blocks, 30 epochs.
    ("binary_kws", "*"): Recipe(name="default", epochs=30, batch_size=64, lr=3e-3, threads=1),
    # Text (onebit.text, 2,048 vocabulary columns): 10 epochs; the model's own dropout of 0.3.
    ("binary_text_mlp", "*"): Recipe(name="default", epochs=10, batch_size=64, lr=1e-3, threads=1),
    # Text CNN (token ids, onebit.text.datasets.SEQUENCE_FEATURIZER): lr 3e-3 (tweets, one seed: 81.3 %
    # against 76.9 % at 1e-3, docs/text_sentiment.md), otherwise binary_text_mlp's settings.
    ("binary_text_cnn", "*"): Recipe(name="default", epochs=10, batch_size=64, lr=3e-3, threads=1),
    # TFC on MNIST-1D: ReActNet's blocks and augmentation, +4.1 points over three seeds
    # (docs/training.md); on SFC and on digits the same choices moved nothing beyond the spread.
    ("tfc", "mnist1d"): replace(_MNIST1D, augment=True,
                                model_args={**_REACT, "weight_quantizer": "magnitude_aware_sign"}),
}

# The model arguments of each named recipe; a model takes those its builder has.
_MODEL_CHOICES: dict[str, dict[str, Any]] = {
    "binarynet": {"input_quantizer": "ste_sign", "weight_quantizer": "ste_sign", "shortcut": False,
                  "activation": "hardtanh"},
    "bireal": {"input_quantizer": "approx_sign", "weight_quantizer": "magnitude_aware_sign", "shortcut": True,
               "activation": "none"},
    "reactnet": {"input_quantizer": "rsign", "weight_quantizer": "magnitude_aware_sign", "shortcut": True,
                 "activation": "rprelu"},
    "real2binary": {"input_quantizer": "approx_sign", "weight_quantizer": "magnitude_aware_sign", "shortcut": True,
                    "activation": "rprelu", "scaling": "learned"},
}
# Their training choices, over the pair's epochs, batch size, lr and threads.
_TRAINING_CHOICES: dict[str, dict[str, Any]] = {
    # Courbariaux et al. 2016: squared hinge loss, Adam, a decaying lr, no augmentation.
    "binarynet": {"loss": "squared_hinge", "schedule": "step", "augment": False},
    # Liu et al. 2018: ApproxSign, magnitude-aware weights, a shortcut around every binary layer.
    "bireal": {"schedule": "cosine", "augment": True},
    # Liu et al. 2020: RSign/RPReLU, two steps (binary activations first), distributional loss
    # from a float teacher, Adam with linear decay and no weight decay on binary weights.
    "reactnet": {"schedule": "linear", "augment": True, "two_step": "activations", "distill": True},
    # Martinez et al. 2020: two steps, distillation with attention transfer, learned scales.
    "real2binary": {"schedule": "cosine", "augment": True, "two_step": "activations", "distill": True,
                    "ce_weight": 0.5, "attention_weight": 1.0},
}

# The pairs whose weights ship in onebit/models/weights/, in the order pretrained=True
# picks a model's data set (its first pair here).
PRETRAINED: tuple[tuple[str, str], ...] = (
    ("binary_cnn2d", "digits"),
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
    """The default recipe of ``model`` trained on ``data``: the most specific entry of the table."""
    for key in ((model, data), (model, "*"), ("*", data)):
        if key in _RECIPES:
            return _RECIPES[key]
    return _ANY


# The model `onebit train` picks for a built-in data set whose inputs the default model does not take.
_DEFAULT_MODELS = {"fsdd": "binary_kws", "espeak-digits": "binary_kws"}


def default_model(data: str | os.PathLike, fallback: str) -> str:
    """The model ``onebit train`` trains on ``data`` when none is named: ``binary_kws`` for the
    spoken digits, ``binary_text_mlp`` for a folder of text
    (:func:`onebit.text.datasets.text_folder_kind`), else ``fallback``."""
    from onebit.data import list_datasets

    if isinstance(data, str) and data in list_datasets():
        return _DEFAULT_MODELS.get(data, fallback)
    from onebit.text.datasets import text_folder_kind

    return "binary_text_mlp" if text_folder_kind(Path(data).expanduser()) is not None else fallback


def model_parameters(model: str) -> set[str]:
    """The keyword arguments the registered ``model``'s builder takes."""
    from onebit.models import model_info

    return set(inspect.signature(model_info(model).builder).parameters)


def named_recipe(name: str, model: str, data: str) -> Recipe:
    """Recipe ``name`` (:data:`RECIPE_CHOICES`) for ``model`` on ``data``.

    A named recipe keeps the pair's epochs, batch size, lr, threads and size arguments
    (``hidden``, ``channels``, ...) and sets its own training choices and the model
    arguments the model takes (a model without, say, a ``shortcut`` argument trains
    without one; :func:`inapplicable_choices` lists what was left out). The
    procedures ``single``, ``two-stage`` (weights first) and ``distill`` change only the
    procedure of the pair's default recipe.
    """
    if name not in RECIPE_CHOICES:
        raise unknown_choice("recipe", name, RECIPE_CHOICES)
    base = recipe_for(model, data)
    if name == "default":
        return base
    if name in PROCEDURES:
        procedure = {"single": {}, "two-stage": {"two_step": "weights"}, "distill": {"distill": True}}[name]
        reset = {"two_step": None, "distill": False, "ce_weight": 0.0, "attention_weight": 0.0}
        if name == "distill":
            reset.update(loss="cross_entropy", label_smoothing=0.0)
        return replace(base, name=name, **{**reset, **procedure})
    size = {k: v for k, v in base.model_args.items() if k not in _ALL_CHOICE_KEYS}
    chosen = _applicable(name, model)
    plain = Recipe()
    training = {k: getattr(plain, k) for k in ("optimizer", "weight_decay", "schedule", "warmup_epochs", "loss",
                                                "label_smoothing", "augment", "bn_momentum", "two_step", "distill",
                                                "ce_weight", "attention_weight")}
    return replace(base, name=name, model_args={**size, **chosen}, **{**training, **_TRAINING_CHOICES[name]})


_ALL_CHOICE_KEYS = {k for choices in _MODEL_CHOICES.values() for k in choices}
# The models that build input_quantizer="rsign" as one RSign per layer (it needs the channel count).
_PER_LAYER_RSIGN = {"binarynet_mlp", "binarynet_cnn", "tfc", "sfc", "lfc", "binary_cnn1d", "binary_cnn2d", "binary_kws"}


def _applicable(name: str, model: str) -> dict[str, Any]:
    takes = model_parameters(model)
    return {k: v for k, v in _MODEL_CHOICES[name].items()
            if k in takes and not (v == "rsign" and model not in _PER_LAYER_RSIGN)}


def inapplicable_choices(name: str, model: str) -> list[str]:
    """The model arguments of named recipe ``name`` that ``model`` does not take (or, for
    ``input_quantizer="rsign"``, cannot build per layer)."""
    if name not in _MODEL_CHOICES:
        return []
    return sorted(set(_MODEL_CHOICES[name]) - set(_applicable(name, model)))


# --------------------------------------------------------------------------- training


@dataclass
class RecipeResult:
    """What a recipe returns: the trained model, its last step's fit, and the earlier stages."""

    model: nn.Module
    result: FitResult
    stages: dict[str, FitResult] = field(default_factory=dict)  # "teacher", "stage1", when trained
    teacher: nn.Module | None = None


def _build(name: str, data: Dataset, model_args: dict[str, Any], bn_momentum: float | None,
           **override: Any) -> nn.Module:
    from onebit.models import create_model

    model = create_model(name, num_classes=data.num_classes, in_shape=data.in_shape, **{**model_args, **override})
    if bn_momentum is not None:
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.momentum = bn_momentum
    return model


def _needs_quantizer_args(name: str, what: str) -> None:
    if not {"input_quantizer", "weight_quantizer"} <= model_parameters(name):
        raise ConfigError(
            f"{what} switches quantizers off, but model {name!r} has no input_quantizer/weight_quantizer "
            f"arguments; use a single-step recipe without distillation"
        )


def _sub(out_dir: str | os.PathLike | None, name: str) -> Path | None:
    return None if out_dir is None else Path(out_dir) / name


def finished_stage(out_dir: Path) -> FitResult | None:
    """The result of a finished ``fit`` in ``out_dir`` (its final metrics.json and best checkpoint), or None."""
    metrics_path, checkpoint = out_dir / "metrics.json", out_dir / "checkpoint.safetensors"
    if not (metrics_path.is_file() and checkpoint.is_file()):
        return None
    metrics = json.loads(metrics_path.read_text())
    if not metrics.get("finished"):
        return None
    return FitResult(
        history=[EpochRecord(**r) for r in metrics["history"]], best_epoch=metrics["best_epoch"],
        best_val_accuracy=metrics["best_val_accuracy"], test_accuracy=metrics.get("test_accuracy"),
        test_loss=metrics.get("test_loss"), out_dir=out_dir, metrics=metrics,
    )


def _fit_stage(model: nn.Module, data: Dataset, out: Path | None, resume: bool, **kwargs: Any) -> FitResult:
    """``fit`` into ``out``; with ``resume``, a finished stage is reloaded and an interrupted one continued."""
    if resume and out is not None:
        done = finished_stage(out)
        if done is not None:
            from safetensors.torch import load_file

            model.load_state_dict(load_file(str(out / "checkpoint.safetensors")))
            model.eval()
            log.info("%s: finished earlier (best epoch %d); reloaded", out, done.best_epoch)
            return done
        if (out / STATE_FILE).is_file():
            return fit(model, data, out_dir=out, resume=True, **kwargs)
    return fit(model, data, out_dir=out, **kwargs)


def train_with_recipe(
    name: str, data: Dataset, recipe: Recipe, *, seed: int = 0, model_args: dict[str, Any] | None = None,
    teacher: nn.Module | str | os.PathLike | None = None, out_dir: str | os.PathLike | None = None,
    resume: bool = False, **fit_kwargs: Any,
) -> RecipeResult:
    """Train ``name`` on ``data`` the way ``recipe`` says (``onebit train`` and the shipped weights use this).

    Steps and their run folders: with ``distill`` and no ``teacher``, the float twin (both
    quantizers None, the same model arguments) trains for ``epochs`` into
    ``out_dir/teacher``; with ``two_step``, step 1 trains ``epochs // 2`` epochs into
    ``out_dir/stage1`` with real weights (``"activations"``) or real activations
    (``"weights"``); the last step trains the binary network into ``out_dir``, from step
    1's best weights (BatchNorm statistics included) when there is one. ``teacher``
    replaces the float twin: a module or a checkpoint path.

    ``resume=True`` continues an interrupted run in ``out_dir``: finished steps are
    reloaded from their folders, the interrupted one continues from its last epoch.
    ``model_args`` add to (and override) the recipe's; ``fit_kwargs`` (``val_fraction``,
    ``progress``, ``verbose``, ``info``) go to every ``fit``. torch runs ``recipe.threads``
    CPU threads meanwhile (restored afterwards).
    """
    with torch_threads(recipe.threads):
        return _train(name, data, recipe, seed, model_args, teacher, out_dir, resume, fit_kwargs)


def _train(
    name: str, data: Dataset, recipe: Recipe, seed: int, model_args: dict[str, Any] | None,
    teacher: nn.Module | str | os.PathLike | None, out_dir: str | os.PathLike | None, resume: bool,
    fit_kwargs: dict[str, Any],
) -> RecipeResult:
    clash = sorted(set(fit_kwargs) & set(recipe.fit_kwargs(data.in_shape)) | set(fit_kwargs) & {"epochs", "seed"})
    if clash:
        raise ConfigError(f"{', '.join(clash)} are the recipe's settings: change the recipe (dataclasses.replace)")
    if resume and out_dir is None:
        raise ConfigError("resume=True needs the out_dir of the run to continue")
    args = {**recipe.model_args, **(model_args or {})}
    common = {**recipe.fit_kwargs(data.in_shape), "seed": seed, **fit_kwargs}
    stages: dict[str, FitResult] = {}
    if teacher is not None and not recipe.distill:
        raise ConfigError(f"a teacher is only used by a distilled recipe, not by {recipe.name!r} ({recipe.kind})")
    if recipe.two_step is not None:
        _needs_quantizer_args(name, "a two-step recipe")
    if recipe.distill and teacher is None:
        _needs_quantizer_args(name, "distillation from the float twin")
        set_seed(seed)
        teacher = _build(name, data, args, recipe.bn_momentum, input_quantizer=None, weight_quantizer=None)
        stages["teacher"] = _fit_stage(teacher, data, _sub(out_dir, "teacher"), resume, epochs=recipe.epochs,
                                       **common)
    elif isinstance(teacher, str | os.PathLike):
        from onebit.checkpoint import load_checkpoint

        teacher, meta = load_checkpoint(teacher)
        recorded = tuple(meta["model"]["args"].get("in_shape", ()))
        if recorded and recorded != tuple(data.in_shape):
            raise ConfigError(
                f"the teacher takes inputs of shape {recorded}, data set {data.name!r} has {data.in_shape}"
            )
    elif teacher is not None and not isinstance(teacher, nn.Module):
        raise ConfigError(f"teacher must be a module, a checkpoint path or None, got {type(teacher).__name__}")
    distill = {} if teacher is None else {
        "teacher": teacher, "ce_weight": recipe.ce_weight, "attention_weight": recipe.attention_weight,
        "loss": "cross_entropy", "label_smoothing": 0.0,
    }
    set_seed(seed)
    epochs = recipe.stage_epochs()
    start_from: dict[str, torch.Tensor] | None = None
    if recipe.two_step is not None:
        real = {"weight_quantizer": None} if recipe.two_step == "activations" else {"input_quantizer": None}
        step1 = _build(name, data, args, recipe.bn_momentum, **real)
        stages["stage1"] = _fit_stage(step1, data, _sub(out_dir, "stage1"), resume, epochs=epochs[0],
                                      **{**common, **distill})
        start_from = step1.state_dict()
        set_seed(seed)
    model = _build(name, data, args, recipe.bn_momentum)
    if start_from is not None:
        model.load_state_dict(start_from)
    result = _fit_stage(model, data, None if out_dir is None else Path(out_dir), resume, epochs=epochs[-1],
                        **{**common, **distill})
    return RecipeResult(model, result, stages, teacher if isinstance(teacher, nn.Module) else None)
