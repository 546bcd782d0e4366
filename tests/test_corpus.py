"""The regression corpus: every hostile file that ever got past the loader gets a clean error now."""

from __future__ import annotations

from pathlib import Path

import pytest

import onebit.runtime as rt
from onebit.errors import ModelFileError

CORPUS = sorted((Path(__file__).parent / "corpus").glob("*.onebit"))


def test_the_corpus_is_there():
    assert len(CORPUS) >= 4


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_corpus_file_is_refused_cleanly(path):
    with pytest.raises(ModelFileError):
        rt.load(path)
