"""Latency of sentiment classification per sentence: onebit.runtime vs PyTorch fp32, featurizer shown apart.

The pipeline of ``text_sentiment``: a raw sentence → :data:`onebit.text.datasets.DEFAULT_FEATURIZER`
(tokenizer + the training split's 2,048 word uni/bigrams, pure Python/numpy; fitted on the
tweets domain's training part) → ``binary_text_mlp`` with its default recipe's arguments.
The network runs on the engine (the exported ``.onebit`` file, random weights: latency does
not depend on them) and, as the baseline, as its float twin in PyTorch fp32 (the same
architecture with float layers), batch 1, at 1 and 2 threads; medians of ``--repeats``
calls after warm-up in interleaved rounds, min–max beside them. The featurizer is the
same code for both pipelines: it is timed once per sentence over real tweets and added
to both. Needs ``../shared/data/vader-sentences`` (or ``--data``).

    python benchmarks/bench_text.py [--repeats 300] [--data PATH/vader-sentences]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_bgemm import cpu_model, load_avg  # noqa: E402

from onebit.bench import bench_model, export_random_model, time_call  # noqa: E402
from onebit.recipes import recipe_for  # noqa: E402
from onebit.text.datasets import DEFAULT_FEATURIZER, vader_split  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--data", default=None, help="the vader-sentences folder (default: ../shared/data)")
    args = parser.parse_args()

    split = vader_split(args.data, domain="tweets")
    featurizer = DEFAULT_FEATURIZER.fit(split.train_texts)
    sentences = split.test_texts[:100]
    per_sentence = [time_call(lambda s=s: featurizer.transform([s]), max(3, args.repeats // 100)) for s in sentences]
    front = (statistics.median(t[0] for t in per_sentence), min(t[1] for t in per_sentence),
             max(t[2] for t in per_sentence))
    model_args = recipe_for("binary_text_mlp", split.name).model_args
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "binary_text_mlp.onebit"
        report = export_random_model("binary_text_mlp", path, in_shape=(featurizer.dim,), num_classes=2, **model_args)
        result = bench_model(path, batch_size=1, threads=[1, 2], repeats=args.repeats)
    print(f"# bench_text: {datetime.now(timezone.utc):%Y-%m-%d}, {cpu_model()}, load {load_avg()}, ISA {result.isa}")
    print(f"\nbinary_text_mlp {model_args} over {featurizer.dim} featurizer columns; file {report.file_bytes:,} B "
          f"(float32 state dict {report.float32_state_bytes:,} B, {report.compression:.1f}x); featurizer median "
          f"over {len(sentences)} real tweets (mean length {statistics.mean(len(s) for s in sentences):.0f} "
          f"characters)\n")
    print(result.pipeline_table("featurizer: tokenize + vocabulary lookup (Python, both pipelines)", front, "per sentence"))


if __name__ == "__main__":
    main()
