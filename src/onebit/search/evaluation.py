"""Fitness of a candidate: validation accuracy after a brief training (the proxy), and the full retraining.

Shen et al. (2019) score a genome by the accuracy of its network after a short training
run; the genome that wins is then trained from scratch with the full schedule and tested
once. Here:

- :class:`ProxyTraining` fixes the short run: ``epochs`` (the proxy epochs), batch size,
  learning rate, optimizer, schedule, the validation share and the torch thread count.
- :class:`ProxyFitness` is the fitness function: build the genome's model, train it with
  :func:`onebit.train.fit` on the training rows, return its best accuracy on the
  held-out **validation** rows. It never sees the test split (it holds no test rows).
- Each candidate trains with its own seed, :func:`candidate_seed` (a hash of the search
  seed and the genome), so its fitness is the same whichever process, backend or order
  evaluates it, and a genome met twice need not be trained twice.
- :func:`train_candidate` is the full retraining: ``fit`` on the whole data set with a
  validation split, tested once at the end, exported to ``model.onebit`` and scored by
  the runtime.

torch runs ``threads`` CPU threads during a training (restored afterwards): float sums
depend on the thread count, so the count is part of what makes a fitness reproducible.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from onebit.errors import ConfigError
from onebit.search.space import SearchSpace

__all__ = ["ProxyFitness", "ProxyTraining", "TrainedCandidate", "candidate_seed", "derive_seed", "train_candidate"]


def derive_seed(seed: int, *parts: Any) -> int:
    """A 63-bit seed from ``seed`` and JSON-serializable ``parts``: the first 8 bytes of
    SHA-256 of ``json.dumps([seed, *parts])``. The same on every machine and process."""
    digest = hashlib.sha256(json.dumps([seed, *parts]).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def candidate_seed(seed: int, genome: Sequence[float]) -> int:
    """The training seed of ``genome`` in a search seeded with ``seed``."""
    return derive_seed(seed, "candidate", [float(r) for r in genome])


@dataclass(frozen=True)
class ProxyTraining:
    """The short training that scores a candidate (and, with ``epochs`` raised, the full one)."""

    epochs: int = 3
    batch_size: int = 64
    lr: float = 3e-3
    optimizer: str = "adam"
    schedule: str = "cosine"
    val_fraction: float = 0.1
    threads: int = 1

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "threads"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if not (isinstance(self.lr, int | float) and self.lr > 0):
            raise ConfigError(f"lr must be a positive number, got {self.lr!r}")
        if not 0 < self.val_fraction < 1:
            raise ConfigError(f"val_fraction must lie strictly between 0 and 1, got {self.val_fraction!r}")

    @classmethod
    def for_data(cls, model: str, data: str, epochs: int, **overrides: Any) -> ProxyTraining:
        """The model/data recipe's batch size, learning rate and threads (:func:`onebit.recipes.recipe_for`),
        with ``epochs`` proxy epochs."""
        from onebit.recipes import recipe_for

        recipe = recipe_for(model, data)
        base = {"epochs": epochs, "batch_size": recipe.batch_size, "lr": recipe.lr, "threads": recipe.threads or 1}
        return cls(**{**base, **overrides})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@contextmanager
def _training_context(threads: int) -> Iterator[None]:
    """``threads`` torch threads, and the per-epoch lines of ``onebit.train`` held back (a proxy run is
    one progress line of the search, not forty)."""
    from onebit.train import torch_threads

    train_log = logging.getLogger("onebit.train")
    level = train_log.level
    train_log.setLevel(logging.WARNING)
    try:
        with torch_threads(threads):
            yield
    finally:
        train_log.setLevel(level)


class ProxyFitness:
    """``fitness(genome, seed)``: validation accuracy of ``genome``'s model after ``training.epochs`` epochs.

    Holds the training rows and the validation rows only (split once, with the search
    seed, from the data set's training part: :meth:`onebit.data.Dataset.split_validation`).
    Picklable: the process pool and Ray ship it once to each worker.
    """

    def __init__(self, space: SearchSpace, data: Any, training: ProxyTraining, *, split_seed: int = 0) -> None:
        from onebit.data import Dataset

        if not isinstance(data, Dataset):
            raise ConfigError(f"data must be a onebit.data.Dataset, got {type(data).__name__}")
        if space.in_shape is not None and tuple(space.in_shape) != tuple(data.in_shape):
            raise ConfigError(f"the search space is sized for inputs {tuple(space.in_shape)}, data set "
                              f"{data.name!r} has {tuple(data.in_shape)}")
        train, (x_val, y_val) = data.split_validation(training.val_fraction, seed=split_seed)
        self.space, self.training = space, training
        self.train = (np.ascontiguousarray(train.x_train), np.ascontiguousarray(train.y_train))
        self.val = (np.ascontiguousarray(x_val), np.ascontiguousarray(y_val))

    def __call__(self, genome: Sequence[float], seed: int) -> float:
        from onebit.train import fit, set_seed

        with _training_context(self.training.threads):
            set_seed(seed)
            model = self.space.build(genome)
            result = fit(model, self.train, val=self.val, epochs=self.training.epochs,
                         batch_size=self.training.batch_size, lr=self.training.lr,
                         optimizer=self.training.optimizer, schedule=self.training.schedule, seed=seed)
        return float(result.best_val_accuracy)


@dataclass
class TrainedCandidate:
    """A genome trained in full: its fit, the runtime's test accuracy and the run folder."""

    genome: tuple[float, ...]
    widths: list[int]
    best_val_accuracy: float
    test_accuracy: float
    runtime_test_accuracy: float | None
    epochs: int
    seed: int
    out_dir: str | None
    model: Any = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("model")
        d["genome"] = list(self.genome)
        return d


def train_candidate(
    space: SearchSpace, genome: Sequence[float], data: Any, training: ProxyTraining, *, seed: int = 0,
    out_dir: str | os.PathLike | None = None, export: bool = True,
) -> TrainedCandidate:
    """Train ``genome``'s model from scratch with ``training`` (its full schedule) and test it once.

    ``fit`` holds out ``training.val_fraction`` of the training rows (split with ``seed``)
    to pick the best epoch, then evaluates the test split. With ``out_dir`` it writes the
    run folder (checkpoint, metrics, curves; resumable: a folder holding a
    ``train_state.pt`` continues from it) and, with ``export``, ``model.onebit``, whose
    test accuracy the runtime measures (the resume files are then removed).
    """
    from onebit.train import fit, prune_run, record_metrics, set_seed
    from onebit.train_state import STATE_FILE

    genome = tuple(float(r) for r in genome)
    out = None if out_dir is None else Path(out_dir)
    resume = out is not None and (out / STATE_FILE).is_file()
    info = {"model": space.model, "model_args": space.model_kwargs(genome), "data": data.name,
            "genome": list(genome), "val_fraction": training.val_fraction}
    with _training_context(training.threads):
        set_seed(seed)
        model = space.build(genome)
        result = fit(model, data, epochs=training.epochs, batch_size=training.batch_size, lr=training.lr,
                     optimizer=training.optimizer, schedule=training.schedule, val_fraction=training.val_fraction,
                     seed=seed, out_dir=out, info=info, resume=resume)
    runtime_accuracy = None
    if out is not None and export:
        from onebit.export import export_checked

        engine = export_checked(model, out / "model.onebit", data.x_test, data.y_test, info={"data": data.name})
        runtime_accuracy = engine.accuracy
        record_metrics(out, runtime_test_accuracy=engine.accuracy, model_onebit_bytes=engine.report.file_bytes)
        prune_run(out, "best")  # checkpoint, metrics, curves and model.onebit remain
    assert result.test_accuracy is not None
    return TrainedCandidate(genome, space.widths(genome), float(result.best_val_accuracy),
                            float(result.test_accuracy), runtime_accuracy, training.epochs, seed,
                            None if out is None else str(out), model)
