"""onebit.audio.wav: WAV round trips, every PCM format scipy writes, explicit resampling, and
one clear onebit error for every bad file (property tests over random and truncated bytes)."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onebit.audio.wav import read_wav, resample, write_wav
from onebit.errors import (
    ConfigError,
    DataError,
    InputError,
    MissingFileError,
    OnebitError,
)

wavfile = pytest.importorskip("scipy.io.wavfile", reason="scipy is not installed (pip install scipy)")
scipy_signal = pytest.importorskip("scipy.signal", reason="scipy is not installed (pip install scipy)")

PROPERTY = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def _wav_bytes(rate: int, data: np.ndarray) -> bytes:
    buf = io.BytesIO()
    wavfile.write(buf, rate, data)
    return buf.getvalue()


def _valid_wav() -> bytes:
    return _wav_bytes(8000, (1000 * np.sin(np.arange(400) / 5.0)).astype(np.int16))


# --------------------------------------------------------------------------- round trips


@PROPERTY
@given(n=st.integers(1, 3000), channels=st.integers(1, 3), rate=st.integers(1, 192000), seed=st.integers(0, 2**31),
       subtype=st.sampled_from(["PCM_16", "FLOAT"]))
def test_write_then_read_round_trips(tmp_path: Path, n: int, channels: int, rate: int, seed: int,
                                     subtype: str) -> None:
    x = np.random.default_rng(seed).uniform(-1, 1, size=(n, channels)).astype(np.float32)
    path = write_wav(tmp_path / "x.wav", x if channels > 1 else x[:, 0], rate, subtype=subtype)
    y, got_rate = read_wav(path, mono=False)
    assert got_rate == rate and y.dtype == np.float32 and y.shape == (n, channels)
    np.testing.assert_allclose(y, x, atol=2.0**-16 if subtype == "PCM_16" else 0.0)
    mono, _ = read_wav(path, sample_rate=rate)
    np.testing.assert_allclose(mono, y.mean(axis=1), atol=1e-6)


def test_pcm16_clips_and_scales_by_two_to_the_15(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "c.wav", np.array([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0]), 16000)
    _, raw = wavfile.read(path)
    assert raw.dtype == np.int16 and raw.tolist() == [-32768, -32768, -16384, 0, 16384, 32767, 32767]


@pytest.mark.parametrize(("data", "expected"), [
    (np.array([-32768, 0, 16384, 32767], dtype=np.int16), [-1.0, 0.0, 0.5, 32767 / 32768]),
    (np.array([-2**31, 0, 2**30], dtype=np.int32), [-1.0, 0.0, 0.5]),
    (np.array([-2**63, 0, 2**62], dtype=np.int64), [-1.0, 0.0, 0.5]),
    (np.array([0, 128, 192, 255], dtype=np.uint8), [-1.0, 0.0, 0.5, 127 / 128]),
    (np.array([-1.0, 0.25, 1.5], dtype=np.float32), [-1.0, 0.25, 1.5]),  # float as stored, never clipped
    (np.array([-0.5, 0.75], dtype=np.float64), [-0.5, 0.75]),
])
def test_read_scales_every_sample_format(tmp_path: Path, data: np.ndarray, expected: list[float]) -> None:
    path = tmp_path / "f.wav"
    path.write_bytes(_wav_bytes(11025, data))
    x, rate = read_wav(path)
    assert rate == 11025 and x.dtype == np.float32
    np.testing.assert_allclose(x, expected, atol=1e-7)


def test_read_24_bit_pcm(tmp_path: Path) -> None:
    values = [-2**23, 0, 2**22, 2**23 - 1]
    data = b"".join(struct.pack("<i", v)[:3] for v in values)
    body = (b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, 1, 8000, 8000 * 3, 3, 24)
            + b"data" + struct.pack("<I", len(data)) + data)
    path = tmp_path / "24.wav"
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    x, _ = read_wav(path)
    np.testing.assert_allclose(x, [v / 2**23 for v in values], atol=1e-7)


def test_stereo_mixdown_and_channels(tmp_path: Path) -> None:
    path = tmp_path / "s.wav"
    path.write_bytes(_wav_bytes(8000, np.array([[16384, -16384], [32767, 32767]], dtype=np.int16)))
    mono, _ = read_wav(path)
    np.testing.assert_allclose(mono, [0.0, 32767 / 32768], atol=1e-7)
    both, _ = read_wav(path, mono=False)
    assert both.shape == (2, 2)


def test_write_is_atomic_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    path = tmp_path / "a.wav"
    path.write_bytes(b"old")
    write_wav(path, np.zeros(10), 8000)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.wav"]
    assert read_wav(path)[0].shape == (10,)


# --------------------------------------------------------------------------- bad files


def test_a_different_sample_rate_is_an_error_naming_both(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "r.wav", np.zeros(100), 22050)
    with pytest.raises(ConfigError, match=r"r\.wav: sampled at 22050 Hz, not the 16000 Hz asked for"):
        read_wav(path, sample_rate=16000)


@pytest.mark.parametrize(("content", "error", "match"), [
    (None, MissingFileError, "no such WAV file"),
    (b"", DataError, r"not a RIFF/WAVE file \(empty file\)"),
    (b"ID3\x03\x00\x00\x00\x00\x00\x00\x00\x00 mp3 data", DataError, r"not a RIFF/WAVE file \(starts with b'ID3"),
    (b"RIFF\x10\x00\x00\x00AVI LIST", DataError, "not a RIFF/WAVE file"),
    (_valid_wav()[:44], DataError, "truncated"),
    (_valid_wav()[:300], DataError, "truncated"),
    (_valid_wav()[:30], DataError, "corrupt or truncated"),
    (_valid_wav()[:-1], DataError, "corrupt or truncated"),
    (_wav_bytes(8000, np.zeros(0, dtype=np.int16)), DataError, "holds no samples"),
    (_wav_bytes(8000, np.array([0.0, np.nan, np.inf], dtype=np.float32)), DataError, "2 NaN or infinite samples"),
])
def test_bad_files_raise_one_clear_error(tmp_path: Path, content: bytes | None, error: type, match: str) -> None:
    path = tmp_path / "bad.wav"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(error, match=match) as info:
        read_wav(path)
    assert isinstance(info.value, OnebitError) and str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_a_directory_is_not_a_wav_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="is a directory"):
        read_wav(tmp_path)


def _check_read_never_crashes(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    try:
        x, rate = read_wav(path)
    except OnebitError as exc:
        assert str(path) in str(exc) and "\n" not in str(exc)
    else:
        assert x.dtype == np.float32 and x.ndim == 1 and x.size > 0 and np.all(np.isfinite(x)) and rate > 0


@PROPERTY
@given(data=st.binary(max_size=300))
def test_random_bytes_only_ever_raise_a_onebit_error(tmp_path: Path, data: bytes) -> None:
    _check_read_never_crashes(tmp_path / "random.wav", data)


@PROPERTY
@given(body=st.binary(max_size=200))
def test_random_bytes_behind_a_riff_wave_header_only_ever_raise_a_onebit_error(tmp_path: Path, body: bytes) -> None:
    _check_read_never_crashes(tmp_path / "riff.wav", b"RIFF" + struct.pack("<I", len(body) + 4) + b"WAVE" + body)


@PROPERTY
@given(cut=st.integers(0, 843))
def test_every_truncation_of_a_valid_file_only_ever_raises_a_onebit_error(tmp_path: Path, cut: int) -> None:
    _check_read_never_crashes(tmp_path / "cut.wav", _valid_wav()[:cut])


@PROPERTY
@given(edits=st.lists(st.tuples(st.integers(0, 60), st.integers(0, 255)), min_size=1, max_size=4))
def test_corrupted_headers_only_ever_raise_a_onebit_error(tmp_path: Path, edits: list[tuple[int, int]]) -> None:
    data = bytearray(_valid_wav())
    for position, value in edits:
        data[position] = value
    _check_read_never_crashes(tmp_path / "edit.wav", bytes(data))


@pytest.mark.parametrize(("call", "error", "match"), [
    (lambda p: write_wav(p, np.zeros(10), 8000, subtype="PCM_24"), ConfigError, "valid choices: FLOAT, PCM_16"),
    (lambda p: write_wav(p, np.array([0.0, np.nan]), 8000), InputError, "NaN or infinite"),
    (lambda p: write_wav(p, np.zeros(0), 8000), InputError, "non-empty"),
    (lambda p: write_wav(p, np.zeros((2, 2, 2)), 8000), InputError, r"\(samples, channels\)"),
    (lambda p: write_wav(p, np.zeros(10), 0), ConfigError, "sample_rate must be a positive integer"),
    (lambda p: write_wav(p, np.zeros(10), 8000.5), ConfigError, "sample_rate must be a positive integer"),
    (lambda p: write_wav(p.parent / "nowhere" / "x.wav", np.zeros(10), 8000), MissingFileError, "does not exist"),
    (lambda p: read_wav(p, sample_rate=-1), ConfigError, "sample_rate must be a positive integer"),
])
def test_bad_write_arguments(tmp_path: Path, call, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        call(tmp_path / "w.wav")
    assert not (tmp_path / "w.wav").exists()


# --------------------------------------------------------------------------- resampling


@pytest.mark.parametrize(("orig", "target"), [(22050, 16000), (22050, 8000), (8000, 16000), (44100, 22050)])
def test_resample_is_scipy_resample_poly_with_reduced_ratio(orig: int, target: int) -> None:
    x = np.random.default_rng(0).standard_normal(4410)
    y = resample(x, orig, target)
    assert y.dtype == np.float32 and len(y) == -(-len(x) * target // orig)
    g = np.gcd(orig, target)
    np.testing.assert_allclose(y, scipy_signal.resample_poly(x, target // g, orig // g), atol=1e-6)


def test_resample_keeps_a_sine_and_equal_rates_copy() -> None:
    t = np.arange(22050) / 22050
    y = resample(np.sin(2 * np.pi * 440 * t), 22050, 8000)
    t8 = np.arange(len(y)) / 8000
    np.testing.assert_allclose(y[200:-200], np.sin(2 * np.pi * 440 * t8)[200:-200], atol=2e-3)
    x = np.ones(5, dtype=np.float64)
    assert resample(x, 8000, 8000).dtype == np.float32 and resample(x, 8000, 8000).tolist() == [1.0] * 5
    with pytest.raises(InputError, match="NaN"):
        resample(np.array([np.nan]), 8000, 16000)
    with pytest.raises(ConfigError, match="target_rate"):
        resample(x, 8000, 0)
