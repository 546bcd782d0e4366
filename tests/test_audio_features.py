"""onebit.audio.features: STFT/ISTFT, mel filter bank, log-mel and MFCC against their formulas,
scipy and (where installed) librosa; fixed-length helpers; input validation; no torch import."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from onebit.audio import features as F
from onebit.errors import ConfigError, InputError, OnebitError

scipy_signal = pytest.importorskip("scipy.signal", reason="scipy is not installed (pip install scipy)")
scipy_fft = pytest.importorskip("scipy.fft", reason="scipy is not installed (pip install scipy)")


# librosa warns about the 300-sample signal shorter than n_fft (onebit pads it the same way, silently)
LIBROSA_SHORT = pytest.mark.filterwarnings("ignore:n_fft=.* is too large:UserWarning")


def _librosa():
    # exc_type=ImportError: an installed librosa that cannot import (numba/numpy mismatch) skips too
    return pytest.importorskip("librosa", reason="librosa is not installed or not importable (pip install librosa): "
                                                 "the librosa comparisons are skipped", exc_type=ImportError)


def _signals() -> dict[str, np.ndarray]:
    """Deterministic test signals: noise, a chirp with silence, a short click train."""
    rng = np.random.default_rng(0)
    t = np.arange(12000) / 8000.0
    chirp = 0.5 * np.sin(2 * np.pi * (100 + 900 * t) * t)
    chirp[:2000] = 0.0
    clicks = np.zeros(3001)
    clicks[::250] = 1.0
    return {"noise": 0.1 * rng.standard_normal(8000), "chirp": chirp, "clicks": clicks,
            "short": rng.standard_normal(300)}


# --------------------------------------------------------------------------- windows, STFT, ISTFT


@pytest.mark.parametrize("window", F.WINDOWS)
@pytest.mark.parametrize("n", [2, 7, 8, 512, 2048])
def test_windows_equal_scipy_periodic_windows(window: str, n: int) -> None:
    np.testing.assert_allclose(F.get_window(window, n), scipy_signal.get_window(window, n), atol=1e-12)


def test_stft_is_the_windowed_dft_of_centred_zero_padded_frames() -> None:
    rng = np.random.default_rng(1)
    x, n_fft, hop = rng.standard_normal(100), 16, 5
    S = F.stft(x, n_fft=n_fft, hop=hop)
    assert S.dtype == np.complex64 and S.shape == (1 + len(x) // hop, n_fft // 2 + 1)
    padded = np.concatenate([np.zeros(n_fft // 2), x, np.zeros(n_fft // 2)])
    w = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    k = np.arange(n_fft // 2 + 1)[:, None]
    dft = np.exp(-2j * np.pi * k * np.arange(n_fft)[None, :] / n_fft)
    for t in range(len(S)):
        expected = dft @ (w * padded[t * hop:t * hop + n_fft])  # frame t centred on sample t*hop
        np.testing.assert_allclose(S[t], expected, rtol=1e-5, atol=1e-5)


def test_stft_without_centering_and_reflect_padding() -> None:
    x = np.random.default_rng(2).standard_normal(64)
    S = F.stft(x, n_fft=16, hop=4, center=False)
    assert S.shape == (1 + (64 - 16) // 4, 9)
    np.testing.assert_allclose(S[3], np.fft.rfft(F.get_window("hann", 16) * x[12:28]), rtol=1e-5, atol=1e-5)
    R = F.stft(x, n_fft=16, hop=4, pad_mode="reflect")
    np.testing.assert_allclose(R[0], np.fft.rfft(F.get_window("hann", 16) * np.pad(x, 8, mode="reflect")[:16]),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("window", F.WINDOWS)
@pytest.mark.parametrize(("n_fft", "hop"), [(512, 128), (512, 256), (400, 160), (64, 7), (31, 10), (16, 15)])
def test_istft_inverts_stft_for_every_nola_pair(window: str, n_fft: int, hop: int) -> None:
    assert F.check_nola(n_fft, hop, window)
    x = np.random.default_rng(3).standard_normal(5000).astype(np.float32)
    y = F.istft(F.stft(x, n_fft, hop, window), n_fft, hop, window, length=len(x))
    assert y.dtype == np.float32 and y.shape == x.shape
    np.testing.assert_allclose(y, x, atol=2e-5)


def test_istft_length_and_center_false() -> None:
    x = np.random.default_rng(4).standard_normal(1000)
    S = F.stft(x, 64, 16)
    assert len(F.istft(S, 64, 16)) == 16 * (len(S) - 1)
    longer = F.istft(S, 64, 16, length=1200)  # past the signal: its zero padding, then zeros
    assert len(longer) == 1200
    np.testing.assert_allclose(longer[:1000], x, atol=2e-5)
    np.testing.assert_allclose(longer[1000:], 0.0, atol=1e-4)  # window edges: float32 noise, amplified
    y = F.istft(F.stft(x, 64, 16, center=False), 64, 16, center=False)
    assert y[0] == 0.0  # the periodic Hann window is 0 there: nothing to recover, not a division by 0
    np.testing.assert_allclose(y[1:], x[1:len(y)], atol=2e-5)


@pytest.mark.parametrize("window", F.WINDOWS)
def test_check_nola_and_cola_agree_with_scipy(window: str) -> None:
    for n_fft in (16, 31, 64, 512):
        for hop in sorted({1, 2, 3, 5, n_fft // 4, n_fft // 3, n_fft // 2, n_fft - 1, n_fft}):
            assert F.check_nola(n_fft, hop, window) == scipy_signal.check_NOLA(window, n_fft, n_fft - hop)
            assert F.check_cola(n_fft, hop, window) == scipy_signal.check_COLA(window, n_fft, n_fft - hop)
    assert not F.check_nola(64, 65, window) and not F.check_cola(64, 65, window)


@LIBROSA_SHORT
def test_stft_matches_librosa() -> None:
    librosa = _librosa()
    for name, x in _signals().items():
        for pad_mode in ("constant", "reflect"):
            ours = F.stft(x, 512, 128, pad_mode=pad_mode)
            ref = librosa.stft(x, n_fft=512, hop_length=128, pad_mode=pad_mode).T
            assert ours.shape == ref.shape, name
            np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max(), err_msg=name)


# --------------------------------------------------------------------------- mel scale, dB, DCT


def test_slaney_mel_scale() -> None:
    assert F.hz_to_mel(1000.0) == pytest.approx(15.0)
    assert F.hz_to_mel(200.0) == pytest.approx(3.0)  # 3 mels per 200 Hz below 1 kHz
    assert F.hz_to_mel(6400.0) == pytest.approx(15.0 + 27.0)  # 27 steps per factor 6.4 above
    hz = np.linspace(0, 20000, 101)
    np.testing.assert_allclose(F.mel_to_hz(F.hz_to_mel(hz)), hz, atol=1e-9)


def test_mel_filterbank_is_slaney_triangles() -> None:
    """An independent loop over the textbook definition: triangles on mel-spaced edges, area 2/(f2-f0)."""
    sr, n_fft, n_mels, fmin, fmax = 16000, 512, 40, 50.0, 7000.0
    fb = F.mel_filterbank(sr, n_fft, n_mels, fmin, fmax)
    assert fb.shape == (n_mels, n_fft // 2 + 1)
    edges = F.mel_to_hz(np.linspace(F.hz_to_mel(fmin), F.hz_to_mel(fmax), n_mels + 2))
    freqs = np.arange(n_fft // 2 + 1) * sr / n_fft
    for m in range(n_mels):
        f0, f1, f2 = edges[m:m + 3]
        for k, f in enumerate(freqs):
            tri = (f - f0) / (f1 - f0) if f0 <= f <= f1 else (f2 - f) / (f2 - f1) if f1 < f <= f2 else 0.0
            assert fb[m, k] == pytest.approx(max(tri, 0.0) * 2.0 / (f2 - f0), abs=1e-12)


def test_mel_filterbank_matches_librosa() -> None:
    librosa = _librosa()
    for sr, n_fft, n_mels in [(8000, 2048, 128), (16000, 512, 40), (22050, 2048, 128), (44100, 1024, 64)]:
        ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, dtype=np.float64)
        np.testing.assert_allclose(F.mel_filterbank(sr, n_fft, n_mels), ref, rtol=1e-9, atol=1e-12)
    ref = librosa.filters.mel(sr=16000, n_fft=1024, n_mels=30, fmin=300.0, fmax=6000.0, dtype=np.float64)
    np.testing.assert_allclose(F.mel_filterbank(16000, 1024, 30, 300.0, 6000.0), ref, rtol=1e-9, atol=1e-12)


def test_empty_mel_filters_warn() -> None:
    with pytest.warns(UserWarning, match="mel filters are empty"):
        F.mel_filterbank(16000, 128, 128)


def test_dct_ortho_equals_scipy() -> None:
    x = np.random.default_rng(5).standard_normal((7, 128))
    np.testing.assert_allclose(F.dct_ortho(x), scipy_fft.dct(x, type=2, norm="ortho"), atol=1e-12)
    np.testing.assert_allclose(F.dct_ortho(x.T, axis=0), scipy_fft.dct(x.T, type=2, norm="ortho", axis=0),
                               atol=1e-12)


def test_power_to_db_and_log_magnitude_formulas() -> None:
    P = np.array([[1.0, 1e-3], [1e-12, 100.0]])
    np.testing.assert_allclose(F.power_to_db(P, top_db=None), [[0.0, -30.0], [-100.0, 20.0]])
    np.testing.assert_allclose(F.power_to_db(P), [[0.0, -30.0], [-60.0, 20.0]])  # clipped 80 dB below 20
    S = np.array([[1 + 0j, 0.1j], [0.0, 10.0]])
    np.testing.assert_allclose(F.log_magnitude(S), [[0.0, -20.0], [-60.0, 20.0]], atol=1e-5)  # 80 dB below 20
    np.testing.assert_allclose(F.log_magnitude(S, floor_db=-25.0), [[0.0, -5.0], [-5.0, 20.0]], atol=1e-5)
    assert F.log_magnitude(S).dtype == np.float32


def test_mfcc_is_dct_of_log_mel_power() -> None:
    """mfcc = first coefficients of the orthonormal DCT-II of 10 log10(|STFT|^2 @ mel.T), clipped 80 dB."""
    x, sr = _signals()["chirp"], 8000
    power = np.abs(F.stft(x, 2048, 512).astype(np.complex128)) ** 2
    db = 10 * np.log10(np.maximum(power @ F.mel_filterbank(sr, 2048).T, 1e-10))
    db = np.maximum(db, db.max() - 80.0)
    np.testing.assert_allclose(F.log_mel(x, sr), db, rtol=1e-4, atol=1e-3)
    expected = scipy_fft.dct(db, type=2, norm="ortho", axis=1)[:, :13]
    ours = F.mfcc(x, sr)
    assert ours.dtype == np.float32 and ours.shape == (1 + len(x) // 512, 13)
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-3)


@LIBROSA_SHORT
@pytest.mark.parametrize("sr", [8000, 16000, 22050])
def test_mfcc_matches_librosa_defaults(sr: int) -> None:
    librosa = _librosa()
    for name, x in _signals().items():
        for dtype in (np.float64, np.float32):
            y = x.astype(dtype)
            ref = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=13).T
            ours = F.mfcc(y, sr)
            assert ours.shape == ref.shape, name
            np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max(), err_msg=name)


def test_log_mel_and_log_magnitude_match_librosa() -> None:
    librosa = _librosa()
    x = _signals()["noise"]
    ref = librosa.power_to_db(librosa.feature.melspectrogram(y=x, sr=16000, n_fft=1024, hop_length=256,
                                                             n_mels=64, fmin=20.0, fmax=7600.0)).T
    ours = F.log_mel(x, 16000, n_fft=1024, hop=256, n_mels=64, fmin=20.0, fmax=7600.0)
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-4)
    S = F.stft(x)
    np.testing.assert_allclose(F.log_magnitude(S), librosa.amplitude_to_db(np.abs(S), ref=1.0), atol=1e-4)


# --------------------------------------------------------------------------- framing, padding, CMVN


def test_frame_signal() -> None:
    x = np.arange(10)
    frames = F.frame_signal(x, 4, 3)
    assert frames.tolist() == [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9]]
    assert F.frame_signal(x, 10, 1).shape == (1, 10)
    with pytest.raises(InputError, match="shorter than one frame"):
        F.frame_signal(x, 11, 1)


def test_pad_or_crop() -> None:
    x = np.arange(5)
    assert F.pad_or_crop(x, 3).tolist() == [1, 2, 3]
    assert F.pad_or_crop(x, 3, mode="start").tolist() == [0, 1, 2]
    assert F.pad_or_crop(x, 8).tolist() == [0, 0, 1, 2, 3, 4, 0, 0]  # 1 before, 2 after
    assert F.pad_or_crop(x, 8, mode="start", value=-1).tolist() == [0, 1, 2, 3, 4, -1, -1, -1]
    assert F.pad_or_crop(x, 5).tolist() == x.tolist()
    m = np.arange(12).reshape(3, 4)
    assert F.pad_or_crop(m, 2, axis=1).tolist() == [[1, 2], [5, 6], [9, 10]]
    assert F.pad_or_crop(m, 5, axis=0).shape == (5, 4)
    assert F.pad_or_crop(m, 5, axis=-2)[0].tolist() == [0, 0, 0, 0]
    with pytest.raises(ConfigError, match="valid choices: center, start"):
        F.pad_or_crop(x, 3, mode="end")
    with pytest.raises(ConfigError, match="axis 2 is out of range"):
        F.pad_or_crop(m, 3, axis=2)


def test_normalize_utterance() -> None:
    feats = np.random.default_rng(6).normal(5.0, 3.0, size=(200, 13))
    feats[:, 4] = 7.0  # a constant coefficient becomes 0, not NaN
    out = F.normalize_utterance(feats)
    assert out.dtype == np.float32 and out.shape == feats.shape
    np.testing.assert_allclose(out.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(np.delete(out.std(axis=0), 4), 1.0, atol=1e-4)
    assert np.all(out[:, 4] == 0.0)
    np.testing.assert_allclose(F.normalize_utterance(feats.T, axis=1), out.T, atol=1e-6)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(("call", "error", "match"), [
    (lambda: F.stft(np.zeros((2, 100))), InputError, "must be 1-D"),
    (lambda: F.stft(np.zeros(0)), InputError, "empty"),
    (lambda: F.stft(np.array([0.0, np.nan, 1.0])), InputError, "NaN or infinite"),
    (lambda: F.stft(np.ones(100, dtype=complex)), InputError, "real-valued"),
    (lambda: F.stft(np.array(["a", "b"])), InputError, "real-valued"),
    (lambda: F.stft(np.ones(100), n_fft=1), ConfigError, "n_fft must be an integer >= 2"),
    (lambda: F.stft(np.ones(100), hop=0), ConfigError, "hop must be an integer >= 1"),
    (lambda: F.stft(np.ones(100), hop=2.5), ConfigError, "hop must be an integer"),
    (lambda: F.stft(np.ones(100), window="han"), ConfigError, "did you mean 'hann'"),
    (lambda: F.stft(np.ones(100), window="kaiser"), ConfigError, "valid choices: .*hamming"),
    (lambda: F.stft(np.ones(100), pad_mode="edge"), ConfigError, "valid choices: constant, reflect"),
    (lambda: F.stft(np.ones(100), n_fft=512, center=False), InputError, "shorter than n_fft=512"),
    (lambda: F.istft(np.zeros((4, 10)), n_fft=512), InputError, r"\(frames, 257\)"),
    (lambda: F.istft(np.zeros((0, 257))), InputError, "0 frames"),
    (lambda: F.istft(np.full((3, 257), np.nan)), InputError, "NaN"),
    (lambda: F.mel_filterbank(8000, 512, fmax=5000.0), ConfigError, "sample_rate / 2 = 4000 Hz"),
    (lambda: F.mel_filterbank(8000, 512, fmin=-1.0), ConfigError, "fmin"),
    (lambda: F.mel_filterbank(0, 512), ConfigError, "sample_rate must be an integer"),
    (lambda: F.mel_filterbank(8000, 512, n_mels=0), ConfigError, "n_mels"),
    (lambda: F.mfcc(np.ones(100), 8000, n_mfcc=200), ConfigError, "more than n_mels"),
    (lambda: F.mfcc(np.ones((100, 2)), 8000), InputError, "must be 1-D"),
    (lambda: F.power_to_db(np.zeros(0)), InputError, "non-empty"),
    (lambda: F.power_to_db(np.ones(3), amin=0.0), ConfigError, "amin must be positive"),
    (lambda: F.log_magnitude(np.ones(3), floor_db=10.0), ConfigError, "floor_db must be a negative"),
    (lambda: F.normalize_utterance(np.zeros((0, 13))), InputError, "non-empty"),
    (lambda: F.normalize_utterance(np.ones((3, 2)), eps=0.0), ConfigError, "eps must be positive"),
])
def test_bad_input_raises_a_clear_onebit_error(call, error: type, match: str) -> None:
    with pytest.raises(error, match=match) as info:
        call()
    assert isinstance(info.value, OnebitError)


# --------------------------------------------------------------------------- imports


def test_import_onebit_audio_imports_neither_torch_nor_scipy() -> None:
    """onebit.audio is numpy-only at import (scipy is imported on first WAV/resample use)."""
    code = textwrap.dedent(
        """
        import sys

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "torch":
                    raise ImportError(f"torch is blocked in this test (import of {name})")
                return None

        sys.meta_path.insert(0, Block())
        import numpy as np
        import onebit.audio
        import onebit.audio.features, onebit.audio.wav, onebit.audio.espeak
        assert "torch" not in sys.modules
        assert not [m for m in sys.modules if m.split(".")[0] == "scipy"], "scipy imported at import time"
        onebit.audio.mfcc(np.random.default_rng(0).standard_normal(4000), 8000)
        assert "torch" not in sys.modules
        print("ok")
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
