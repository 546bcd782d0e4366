"""HyBNN (onebit.hybrid): the binary latent estimators against their formulas, the autoencoder, the task
BNN on its codes, the input-binarized baselines, the export of the whole HyBNN to one .onebit, the experiment."""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
import pytest
import torch

import onebit
from onebit.errors import ConfigError, DataError
from onebit.experiments import run_experiment
from onebit.hybrid import (
    BinaryLatentVAE, HyBNN, InputBinarizer, Standardize, bernoulli_kl, binary_code, export_hybnn, fit_hybnn, fit_vae,
    gumbel_sigmoid, input_binarized_bnn, latent_bnn, latent_dataset, sample_latent,
)
from onebit.train import set_seed


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield


@pytest.fixture(scope="module")
def digits():
    return onebit.load_dataset("digits")


@pytest.fixture(scope="module")
def trained(digits):
    """A small STE autoencoder (16 bits) and its HyBNN, trained a few epochs on the digits."""
    torch.set_num_threads(1)
    set_seed(0)
    vae = BinaryLatentVAE(digits.in_shape, 16, hidden=(64,), estimator="ste")
    history = fit_vae(vae, digits.x_train, epochs=4, batch_size=64, seed=0)
    result = fit_hybnn(vae, digits, hidden=64, depth=1, epochs=3, seed=0)
    return vae, history, result


# ------------------------------------------------------------------------------------------ latent estimators


def test_kl_to_bernoulli_half_equals_the_sum_over_all_codes():
    logits = torch.tensor([[0.3, -1.7, 4.0], [0.0, 2.5, -0.2]], dtype=torch.float64)
    for row, kl in zip(logits, bernoulli_kl(logits)):
        q = torch.sigmoid(row).numpy()
        brute = 0.0
        for code in itertools.product([0, 1], repeat=3):  # KL(q ‖ p) = Σ_z q(z) log(q(z) / 2^-m)
            qz = math.prod(q[j] if b else 1 - q[j] for j, b in enumerate(code))
            brute += qz * math.log(qz / 2 ** -3)
        assert float(kl) == pytest.approx(brute, rel=1e-10, abs=1e-12)
    assert float(bernoulli_kl(torch.zeros(1, 5))[0]) == pytest.approx(0.0, abs=1e-7)  # q = 1/2 is the prior
    assert torch.isfinite(bernoulli_kl(torch.tensor([[80.0, -80.0]]))).all()  # no overflow at large logits


def test_gumbel_sigmoid_samples_bernoulli_bits_at_low_temperature():
    logits = torch.tensor([-1.5, 0.0, 0.8, 2.0]).repeat(40000, 1)
    z = gumbel_sigmoid(logits, 0.05, generator=torch.Generator().manual_seed(0))
    assert float(z.abs().max()) <= 1.0
    plus = (z > 0).double().mean(0).numpy()
    np.testing.assert_allclose(plus, torch.sigmoid(logits[0].double()).numpy(), atol=0.01)
    with pytest.raises(ConfigError, match="temperature must be a positive number"):
        gumbel_sigmoid(logits, 0.0)


def test_binary_code_and_the_straight_through_gradient():
    logits = torch.tensor([-2.0, -0.5, 0.0, 0.5, 2.0], requires_grad=True)
    np.testing.assert_array_equal(binary_code(logits).numpy(), [-1, -1, 1, 1, 1])  # sign(0) = +1
    for training in (False, True):
        assert torch.equal(sample_latent(logits, "gumbel", training=False), binary_code(logits))
    z = sample_latent(logits, "ste", training=True)
    z.sum().backward()
    np.testing.assert_array_equal(z.detach().numpy(), [-1, -1, 1, 1, 1])
    np.testing.assert_array_equal(logits.grad.numpy(), [0, 1, 1, 1, 0])  # 1 where |ℓ| ≤ 1
    with pytest.raises(ConfigError, match=r"unknown latent estimator 'stee' \(did you mean 'ste'\?\)"):
        sample_latent(logits, "stee", training=True)


# ------------------------------------------------------------------------------------------ autoencoder


def test_standardize_is_fixed_and_stays_in_eval_mode(digits):
    x = digits.x_train.reshape(len(digits.x_train), -1)
    st = Standardize(x.shape[1]).fit(x)
    st.train()
    assert not st.training
    out = st(torch.from_numpy(x[:50])).numpy()
    var = x.var(0)
    np.testing.assert_allclose(out, (x[:50] - x.mean(0)) / np.sqrt(np.maximum(var, 1e-6) + st.eps), rtol=1e-4,
                               atol=1e-4)
    shift = Standardize(x.shape[1]).shift(0.25)
    np.testing.assert_allclose(shift(torch.from_numpy(x[:5])).numpy(), x[:5] - 0.25, atol=1e-6)
    with pytest.raises(DataError, match="expected rows of 64 features, got 3"):
        st.fit(np.zeros((4, 3)))


def test_vae_loss_is_half_the_squared_error_plus_beta_kl(digits):
    torch.manual_seed(0)
    x = torch.from_numpy(digits.x_train[:32])
    for estimator, beta in (("ste", 1.0), ("gumbel", 0.5)):
        vae = BinaryLatentVAE(digits.in_shape, 8, hidden=(16,), estimator=estimator, beta=beta)
        vae.standardize.fit(digits.x_train)
        vae.eval()  # eval: the latent is sign(ℓ) for both estimators, so the loss is deterministic
        with torch.no_grad():
            total, rec, kl = vae.loss(x)
            logits = vae.encoder(x)
            target = vae.standardize(x.reshape(32, -1))
            expected_rec = 0.5 * ((vae.decoder(binary_code(logits)) - target) ** 2).sum(1).mean()
            expected_kl = bernoulli_kl(logits).mean() if estimator == "gumbel" else torch.tensor(0.0)
        assert float(rec) == pytest.approx(float(expected_rec), rel=1e-6)
        assert float(kl) == pytest.approx(float(expected_kl), rel=1e-6)
        assert float(total) == pytest.approx(float(expected_rec + beta * expected_kl), rel=1e-6)


def test_fit_vae_learns_and_repeats(digits, trained):
    vae, history, _ = trained
    assert history.loss[-1] < history.loss[0]
    codes = vae.codes(digits.x_test)
    assert codes.shape == (360, 16) and set(np.unique(codes)) == {-1.0, 1.0}
    set_seed(0)
    again = BinaryLatentVAE(digits.in_shape, 16, hidden=(64,), estimator="ste")
    fit_vae(again, digits.x_train, epochs=4, batch_size=64, seed=0)
    np.testing.assert_array_equal(again.freeze().codes(digits.x_test), codes)
    assert not any(p.requires_grad for p in vae.parameters())


def test_vae_rejects_bad_settings_and_data(digits):
    with pytest.raises(ConfigError, match=r"unknown latent estimator 'gumble' \(did you mean 'gumbel'\?\)"):
        BinaryLatentVAE(digits.in_shape, 8, estimator="gumble")
    with pytest.raises(ConfigError, match="latent_bits must be a positive integer"):
        BinaryLatentVAE(digits.in_shape, 0)
    vae = BinaryLatentVAE(digits.in_shape, 8, hidden=(16,))
    with pytest.raises(DataError, match=r"takes inputs of shape \(1, 8, 8\), got samples of shape \(40,\)"):
        vae.codes(np.zeros((3, 40), np.float32))
    with pytest.raises(ConfigError, match="batch_size 4096 is larger than the 1437 training rows"):
        fit_vae(vae, digits.x_train, epochs=1, batch_size=4096)
    with pytest.raises(DataError, match="NaN or infinite"):
        fit_vae(vae, np.full((200, 1, 8, 8), np.nan, np.float32), epochs=1)


# ------------------------------------------------------------------------------------------ HyBNN


def test_hybnn_is_the_head_on_the_frozen_codes(digits, trained):
    vae, _, result = trained
    model = result.model
    assert isinstance(model, HyBNN) and model.latent_bits == 16
    model.train()
    assert not model.encoder.training  # frozen
    with torch.no_grad():
        on_codes = result.model.head.eval()(torch.from_numpy(vae.codes(digits.x_test)))
        whole = model.eval()(torch.from_numpy(digits.x_test))
    torch.testing.assert_close(whole, on_codes, rtol=0, atol=0)
    accuracy = float((whole.argmax(1).numpy() == digits.y_test).mean())
    assert accuracy == pytest.approx(result.test_accuracy)
    assert accuracy > 0.3  # far above chance (0.1) after 3 head epochs on 16 bits


def test_hybnn_exports_to_one_onebit_file_equal_to_pytorch(digits, trained, tmp_path):
    model = trained[2].model
    report = export_hybnn(model, tmp_path / "hybnn.onebit", digits.x_test[:64])
    kinds = [layer.kind for layer in report.layers]
    assert "float" in kinds and "binary" in kinds  # float encoder layers, then the binary head in one graph
    engine = onebit.load(tmp_path / "hybnn.onebit")
    logits = engine(digits.x_test)
    with torch.no_grad():
        ref = model.eval()(torch.from_numpy(digits.x_test)).numpy()
    np.testing.assert_array_equal(logits.argmax(1), ref.argmax(1))
    np.testing.assert_allclose(logits, ref, atol=1e-4 * max(1.0, float(np.abs(ref).max())))
    with pytest.raises(ConfigError, match="export_hybnn needs a HyBNN, got Sequential"):
        export_hybnn(torch.nn.Sequential(), tmp_path / "x.onebit", digits.x_test[:4])
    with pytest.raises(DataError, match=r"takes inputs of shape \(1, 8, 8\)"):
        export_hybnn(model, tmp_path / "y.onebit", np.zeros((4, 40), np.float32))


def test_latent_dataset_and_head_checks(digits, trained):
    vae = trained[0]
    codes = latent_dataset(vae, digits)
    assert codes.in_shape == (16,) and np.array_equal(codes.y_test, digits.y_test)
    with pytest.raises(DataError, match="the autoencoder takes inputs of shape"):
        latent_dataset(vae, dataclasses.replace(digits, x_train=digits.x_train.reshape(-1, 64),
                                                x_test=digits.x_test.reshape(-1, 64), in_shape=(64,)))
    with pytest.raises(ConfigError, match="num_classes must be an integer ≥ 2"):
        latent_bnn(16, 1)


# ------------------------------------------------------------------------------------------ baselines


def test_input_binarizers_are_sign_of_shifted_input(digits):
    x = digits.x_train.reshape(len(digits.x_train), -1)
    sign = InputBinarizer(digits.x_train, "sign")
    np.testing.assert_array_equal(sign.binarize(digits.x_test[:20]),
                                  np.where(digits.x_test[:20].reshape(20, -1) - x.mean(0) < 0, -1.0, 1.0))
    threshold = InputBinarizer(digits.x_train, "threshold")
    assert threshold.threshold == pytest.approx(0.5 * (x.min() + x.max()))
    np.testing.assert_array_equal(threshold.binarize(digits.x_test[:20]),
                                  np.where(digits.x_test[:20].reshape(20, -1) < threshold.threshold, -1.0, 1.0))
    with pytest.raises(ConfigError, match=r"unknown input binarization 'sing' \(did you mean 'sign'\?\)"):
        InputBinarizer(digits.x_train, "sing")


def test_baseline_is_the_same_bnn_on_binarized_input(digits):
    torch.manual_seed(0)
    model = input_binarized_bnn(digits, "threshold", hidden=32, depth=1).eval()
    binarizer, head = model[0], model[1]
    with torch.no_grad():
        direct = model(torch.from_numpy(digits.x_test[:30]))
        via = head(torch.from_numpy(binarizer.binarize(digits.x_test[:30])))
    torch.testing.assert_close(direct, via, rtol=0, atol=0)
    model.train()
    assert not binarizer[1].training  # the shift never uses batch statistics


def test_quick_experiment_runs_end_to_end(tmp_path):
    results = run_experiment("dua2022_hybnn", tmp_path / "run", quick=True)
    assert (tmp_path / "run" / "bits_curve.png").is_file()
    names = [c["claim"] for c in results["claims"]]
    assert any("beats the BNN on sign(x − μ)" in n for n in names)
    engine = [c for c in results["claims"] if "predicts as PyTorch" in c["claim"]]
    assert engine and all(c["holds"] for c in engine)
    assert all(c["holds"] is None for c in results["claims"] if "beats" in c["claim"])  # quick decides nothing
