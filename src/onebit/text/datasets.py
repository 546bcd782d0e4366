"""Text data sets: the VADER human-rated sentences, and a folder of ``label<TAB>text`` lines.

**VADER sentences** (Hutto & Gilbert, "VADER: A Parsimonious Rule-based Model for
Sentiment Analysis of Social Media Text", ICWSM 2014; MIT licence): three files of real
English sentences, one a line, ``id<TAB>mean valence<TAB>text``, the valence the mean of
about 20 human ratings on −4 … +4. The binary task: valence > 0.5 is positive (class 1),
< −0.5 negative (class 0), the rest left out. Three domains (:data:`DOMAINS`): ``tweets``,
``movies`` (movie-review snippets), ``amazon`` (product-review snippets).

- :func:`vader_split` with ``domain=D``: a fixed, stratified 80/20 split of domain D (the
  same rows for every seed: the split's own seed is :data:`SPLIT_SEED`).
- ``domain="all"``: the three domains' training parts pooled, and their test parts.
- ``test_domain=D``: the cross-domain split, training on every rated sentence of the
  two other domains and testing on every one of D.

**A folder of your own**: ``train.tsv`` and ``test.tsv`` (``.txt`` also, each optionally
``.gz``), one ``label<TAB>text`` a line (the first tab splits; the text may hold more);
an optional ``labels.txt`` lists the class names, one a line, which fixes their order
and count; otherwise the classes are the training labels, sorted (numerically where all
are integers). A folder with ``train.tsv`` alone needs ``split=(n_train, n_test)``.

Files are read as bytes and decoded as UTF-8 with ``errors="replace"`` (a few bytes of
the VADER files are not UTF-8), line ends are ``\\n`` or ``\\r\\n``, blank lines are
skipped, and a text is cut to :data:`MAX_TEXT_CHARS` characters (the featurizer cuts
further). Anything else wrong with a file is one :class:`~onebit.errors.DataError` line
naming the file, the line and the problem. Nothing is downloaded; nothing imports torch.
"""

from __future__ import annotations

import gzip
import logging
import math
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from onebit.data import Dataset
from onebit.errors import ConfigError, DataError, MissingFileError, unknown_choice
from onebit.text.features import TextFeaturizer

__all__ = ["DEFAULT_FEATURIZER", "DOMAINS", "SEQUENCE_FEATURIZER", "TOKEN_ID_MODELS", "featurizer_for", "MAX_TEXT_CHARS", "SPLIT_SEED", "TextSplit", "load_text_folder", "load_vader",
           "read_label_file", "read_vader_file", "text_folder_kind", "vader_split"]

log = logging.getLogger(__name__)

DOMAINS = {"tweets": "tweets_GroundTruth.txt", "movies": "movieReviewSnippets_GroundTruth.txt",
           "amazon": "amazonReviewSnippets_GroundTruth.txt"}
POSITIVE, NEGATIVE = 0.5, -0.5  # valence > 0.5 positive, < -0.5 negative, the rest left out
SPLIT_SEED = 0
TEST_FRACTION = 0.2
MAX_TEXT_CHARS = 10_000
MAX_FILE_BYTES = 256 * 2**20  # decompressed; the largest VADER file is about 1 MB
# The featurizer of onebit train --data on text and of the text_sentiment experiment: the 2,048
# words found in most training sentences. On VADER's pooled domains (fixed split, 13,079 training
# sentences) a logistic regression (C = 10) reached 78.7 % with it, 77.3 % with the 2,048 most
# frequent word uni- and bigrams, 72.6 % with words hashed into 2,048 buckets (collisions) and
# 75.6 % into 4,096, whose first layer costs twice the training time (docs/text_sentiment.md).
DEFAULT_FEATURIZER = TextFeaturizer(kind="vocab", dim=2048, word_ngrams=(1, 1))
# The token ids of a text CNN (binary_text_cnn): the 4,094 words found in most training sentences
# (ids 2 … 4095; 0 padding, 1 unknown), 48 tokens a sentence (99 % of VADER's sentences have
# at most 46; longer ones are cut).
SEQUENCE_FEATURIZER = TextFeaturizer(kind="vocab", dim=4096, word_ngrams=(1, 1), sequence_length=48)
TOKEN_ID_MODELS = ("binary_text_cnn",)  # zoo models whose input is token ids, not bag-of-n-gram rows


def featurizer_for(model: str | None) -> TextFeaturizer:
    """The featurizer ``onebit train`` uses for ``model`` on text: :data:`SEQUENCE_FEATURIZER` for a
    model of :data:`TOKEN_ID_MODELS`, else :data:`DEFAULT_FEATURIZER`."""
    return SEQUENCE_FEATURIZER if model in TOKEN_ID_MODELS else DEFAULT_FEATURIZER
_LABEL_FILES = ("train", "test")
_SUFFIXES = (".tsv", ".txt", ".tsv.gz", ".txt.gz")


@dataclass(frozen=True)
class TextSplit:
    """Raw texts and labels of a train/test split, before featurization."""

    name: str
    train_texts: list[str]
    y_train: np.ndarray
    test_texts: list[str]
    y_test: np.ndarray
    class_names: tuple[str, ...]
    source: str

    def featurize(self, featurizer: TextFeaturizer | None = None) -> Dataset:
        """The :class:`~onebit.data.Dataset` of these texts: ``featurizer`` (default:
        :data:`DEFAULT_FEATURIZER`) fitted on the training texts only, rows ``(N, dim)``, its
        settings in ``Dataset.featurizer`` (what export stores beside the graph)."""
        featurizer = (featurizer or DEFAULT_FEATURIZER).fit(self.train_texts)
        return Dataset(
            name=self.name, x_train=featurizer.transform(self.train_texts), y_train=self.y_train,
            x_test=featurizer.transform(self.test_texts), y_test=self.y_test, in_shape=featurizer.row_shape,
            num_classes=len(self.class_names), class_names=self.class_names,
            source=f"{self.source}; {_describe(featurizer)}", featurizer=featurizer.to_dict(),
        )


def _describe(f: TextFeaturizer) -> str:
    if f.sequence_length:
        what = "hashed into" if f.kind == "hash" else "over a training-split vocabulary of"
        return f"word token ids {what} {f.dim} ids (0 padding, 1 unknown), padded/truncated to {f.sequence_length}"
    grams = [f"word {f.word_ngrams[0]}-{f.word_ngrams[1]}-grams" if f.word_ngrams[1] else "",
             f"char {f.char_ngrams[0]}-{f.char_ngrams[1]}-grams" if f.char_ngrams[1] else ""]
    what = "hashed into" if f.kind == "hash" else "over a training-split vocabulary of"
    return (f"{' + '.join(g for g in grams if g)} {what} {f.dim} columns, {f.weighting} values"
            f"{', L2-normalized' if f.normalize == 'l2' else ''}")


# --------------------------------------------------------------------------- reading lines


def _read_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of every non-blank line of ``path`` (gzip by magic bytes), UTF-8 with replacement."""
    if not path.is_file():
        raise MissingFileError(f"{path}: no such file")
    try:
        with open(path, "rb") as raw:
            is_gzip = raw.read(2) == b"\x1f\x8b"
            raw.seek(0)
            if is_gzip:
                with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
                    content = stream.read(MAX_FILE_BYTES + 1)
            else:
                content = raw.read(MAX_FILE_BYTES + 1)
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: corrupt gzip data ({exc or type(exc).__name__})") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if len(content) > MAX_FILE_BYTES:
        raise DataError(f"{path}: more than {MAX_FILE_BYTES // 2**20} MB of text; split it into smaller files")
    text = content.decode("utf-8", errors="replace")
    lines = []
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.rstrip("\r")
        if line.strip():
            lines.append((number, line))
    return lines


def _cut(text: str) -> str:
    return text[:MAX_TEXT_CHARS]


def read_vader_file(path: str | os.PathLike[str]) -> tuple[list[str], np.ndarray]:
    """The texts and mean valences (float64) of one VADER ground-truth file, in file order."""
    path = Path(path)
    texts, valences = [], []
    for number, line in _read_lines(path):
        parts = line.split("\t", 2)
        if len(parts) != 3:
            raise DataError(f"{path}, line {number}: expected id<TAB>valence<TAB>text, found {len(parts) - 1} tab(s)")
        try:
            valence = float(parts[1])
        except ValueError:
            raise DataError(f"{path}, line {number}: the valence {parts[1][:40]!r} is not a number") from None
        if not math.isfinite(valence) or not -4.0 <= valence <= 4.0:
            raise DataError(f"{path}, line {number}: the valence {valence} is outside the rating scale -4 .. +4")
        texts.append(_cut(parts[2]))
        valences.append(valence)
    if not texts:
        raise DataError(f"{path}: holds no sentences")
    return texts, np.asarray(valences, dtype=np.float64)


def read_label_file(path: str | os.PathLike[str]) -> tuple[list[str], list[str]]:
    """The labels and texts of a file of ``label<TAB>text`` lines (blank lines skipped), in file order."""
    path = Path(path)
    labels, texts = [], []
    for number, line in _read_lines(path):
        label, tab, text = line.partition("\t")
        if not tab:
            raise DataError(f"{path}, line {number}: expected label<TAB>text, found no tab")
        label = label.strip()
        if not label:
            raise DataError(f"{path}, line {number}: the label before the tab is empty")
        labels.append(label)
        texts.append(_cut(text))
    if not labels:
        raise DataError(f"{path}: holds no label<TAB>text lines")
    return labels, texts


# --------------------------------------------------------------------------- VADER


def _vader_file(folder: Path, domain: str) -> Path | None:
    for name in (DOMAINS[domain] + ".gz", DOMAINS[domain]):
        if (folder / name).is_file():
            return folder / name
    return None


def _vader_domain(folder: Path, domain: str) -> tuple[list[str], np.ndarray]:
    """The rated sentences of ``domain`` with |valence| > 0.5: texts and labels (1 positive, 0 negative)."""
    path = _vader_file(folder, domain)
    if path is None:
        raise MissingFileError(f"{folder}: no {DOMAINS[domain]}(.gz) for the {domain!r} domain")
    texts, valence = read_vader_file(path)
    keep = (valence > POSITIVE) | (valence < NEGATIVE)
    return [t for t, k in zip(texts, keep) if k], (valence[keep] > POSITIVE).astype(np.int64)


def _holdout(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fixed stratified split: each class gives ``round(TEST_FRACTION · n_c)`` rows (drawn with SPLIT_SEED) to the test part."""
    rng = np.random.default_rng(SPLIT_SEED)
    test = np.sort(np.concatenate([rng.permutation(np.flatnonzero(y == c))[:round(TEST_FRACTION * np.sum(y == c))]
                                   for c in np.unique(y)]))
    train = np.setdiff1d(np.arange(len(y)), test)
    return train, test


def vader_split(folder: str | os.PathLike[str] | None = None, *, domain: str = "all",
                test_domain: str | None = None) -> TextSplit:
    """The VADER sentences' texts and labels, split as the module docstring says.

    ``folder``: the ``vader-sentences`` folder (default: ``../shared/data/vader-sentences``
    of a source checkout, :func:`onebit.experiments.shared.shared_data`). ``domain``: one of
    :data:`DOMAINS` or ``"all"``; ``test_domain``: a domain to hold out entirely (the
    cross-domain split; then ``domain`` must stay ``"all"``).
    """
    folder = _vader_folder(folder)
    if domain != "all" and domain not in DOMAINS:
        raise unknown_choice("VADER domain", domain, [*DOMAINS, "all"])
    if test_domain is not None:
        if test_domain not in DOMAINS:
            raise unknown_choice("VADER test domain", test_domain, DOMAINS)
        if domain != "all":
            raise ConfigError("give domain or test_domain, not both: test_domain trains on the two other domains")
        train = [_vader_domain(folder, d) for d in DOMAINS if d != test_domain]
        test_texts, y_test = _vader_domain(folder, test_domain)
        return TextSplit(
            name=_folder_name(folder), train_texts=[t for texts, _ in train for t in texts],
            y_train=np.concatenate([y for _, y in train]), test_texts=test_texts, y_test=y_test,
            class_names=("negative", "positive"),
            source=f"VADER rated sentences in {folder} (Hutto & Gilbert 2014), valence > 0.5 positive, < -0.5 "
                   f"negative; cross-domain: train on {' + '.join(d for d in DOMAINS if d != test_domain)}, "
                   f"test on {test_domain}")
    parts = {"train": ([], []), "test": ([], [])}
    for d in DOMAINS if domain == "all" else (domain,):
        texts, y = _vader_domain(folder, d)
        for part, rows in zip(("train", "test"), _holdout(y)):
            parts[part][0].extend(texts[i] for i in rows)
            parts[part][1].append(y[rows])
    return TextSplit(
        name=_folder_name(folder), train_texts=parts["train"][0], y_train=np.concatenate(parts["train"][1]),
        test_texts=parts["test"][0], y_test=np.concatenate(parts["test"][1]), class_names=("negative", "positive"),
        source=f"VADER rated sentences in {folder} (Hutto & Gilbert 2014), valence > 0.5 positive, < -0.5 negative; "
               f"{domain} domain{'s' if domain == 'all' else ''}, fixed stratified {1 - TEST_FRACTION:.0%}/"
               f"{TEST_FRACTION:.0%} split per domain (seed {SPLIT_SEED})")


def load_vader(folder: str | os.PathLike[str] | None = None, *, domain: str = "all", test_domain: str | None = None,
               featurizer: TextFeaturizer | None = None) -> Dataset:
    """:func:`vader_split` featurized (:meth:`TextSplit.featurize`): a Dataset of float32 rows ``(N, dim)``."""
    return vader_split(folder, domain=domain, test_domain=test_domain).featurize(featurizer)


def _folder_name(folder: Path) -> str:
    """The data set's name: its folder's (as :func:`onebit.data.check_dataset_spec` reports it)."""
    return folder.resolve().name or str(folder)


def _vader_folder(folder: str | os.PathLike[str] | None) -> Path:
    if folder is None:
        from onebit.experiments.shared import shared_data

        found = shared_data("vader-sentences")
        if found is None:
            raise MissingFileError("the vader-sentences folder was not found (looked in ../shared/data of the source "
                                   "checkout and $ONEBIT_SHARED_DATA); pass its path")
        return found
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise MissingFileError(f"{folder}: no such folder")
    return folder


# --------------------------------------------------------------------------- label<TAB>text folders


def _label_file(folder: Path, part: str) -> Path | None:
    for suffix in _SUFFIXES:
        if (folder / (part + suffix)).is_file():
            return folder / (part + suffix)
    return None


def text_folder_kind(folder: str | os.PathLike[str]) -> str | None:
    """``"vader"`` or ``"labels"`` where ``folder`` holds that text layout, else None (file names only)."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    if any(_vader_file(folder, d) for d in DOMAINS):
        return "vader"
    if any(_label_file(folder, part) for part in _LABEL_FILES):
        return "labels"
    return None


def _class_names(folder: Path, train_labels: list[str]) -> tuple[str, ...]:
    names_file = folder / "labels.txt"
    if names_file.is_file():
        names = [line.strip() for _, line in _read_lines(names_file)]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise DataError(f"{names_file}: class names listed twice: {', '.join(duplicated)}")
    else:
        names = sorted(set(train_labels))
        if all(n.lstrip("-").isdigit() for n in names):
            names = sorted(names, key=int)
    if len(names) < 2:
        where = str(names_file) if names_file.is_file() else f"{folder}: the training labels"
        raise DataError(f"{where}: {len(names)} class ({', '.join(names) or 'none'}); a classifier needs at least 2")
    return tuple(names)


def _encode(path: Path, labels: list[str], names: tuple[str, ...], names_from: str) -> np.ndarray:
    index = {n: i for i, n in enumerate(names)}
    unknown = sorted({label for label in labels if label not in index})
    if unknown:
        shown = ", ".join(repr(u) for u in unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        raise DataError(f"{path}: label(s) {shown} are not among the {len(names)} classes of {names_from} "
                        f"({', '.join(names[:10])}{', ...' if len(names) > 10 else ''})")
    return np.array([index[label] for label in labels], dtype=np.int64)


def load_text_folder(folder: str | os.PathLike[str], split: tuple[int, int] | None = None,
                     featurizer: TextFeaturizer | None = None) -> Dataset:
    """A folder of ``label<TAB>text`` files (module docstring) as a featurized :class:`~onebit.data.Dataset`.

    ``split=(n_train, n_test)`` pools the rows (train file first, then test) and takes the
    first ``n_train`` for training, the next ``n_test`` for testing; a folder with a
    ``train`` file only needs it. A VADER folder is loaded with :func:`load_vader` (all
    domains; ``split`` re-splits its rows the same way).
    """
    folder = Path(folder).expanduser()
    kind = text_folder_kind(folder)
    if kind == "vader":
        data = vader_split(folder)
        return (data if split is None else _resplit(data, split)).featurize(featurizer)
    if kind is None:
        raise DataError(f"{folder}: no text data found; expected train.tsv and test.tsv (.txt, optionally .gz) of "
                        f"label<TAB>text lines, or VADER's {', '.join(DOMAINS.values())} (.gz)")
    files = {part: _label_file(folder, part) for part in _LABEL_FILES}
    if files["train"] is None:
        raise DataError(f"{folder}: has {files['test'].name} but no train.tsv (or .txt, optionally .gz)")
    train_labels, train_texts = read_label_file(files["train"])
    names = _class_names(folder, train_labels)
    names_from = "labels.txt" if (folder / "labels.txt").is_file() else f"{files['train'].name} (its distinct labels)"
    if files["test"] is None and split is None:
        n = len(train_labels)
        raise DataError(f"{folder} holds only {files['train'].name} ({n:,} lines) and no test.tsv; add one, or split "
                        f"the rows with --split TRAIN:TEST (e.g. --split {n * 4 // 5}:{n - n * 4 // 5})")
    data = TextSplit(name=_folder_name(folder), train_texts=train_texts,
                     y_train=_encode(files["train"], train_labels, names, names_from), test_texts=[],
                     y_test=np.zeros(0, np.int64), class_names=names,
                     source=f"label<TAB>text lines in {folder}")
    if files["test"] is not None:
        labels, texts = read_label_file(files["test"])
        data = TextSplit(data.name, data.train_texts, data.y_train, texts,
                         _encode(files["test"], labels, names, names_from), names, data.source)
    if split is not None:
        data = _resplit(data, split)
    missing = [names[c] for c in range(len(names)) if not np.any(data.y_train == c)]
    if missing:
        log.warning("%s: no training rows of class(es) %s", folder, ", ".join(missing))
    return data.featurize(featurizer)


def _resplit(data: TextSplit, split: tuple[int, int]) -> TextSplit:
    n_train, n_test = split
    texts = data.train_texts + data.test_texts
    y = np.concatenate([data.y_train, data.y_test])
    if n_train + n_test > len(y):
        raise DataError(f"data set {data.name!r}: split {n_train}:{n_test} needs {n_train + n_test:,} rows, it holds "
                        f"{len(y):,} ({len(data.y_train):,} training then {len(data.y_test):,} test rows)")
    return TextSplit(data.name, texts[:n_train], y[:n_train], texts[n_train:n_train + n_test],
                     y[n_train:n_train + n_test], data.class_names,
                     f"{data.source}; split {n_train}:{n_test} of the rows in file order")
