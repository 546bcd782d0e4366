"""Classify raw strings with an exported ``.onebit`` text model, without torch.

A text model is exported with its featurizer's settings in the graph's ``source`` record
(``source["featurizer"]``, :meth:`onebit.text.features.TextFeaturizer.to_dict`; ``onebit
train`` writes it from ``Dataset.featurizer``, :func:`export_text_model` from a
featurizer). :class:`TextClassifier` loads the file with :func:`onebit.runtime.load`,
rebuilds the featurizer from that record, and runs ``strings → featurizer → engine``:
numpy and onebit's C++ core only, as :mod:`onebit.runtime` itself.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from onebit.errors import ConfigError, ModelFileError
from onebit.runtime import Model, load
from onebit.text.features import TextFeaturizer

__all__ = ["TextClassifier", "export_text_model"]


class TextClassifier:
    """A ``.onebit`` text model and its featurizer: ``clf(["great film"])`` → logits, ``clf.predict`` → classes.

    ``class_names`` come from the file's ``source["class_names"]`` where recorded, else
    ``"0", "1", ...``. ``num_threads`` goes to :func:`onebit.runtime.load`.
    """

    def __init__(self, path: str | os.PathLike[str], num_threads: int | None = None) -> None:
        self.path = Path(path)
        self.model: Model = load(self.path, num_threads=num_threads)
        source = self.model.graph.get("source") or {}
        settings = source.get("featurizer") if isinstance(source, dict) else None
        if settings is None:
            raise ModelFileError(f"{self.path}: records no text featurizer (source['featurizer']); it was not exported "
                                 "from a text data set. Run it with onebit.runtime.load on feature rows instead")
        try:
            self.featurizer = TextFeaturizer.from_dict(settings)
        except ConfigError as exc:
            raise ModelFileError(f"{self.path}: its text featurizer record is damaged: {exc}") from None
        if self.model.in_shape != self.featurizer.row_shape:
            raise ModelFileError(f"{self.path}: the model takes inputs of shape {self.model.in_shape}, its featurizer "
                                 f"makes rows of shape {self.featurizer.row_shape}")
        if self.model.out_bits:
            raise ModelFileError(f"{self.path}: outputs packed features, not class scores")
        n = self.model.out_shape[0]
        names = source.get("class_names")
        self.class_names: tuple[str, ...] = (tuple(names) if isinstance(names, list) and len(names) == n
                                             and all(isinstance(v, str) for v in names)
                                             else tuple(str(i) for i in range(n)))

    def __repr__(self) -> str:
        return (f"TextClassifier({str(self.path)!r}, {len(self.class_names)} classes, featurizer rows "
                f"{self.featurizer.row_shape})")

    def features(self, texts: Iterable[str]) -> np.ndarray:
        """The float32 rows the engine takes for ``texts`` (feature rows, or token ids for a text CNN)."""
        return self.featurizer.transform(texts)

    def __call__(self, texts: Iterable[str]) -> np.ndarray:
        """float32 logits ``(len(texts), classes)``."""
        return self.model(self.features(texts))

    def predict(self, texts: Iterable[str]) -> np.ndarray:
        """The class index (int64) of each text."""
        return self.model.predict(self.features(texts))

    def predict_names(self, texts: Iterable[str]) -> list[str]:
        """The class name of each text."""
        return [self.class_names[i] for i in self.predict(texts)]

    def timed(self, texts: Iterable[str]) -> tuple[np.ndarray, float, float]:
        """Logits, seconds spent featurizing and seconds in the engine (one call each)."""
        start = time.perf_counter()
        x = self.features(texts)
        middle = time.perf_counter()
        logits = self.model(x)
        return logits, middle - start, time.perf_counter() - middle


def export_text_model(model: Any, path: str | os.PathLike[str], featurizer: TextFeaturizer | dict[str, Any],
                      example_texts: Iterable[str], *, class_names: Iterable[str] | None = None,
                      info: dict[str, Any] | None = None) -> Any:
    """Export a trained torch ``model`` that takes ``featurizer``'s rows, with the featurizer's settings
    (and ``class_names``) in the file, checked on ``example_texts``; returns the
    :class:`~onebit.export.ExportReport`. Needs torch (it is the exporter's)."""
    from onebit.export import export

    if isinstance(featurizer, dict):
        featurizer = TextFeaturizer.from_dict(featurizer)
    record: dict[str, Any] = {**(info or {}), "featurizer": featurizer.to_dict()}
    if class_names is not None:
        record["class_names"] = [str(c) for c in class_names]
    return export(model, path, featurizer.transform(example_texts), info=record)
