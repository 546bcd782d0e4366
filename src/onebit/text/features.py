"""Text to fixed-size numbers without a network: tokenizer, n-gram hashing, vocabularies.

A binary network needs a fixed-length float32 row per sentence. :class:`TextFeaturizer`
makes one of two kinds, chosen by ``kind``:

- ``"hash"`` (the default; the *hashing trick*, Weinberger et al., "Feature Hashing for
  Large Scale Multitask Learning", ICML 2009): every word n-gram and character n-gram of
  the sentence goes to bucket ``h(gram) mod dim``. Nothing is learned from data, no
  vocabulary is stored, and an unseen word still lands somewhere. ``h`` is BLAKE2b (a
  cryptographic hash of the gram's UTF-8 bytes, :func:`hashlib.blake2b`, 8-byte digest,
  ``salt`` from ``seed``): the same gram goes to the same bucket in every process, Python
  version and machine, unlike Python's salted ``hash()``.
- ``"vocab"``: the ``dim`` grams with the highest document frequency in the training
  texts (:meth:`TextFeaturizer.fit`; ties broken by the gram's text, so the vocabulary is
  a function of the set of training texts alone), each its own column; other grams are
  dropped. The vocabulary travels with the settings.

Row values (``weighting``): ``"binary"`` 1 where a bucket holds a gram of the sentence,
``"count"`` the number of its grams there, ``"log"`` ``log(1 + count)``; then, with
``normalize="l2"``, the row is divided by its Euclidean norm (an empty sentence stays a
row of zeros). Tokens (:func:`tokenize`): the text NFKC-normalized, HTML entities
unescaped (``&amp;`` in tweets), lower-cased; then runs of word characters (with inner
apostrophes: ``don't``) and runs of other non-space characters (``!!``, ``:)``), which
carry much of a short text's sentiment. Over-long texts are cut to ``max_chars``
characters and ``max_tokens`` tokens first, so one pathological line costs bounded time.

:meth:`TextFeaturizer.sequences` gives the other input form, token ids padded or
truncated to a fixed length (0 = padding, 1 = unknown), for an embedding network; with
``sequence_length=L`` set, :meth:`TextFeaturizer.transform` returns those ids as float32
rows ``(N, L)`` (what ``onebit.runtime`` takes), so a text CNN's file carries its
tokenizer, vocabulary and length like any other featurizer.

The settings (:meth:`TextFeaturizer.to_dict`) are a JSON dict that
:func:`onebit.export.export` stores in the ``.onebit`` file's graph, so
:class:`onebit.text.classify.TextClassifier` rebuilds the same featurizer from the file
alone (:meth:`TextFeaturizer.from_dict` checks every field).
"""

from __future__ import annotations

import hashlib
import html
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from typing import Any

import numpy as np

from onebit.errors import ConfigError

__all__ = ["FEATURIZER_FORMAT", "KINDS", "NORMALIZATIONS", "WEIGHTINGS", "TextFeaturizer", "ngrams", "stable_hash",
           "tokenize"]

FEATURIZER_FORMAT = "onebit-text-featurizer"
FEATURIZER_VERSION = 2  # 2 added sequence_length (token-id rows); settings without it are still written as 1
READ_FEATURIZER_VERSIONS = (1, 2)
MAX_SEQUENCE_LENGTH = 4096
KINDS = ("hash", "vocab")
WEIGHTINGS = ("binary", "count", "log")
NORMALIZATIONS = ("l2", "none")
MAX_DIM = 2**22  # 4M columns: far above any useful size, far below an accidental 2**40

_TOKEN = re.compile(r"\w+(?:'\w+)*|[^\w\s]+")
_PAD, _UNKNOWN = 0, 1  # the reserved ids of sequences()


def tokenize(text: str, *, lowercase: bool = True, max_chars: int | None = None,
             max_tokens: int | None = None) -> list[str]:
    """The tokens of ``text``: word runs (inner apostrophes kept) and runs of other non-space characters.

    ``"I didn't like it :("`` → ``["i", "didn't", "like", "it", ":("]``. The text is
    cut to ``max_chars`` characters, NFKC-normalized, HTML-unescaped and (``lowercase``)
    lower-cased first; at most ``max_tokens`` tokens come back.
    """
    if not isinstance(text, str):
        raise ConfigError(f"a text must be a str, got {type(text).__name__}")
    if max_chars is not None:
        text = text[:max_chars]
    text = html.unescape(unicodedata.normalize("NFKC", text))
    if lowercase:
        text = text.lower()
    tokens = _TOKEN.findall(text)
    return tokens if max_tokens is None else tokens[:max_tokens]


def ngrams(tokens: Sequence[str], word_ngrams: tuple[int, int], char_ngrams: tuple[int, int]) -> list[str]:
    """Every word n-gram (``n`` in ``word_ngrams``, inclusive; joined by a space, prefixed ``w:``) and
    every character n-gram of each word padded with ``<`` and ``>`` (``c:``, fastText's subwords;
    ``(0, 0)`` for none) of ``tokens``, in order, repeats kept."""
    grams: list[str] = []
    low, high = word_ngrams
    if high > 0:
        for n in range(max(low, 1), high + 1):
            grams += ["w:" + " ".join(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
    low, high = char_ngrams
    if high > 0:
        for token in tokens:
            padded = f"<{token}>"
            for n in range(max(low, 1), high + 1):
                grams += ["c:" + padded[i:i + n] for i in range(len(padded) - n + 1)]
    return grams


def stable_hash(text: str, seed: int = 0) -> int:
    """A 64-bit hash of ``text``'s UTF-8 bytes that is the same in every process: BLAKE2b, 8-byte
    digest, keyed by ``seed`` through its 16-byte salt (little-endian), read little-endian."""
    digest = _blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8, salt=_salt(seed)).digest()
    return int.from_bytes(digest, "little")


_blake2b = hashlib.blake2b


@lru_cache(maxsize=64)
def _salt(seed: int) -> bytes:
    return int(seed).to_bytes(16, "little")


@dataclass(frozen=True)
class TextFeaturizer:
    """Raw strings → float32 rows ``(N, dim)`` (see the module docstring for every setting).

    ``word_ngrams=(1, 2)``: word unigrams and bigrams; ``char_ngrams=(3, 5)`` would add the
    character 3- to 5-grams of each word (default ``(0, 0)``: none). ``kind="vocab"`` needs
    :meth:`fit` on the training texts before :meth:`transform`; ``onebit train`` on text uses
    :data:`onebit.text.datasets.DEFAULT_FEATURIZER`.
    """

    kind: str = "hash"
    dim: int = 4096
    word_ngrams: tuple[int, int] = (1, 2)
    char_ngrams: tuple[int, int] = (0, 0)
    weighting: str = "binary"
    normalize: str = "l2"
    lowercase: bool = True
    max_chars: int = 2000
    max_tokens: int = 400
    seed: int = 0
    min_df: int = 1
    sequence_length: int = 0
    vocabulary: tuple[str, ...] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        for name in ("word_ngrams", "char_ngrams"):
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))
        if isinstance(self.vocabulary, list):
            object.__setattr__(self, "vocabulary", tuple(self.vocabulary))
        self._check()

    def _check(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"unknown featurizer kind {self.kind!r}; valid choices: {', '.join(KINDS)}")
        if self.weighting not in WEIGHTINGS:
            raise ConfigError(f"unknown weighting {self.weighting!r}; valid choices: {', '.join(WEIGHTINGS)}")
        if self.normalize not in NORMALIZATIONS:
            raise ConfigError(f"unknown normalize {self.normalize!r}; valid choices: {', '.join(NORMALIZATIONS)}")
        for name, low, high in (("dim", 1, MAX_DIM), ("max_chars", 1, 10**9), ("max_tokens", 1, 10**9),
                                ("seed", 0, 2**64 - 1), ("min_df", 1, 10**9),
                                ("sequence_length", 0, MAX_SEQUENCE_LENGTH)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ConfigError(f"featurizer {name} must be an integer in [{low}, {high}], got {value!r}")
        for name in ("word_ngrams", "char_ngrams"):
            value = getattr(self, name)
            if (not isinstance(value, tuple) or len(value) != 2
                    or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 16 for v in value)
                    or value[0] > value[1] or (value[1] > 0 and value[0] < 1)):
                raise ConfigError(f"featurizer {name} must be (low, high) with 1 <= low <= high <= 16, or (0, 0) "
                                  f"for none; got {value!r}")
        if self.sequence_length and self.dim < 3:
            raise ConfigError(f"token-id rows (sequence_length > 0) need dim >= 3 (ids 0 and 1 are reserved), "
                              f"got dim={self.dim}")
        if self.word_ngrams == (0, 0) and self.char_ngrams == (0, 0):
            raise ConfigError("the featurizer needs word_ngrams or char_ngrams (both are (0, 0))")
        if not isinstance(self.lowercase, bool):
            raise ConfigError(f"featurizer lowercase must be true or false, got {self.lowercase!r}")
        if self.vocabulary is not None:
            if self.kind != "vocab":
                raise ConfigError("a vocabulary belongs to kind='vocab'; a hashing featurizer has none")
            if not all(isinstance(g, str) for g in self.vocabulary) or len(set(self.vocabulary)) != len(self.vocabulary):
                raise ConfigError("the featurizer vocabulary must be distinct strings")
            if not 1 <= len(self.vocabulary) <= self.dim:
                raise ConfigError(f"the featurizer vocabulary holds {len(self.vocabulary)} grams; it must hold "
                                  f"1 to dim={self.dim}")

    # ------------------------------------------------------------------ fitting

    @property
    def fitted(self) -> bool:
        """True when :meth:`transform` can run: always for ``"hash"``, after :meth:`fit` for ``"vocab"``."""
        return self.kind == "hash" or self.vocabulary is not None

    @property
    def row_shape(self) -> tuple[int, ...]:
        """The shape of one row of :meth:`transform`: ``(dim,)``, or ``(sequence_length,)`` for token ids."""
        return (self.sequence_length,) if self.sequence_length else (self.dim,)

    def grams(self, text: str) -> list[str]:
        """The grams of one text, in order, repeats kept (what the columns count)."""
        tokens = tokenize(text, lowercase=self.lowercase, max_chars=self.max_chars, max_tokens=self.max_tokens)
        return ngrams(tokens, self.word_ngrams, self.char_ngrams)

    def fit(self, texts: Iterable[str]) -> TextFeaturizer:
        """This featurizer with its vocabulary built from ``texts`` (the training split only).

        ``"vocab"``: the ``dim`` grams found in the most texts (at least ``min_df``), ties by
        the gram's text. ``"hash"`` learns nothing and comes back unchanged.
        """
        texts = _check_texts(texts)
        if self.kind == "hash":
            return self
        df: Counter[str] = Counter()
        for text in texts:
            df.update(set(self.grams(text)))
        ranked = sorted((g for g, c in df.items() if c >= self.min_df), key=lambda g: (-df[g], g))[:self.dim]
        if not ranked:
            raise ConfigError(f"no gram occurs in at least min_df={self.min_df} of the {len(texts)} training texts; "
                              "the vocabulary would be empty")
        return replace(self, vocabulary=tuple(ranked))

    # ------------------------------------------------------------------ transforming

    def columns(self, text: str) -> list[int]:
        """The column of each gram of ``text`` (grams outside a vocabulary dropped), repeats kept."""
        self._require_fitted()
        grams = self.grams(text)
        if self.kind == "hash":
            salt, dim = _salt(self.seed), self.dim
            return [int.from_bytes(_blake2b(g.encode("utf-8", "surrogatepass"), digest_size=8, salt=salt).digest(),
                                   "little") % dim for g in grams]
        index = self._index()
        return [index[g] for g in grams if g in index]

    def transform(self, texts: Iterable[str]) -> np.ndarray:
        """float32 rows ``(len(texts), dim)``: each text's weighted, normalized gram counts; with
        ``sequence_length`` L set, its token ids ``(len(texts), L)`` (:meth:`sequences`) as float32."""
        texts = _check_texts(texts)
        self._require_fitted()
        if self.sequence_length:
            return self.sequences(texts, self.sequence_length).astype(np.float32)
        rows: list[int] = []
        cols: list[int] = []
        values: list[float] = []
        for i, text in enumerate(texts):
            counts = Counter(self.columns(text))
            if not counts:
                continue
            if self.weighting == "binary":
                row = [1.0] * len(counts)
            elif self.weighting == "count":
                row = [float(c) for c in counts.values()]
            else:
                row = [math.log1p(c) for c in counts.values()]
            if self.normalize == "l2":
                norm = math.sqrt(math.fsum(v * v for v in row))
                row = [v / norm for v in row]
            rows += [i] * len(counts)
            cols += counts.keys()
            values += row
        x = np.zeros((len(texts), self.dim), dtype=np.float32)
        x[np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)] = np.asarray(values, dtype=np.float32)
        return x

    __call__ = transform

    def sequences(self, texts: Iterable[str], length: int) -> np.ndarray:
        """int64 token ids ``(len(texts), length)``: word tokens only, truncated to ``length``, padded with 0.

        Ids: 0 is padding, 1 an unknown token; ``"hash"`` sends a token to
        ``2 + h(token) mod (dim − 2)``, ``"vocab"`` to ``2 +`` its rank among the
        vocabulary's unigrams (grams ``w:token``; others are unknown). The input of an
        embedding layer; the bag-of-n-gram rows of :meth:`transform` need none.
        """
        if isinstance(length, bool) or not isinstance(length, int) or length < 1:
            raise ConfigError(f"sequence length must be a positive integer, got {length!r}")
        if self.dim < 3:
            raise ConfigError(f"sequences need dim >= 3 (ids 0 and 1 are reserved), got dim={self.dim}")
        texts = _check_texts(texts)
        self._require_fitted()
        ids = np.full((len(texts), length), _PAD, dtype=np.int64)
        words = None if self.kind == "hash" else self._word_ranks()
        for row, text in enumerate(texts):
            tokens = tokenize(text, lowercase=self.lowercase, max_chars=self.max_chars, max_tokens=length)
            for col, token in enumerate(tokens):
                if words is None:
                    ids[row, col] = 2 + stable_hash("w:" + token, self.seed) % (self.dim - 2)
                else:
                    rank = words.get(token)
                    ids[row, col] = _UNKNOWN if rank is None or rank + 2 >= self.dim else rank + 2
        return ids

    def _word_ranks(self) -> dict[str, int]:
        """Each vocabulary word's rank among the vocabulary's unigrams (cached: a sentence's ids need it)."""
        cached = self.__dict__.get("_word_cache")
        if cached is None:
            cached = {g[2:]: i for i, g in enumerate(g for g in self.vocabulary or () if g.startswith("w:") and " " not in g)}
            object.__setattr__(self, "_word_cache", cached)
        return cached

    def _index(self) -> dict[str, int]:
        cached = self.__dict__.get("_index_cache")
        if cached is None:
            cached = {g: i for i, g in enumerate(self.vocabulary or ())}
            object.__setattr__(self, "_index_cache", cached)
        return cached

    def _require_fitted(self) -> None:
        if not self.fitted:
            raise ConfigError("this vocabulary featurizer has no vocabulary yet: call fit(training_texts) first")

    # ------------------------------------------------------------------ serialization

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain JSON values (with a format tag and version), for a model file's metadata."""
        self._require_fitted()
        values = asdict(self)
        values["word_ngrams"], values["char_ngrams"] = list(self.word_ngrams), list(self.char_ngrams)
        if self.vocabulary is None:
            del values["vocabulary"]
        else:
            values["vocabulary"] = list(self.vocabulary)
        if not self.sequence_length:  # bag-of-n-gram settings stay readable by onebit versions that read 1 only
            del values["sequence_length"]
        return {"format": FEATURIZER_FORMAT, "version": FEATURIZER_VERSION if self.sequence_length else 1, **values}

    @classmethod
    def from_dict(cls, values: Any) -> TextFeaturizer:
        """The featurizer :meth:`to_dict` described; a :class:`ConfigError` names any bad field."""
        if not isinstance(values, dict):
            raise ConfigError(f"featurizer settings must be a JSON object, got {type(values).__name__}")
        if values.get("format") != FEATURIZER_FORMAT:
            raise ConfigError(f"featurizer settings must have format {FEATURIZER_FORMAT!r}, got "
                              f"{values.get('format')!r}")
        if values.get("version") not in READ_FEATURIZER_VERSIONS:
            raise ConfigError(f"featurizer settings version {values.get('version')!r} is not supported (this onebit "
                              f"reads {', '.join(map(str, READ_FEATURIZER_VERSIONS))})")
        if values.get("version") == 1 and "sequence_length" in values:
            raise ConfigError("featurizer settings of version 1 have no sequence_length (it came with version 2)")
        settings = {k: v for k, v in values.items() if k not in ("format", "version")}
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise ConfigError(f"unknown featurizer setting(s) {unknown}; valid: {', '.join(sorted(known))}")
        featurizer = cls(**settings)
        if featurizer.kind == "vocab" and featurizer.vocabulary is None:
            raise ConfigError("featurizer settings of kind 'vocab' hold no vocabulary")
        return featurizer


def _check_texts(texts: Iterable[str]) -> list[str]:
    if isinstance(texts, str):
        raise ConfigError("texts must be a sequence of strings, not one string (wrap it in a list)")
    texts = list(texts)
    bad = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
    if bad is not None:
        raise ConfigError(f"texts must all be str; item {bad} is {type(texts[bad]).__name__}")
    return texts
