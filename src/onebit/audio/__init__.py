"""onebit.audio: audio front end for speech models, numpy only (no torch).

- :mod:`onebit.audio.features`: STFT and its inverse, mel filter bank, log-mel and MFCC
  (librosa's formulas and defaults), fixed-length padding and per-utterance normalization.
- :mod:`onebit.audio.wav`: WAV files in and out, explicit resampling.
- :mod:`onebit.audio.espeak`: speech synthesized by the espeak-ng program.
- :mod:`onebit.audio.datasets`: spoken digits as MFCC frames, real (``fsdd``) and
  synthesized (``espeak-digits``): ``onebit train --data fsdd``.
- :mod:`onebit.audio.mixtures`, :mod:`onebit.audio.separation`, :mod:`onebit.audio.bss`:
  two-speaker mixtures and their ideal masks, the mask network (Simpson 2015) trained in
  PyTorch and run from its ``.onebit`` file (``onebit separate``), BSS-Eval metrics.

scipy is needed for WAV files and resampling (imported on first use); espeak-ng is a system
program (``apt-get install espeak-ng``).
"""

from __future__ import annotations

from onebit.audio.espeak import (
    espeak_available,
    espeak_executable,
    espeak_version,
    list_variants,
    list_voices,
    synthesize,
    trim_silence,
)
from onebit.audio.features import (
    check_cola,
    check_nola,
    dct_ortho,
    frame_signal,
    get_window,
    hz_to_mel,
    istft,
    log_magnitude,
    log_mel,
    mel_filterbank,
    mel_to_hz,
    mfcc,
    normalize_utterance,
    pad_or_crop,
    power_to_db,
    stft,
)
from onebit.audio.wav import read_wav, resample, write_wav

__all__ = [
    "check_cola", "check_nola", "dct_ortho", "espeak_available", "espeak_executable", "espeak_version",
    "frame_signal", "get_window", "hz_to_mel", "istft", "list_variants", "list_voices", "log_magnitude",
    "log_mel", "mel_filterbank", "mel_to_hz", "mfcc", "normalize_utterance", "pad_or_crop", "power_to_db",
    "read_wav", "resample", "stft", "synthesize", "trim_silence", "write_wav",
]
