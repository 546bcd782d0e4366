"""Multi-label learning (He & Xia 2018): MultiLabelHead, jbce_loss and its prior term, label relations,
the metrics, the training loop, the BR/TDNN baselines, the yeast and NRC loaders, the export of a
binarized JBNN to the runtime, and the he2018_jbnn experiment's quick run end to end."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from onebit.errors import ConfigError, DataError
from onebit.multilabel import (
    BinaryRelevance,
    ThresholdedSoftmax,
    average_precision,
    char_ngram_features,
    hamming_loss,
    macro_f1,
    micro_f1,
    multilabel_metrics,
    one_error,
    predict_logits,
    soft_target_cross_entropy,
    subset_accuracy,
    train_multilabel,
)
from onebit.nn import (
    MultiLabelHead,
    jbce_loss,
    label_relations,
    labels_from_logits,
    multilabel_mlp,
    relation_penalty,
)

needs_river = pytest.mark.skipif(importlib.util.find_spec("river") is None,
                                 reason="yeast is shipped by river (pip install 'onebit[text]')")
needs_nrclex = pytest.mark.skipif(importlib.util.find_spec("nrclex") is None,
                                  reason="the NRC lexicon is shipped by nrclex (pip install 'onebit[text]')")


@pytest.fixture(autouse=True)
def _threads(one_torch_thread):
    yield


def synthetic(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Inputs (n, 12) and 4 labels: label j is x_j > 0; label 3 = labels 0 and 1 (a co-occurring pair)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 12)).astype(np.float32)
    y = (x[:, :4] > 0).astype(np.uint8)
    y[:, 3] = y[:, 0] & y[:, 1]
    return x, y


# ----------------------------------------------------------------------------- losses and relations

def test_jbce_is_the_sum_over_labels_of_the_binary_cross_entropies():
    torch.manual_seed(0)
    z, y = torch.randn(5, 3), (torch.rand(5, 3) > 0.5).float()
    p = torch.sigmoid(z)
    manual = -(y * p.log() + (1 - y) * (1 - p).log()).sum(1).mean()
    assert torch.allclose(jbce_loss(z, y), manual, atol=1e-6)
    assert torch.allclose(jbce_loss(z, y), F.binary_cross_entropy_with_logits(z, y) * 3, atol=1e-6)


def test_label_relations_is_the_phi_coefficient_cut_at_min_strength():
    rng = np.random.default_rng(1)
    y = (rng.random((200, 5)) < 0.4).astype(np.uint8)
    y[:, 1] = y[:, 0]          # φ = +1
    y[:, 2] = 1 - y[:, 0]      # φ = −1
    y[:, 4] = 1                # constant: φ = 0
    rel = label_relations(y, min_strength=0.2)
    expected = np.corrcoef(y[:, :4].T.astype(float))
    np.testing.assert_allclose(rel.phi[:4, :4][~np.eye(4, dtype=bool)], expected[~np.eye(4, dtype=bool)], atol=1e-5)
    assert rel.positive[0, 1] == pytest.approx(1.0) and rel.negative[0, 2] == pytest.approx(1.0)
    assert (rel.phi[4] == 0).all() and (np.diag(rel.positive) == 0).all()
    assert np.array_equal(rel.positive, rel.positive.T) and (rel.positive >= 0).all() and (rel.negative >= 0).all()
    assert ((rel.positive > 0) == (rel.phi > 0.2)).all() and ((rel.negative > 0) == (rel.phi < -0.2)).all()


def test_prior_term_formula():
    """prior = mean_b [Σ_{j<k} R⁺_jk (p_j − p_k)² + Σ_{j<k} R⁻_jk p_j p_k]."""
    y = np.array([[1, 1, 0], [0, 0, 1], [1, 1, 0], [0, 0, 1]], dtype=np.uint8)
    rel = label_relations(y)  # labels 0 and 1 φ = +1, both φ = −1 with label 2
    p = torch.tensor([[0.9, 0.2, 0.6], [0.1, 0.1, 0.8]])
    manual = np.mean([(a - b) ** 2 + a * c + b * c for a, b, c in p.tolist()])
    assert relation_penalty(p, rel).item() == pytest.approx(manual, rel=1e-6)
    z = torch.logit(p)
    assert jbce_loss(z, torch.tensor(y[:2], dtype=torch.float32), rel, 0.5).item() == pytest.approx(
        jbce_loss(z, torch.tensor(y[:2], dtype=torch.float32)).item() + 0.5 * manual, rel=1e-5)


def test_loss_errors():
    z = torch.zeros(4, 3)
    with pytest.raises(ConfigError, match="same shape"):
        jbce_loss(z, torch.zeros(4, 2))
    with pytest.raises(ConfigError, match="needs the label relations"):
        jbce_loss(z, z, None, 1.0)
    with pytest.raises(ConfigError, match="prior_weight must be a finite number"):
        jbce_loss(z, z, None, -1.0)
    rel = label_relations(np.eye(2, dtype=np.uint8))
    with pytest.raises(ConfigError, match="relations are for 2 labels"):
        relation_penalty(torch.zeros(4, 3), rel)
    with pytest.raises(DataError, match="must be 0 or 1"):
        label_relations(np.array([[0, 2], [1, 0]]))
    with pytest.raises(DataError, match="non-empty 0/1 label matrix"):
        label_relations(np.zeros(3))
    with pytest.raises(ConfigError, match="min_strength"):
        label_relations(np.eye(2), min_strength=1.5)


# ----------------------------------------------------------------------------- metrics

def test_metrics_on_a_hand_computed_example():
    y = np.array([[1, 0, 1], [0, 1, 0]])
    pred = np.array([[1, 0, 0], [0, 1, 1]])
    scores = np.array([[0.9, 0.1, 0.4], [0.2, 0.3, 0.8]])
    assert hamming_loss(y, pred) == pytest.approx(2 / 6)
    assert micro_f1(y, pred) == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))
    assert macro_f1(y, pred) == pytest.approx((1 + 1 + 0) / 3)
    assert subset_accuracy(y, pred) == 0.0 and subset_accuracy(y, y) == 1.0
    assert one_error(y, scores) == pytest.approx(0.5)  # sample 2's top label (2) is not its label
    # sample 1: true labels at ranks 1 and 2 → (1/1 + 2/2)/2 = 1; sample 2: label 1 at rank 2 → 1/2
    assert average_precision(y, scores) == pytest.approx(0.75)
    assert set(multilabel_metrics(y, pred, scores)) == {"hamming_loss", "micro_f1", "macro_f1", "one_error",
                                                         "average_precision", "subset_accuracy"}


def test_metric_errors():
    with pytest.raises(DataError, match="same shape"):
        hamming_loss(np.zeros((2, 3)), np.zeros((2, 2)))
    with pytest.raises(DataError, match="0/1"):
        micro_f1(np.full((2, 2), 2), np.zeros((2, 2)))
    with pytest.raises(DataError, match="NaN or infinite"):
        one_error(np.eye(2), np.array([[np.nan, 0], [0, 1]]))
    with pytest.raises(DataError, match=r"\(N, L\) label matrix"):
        subset_accuracy(np.zeros(3), np.zeros(3))


# ----------------------------------------------------------------------------- head, training, baselines

def test_head_returns_logits_and_decides_at_one_half():
    model = multilabel_mlp(12, 4, hidden=16, binary=True).eval()
    x = torch.randn(8, 12)
    z = model(x)
    assert z.shape == (8, 4) and isinstance(model, MultiLabelHead) and model.num_labels == 4
    assert np.array_equal(model.predict(x), (torch.sigmoid(z) > 0.5).numpy())
    assert np.array_equal(labels_from_logits(z), z.detach().numpy() > 0)
    with pytest.raises(ConfigError, match="num_labels must be a positive integer"):
        MultiLabelHead(torch.nn.Identity(), 4, 0)
    with pytest.raises(ConfigError, match="encoder must be a torch module"):
        MultiLabelHead("encoder", 4, 2)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="dropout"):
        multilabel_mlp(12, 4, dropout=1.0)
    with pytest.raises(ConfigError, match="shape \\(N, labels\\)"):
        labels_from_logits(np.zeros(3))


def test_training_is_seeded_and_learns():
    x, y = synthetic()
    logs, weights = [], []
    for _ in range(2):
        torch.manual_seed(0)
        model = multilabel_mlp(12, 4, hidden=32, binary=False)
        logs.append(train_multilabel(model, x, y, epochs=15, seed=3))
        weights.append(model.classifier.weight.detach().clone())
    assert logs[0].losses == logs[1].losses and torch.equal(weights[0], weights[1])
    assert logs[0].losses[-1] < logs[0].losses[0]
    xt, yt = synthetic(200, seed=1)
    z = predict_logits(model, xt)
    trivial = hamming_loss(yt, np.repeat((y.mean(0) > 0.5)[None], len(yt), 0))
    assert hamming_loss(yt, z > 0) < 0.5 * trivial


def test_training_errors():
    x, y = synthetic(100)
    model = multilabel_mlp(12, 4, hidden=8)
    with pytest.raises(ConfigError, match="outputs 4 logits but the labels have 3"):
        train_multilabel(model, x, y[:, :3], epochs=1)
    with pytest.raises(DataError, match="labels must be 0 or 1"):
        train_multilabel(model, x, y * 2, epochs=1)
    with pytest.raises(DataError, match="NaN or infinite"):
        train_multilabel(model, np.full_like(x, np.nan), y, epochs=1)
    with pytest.raises(DataError, match="cannot take inputs"):
        train_multilabel(model, x[:, :5], y, epochs=1)
    with pytest.raises(ConfigError, match="epochs must be a positive integer"):
        train_multilabel(model, x, y, epochs=0)
    with pytest.raises(ConfigError, match="batch_size 128 is larger"):
        train_multilabel(model, x, y, epochs=1, batch_size=128)
    with pytest.raises(ConfigError, match="belong to the default jbce_loss"):
        train_multilabel(model, x, y, loss=soft_target_cross_entropy, prior_weight=1.0)


def test_binary_relevance_and_thresholded_softmax():
    x, y = synthetic(300)
    xv, yv = synthetic(100, seed=2)
    br = BinaryRelevance(lambda: multilabel_mlp(12, 1, hidden=16, binary=False)).fit(x, y, epochs=5, seed=1)
    assert len(br.models) == 4 and br.seconds > 0
    scores = br.decision_scores(xv)
    assert scores.shape == (100, 4) and np.array_equal(br.predict(xv), scores > 0)
    torch.manual_seed(0)
    tdnn = ThresholdedSoftmax(multilabel_mlp(12, 4, hidden=16, binary=False)).fit(x, y, xv, yv, epochs=5)
    assert tdnn.threshold in tdnn.grid
    p = tdnn.probabilities(xv)
    np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-5)
    chosen = tdnn.predict(xv)
    assert chosen.any(1).all() and np.array_equal(chosen, (p >= tdnn.threshold) | (p == p.max(1, keepdims=True)))
    with pytest.raises(ConfigError, match="not trained"):
        BinaryRelevance(lambda: multilabel_mlp(12, 1)).predict(xv)
    c = p.astype(np.float64)  # the threshold function: c_j > wᵀc + b, per sample
    expected = c > (c @ tdnn.threshold_weights)[:, None]
    assert np.array_equal(tdnn.predict_function(xv), expected)
    with pytest.raises(ConfigError, match="not trained"):
        ThresholdedSoftmax(multilabel_mlp(12, 4)).predict(xv)
    with pytest.raises(ConfigError, match="not trained"):
        ThresholdedSoftmax(multilabel_mlp(12, 4)).predict_function(xv)
    with pytest.raises(ConfigError, match="thresholds in \\(0, 1\\)"):
        ThresholdedSoftmax(multilabel_mlp(12, 4), grid=(0.0,))


def test_instance_thresholds_misclassify_fewest_labels():
    from onebit.multilabel import instance_thresholds

    scores = np.array([[0.1, 0.5, 0.4], [0.9, 0.05, 0.05], [0.3, 0.3, 0.4], [0.2, 0.7, 0.1]])
    y = np.array([[0, 1, 1], [1, 0, 0], [0, 0, 0], [1, 0, 1]])
    t = instance_thresholds(scores, y)
    # row 0: cut between 0.1 and 0.4; row 1: the lowest cut above both 0.05s; row 2: above everything, between 0.4 and 1 (no label);
    # row 3: no cut is perfect, one error at best, the lowest such cut is below every score (0 .. 0.1)
    np.testing.assert_allclose(t, [0.25, 0.05, 0.7, 0.05])  # row 1: equal scores, the cut at 0.05 (c > t)
    with pytest.raises(DataError, match="must both be"):
        instance_thresholds(scores, y[:, :2])
    with pytest.raises(DataError, match=r"must lie in \[0.0, 1.0\]"):
        instance_thresholds(scores + 1, y)


def test_soft_target_cross_entropy():
    z = torch.tensor([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]])
    y = torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    expected = -(0.5 * F.log_softmax(z[0], 0)[:2].sum()) / 2  # the empty row adds 0
    assert soft_target_cross_entropy(z, y).item() == pytest.approx(expected.item())


def test_binarized_jbnn_exports_with_the_same_label_sets(tmp_path):
    from onebit.export import export
    from onebit.runtime import load

    x, y = synthetic(300)
    torch.manual_seed(0)
    model = multilabel_mlp(12, 4, hidden=64, binary=True, dropout=0.5)
    train_multilabel(model, x, y, epochs=5)
    report = export(model, tmp_path / "jbnn.onebit", x[:32])
    assert [layer.kind for layer in report.layers].count("binary") == 1
    engine = load(tmp_path / "jbnn.onebit", num_threads=1)(x)
    assert np.array_equal(labels_from_logits(engine), labels_from_logits(predict_logits(model, x)))


# ----------------------------------------------------------------------------- data sets

def test_char_ngram_features():
    a = char_ngram_features(["abandon", "Abandon", "joy"], dim=64)
    assert a.shape == (3, 64) and a.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, rtol=1e-6)
    assert np.array_equal(a[0], a[1]) and not np.array_equal(a[0], a[2])
    assert np.array_equal(a, char_ngram_features(["abandon", "Abandon", "joy"], dim=64))  # a stable hash
    # "<ab" and "ab" are n-grams of "ab": 2-grams <a, ab, b>; 3-grams <ab, ab>
    assert char_ngram_features(["ab"], n=(2,), dim=1)[0, 0] == pytest.approx(1.0)
    with pytest.raises(ConfigError, match="not one string"):
        char_ngram_features("abandon")
    with pytest.raises(ConfigError, match="dim must be a positive integer"):
        char_ngram_features(["a"], dim=0)
    with pytest.raises(ConfigError, match="positive integers"):
        char_ngram_features(["a"], n=(0,))
    with pytest.raises(DataError, match="word 1 is a int"):
        char_ngram_features(["a", 3])  # type: ignore[list-item]


@needs_river
def test_yeast_loader():
    from onebit.multilabel import load_yeast

    data = load_yeast()
    assert data.x_train.shape == (1500, 103) and data.x_test.shape == (917, 103) and data.num_labels == 14
    assert data.y_train.dtype == np.uint8 and set(np.unique(data.y_train)) == {0, 1}
    np.testing.assert_allclose(data.x_train.mean(0), 0, atol=1e-5)
    total = data.y_train.sum(0) + data.y_test.sum(0)
    assert total.tolist() == [762, 1038, 983, 862, 722, 597, 428, 480, 178, 253, 289, 1816, 1799, 34]
    raw = load_yeast(standardize=False)
    assert raw.x_train[0, 0] == pytest.approx(0.004168)  # the file's first row, in file order
    shuffled = load_yeast("random", seed=1)
    assert shuffled.x_train.shape == (1500, 103) and "seed 1" in shuffled.split
    kept, (xv, yv) = data.split_validation(0.2, seed=0)
    assert len(kept.y_train) == 1200 and len(yv) == 300 and xv.shape == (300, 103)
    with pytest.raises(ConfigError, match="unknown yeast split 'standrd'.*did you mean 'standard'"):
        load_yeast("standrd")
    with pytest.raises(ConfigError, match="fraction must be a number in \\(0, 1\\)"):
        data.split_validation(1.0)


@needs_nrclex
def test_nrc_loader():
    from onebit.multilabel import NRC_LABELS, load_nrc_emotions, nrc_lexicon

    lexicon = nrc_lexicon()
    assert len(lexicon) == 6468 and lexicon["abandon"] == ["fear", "negative", "sadness"]
    data = load_nrc_emotions(dim=256)
    assert data.label_names == NRC_LABELS and data.x_train.shape == (5174, 256) and len(data.y_test) == 1294
    y = np.concatenate([data.y_train, data.y_test])
    assert y.sum(1).min() == 1  # every word has a label
    assert int(y[:, NRC_LABELS.index("negative")].sum()) == 3324
    assert int(y[:, NRC_LABELS.index("positive")].sum()) == 2312
    with pytest.raises(ConfigError, match="test_fraction"):
        load_nrc_emotions(test_fraction=0)


def test_missing_package_is_named(monkeypatch):
    from onebit.multilabel import datasets

    monkeypatch.setattr(datasets.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DataError, match="pip install river.*onebit\\[text\\]"):
        datasets.load_yeast()


# ----------------------------------------------------------------------------- the experiment

@needs_river
@needs_nrclex
def test_quick_experiment_end_to_end(tmp_path):
    from onebit.experiments import run_experiment

    results = run_experiment("he2018_jbnn", tmp_path / "out", quick=True)
    on_disk = json.loads((tmp_path / "out" / "results.json").read_text())
    assert on_disk["experiment"] == "he2018_jbnn" and on_disk["quick"] is True
    claims = {c["claim"]: c for c in results["claims"]}
    for name in ("yeast", "nrc_emotions"):
        export = claims[f"{name}: the binarized JBNN exported to .onebit gives PyTorch's label sets"]
        assert export["holds"] is True
        assert claims[f"{name}, binarized: JBNN micro-F1 ≥ TDNN's (τ tuned for micro-F1 on validation)"]["holds"] is None  # quick decides nothing
        assert (tmp_path / "out" / f"jbnn-binary-{name}.onebit").is_file()
    assert {"yeast, binarized encoder", "nrc_emotions, float encoder", "per seed"} <= set(results["tables"])
    assert (tmp_path / "out" / "he2018_jbnn.png").is_file()
