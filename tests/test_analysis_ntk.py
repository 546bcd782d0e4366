"""The NTK of binary-weight networks (issue 12, part 2; Zhang, Yin & Wang, arXiv:2206.05916).

Formulas against brute force: the quasi ReLU against numerical integration, the quasi
layer's moments against exact enumeration of the binary weights, the quasi layer against
Monte-Carlo means of sampled nets, the arc-cosine kernels against Monte Carlo over
Gaussian weights, the empirical NTK against per-sample autograd loops and, at large
width, against the analytic infinite-width ReLU NTK.
"""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from onebit.analysis.kernels import (
    KernelRidgeClassifier, arccos_kernel, gaussian_kernel, kernel_matrix, laplace_kernel, median_distance, relu_ntk,
)
from onebit.analysis.ntk import NTKReLUNet, empirical_ntk, relative_error
from onebit.analysis.quasi import QuasiBinaryNet, QuasiLinear, monte_carlo_moments, quasi_relu, quasi_relu_moments
from onebit.analysis.spectra import fit_spectrum, kernel_spectrum
from onebit.errors import ConfigError, DataError, OnebitError

# ---------------------------------------------------------------- quasi ReLU


@pytest.mark.parametrize("mu, sigma", [(0.0, 1.0), (0.7, 0.3), (-1.2, 0.8), (2.5, 1.5), (-0.05, 0.02)])
def test_quasi_relu_moments_match_numerical_integration(mu: float, sigma: float) -> None:
    from scipy import integrate, stats

    pdf = stats.norm(mu, sigma).pdf
    lo, hi = max(0.0, mu - 12 * sigma), mu + 12 * sigma
    first = integrate.quad(lambda z: z * pdf(z), lo, hi, epsabs=1e-13, epsrel=1e-12)[0] if hi > 0 else 0.0
    second = integrate.quad(lambda z: z * z * pdf(z), lo, hi, epsabs=1e-13, epsrel=1e-12)[0] if hi > 0 else 0.0
    m, v = torch.tensor([mu], dtype=torch.float64), torch.tensor([sigma ** 2], dtype=torch.float64)
    mean, var = quasi_relu_moments(m, v)
    assert quasi_relu(m, v).item() == pytest.approx(first, rel=1e-9, abs=1e-12)
    assert mean.item() == pytest.approx(first, rel=1e-9, abs=1e-12)
    assert var.item() == pytest.approx(second - first ** 2, rel=1e-7, abs=1e-12)


def test_quasi_relu_tends_to_relu_as_sigma_vanishes() -> None:
    mu = torch.tensor([-1.0, -1e-3, 0.0, 1e-3, 2.0], dtype=torch.float64)
    out = quasi_relu(mu, torch.zeros_like(mu))
    assert torch.allclose(out, torch.relu(mu), atol=1e-12)
    assert torch.isfinite(torch.autograd.functional.jacobian(lambda m: quasi_relu(m, torch.zeros_like(m)), mu)).all()


# ---------------------------------------------------------------- quasi layer


def _enumerate_layer(theta: np.ndarray, x_values: list[tuple[float, float]], scale: float) -> tuple[float, float]:
    """Exact mean and variance of s·Σ w_j x_j over every ±1 weight vector and every input
    configuration (x_j takes each of its two values with probability 1/2, independently)."""
    d = len(theta)
    mean = second = 0.0
    for signs in itertools.product((1.0, -1.0), repeat=d):
        p_w = math.prod((1 + t) / 2 if s > 0 else (1 - t) / 2 for s, t in zip(signs, theta, strict=True))
        for xs in itertools.product(*x_values):
            z = scale * sum(s * v for s, v in zip(signs, xs, strict=True))
            p = p_w / 2 ** d
            mean += p * z
            second += p * z * z
    return mean, second - mean ** 2


def test_quasi_linear_moments_are_exact_by_enumeration() -> None:
    layer = QuasiLinear(4, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x = torch.tensor([[0.5, -1.0, 2.0, 0.25]], dtype=torch.float64)
    mu, var = layer.moments(x)
    # random inputs: x_j ∈ {a_j, b_j}, mean m_j, variance v_j (the variance-carrying formula)
    pairs = [(0.0, 1.0), (-1.0, 0.5), (2.0, 2.0), (0.3, -0.7)]
    m = torch.tensor([[(a + b) / 2 for a, b in pairs]], dtype=torch.float64)
    v = torch.tensor([[((a - b) / 2) ** 2 for a, b in pairs]], dtype=torch.float64)
    mu_c, var_c = layer.moments(m, v)
    for unit in range(3):
        theta = layer.theta.detach()[unit].numpy()
        e_mean, e_var = _enumerate_layer(theta, [(xi, xi) for xi in x[0].tolist()], layer.scale)
        assert mu[0, unit].item() == pytest.approx(e_mean, abs=1e-12)
        assert var[0, unit].item() == pytest.approx(e_var, abs=1e-12)
        c_mean, c_var = _enumerate_layer(theta, pairs, layer.scale)
        assert mu_c[0, unit].item() == pytest.approx(c_mean, abs=1e-12)
        assert var_c[0, unit].item() == pytest.approx(c_var, abs=1e-12)


def test_quasi_layer_matches_monte_carlo_within_four_standard_errors_at_d64() -> None:
    import onebit

    x = onebit.load_dataset("digits").x_test[:2].reshape(2, -1).astype(np.float64)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    net = QuasiBinaryNet(64, 32, 1, seed=3, dtype=torch.float64)
    quasi = net.forward_moments(x, layer=0)[0].detach()
    mc = monte_carlo_moments(net, x, 3000, seed=7, layer=0)
    z = (quasi - mc.mean) / mc.std_error
    assert z.abs().max().item() <= 4.0
    # and the quasi standard deviation agrees with the sampled one (CLT: within a few per cent overall)
    var = net.forward_moments(x, layer=0)[1].detach()
    assert relative_error(var.sqrt(), mc.std) < 0.05


def test_quasi_net_output_is_exact_mean_of_last_layer() -> None:
    """The output layer is linear: its quasi output is s·θ m exactly, for either variant."""
    x = torch.randn(5, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for variant in ("mean", "carry"):
        net = QuasiBinaryNet(6, [7, 5], 3, variant=variant, seed=1, dtype=torch.float64)
        hidden = net.forward_moments(x, layer=1)[0]
        last = net.layers[-1]
        assert torch.allclose(net(x), last.scale * hidden @ last.theta.T)
    mean_net = QuasiBinaryNet(6, [7, 5], 3, variant="mean", seed=1, dtype=torch.float64)
    carry_net = QuasiBinaryNet(6, [7, 5], 3, variant="carry", seed=1, dtype=torch.float64)
    assert torch.allclose(mean_net.forward_moments(x, layer=0)[0], carry_net.forward_moments(x, layer=0)[0])
    assert not torch.allclose(mean_net(x), carry_net(x))


def test_sampled_network_is_a_binary_weight_onebit_mlp_equal_to_sample_forward() -> None:
    from onebit.nn import QuantLinear

    net = QuasiBinaryNet(8, [6, 4], 2, seed=0, dtype=torch.float64)
    x = torch.randn(3, 8, dtype=torch.float64)
    sampled = net.sample_network(torch.Generator().manual_seed(5))
    layers = [m for m in sampled if isinstance(m, QuantLinear)]
    assert len(layers) == 3 and all(layer.weight_bits == 1 and layer.input_bits == 32 for layer in layers)
    assert all(set(layer.weight.detach().unique().tolist()) <= {-1.0, 1.0} for layer in layers)
    direct = net.sample_forward(x, 1, torch.Generator().manual_seed(5))[0]
    assert torch.allclose(sampled(x), direct)


def test_theta_one_gives_the_deterministic_sign_network() -> None:
    net = QuasiBinaryNet(5, 4, 2, seed=0, dtype=torch.float64)
    with torch.no_grad():
        for lin in net.layers:
            lin.theta.copy_(torch.where(lin.theta >= 0, 1.0, -1.0))
    x = torch.randn(3, 5, dtype=torch.float64)
    draws = net.sample_forward(x, 4)
    assert torch.allclose(draws, net(x).expand_as(draws))


# ---------------------------------------------------------------- analytic kernels


def test_arccos_kernels_match_monte_carlo_over_gaussian_weights() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3))
    w = rng.standard_normal((400_000, 3))
    proj = x @ w.T
    step = (proj > 0).astype(np.float64)
    relu = np.maximum(proj, 0.0)
    brute0 = 2 * (step @ step.T) / len(w)
    brute1 = 2 * (relu @ relu.T) / len(w)
    assert np.allclose(arccos_kernel(x, order=0), brute0, atol=5e-3)
    assert relative_error(arccos_kernel(x, order=1), brute1) < 5e-3
    assert np.allclose(np.diag(arccos_kernel(x, order=1)), (x * x).sum(1))  # k₁(x, x) = ‖x‖²


def test_relu_ntk_one_hidden_layer_formula() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((5, 4)), rng.standard_normal((3, 4))
    d = x.shape[1]
    expected = arccos_kernel(x / math.sqrt(d), y / math.sqrt(d), 1) / 2 + (x @ y.T / d) * arccos_kernel(x, y, 0) / 2
    assert np.allclose(relu_ntk(x, y), expected, rtol=1e-12, atol=1e-14)
    assert np.allclose(relu_ntk(x), relu_ntk(x, x))
    ntk, nngp = relu_ntk(x, depth=2, return_nngp=True)
    assert ntk.shape == nngp.shape == (5, 5) and np.all(np.diag(ntk) > np.diag(nngp))


# Measured over seeds (12 random points on the unit circle, one output): at width 4,096 the
# relative Frobenius error averaged 2.9 % over 30 seeds (90th percentile 4.5 %, largest
# 5.2 %); at width 65,536 it averaged 1.0 % over 10 seeds (largest 1.4 %). The test takes
# the first seeds as they come.
_CIRCLE = np.random.default_rng(0).standard_normal((12, 2))
_CIRCLE /= np.linalg.norm(_CIRCLE, axis=1, keepdims=True)


def test_empirical_ntk_of_wide_relu_net_matches_the_analytic_ntk() -> None:
    reference = relu_ntk(_CIRCLE)
    at_4096 = [relative_error(empirical_ntk(NTKReLUNet(2, 4096, 1, seed=s), _CIRCLE), reference) for s in range(3)]
    at_65536 = relative_error(empirical_ntk(NTKReLUNet(2, 65536, 1, seed=0), _CIRCLE), reference)
    assert max(at_4096) <= 0.05, at_4096
    assert at_65536 <= 0.015, at_65536
    assert at_65536 < np.mean(at_4096) / 2  # 1/√width: 4× smaller in theory


def test_empirical_ntk_with_biases_matches_the_analytic_ntk() -> None:
    reference = relu_ntk(_CIRCLE, weight_std=1.5, bias_std=0.5)
    measured = empirical_ntk(NTKReLUNet(2, 65536, 1, weight_std=1.5, bias_std=0.5, seed=1), _CIRCLE)
    assert relative_error(measured, reference) <= 0.015


def test_gaussian_and_laplace_kernels_and_median_distance_by_brute_force() -> None:
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((4, 3)), rng.standard_normal((5, 3))
    dist = np.array([[np.linalg.norm(a - b) for b in y] for a in x])
    assert np.allclose(gaussian_kernel(x, y, 0.7), np.exp(-dist ** 2 / (2 * 0.49)))
    assert np.allclose(laplace_kernel(x, y, 0.7), np.exp(-dist / 0.7))
    pairwise = [np.linalg.norm(x[i] - x[j]) for i in range(4) for j in range(i + 1, 4)]
    assert median_distance(x) == pytest.approx(float(np.median(pairwise)))
    assert np.allclose(kernel_matrix("relu_ntk", x, y), relu_ntk(x, y))


def test_kernel_ridge_classifier_fits_its_training_data() -> None:
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.normal(-2, 1, (20, 2)), rng.normal(2, 1, (20, 2))])
    y = np.array([3] * 20 + [7] * 20)
    for kernel in ("gaussian", "laplace", "relu_ntk"):
        clf = KernelRidgeClassifier(kernel, ridge=1e-6).fit(x, y)
        assert clf.score(x, y) == 1.0
        assert set(clf.predict(x)) == {3, 7}


# ---------------------------------------------------------------- empirical NTK


def _brute_force_ntk(model: nn.Module, x: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
    params = [p for p in model.parameters() if p.requires_grad]

    def grads(xs: torch.Tensor) -> torch.Tensor:
        rows = []
        for xi in xs:
            out = model(xi.unsqueeze(0)).reshape(-1)
            rows.append(torch.stack([torch.cat([g.reshape(-1) for g in torch.autograd.grad(o, params,
                                                                                            retain_graph=True)])
                                     for o in out]))
        return torch.stack(rows)  # (N, c, P)

    return torch.einsum("akp,blp->abkl", grads(x), grads(x2))


def _small_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2)).double()


def test_empirical_ntk_matches_per_sample_autograd() -> None:
    model = _small_model()
    x = torch.randn(4, 3, dtype=torch.float64)
    x2 = torch.randn(3, 3, dtype=torch.float64)
    full = _brute_force_ntk(model, x, x2).numpy()
    assert np.allclose(empirical_ntk(model, x, x2, output="full"), full, atol=1e-12)
    assert np.allclose(empirical_ntk(model, x, x2), np.einsum("abkk->ab", full) / 2, atol=1e-12)
    sym = _brute_force_ntk(model, x, x).numpy()
    tiny_blocks = empirical_ntk(model, x, memory_mb=1e-6)  # blocks of one sample, nothing cached
    assert np.allclose(tiny_blocks, np.einsum("abkk->ab", sym) / 2, atol=1e-12)
    assert np.allclose(empirical_ntk(model, x, output="full", memory_mb=1e-6), sym, atol=1e-12)


def test_empirical_ntk_runs_on_binary_onebit_layers_and_frozen_parameters() -> None:
    from onebit.nn import QuantLinear

    torch.manual_seed(1)
    model = nn.Sequential(QuantLinear(4, 6, weight_quantizer="ste_sign", input_quantizer=None), nn.ReLU(),
                          nn.Linear(6, 1)).double()
    x = torch.randn(3, 4, dtype=torch.float64)
    assert np.allclose(empirical_ntk(model, x), _brute_force_ntk(model, x, x)[..., 0, 0].numpy(), atol=1e-12)
    model[2].weight.requires_grad_(False)
    model[2].bias.requires_grad_(False)
    assert np.allclose(empirical_ntk(model, x), _brute_force_ntk(model, x, x)[..., 0, 0].numpy(), atol=1e-12)
    assert model.training  # the mode is restored


def test_quasi_network_ntk_is_symmetric_positive_semidefinite() -> None:
    net = QuasiBinaryNet(5, [16, 16], 1, seed=0)
    x = np.random.default_rng(0).standard_normal((10, 5))
    k = empirical_ntk(net, x)
    assert k.dtype == np.float64 and np.allclose(k, k.T, atol=1e-12)
    assert np.linalg.eigvalsh(k).min() > -1e-10


# ---------------------------------------------------------------- spectra


def test_spectrum_fits_recover_exponential_and_power_laws() -> None:
    k = np.arange(1, 201, dtype=np.float64)
    fit = fit_spectrum(3.0 * np.exp(-0.07 * k))
    assert fit.exponential_rate == pytest.approx(0.07) and fit.exponential_r2 == pytest.approx(1.0)
    assert fit.better == "exponential" and fit.power_r2 < 0.95
    fit = fit_spectrum(2.0 * k ** -1.5, 2, 150)
    assert fit.power_exponent == pytest.approx(1.5) and fit.power_r2 == pytest.approx(1.0)
    assert fit.better == "power" and (fit.k_min, fit.k_max) == (2, 150)
    assert json.loads(json.dumps(fit.to_dict()))["better"] == "power"


def test_kernel_spectrum_normalizes_and_sorts() -> None:
    a = np.random.default_rng(0).standard_normal((6, 6))
    k = a @ a.T
    eig = kernel_spectrum(k)
    assert eig.sum() == pytest.approx(1.0) and np.all(np.diff(eig) <= 0)
    assert kernel_spectrum(k, "top")[0] == pytest.approx(1.0)
    assert np.allclose(kernel_spectrum(k, "none"), np.sort(np.linalg.eigvalsh(k))[::-1])


def test_quasi_spectrum_decays_faster_than_the_real_one() -> None:
    """On the circle (synthetic) the quasi NTK's eigenvalues fall exponentially, the real ones as a power law."""
    x = np.random.default_rng(0).standard_normal((40, 2))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    quasi = kernel_spectrum(empirical_ntk(QuasiBinaryNet(2, 1024, 1, seed=0), x))
    real = kernel_spectrum(empirical_ntk(NTKReLUNet(2, 1024, 1, seed=0), x))
    assert np.all(quasi[10:20] < real[10:20])
    assert fit_spectrum(quasi, 1, 20).better == "exponential"
    assert fit_spectrum(real, 1, 20).better == "power"


# ---------------------------------------------------------------- bad input: one clear line


def _one_line(exc: pytest.ExceptionInfo[OnebitError], *words: str) -> None:
    message = str(exc.value)
    assert "\n" not in message, message
    for word in words:
        assert word in message, message


def test_bad_input_gets_one_clear_line() -> None:
    net = QuasiBinaryNet(4, 3, 1)
    with pytest.raises(DataError) as exc:
        net(torch.zeros(2, 5))
    _one_line(exc, "5 features", "takes 4")
    with pytest.raises(ConfigError) as exc:
        net.sample_forward(torch.zeros(1, 4), 0)
    _one_line(exc, "samples", "n ≥ 1")
    with pytest.raises(ConfigError) as exc:
        monte_carlo_moments(net, torch.zeros(1, 4), samples=-3)
    _one_line(exc, "samples")
    with pytest.raises(ConfigError) as exc:
        QuasiBinaryNet(4, 3, 1, variant="carri")
    _one_line(exc, "did you mean 'carry'", "mean")
    with pytest.raises(ConfigError) as exc:
        QuasiBinaryNet(4, [3, 0], 1)
    _one_line(exc, "hidden widths")
    with pytest.raises(ConfigError) as exc:
        net.forward_moments(torch.zeros(1, 4), layer=5)
    _one_line(exc, "layer", "[0, 1]")
    with pytest.raises(DataError) as exc:
        empirical_ntk(NTKReLUNet(3, 4, 1), torch.zeros(2, 5))
    _one_line(exc, "do not fit", "NTKReLUNet")
    with pytest.raises(DataError) as exc:
        empirical_ntk(NTKReLUNet(3, 4, 1), torch.zeros(0, 3))
    _one_line(exc, "N ≥ 1")
    with pytest.raises(DataError) as exc:
        empirical_ntk(NTKReLUNet(3, 4, 1), torch.zeros(2, 3), torch.zeros(2, 4))
    _one_line(exc, "x2")
    with pytest.raises(ConfigError) as exc:
        empirical_ntk(nn.ReLU(), torch.zeros(2, 3))
    _one_line(exc, "no trainable parameters")
    with pytest.raises(ConfigError) as exc:
        empirical_ntk(NTKReLUNet(3, 4, 1), torch.zeros(2, 3), output="trace")
    _one_line(exc, "NTK output", "full", "mean")
    with pytest.raises(ConfigError) as exc:
        relu_ntk(np.zeros((2, 3)), depth=0)
    _one_line(exc, "depth")
    with pytest.raises(DataError) as exc:
        relu_ntk(np.zeros((2, 3)), np.zeros((2, 4)))
    _one_line(exc, "features")
    with pytest.raises(DataError) as exc:
        gaussian_kernel(np.array([1.0, 2.0]))
    _one_line(exc, "(N, features)")
    with pytest.raises(ConfigError) as exc:
        KernelRidgeClassifier("gausian")
    _one_line(exc, "did you mean 'gaussian'")
    with pytest.raises(ConfigError) as exc:
        KernelRidgeClassifier().predict(np.zeros((1, 2)))
    _one_line(exc, "not fitted")
    with pytest.raises(DataError) as exc:
        fit_spectrum(np.array([0.1, 0.5, 1.0]))
    _one_line(exc, "sorted")
    with pytest.raises(DataError) as exc:
        fit_spectrum(np.array([1.0, 0.5, 0.0, -0.1]), 1, 4)
    _one_line(exc, "rank 3")
    with pytest.raises(DataError) as exc:
        kernel_spectrum(np.zeros((2, 3)))
    _one_line(exc, "square")


# ---------------------------------------------------------------- the experiment


def test_zhang2022_quick_run_writes_results(tmp_path) -> None:
    from onebit.experiments import list_experiments, run_experiment

    assert "zhang2022_ntk" in list_experiments()
    results = run_experiment("zhang2022_ntk", tmp_path / "run", quick=True)
    assert results["quick"] and results["seeds"] == 1
    assert all(c["holds"] is None for c in results["claims"])  # a quick run decides nothing
    assert len(results["claims"]) >= 10
    for plot in results["plots"]:
        assert (tmp_path / "run" / plot).stat().st_size > 0
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["experiment"] == "zhang2022_ntk"
    assert "Quasi layer against Monte Carlo, per unit" in saved["tables"]
