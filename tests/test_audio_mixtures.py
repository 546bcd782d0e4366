"""Two-speaker mixtures (onebit.audio.mixtures): SNR scaling, disjoint splits, determinism, ideal masks."""

from __future__ import annotations

import numpy as np
import pytest

from onebit.audio.mixtures import (
    HARVARD_SENTENCES,
    TEST_VOICES,
    TRAIN_VOICES,
    generate_mixtures,
    ideal_binary_mask,
    ideal_ratio_mask,
    mix_at_snr,
)
from onebit.errors import ConfigError, DataError

espeak = pytest.mark.skipif(
    not __import__("onebit.audio.espeak", fromlist=["espeak_available"]).espeak_available(),
    reason="espeak-ng is not installed (apt-get install espeak-ng): the mixtures are synthesized by it")


@pytest.mark.parametrize("snr", [-5.0, 0.0, 5.0, 12.5])
def test_mix_at_snr_sets_the_energy_ratio_and_the_peak(snr):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(1000), 3 * rng.standard_normal(1200)
    mixture, s1, s2 = mix_at_snr(a, b, snr)
    assert mixture.dtype == np.float32 and len(mixture) == len(s1) == len(s2) == 1000
    assert 10 * np.log10(np.sum(s1.astype(np.float64) ** 2) / np.sum(s2.astype(np.float64) ** 2)) == pytest.approx(
        snr, abs=1e-4)
    np.testing.assert_allclose(mixture, s1 + s2, atol=1e-6)
    assert np.max(np.abs(mixture)) == pytest.approx(0.9, abs=1e-6)


def test_mix_at_snr_refuses_bad_signals():
    with pytest.raises(DataError, match="silent"):
        mix_at_snr(np.zeros(10), np.ones(10), 0.0)
    with pytest.raises(DataError, match="empty"):
        mix_at_snr(np.zeros(0), np.ones(10), 0.0)
    with pytest.raises(DataError, match="NaN"):
        mix_at_snr(np.array([1.0, np.nan]), np.ones(2), 0.0)
    with pytest.raises(ConfigError, match="finite"):
        mix_at_snr(np.ones(3), np.ones(3), float("inf"))


def test_ideal_masks():
    s1 = np.array([[3 + 4j, 0, 1, 0]])
    s2 = np.array([[1, 2, 1, 0]])
    np.testing.assert_array_equal(ideal_binary_mask(s1, s2), [[1, 0, 0, 0]])
    np.testing.assert_allclose(ideal_ratio_mask(s1, s2), [[5 / 6, 0, 0.5, 0.5]])
    assert ideal_binary_mask(s1, s2).dtype == np.float32
    with pytest.raises(DataError, match="differ in shape"):
        ideal_binary_mask(s1, s2[:, :3])
    with pytest.raises(DataError, match="NaN"):
        ideal_ratio_mask(s1, np.array([[np.nan, 0, 0, 0]]))


def test_splits_share_no_voice_variant_accent_or_sentence():
    for who in (1, 2):
        train = [v.split("+") for v in TRAIN_VOICES[who]]
        test = [v.split("+") for v in TEST_VOICES[who]]
        assert not {a for a, _ in train} & {a for a, _ in test}
        assert not {b for _, b in train} & {b for _, b in test}
    assert all(v.split("+")[1].startswith("m") for v in TRAIN_VOICES[1] + TEST_VOICES[1])
    assert all(v.split("+")[1].startswith("f") for v in TRAIN_VOICES[2] + TEST_VOICES[2])
    assert len(set(HARVARD_SENTENCES)) == 50


def test_generate_mixtures_argument_errors():
    with pytest.raises(ConfigError, match="unknown split 'valid'.*train, test"):
        generate_mixtures(2, "valid")
    with pytest.raises(ConfigError, match="count must be a positive integer"):
        generate_mixtures(0)
    with pytest.raises(ConfigError, match="sample_rate"):
        generate_mixtures(1, sample_rate=100)
    with pytest.raises(ConfigError, match="snrs"):
        generate_mixtures(1, snrs=[])


@espeak
def test_generated_mixtures_are_deterministic_and_disjoint():
    train = generate_mixtures(3, "train", seed=1)
    again = generate_mixtures(3, "train", seed=1)
    test = generate_mixtures(3, "test", seed=1)
    for a, b in zip(train, again):
        np.testing.assert_array_equal(a.mixture, b.mixture)
        assert (a.speaker1, a.speaker2, a.text1, a.text2) == (b.speaker1, b.speaker2, b.text1, b.text2)
    assert [m.snr_db for m in train] == [-5.0, 0.0, 5.0]
    for m in train + test:
        assert m.sample_rate == 8000 and m.mixture.dtype == np.float32 and m.sources.shape == (2, len(m.mixture))
        assert len(m.mixture) > 8000  # a sentence lasts more than a second
        assert m.text1 != m.text2
        measured = 10 * np.log10(np.sum(m.source1.astype(np.float64) ** 2) / np.sum(m.source2.astype(np.float64) ** 2))
        assert measured == pytest.approx(m.snr_db, abs=1e-3)
    train_texts = {t for m in train for t in (m.text1, m.text2)}
    test_texts = {t for m in test for t in (m.text1, m.text2)}
    assert not train_texts & test_texts
    assert {m.speaker1.voice for m in test} <= set(TEST_VOICES[1])
    assert {m.speaker2.voice for m in train} <= set(TRAIN_VOICES[2])
