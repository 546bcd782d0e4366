"""Speech synthesized by the ``espeak-ng`` command (formant synthesis), as float32 samples.

espeak-ng is a system program, not a Python package: ``apt-get install espeak-ng``. It is
found as ``$ONEBIT_ESPEAK`` (a name on PATH or a path) or else ``espeak-ng`` on PATH. Each
:func:`synthesize` call runs ``espeak-ng -w out.wav`` in a temporary folder (not ``--stdout``,
whose WAV header declares no length), reads the 22,050 Hz file and resamples it with
:func:`onebit.audio.wav.resample`: the same arguments give the same samples on the same
espeak-ng version (:func:`espeak_version`). A voice is a language voice of
:func:`list_voices` with an optional ``+variant`` of :func:`list_variants` (``"en-us+f3"``);
espeak-ng itself ignores an unknown variant silently, so it is checked here.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path

import numpy as np

from onebit.errors import ConfigError, DataError, InputError, unknown_choice

__all__ = ["ESPEAK_RATE", "PITCH_RANGE", "SPEED_RANGE", "espeak_available", "espeak_executable", "espeak_version",
           "list_variants", "list_voices", "synthesize", "trim_silence"]

ESPEAK_RATE = 22050
"""The sample rate of espeak-ng's output (Hz)."""
SPEED_RANGE = (80, 450)
"""Valid ``speed`` (words per minute), the range espeak-ng documents (it clamps below 80 silently)."""
PITCH_RANGE = (0, 99)
"""Valid ``pitch`` (espeak-ng's 0-99 scale; it clamps above 99 silently)."""

INSTALL_HINT = ("apt-get install espeak-ng (Debian/Ubuntu), dnf install espeak-ng (Fedora), "
                "brew install espeak-ng (macOS); or set ONEBIT_ESPEAK to its path")
"""How to install espeak-ng, the end of the error raised where it is missing."""


def espeak_executable() -> str:
    """The full path of the espeak-ng program (``$ONEBIT_ESPEAK`` or ``espeak-ng``), or a ConfigError."""
    name = os.environ.get("ONEBIT_ESPEAK") or "espeak-ng"
    found = shutil.which(name)
    if found is None:
        raise ConfigError(f"espeak-ng is not installed (no program {name!r} found): {INSTALL_HINT}")
    return found


def espeak_available() -> bool:
    """Whether the espeak-ng program can be found (see :func:`espeak_executable`)."""
    try:
        espeak_executable()
    except ConfigError:
        return False
    return True


def _run(args: list[str], what: str) -> subprocess.CompletedProcess:
    exe = espeak_executable()
    try:
        proc = subprocess.run([exe, *args], capture_output=True, text=True, timeout=120, check=False)
    except OSError as exc:
        raise ConfigError(f"cannot run {exe} ({exc.strerror or exc}): {INSTALL_HINT}") from None
    except subprocess.TimeoutExpired:
        raise DataError(f"espeak-ng did not finish {what} within 120 s") from None
    return proc


@cache
def _cached(exe: str, args: tuple[str, ...]) -> str:
    proc = _run(list(args), f"'espeak-ng {' '.join(args)}'")
    if proc.returncode != 0:
        raise DataError(f"'{exe} {' '.join(args)}' failed (exit {proc.returncode}): {_last_line(proc.stderr)}")
    return proc.stdout


def _query(*args: str) -> str:
    """The standard output of ``espeak-ng ARGS``, cached per executable (the voice lists never change)."""
    return _cached(espeak_executable(), args)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


def espeak_version() -> str:
    """The espeak-ng version, e.g. ``"1.51"`` (from ``espeak-ng --version``)."""
    out = _query("--version")
    match = re.search(r"text-to-speech:\s*(\S+)", out)
    if match is None:
        raise DataError(f"cannot parse the version of {espeak_executable()} from {out.strip()!r}")
    return match.group(1)


def _voice_table(out: str) -> list[tuple[str, str]]:
    """``(language, file)`` of each row of an ``espeak-ng --voices`` listing, one per language code the
    row serves: its language column and each ``(code priority)`` of its "Other Languages" column."""
    rows = []
    for line in out.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 5:
            rows.append((parts[1], parts[4]))
            rows += [(code, parts[4]) for code in re.findall(r"\((\S+) \d+\)", line)]
    return rows


def list_voices(language: str = "en") -> list[str]:
    """The espeak-ng voices of ``language`` (``"en"``: ``en``, ``en-029``, ``en-gb``, ``en-us``, ...), sorted.

    Parsed from ``espeak-ng --voices=<language>``: the codes of its language columns, keeping only those of
    ``language`` itself (``en``, ``en-*``) and leaving out MBROLA voices (files ``mb/...``),
    which need the separate mbrola program. ``language=""`` lists every language.
    """
    if not isinstance(language, str):
        raise ConfigError(f"language must be a string such as 'en', got {language!r}")
    out = _query(f"--voices={language}") if language else _query("--voices")
    voices = {lang for lang, file in _voice_table(out)
              if not file.startswith("mb/") and lang != "variant"
              and (not language or lang == language or lang.startswith(language + "-"))}
    return sorted(voices)


def list_variants() -> list[str]:
    """The voice variants (``m1``-``m8``, ``f1``-``f5``, ``klatt``, ``whisper``, ...) that a voice takes as ``+name``.

    The file names of ``espeak-ng --voices=variant`` (``!v/<name>``), sorted.
    """
    names = set()
    for line in _query("--voices=variant").splitlines()[1:]:
        match = re.search(r"!v/(.+?)\s*(\(.*\))?\s*$", line)
        if match:
            names.add(match.group(1))
    return sorted(names)


def _check_voice(voice: str) -> None:
    if not isinstance(voice, str) or not voice:
        raise ConfigError(f"voice must be a non-empty string such as 'en-us' or 'en-us+f3', got {voice!r}")
    base, _, variant = voice.partition("+")
    all_voices = list_voices("")
    if base not in all_voices:
        language = base.split("-")[0]
        choices = list_voices(language) if language in {v.split("-")[0] for v in all_voices} else all_voices
        raise unknown_choice("espeak-ng voice", base, choices, suggest_from=all_voices)
    if variant and variant not in list_variants():
        raise unknown_choice("espeak-ng voice variant", variant, list_variants())


def _check_int(name: str, value: object, bounds: tuple[int, int]) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not bounds[0] <= value <= bounds[1]:
        raise ConfigError(f"{name} must be an integer from {bounds[0]} to {bounds[1]} (espeak-ng's range), "
                          f"got {value!r}")
    return int(value)


def synthesize(text: str, voice: str = "en-us", speed: int = 175, pitch: int = 50,
               sample_rate: int = 16000) -> np.ndarray:
    """``text`` spoken by espeak-ng: float32 mono samples at ``sample_rate`` Hz.

    ``voice`` is ``language[+variant]`` (:func:`list_voices`, :func:`list_variants`), ``speed``
    is in words per minute (:data:`SPEED_RANGE`), ``pitch`` on espeak-ng's 0-99 scale. espeak-ng
    writes 22,050 Hz; any other ``sample_rate`` is reached by exact polyphase resampling
    (:func:`onebit.audio.wav.resample`). Nothing is trimmed: espeak-ng's leading and trailing
    silence stays (:func:`trim_silence` removes it). Deterministic.
    """
    from onebit.audio.wav import _rate, read_wav, resample

    if not isinstance(text, str) or not text.strip():
        raise InputError(f"text must be a non-empty string, got {text!r}")
    if "\x00" in text:
        raise InputError("text holds a NUL character")
    _check_voice(voice)
    speed = _check_int("speed", speed, SPEED_RANGE)
    pitch = _check_int("pitch", pitch, PITCH_RANGE)
    sample_rate = _rate("sample_rate", sample_rate)
    with tempfile.TemporaryDirectory(prefix="onebit-espeak-") as tmp:
        text_file, wav_file = Path(tmp) / "text.txt", Path(tmp) / "speech.wav"
        text_file.write_text(text, encoding="utf-8")  # a file, so text starting with '-' is never an option
        proc = _run(["-v", voice, "-s", str(speed), "-p", str(pitch), "-b", "1", "-f", str(text_file),
                     "-w", str(wav_file)], f"speaking {text[:40]!r}")
        if proc.returncode != 0 or not wav_file.is_file():
            raise DataError(f"espeak-ng failed on {text[:40]!r} with voice {voice!r} (exit {proc.returncode}): "
                            f"{_last_line(proc.stderr)}")
        try:
            x, rate = read_wav(wav_file)
        except DataError as exc:
            raise DataError(f"espeak-ng produced no usable audio for {text[:40]!r} with voice {voice!r}: "
                            f"{exc}") from None
    return resample(x, rate, sample_rate)


def trim_silence(signal: np.ndarray, threshold_db: float = -40.0) -> np.ndarray:
    """``signal`` without its leading and trailing silence (a float32 copy).

    Keeps samples from the first to the last one whose magnitude reaches ``threshold_db`` below
    the peak: ``|x[n]| >= max|x| * 10**(threshold_db / 20)``. Sample-wise, so it suits clean
    synthetic speech (espeak-ng pads with exact zeros), not noisy recordings.
    """
    x = np.asarray(signal)
    if x.dtype.kind not in "biuf" or x.ndim != 1 or x.size == 0:
        raise InputError(f"signal must be a non-empty real 1-D array, got dtype {x.dtype}, shape {x.shape}")
    if not (np.isfinite(threshold_db) and threshold_db < 0):
        raise ConfigError(f"threshold_db must be a negative number of dB below the peak, got {threshold_db!r}")
    x = x.astype(np.float32)
    if not np.all(np.isfinite(x)):
        raise InputError("signal holds NaN or infinite samples")
    magnitude = np.abs(x)
    peak = magnitude.max()
    if peak == 0:
        raise InputError("signal is all zeros: there is no sound to keep")
    loud = np.flatnonzero(magnitude >= peak * 10.0 ** (threshold_db / 20.0))
    return x[loud[0]:loud[-1] + 1].copy()
