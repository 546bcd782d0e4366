"""Hostile model files: the regression corpus, and a fuzz over the bytes of a real model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import onebit.runtime as rt
from onebit.errors import ModelFileError

CORPUS = sorted((Path(__file__).parent / "corpus").glob("*.onebit"))
# A valid model (a tiny binary MLP) the byte fuzz starts from.
CORPUS_SEED = Path(__file__).parent / "corpus" / "seeds" / "tiny-mlp.onebit"


def test_the_corpus_is_there():
    assert len(CORPUS) >= 4


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_corpus_file_is_refused_cleanly(path):
    with pytest.raises(ModelFileError):
        rt.load(path)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(data=st.data())
def test_mutated_bytes_are_refused_cleanly_or_run(tmp_path_factory, data):
    """Hypothesis over the raw bytes of a real exported model: overwritten, inserted and deleted
    byte runs give a ModelFileError at load (or a model that still runs), never another
    exception or a crash. A failing input found here belongs in tests/corpus/."""
    seed = CORPUS_SEED.read_bytes()
    blob = bytearray(seed)
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(blob)))
        chunk = data.draw(st.binary(min_size=0, max_size=16))
        kind = data.draw(st.sampled_from(["overwrite", "insert", "delete"]))
        if kind == "overwrite":
            blob[at : at + len(chunk)] = chunk
        elif kind == "insert":
            blob[at:at] = chunk
        else:
            del blob[at : at + data.draw(st.integers(1, 64))]
    path = tmp_path_factory.getbasetemp() / "mutated.onebit"
    path.write_bytes(bytes(blob))
    try:
        model = rt.load(path)
    except ModelFileError:
        return
    model(np.zeros((2, *model.in_shape), np.float32))
