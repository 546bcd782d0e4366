"""Latency of spoken-digit recognition per one-second utterance: onebit.runtime vs PyTorch fp32.

The pipeline of ``speech_digits``: one second of 8 kHz audio → 13 MFCCs per 64-ms frame
(``onebit.audio.features.mfcc``, numpy; 16 frames) → per-utterance CMVN and centring in
the model's 32-frame window (``onebit.audio.datasets.to_frames``) → ``binary_kws``. The
network runs on the engine (the exported ``.onebit`` file) and, as the baseline, as its
float twin in PyTorch fp32 (the same architecture with float layers), batch 1, at 1 and 2
threads. Medians of ``--repeats`` calls after warm-up, interleaved rounds, min–max beside
them; the front end is the same numpy code for both, so it is timed once and added to
both. Weights are random (latency does not depend on them).

    python benchmarks/bench_speech.py [--repeats 200]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_bgemm import cpu_model, load_avg  # noqa: E402

import numpy as np  # noqa: E402

from onebit.audio.datasets import FRAMES, SAMPLE_RATE, to_frames  # noqa: E402
from onebit.audio.features import mfcc  # noqa: E402
from onebit.bench import bench_model, export_random_model, time_call  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()

    second = np.random.default_rng(0).standard_normal(SAMPLE_RATE).astype(np.float32) * 0.1
    frames = mfcc(second, SAMPLE_RATE)
    front = time_call(lambda: to_frames([mfcc(second, SAMPLE_RATE)]), args.repeats)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "binary_kws.onebit"
        report = export_random_model("binary_kws", path, in_shape=(13, FRAMES), num_classes=10)
        result = bench_model(path, batch_size=1, threads=[1, 2], repeats=args.repeats)
    print(f"# bench_speech: {datetime.now(timezone.utc):%Y-%m-%d}, {cpu_model()}, load {load_avg()}, "
          f"ISA {result.isa}")
    print(f"\none second of 8 kHz audio = {len(frames)} MFCC frames, centred in the model's {FRAMES}-frame window; "
          f"binary_kws file {report.file_bytes:,} B (float32 state dict {report.float32_state_bytes:,} B)\n")
    print(result.pipeline_table("front end: MFCC + CMVN (numpy, both pipelines)", front, "per one-second utterance"))


if __name__ == "__main__":
    main()
