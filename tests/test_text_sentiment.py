"""The text_sentiment experiment end to end in its quick mode (needs ../shared/data/vader-sentences)."""

from __future__ import annotations

import pytest

from onebit.experiments.shared import shared_data

pytestmark = pytest.mark.skipif(shared_data("vader-sentences") is None,
                                reason="../shared/data/vader-sentences is absent (a user's clone)")


def test_quick_experiment_runs_end_to_end(tmp_path):
    from onebit.experiments import run_experiment
    from onebit.text import TextClassifier

    results = run_experiment("text_sentiment", tmp_path / "run", quick=True)
    claims = {c["claim"]: c for c in results["claims"]}
    engine = claims["The exported .onebit files predict what PyTorch predicts (every test sentence, every model)"]
    assert engine["holds"] is True
    rows = results["tables"]["accuracy"]["rows"]
    assert [r[0] for r in rows] == ["tweets", "→ amazon"] and [r[1] for r in rows] == [600, 600]
    assert rows[0][2] == 672 and rows[1][2] == 2943  # the fixed test parts
    assert all(0 <= r[4] <= 100 and r[5] in (0.1, 1.0, 10.0) for r in rows)  # logistic regression beside them
    assert (tmp_path / "run" / "text_sentiment.png").read_bytes()[:4] == b"\x89PNG"
    classifier = TextClassifier(tmp_path / "run" / "models" / "tweets-seed0.onebit")
    assert classifier.class_names == ("negative", "positive")
    cnn = claims["The exported binary text CNNs (embedding as packed signs) predict what PyTorch predicts"]
    assert cnn["holds"] is True
    assert all(0 <= r[12] <= 100 and len(r[14]) == 1 for r in rows)  # the text CNN row, one seed
    cnn_classifier = TextClassifier(tmp_path / "run" / "models" / "cnn-tweets-seed0.onebit")
    assert cnn_classifier.featurizer.sequence_length == 48
    assert "cnn_latency" in results["tables"]
