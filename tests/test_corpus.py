"""Hostile model files: the regression corpus, and a fuzz over the bytes of real models."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import onebit.runtime as rt
from onebit.errors import ModelFileError
from tests import fuzzing

CORPUS = sorted((Path(__file__).parent / "corpus").glob("*.onebit"))
# Valid exported models the byte fuzz starts from: a tiny binary MLP, and a small conv net
# (float stem, a Bi-Real residual block, a binary conv max-pooled on packed bits).
CORPUS_SEEDS = sorted((Path(__file__).parent / "corpus" / "seeds").glob("*.onebit"))


def test_the_corpus_and_the_seeds_are_there():
    assert len(CORPUS) >= 4
    assert [p.name for p in CORPUS_SEEDS] == ["small-cnn.onebit", "tiny-mlp.onebit"]


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_corpus_file_is_refused_cleanly(path):
    with pytest.raises(ModelFileError, match=rf"^{re.escape(str(path))}: \S"):
        rt.load(path)


def _mutated_bytes(data: st.DataObject, tmp_dir: Path) -> None:
    """One example: a seed model with 1-4 byte runs overwritten, inserted or deleted."""
    blob = bytearray(data.draw(st.sampled_from(CORPUS_SEEDS)).read_bytes())
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
    fuzzing.check_model_file(bytes(blob), fuzzing.example_path("bytes", tmp_dir), "bytes")


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(data=st.data())
def test_mutated_bytes_are_refused_cleanly_or_run(tmp_path_factory, data):
    """Hypothesis over the raw bytes of real exported models (overwrite, insert, delete):
    a ModelFileError naming the file and the problem at load, or a model that still runs;
    never another exception, a crash or a hang. The fixed examples of the normal suite."""
    _mutated_bytes(data, tmp_path_factory.getbasetemp())


@pytest.mark.skipif(not fuzzing.timed_run(), reason=fuzzing.SKIP_REASON)
def test_mutated_bytes_time_bounded(tmp_path):
    """The same fuzz on random examples for ONEBIT_FUZZ_SECONDS (CI: .ci/fuzz)."""
    assert fuzzing.fuzz_for_a_while(lambda data: _mutated_bytes(data, tmp_path), "bytes") > 0
