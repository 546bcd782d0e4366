"""``transfer``: a trained checkpoint's frozen binary features, a new task, a new head.

What ``onebit transfer`` runs: cut the checkpoint's model at a layer
(:class:`~onebit.transfer.features.FeatureExtractor`), export that part to
``extractor.onebit`` (its output: the packed feature bits), compute the target task's
features **on onebit's engine**, train a head on the few labelled examples
(:func:`~onebit.transfer.head.fit_head`) and test it. It also computes the features with
PyTorch and checks that the engine's bits, and the head's outputs on them, are identical.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from onebit.atomic import atomic_write, atomic_write_text
from onebit.data import Dataset
from onebit.errors import CheckpointError, ConfigError, DataError, MissingFileError
from onebit.nn.modes import eval_mode
from onebit.transfer.features import FeatureExtractor
from onebit.transfer.head import cross_validate_head, fit_head, make_head

__all__ = ["HEAD_FORMAT", "TransferResult", "load_head", "save_head", "select_cut", "transfer"]

log = logging.getLogger(__name__)

HEAD_FORMAT = "onebit-head"


@dataclass
class TransferResult:
    """What :func:`transfer` measured; ``accuracy`` uses the engine's features."""

    accuracy: float
    torch_accuracy: float
    identical_features: bool  # engine bits == PyTorch's ±1 features, every test row
    identical_outputs: bool  # the head's logits on both are equal, bit for bit
    features: int
    classes: int
    train_samples: int
    test_samples: int
    extractor_path: str
    head_path: str | None
    cut: str = ""
    cut_scores: dict[str, float] | None = None  # cross-validated head accuracy per candidate cut, if several

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def save_head(path: str | os.PathLike, head: nn.Module, **meta: Any) -> Path:
    """Write a head's weights and what rebuilds it (``features``, ``classes``, ``hidden``, ``binary``)."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in head.state_dict().items()}
    header = json.dumps({"format": HEAD_FORMAT, "version": 1, **meta})
    return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata={"onebit": header}))


def load_head(path: str | os.PathLike) -> tuple[nn.Module, dict[str, Any]]:
    """The head saved by :func:`save_head`, in eval mode, and its metadata."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"head not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {}).get("onebit", "{}"))
        state = load_file(str(path))
    except Exception as exc:  # safetensors/json raise their own types for a bad file
        raise CheckpointError(f"{path} is not a onebit head file: {' '.join(str(exc).split())}") from None
    if meta.get("format") != HEAD_FORMAT:
        raise CheckpointError(f"{path} is not a onebit head file (format {meta.get('format')!r})")
    head = make_head(meta["features"], meta["classes"], hidden=meta.get("hidden", 0), binary=meta.get("binary", False))
    head.load_state_dict(state)
    return head.eval(), meta


def select_cut(
    model: nn.Module, candidates: list[str], data: Dataset, *, folds: int = 5, seed: int = 0, **head_kwargs: Any,
) -> tuple[str, dict[str, float]]:
    """The candidate cut whose ±1 features give the best ``folds``-fold cross-validated head accuracy
    on ``data``'s training part (the labelled examples only; ties go to the first listed), and
    every candidate's score."""
    if not candidates:
        raise ConfigError("select_cut needs at least one candidate layer")
    scores = {}
    for cut in candidates:
        features = FeatureExtractor(model, cut, in_shape=data.in_shape).features(data.x_train)
        scores[cut] = cross_validate_head(features, data.y_train, folds=folds, seed=seed, **head_kwargs)
        log.info("cut %s: %d features, cross-validated head accuracy %.4f", cut, features.shape[1], scores[cut])
    best = max(candidates, key=lambda c: scores[c])  # max keeps the first of equal scores
    return best, scores


def transfer(
    model: nn.Module, cut: str | list[str], data: Dataset, out_dir: str | os.PathLike, *, hidden: int = 0,
    binary_head: bool = False, epochs: int = 300, lr: float = 1e-2, weight_decay: float = 1e-3, seed: int = 0,
    info: dict[str, Any] | None = None,
) -> TransferResult:
    """Cut ``model`` at ``cut``, export the frozen part into ``out_dir``, train a head on ``data``'s
    training part with the engine's features, test it on ``data``'s test part. Given several
    candidate cuts, the one :func:`select_cut` prefers is used.

    Writes ``extractor.onebit``, ``head.safetensors`` and ``results.json`` (the result and ``info``,
    a JSON object the caller records beside it: data set, classes, seed).
    """
    out = Path(out_dir)
    recorded = getattr(model, "onebit_config", {}).get("args", {}).get("in_shape")
    if recorded is not None and tuple(recorded) != tuple(data.in_shape):
        raise DataError(f"the model takes inputs of shape {tuple(recorded)}, data set {data.name!r} has "
                        f"{data.in_shape}")
    scores = None
    if isinstance(cut, (list, tuple)):
        cut, scores = select_cut(model, list(cut), data, seed=seed, hidden=hidden, binary=binary_head, epochs=epochs,
                                 lr=lr, weight_decay=weight_decay)
    extractor = FeatureExtractor(model, cut, in_shape=data.in_shape)
    out.mkdir(parents=True, exist_ok=True)
    from onebit.runtime import load

    path = out / "extractor.onebit"
    extractor.export(path, data.x_test[:64], info=info or {})
    engine = load(path)
    log.info("features of %d training and %d test rows on onebit.runtime (%d bits each)", len(data.x_train),
             len(data.x_test), extractor.num_features)
    train_bits, test_bits = engine(data.x_train, unpack=True), engine(data.x_test, unpack=True)
    test_torch = extractor.features(data.x_test)
    head = fit_head(train_bits, data.y_train, classes=data.num_classes, hidden=hidden, binary=binary_head,
                    epochs=epochs, lr=lr, weight_decay=weight_decay, seed=seed)
    with eval_mode(head), torch.no_grad():
        on_engine = head(torch.from_numpy(test_bits)).numpy()
        on_torch = head(torch.from_numpy(test_torch)).numpy()
    head_path = save_head(out / "head.safetensors", head, features=extractor.num_features, classes=data.num_classes,
                          hidden=hidden, binary=binary_head, cut=cut, info=info or {})
    result = TransferResult(
        accuracy=float((on_engine.argmax(1) == data.y_test).mean()),
        torch_accuracy=float((on_torch.argmax(1) == data.y_test).mean()),
        identical_features=bool(np.array_equal(test_bits, test_torch)),
        identical_outputs=bool(np.array_equal(on_engine, on_torch)),
        features=int(extractor.num_features), classes=data.num_classes, train_samples=len(data.x_train),
        test_samples=len(data.x_test), extractor_path=str(path), head_path=str(head_path), cut=cut,
        cut_scores=scores,
    )
    atomic_write_text(out / "results.json", json.dumps({**result.to_dict(), "info": info or {}}, indent=2) + "\n")
    if not result.identical_features:  # a float first layer can round a value across its sign differently
        log.warning("%d of %d feature bits differ between onebit.runtime and PyTorch",
                    int((test_bits != test_torch).sum()), test_bits.size)
    return result
