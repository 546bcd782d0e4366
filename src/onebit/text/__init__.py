"""onebit.text: text classification with binary networks, numpy only (no torch, no downloads).

- :mod:`onebit.text.features`: tokenizer, word/character n-gram hashing (stable BLAKE2b)
  or a training-split vocabulary, fixed-length rows; settings as a JSON dict.
- :mod:`onebit.text.datasets`: the VADER human-rated sentences (per-domain and
  cross-domain splits) and folders of ``label<TAB>text`` lines:
  ``onebit train --data PATH/vader-sentences``.
- :mod:`onebit.text.classify`: :class:`TextClassifier`, raw strings → featurizer →
  :mod:`onebit.runtime`, from the ``.onebit`` file alone.

The models are :func:`onebit.models.text.binary_text_mlp` (a binary MLP over
bag-of-n-gram rows) and :func:`onebit.models.text.binary_text_cnn` (token ids → embedding →
binary Conv1d; the featurizer with ``sequence_length`` set gives its ids); the experiment is
``text_sentiment``.
"""

from __future__ import annotations

from onebit.text.classify import TextClassifier, export_text_model
from onebit.text.datasets import DOMAINS, TextSplit, load_text_folder, load_vader, text_folder_kind, vader_split
from onebit.text.features import TextFeaturizer, ngrams, stable_hash, tokenize

__all__ = [
    "DOMAINS", "TextClassifier", "TextFeaturizer", "TextSplit", "export_text_model", "load_text_folder", "load_vader",
    "ngrams", "stable_hash", "text_folder_kind", "tokenize", "vader_split",
]
