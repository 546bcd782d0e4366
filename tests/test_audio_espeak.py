"""onebit.audio.espeak: speech from the espeak-ng program, deterministic and resampled exactly;
voice/variant/speed/pitch checked with valid choices; a clear error where espeak-ng is absent."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from onebit.audio import espeak
from onebit.audio.espeak import (
    espeak_available,
    espeak_version,
    list_variants,
    list_voices,
    synthesize,
    trim_silence,
)
from onebit.errors import ConfigError, InputError, OnebitError

needs_espeak = pytest.mark.skipif(not espeak_available(),
                                  reason="espeak-ng is not installed (apt-get install espeak-ng)")


# --------------------------------------------------------------------------- without espeak-ng


def test_a_missing_espeak_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONEBIT_ESPEAK", "onebit-no-such-espeak-ng")
    assert not espeak_available()
    for call in (lambda: synthesize("one"), espeak_version, list_voices, list_variants):
        with pytest.raises(ConfigError, match=r"espeak-ng is not installed \(no program 'onebit-no-such-espeak-ng' "
                                              r"found\): apt-get install espeak-ng \(Debian/Ubuntu\)") as info:
            call()
        assert "\n" not in str(info.value)


def test_trim_silence_keeps_first_to_last_loud_sample() -> None:
    x = np.zeros(100, dtype=np.float32)
    x[20], x[30], x[70], x[80] = 0.001, 1.0, -0.5, 0.002
    assert trim_silence(x).tolist() == x[30:71].tolist()  # -40 dB: 0.01 of the peak
    assert trim_silence(x, threshold_db=-60.0).tolist() == x[20:81].tolist()
    assert trim_silence(x).dtype == np.float32
    with pytest.raises(InputError, match="all zeros"):
        trim_silence(np.zeros(10))
    with pytest.raises(ConfigError, match="threshold_db must be a negative"):
        trim_silence(x, threshold_db=3.0)
    with pytest.raises(InputError, match="1-D"):
        trim_silence(x.reshape(10, 10))


# --------------------------------------------------------------------------- with espeak-ng


@needs_espeak
def test_version_voices_and_variants() -> None:
    assert espeak_version()[0].isdigit()
    voices = list_voices("en")
    assert {"en", "en-us", "en-gb", "en-gb-scotland", "en-029", "en-gb-x-rp"} <= set(voices)
    assert all(v == "en" or v.startswith("en-") for v in voices)
    assert not any("mbrola" in v for v in voices)
    assert {"de", "fr-fr", "en-us"} <= set(list_voices(""))
    variants = list_variants()
    assert {f"m{i}" for i in range(1, 8)} | {f"f{i}" for i in range(1, 5)} | {"klatt", "whisper"} <= set(variants)


@needs_espeak
def test_synthesize_is_deterministic_float32_speech() -> None:
    a = synthesize("seven", voice="en-us+f3", speed=150, pitch=60, sample_rate=8000)
    b = synthesize("seven", voice="en-us+f3", speed=150, pitch=60, sample_rate=8000)
    assert a.dtype == np.float32 and a.ndim == 1 and np.array_equal(a, b)
    assert 0.05 < np.abs(a).max() <= 1.0 and 0.2 < len(a) / 8000 < 2.0
    assert not np.array_equal(a, synthesize("seven", voice="en-us+m3", speed=150, pitch=60, sample_rate=8000))
    assert len(synthesize("seven", voice="en-us+f3", speed=300, pitch=60, sample_rate=8000)) < len(a)


@needs_espeak
def test_synthesize_resamples_espeaks_own_file_exactly(tmp_path: Path) -> None:
    from onebit.audio.wav import read_wav, resample

    exe = shutil.which("espeak-ng")
    subprocess.run([exe, "-v", "en-gb", "-s", "175", "-p", "50", "-w", str(tmp_path / "ref.wav"), "three"],
                   check=True, capture_output=True)
    raw, rate = read_wav(tmp_path / "ref.wav")
    assert rate == espeak.ESPEAK_RATE
    np.testing.assert_array_equal(synthesize("three", voice="en-gb", sample_rate=22050), raw)
    np.testing.assert_array_equal(synthesize("three", voice="en-gb", sample_rate=16000), resample(raw, 22050, 16000))
    assert len(synthesize("three", voice="en-gb", sample_rate=16000)) == -(-len(raw) * 320 // 441)


@needs_espeak
def test_text_is_never_taken_for_an_option() -> None:
    assert synthesize("-v xx -w /dev/null", sample_rate=8000).size > 0


@needs_espeak
def test_espeak_path_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONEBIT_ESPEAK", shutil.which("espeak-ng"))
    assert espeak_available() and synthesize("one", sample_rate=8000).size > 0


@needs_espeak
@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"text": ""}, InputError, "text must be a non-empty string"),
    ({"text": "  \n"}, InputError, "text must be a non-empty string"),
    ({"text": 7}, InputError, "text must be a non-empty string"),
    ({"voice": "en-uss"}, ConfigError, (r"unknown espeak-ng voice 'en-uss' \(did you mean 'en-us'\?\); "
                                        r"valid choices: en, en-029, en-gb")),
    ({"voice": "us-mbrola-1"}, ConfigError, "unknown espeak-ng voice"),
    ({"voice": "en-us+m99"}, ConfigError, r"unknown espeak-ng voice variant 'm99'.*valid choices: .*f1, f2"),
    ({"voice": ""}, ConfigError, "voice must be a non-empty string"),
    ({"speed": 79}, ConfigError, "speed must be an integer from 80 to 450"),
    ({"speed": 451}, ConfigError, "speed must be an integer from 80 to 450"),
    ({"speed": True}, ConfigError, "speed must be an integer"),
    ({"pitch": -1}, ConfigError, "pitch must be an integer from 0 to 99"),
    ({"pitch": 100}, ConfigError, "pitch must be an integer from 0 to 99"),
    ({"sample_rate": 0}, ConfigError, "sample_rate must be a positive integer"),
])
def test_bad_arguments_raise_a_clear_error(kwargs: dict, error: type, match: str) -> None:
    args = {"text": "four", **kwargs}
    with pytest.raises(error, match=match) as info:
        synthesize(**args)
    assert isinstance(info.value, OnebitError) and "\n" not in str(info.value)
