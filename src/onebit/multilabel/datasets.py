"""Real multi-label data sets shipped by Python packages (nothing is downloaded): yeast and NRC emotions.

- **yeast** (:func:`load_yeast`): 2,417 yeast genes, 103 real features (micro-array
  expression and phylogenetic profiles), 14 functional classes; Elisseeff & Weston 2002,
  as distributed by MULAN (Tsoumakas et al. 2011) and shipped by ``river``
  (``river/datasets/yeast.csv.gz``, read directly: ``river`` is not imported).
  ``split="standard"`` takes rows 0–1,499 for training and 1,500–2,416 for test: the sizes of
  the standard yeast-train/yeast-test split, on the assumption (not verifiable offline) that
  the full file is MULAN's train file followed by its test file. ``split="random"`` is a
  seeded 1,500/917 shuffle.
- **NRC emotions** (:func:`load_nrc_emotions`): the NRC Emotion Lexicon (Mohammad & Turney
  2013, "Crowdsourcing a Word-Emotion Association Lexicon", Computational Intelligence 29(3);
  research use, cite it) as shipped by ``nrclex`` (``nrclex/data/nrc_en.json``, read directly:
  importing ``nrclex`` pulls in TextBlob). 6,468 English words, each with one or more of 8
  emotions and positive/negative: a 10-label task whose only input is the word's spelling,
  featurized by :func:`char_ngram_features`. That is hard by nature: a word's emotions are
  mostly not in its letters (``abandon`` and ``abacus`` share a prefix), so only morphology
  (``-less``, ``un-``, shared stems) helps.

``char_ngram_features`` is a minimal hashing featurizer kept here on purpose; ``onebit.text``'s
general featurizer could replace it later.
"""

from __future__ import annotations

import gzip
import importlib.util
import io
import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from onebit.errors import ConfigError, DataError, unknown_choice

__all__ = [
    "NRC_LABELS", "YEAST_SPLITS", "MultiLabelData", "char_ngram_features", "load_nrc_emotions", "load_yeast",
    "nrc_lexicon", "package_file",
]

YEAST_SPLITS = ("standard", "random")
YEAST_TRAIN = 1500
# Plutchik's eight basic emotions, then the two sentiments, as the NRC lexicon names them.
NRC_LABELS = ("anger", "anticipation", "disgust", "fear", "joy", "sadness", "surprise", "trust",
              "negative", "positive")


@dataclass(frozen=True)
class MultiLabelData:
    """A multi-label data set: float32 inputs and uint8 0/1 label matrices (N, L), split into train and test."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    label_names: tuple[str, ...]
    source: str
    split: str

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    @property
    def num_features(self) -> int:
        return int(self.x_train.shape[1])

    def split_validation(self, fraction: float, seed: int = 0) -> tuple[MultiLabelData, tuple[np.ndarray, np.ndarray]]:
        """Hold out a seeded random ``fraction`` of the training rows: (the rest as a data set, (x_val, y_val))."""
        if not (isinstance(fraction, int | float) and 0.0 < fraction < 1.0):
            raise ConfigError(f"fraction must be a number in (0, 1), got {fraction!r}")
        n = len(self.y_train)
        held = round(fraction * n)
        if held < 1 or held >= n:
            raise ConfigError(f"a validation fraction of {fraction} of {n} training rows leaves no rows on one side")
        order = np.random.default_rng(seed).permutation(n)
        val, rest = np.sort(order[:held]), np.sort(order[held:])
        kept = MultiLabelData(self.name, self.x_train[rest], self.y_train[rest], self.x_test, self.y_test,
                              self.label_names, self.source, f"{self.split}; {held} training rows held out (seed {seed})")
        return kept, (self.x_train[val], self.y_train[val])


def package_file(package: str, *parts: str, extra: str = "text") -> Path:
    """The path of a data file inside an installed ``package``, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"the data set needs the {package!r} package: pip install {package} "
                        f"(or pip install 'onebit[{extra}]')")
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*parts)
    if not path.is_file():
        raise DataError(f"{package} is installed but has no {'/'.join(parts)} (looked at {path}); "
                        f"reinstall it: pip install --force-reinstall {package}")
    return path


def _standardize(x_train: np.ndarray, x_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean, std = x_train.mean(0), x_train.std(0)
    std = np.where(std > 0, std, 1.0)
    return ((x_train - mean) / std).astype(np.float32), ((x_test - mean) / std).astype(np.float32)


def load_yeast(split: str = "standard", seed: int = 0, standardize: bool = True) -> MultiLabelData:
    """The yeast multi-label benchmark (2,417 × 103 features, 14 labels): 1,500 train / 917 test rows.

    ``split``: ``"standard"`` (file order, see the module docstring) or ``"random"`` (seeded
    shuffle, same sizes). ``standardize``: scale each feature to zero mean and unit variance with
    the training rows' statistics.
    """
    if split not in YEAST_SPLITS:
        raise unknown_choice("yeast split", split, YEAST_SPLITS)
    path = package_file("river", "datasets", "yeast.csv.gz")
    try:
        with gzip.open(path, "rt") as f:
            header = f.readline().strip().split(",")
            table = np.loadtxt(io.StringIO(f.read()), delimiter=",", dtype=np.float64)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read the yeast file {path}: {exc}") from None
    labels = tuple(h for h in header if h.startswith("Class"))
    if table.shape != (2417, 117) or len(labels) != 14:
        raise DataError(f"{path}: expected 2,417 rows of 103 features and 14 labels, got {table.shape}")
    x, y = table[:, :103], table[:, 103:].astype(np.uint8)
    order = np.arange(len(x)) if split == "standard" else np.random.default_rng(seed).permutation(len(x))
    train, test = order[:YEAST_TRAIN], order[YEAST_TRAIN:]
    x_train, x_test = x[train], x[test]
    if standardize:
        x_train, x_test = _standardize(x_train, x_test)
    described = ("rows 0-1499 train / 1500-2416 test (file order; the standard split's sizes)" if split == "standard"
                 else f"seeded random 1500/917 (seed {seed})")
    return MultiLabelData("yeast", x_train.astype(np.float32), y[train], x_test.astype(np.float32), y[test],
                          labels, "yeast (Elisseeff & Weston 2002; MULAN), shipped by river", described)


def nrc_lexicon() -> dict[str, list[str]]:
    """The NRC Emotion Lexicon as nrclex ships it: word → its emotions and sentiments (words with none left out)."""
    path = package_file("nrclex", "data", "nrc_en.json")
    try:
        lexicon = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read the NRC lexicon {path}: {exc}") from None
    if not isinstance(lexicon, dict):
        raise DataError(f"{path}: expected a JSON object word → labels")
    return {w: sorted(set(v)) for w, v in lexicon.items() if v}


def char_ngram_features(words: Sequence[str], n: Sequence[int] = (2, 3, 4), dim: int = 2048) -> np.ndarray:
    """Hashed character n-gram counts of ``words`` (N, ``dim``), float32, each row scaled to unit length.

    Each word is lower-cased and wrapped in boundary marks (``<abandon>``), so prefixes and
    suffixes are n-grams of their own; every n-gram of each length in ``n`` adds 1 at column
    ``crc32(ngram) mod dim`` (a stable hash: the same column on every run and machine).
    """
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise ConfigError(f"dim must be a positive integer, got {dim!r}")
    sizes = list(n)
    if not sizes or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in sizes):
        raise ConfigError(f"n must be a non-empty sequence of positive integers, got {n!r}")
    if isinstance(words, str):
        raise ConfigError("words must be a sequence of strings, not one string")
    out = np.zeros((len(words), dim), dtype=np.float32)
    for row, word in enumerate(words):
        if not isinstance(word, str):
            raise DataError(f"word {row} is a {type(word).__name__}, not a string")
        marked = f"<{word.lower()}>"
        for k in sizes:
            for i in range(len(marked) - k + 1):
                out[row, zlib.crc32(marked[i:i + k].encode("utf-8")) % dim] += 1.0
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.where(norms > 0, norms, 1.0)


def load_nrc_emotions(test_fraction: float = 0.2, seed: int = 0, dim: int = 2048,
                      n: Sequence[int] = (2, 3, 4)) -> MultiLabelData:
    """The NRC lexicon's 6,468 words → their 10 labels (:data:`NRC_LABELS`), from character n-grams.

    A seeded random split (``test_fraction`` of the words for test; words are unique, so no
    word is in both); inputs from :func:`char_ngram_features` with ``dim`` and ``n``.
    """
    if not (isinstance(test_fraction, int | float) and 0.0 < test_fraction < 1.0):
        raise ConfigError(f"test_fraction must be a number in (0, 1), got {test_fraction!r}")
    lexicon = nrc_lexicon()
    words = sorted(lexicon)
    unknown = sorted({label for w in words for label in lexicon[w]} - set(NRC_LABELS))
    if unknown:
        raise DataError(f"the NRC lexicon has labels onebit does not know: {', '.join(unknown)}")
    y = np.array([[label in lexicon[w] for label in NRC_LABELS] for w in words], dtype=np.uint8)
    x = char_ngram_features(words, n=n, dim=dim)
    order = np.random.default_rng(seed).permutation(len(words))
    held = round(test_fraction * len(words))
    test, train = np.sort(order[:held]), np.sort(order[held:])
    return MultiLabelData("nrc_emotions", x[train], y[train], x[test], y[test], NRC_LABELS,
                          "NRC Emotion Lexicon (Mohammad & Turney 2013), shipped by nrclex",
                          f"seeded random {len(train)}/{len(test)} words (seed {seed}); char {tuple(n)}-grams "
                          f"hashed to {dim}")
