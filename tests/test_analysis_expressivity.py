"""onebit.analysis.expressivity (Beknazaryan 2022): the 1_[a,b) depth-2 net against brute force, its bound,
the targets' moduli of continuity, binary/ternary MLPs, sup error, bad input, and the experiment
``beknazaryan2022_expressivity --quick``."""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch
from torch import nn

from onebit.analysis.expressivity import (
    TARGETS,
    HolderTarget,
    Indicator,
    IndicatorNetwork,
    QuantizedMLP,
    cell_centres,
    count_weights,
    evaluation_grid,
    fit_target,
    get_target,
    indicator_bound,
    indicator_network,
    sup_error,
)
from onebit.errors import ConfigError, DataError
from onebit.nn import QuantLinear


@pytest.fixture(autouse=True)
def one_thread():
    """Small models: one torch thread is fastest on a busy 2-core machine (and repeatable)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _brute_cell(x: torch.Tensor, n: int) -> torch.Tensor:
    """Brute force: the cell index along each axis, floor(n·x) with x = 1 in the last cell."""
    return torch.clamp(torch.floor(x * n).long(), 0, n - 1)


def _brute_net(x: torch.Tensor, f, n: int) -> torch.Tensor:
    """Brute force: f at the centre of the cell that holds x."""
    return f((_brute_cell(x, n).double() + 0.5) / n)


def _inside_points(d: int, count: int, n: int, seed: int = 0) -> torch.Tensor:
    """Random points of [0,1]^d at least 1e-6 from every cell boundary of an n-grid."""
    x = torch.rand(count, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    frac = x * n - torch.floor(x * n)
    keep = ((frac > 1e-6) & (frac < 1 - 1e-6)).all(dim=1)
    return x[keep]


# --------------------------------------------------------------------------- the 1_[a,b) activation and net


def test_indicator_activation_is_the_half_open_interval():
    sigma = Indicator(-0.5, 2.0)
    t = torch.tensor([-1.0, -0.5, 0.0, 1.999, 2.0, 3.0])
    assert sigma(t).tolist() == [0.0, 1.0, 1.0, 1.0, 0.0, 0.0]


@pytest.mark.parametrize("d,n", [(1, 1), (1, 2), (1, 7), (1, 64), (2, 1), (2, 3), (2, 8), (3, 4)])
@pytest.mark.parametrize("ab", [(0.0, 1.0), (-3.0, 0.25)])
def test_indicator_net_equals_f_at_the_centre_of_the_cell_of_x(d, n, ab):
    f = get_target("holder1d") if d == 1 else (lambda x: torch.cos(3 * x.sum(dim=1)) + x[:, 0] ** 2)
    net = indicator_network(f, n, d, a=ab[0], b=ab[1])
    x = _inside_points(d, 500, n)
    assert torch.equal(net(x), _brute_net(x, f, n))
    # every grid point (cell boundaries and the faces 0 and 1 included) lands in one of its neighbouring cells
    g = evaluation_grid(d, 4 * n + 1)
    out = net(g)
    candidates = [f((torch.clamp(torch.floor(g * n + s), 0, n - 1) + 0.5) / n) for s in (-1e-9, 1e-9)]
    assert bool(((out == candidates[0]) | (out == candidates[1])).all())


@pytest.mark.parametrize("d,n", [(1, 5), (2, 4), (2, 1), (3, 3)])
def test_indicator_net_is_its_dense_layers(d, n):
    """The forward (rank-1 second layer, chunked) equals σ(W₃ σ(W₂ σ(W₁x + b₁) + b₂) + b₃) written out."""
    f = lambda x: torch.sin(5 * x[:, 0]) - x[:, -1]
    net = indicator_network(f, n, d, a=0.5, b=2.0)
    (w1, b1), (w2, b2), (w3, b3) = net.dense_layers()
    assert w1.shape == (d * (n - 1), d) and w2.shape == (n**d, d * (n - 1)) and w3.shape == (1, n**d)
    assert net.num_weights == w1.shape[0] + w2.numel() + w3.numel()
    x = torch.cat([evaluation_grid(d, 3 * n + 1), torch.rand(200, d, generator=torch.Generator().manual_seed(1),
                                                            dtype=torch.float64)])

    def sigma(t):
        return ((t >= 0.5) & (t < 2.0)).double()

    h1 = sigma(x @ w1.T + b1)
    h2 = sigma(h1 @ w2.T + b2)
    assert torch.equal(h2.sum(dim=1), torch.ones(len(x), dtype=torch.float64))  # exactly one cell unit fires
    assert torch.equal((h2 @ w3.T + b3)[:, 0], net(x))
    # the active unit is the brute-force cell, numbered by the base-n code Σ_j n^(j−1) κ_j
    inside = _inside_points(d, 300, n, seed=2)
    code = (_brute_cell(inside, n) * torch.tensor([n**j for j in range(d)])).sum(dim=1)
    assert torch.equal(sigma(sigma(inside @ w1.T + b1) @ w2.T + b2).argmax(dim=1), code)


def test_cell_centres_follow_the_code_order():
    c = cell_centres(3, 2)
    assert c.shape == (9, 2)
    assert c[:4].tolist() == [[1 / 6, 1 / 6], [0.5, 1 / 6], [5 / 6, 1 / 6], [1 / 6, 0.5]]
    assert cell_centres(4, 1)[:, 0].tolist() == [0.125, 0.375, 0.625, 0.875]


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_target_moduli_bound_the_brute_force_differences(name):
    """ω_f(δ) ≥ |f(x) − f(y)| for random pairs, many of them close (where a Hölder cusp bites)."""
    target = TARGETS[name]
    gen = torch.Generator().manual_seed(3)
    x = torch.rand(20000, target.d, generator=gen, dtype=torch.float64)
    centre = torch.tensor([0.3, 0.6][: target.d], dtype=torch.float64)
    x[:5000] = centre + 1e-3 * (torch.rand(5000, target.d, generator=gen, dtype=torch.float64) - 0.5)
    step = torch.randn(20000, target.d, generator=gen, dtype=torch.float64)
    y = (x + step * 10 ** torch.empty(20000, 1, dtype=torch.float64).uniform_(-6, 0, generator=gen)).clamp(0, 1)
    diff = (target(x) - target(y)).abs()
    bound = torch.tensor([target.modulus(float(r)) for r in (x - y).norm(dim=1)], dtype=torch.float64)
    assert bool((diff <= bound + 1e-12).all())
    assert float((diff / bound.clamp_min(1e-300))[bound > 0].max()) > 0.5  # and the bound is not loose everywhere


@pytest.mark.parametrize("name,ns", [("sin1d", [1, 3, 16, 100]), ("holder1d", [2, 16, 50]), ("sin2d", [1, 4, 10]),
                                     ("holder2d", [3, 8])])
def test_sup_error_stays_under_the_bound_and_is_the_brute_force_sup(name, ns):
    target = get_target(name)
    for n in ns:
        net = indicator_network(target, n, target.d)
        m = 6 * n + 1 if target.d == 1 else 2 * n + 1
        err = sup_error(net, target, target.d, m)
        assert err <= indicator_bound(target, n, target.d)
        g = evaluation_grid(target.d, m)
        assert err == pytest.approx(float((target(g) - net(g)).abs().max()), abs=0)
    assert indicator_bound(target, 7, target.d) == target.modulus(math.sqrt(target.d) / 14)
    assert indicator_bound(lambda delta: 3 * delta, 4, 2) == pytest.approx(3 * math.sqrt(2) / 8)


def test_lipschitz_error_falls_like_one_over_n():
    target = get_target("sin1d")
    errs = [sup_error(indicator_network(target, n, 1), target, 1, 1025) for n in (8, 16, 32, 64, 128)]
    for e, e2 in itertools.pairwise(errs):
        assert e2 / e == pytest.approx(0.5, abs=0.01)


def test_evaluation_grid():
    g = evaluation_grid(2, 3)
    assert g.shape == (9, 2) and g.dtype == torch.float64
    assert g[0].tolist() == [0.0, 0.0] and g[-1].tolist() == [1.0, 1.0]
    assert sorted(set(g[:, 0].tolist())) == [0.0, 0.5, 1.0]


# --------------------------------------------------------------------------- binary / ternary MLPs


@pytest.mark.parametrize("kind,values", [("binary", {-1.0, 1.0}), ("ternary", {-1.0, 0.0, 1.0})])
def test_quantized_mlp_is_a_net_with_those_weights_real_biases_and_one_output_scale(kind, values):
    torch.manual_seed(0)
    net = QuantizedMLP(2, 16, 3, kind)
    with torch.no_grad():
        net.output_scale.fill_(1.7)
    layers = [*net.hidden, net.out]
    qs = [layer.quantized_weight().detach() for layer in layers]
    assert set(torch.cat([q.flatten() for q in qs]).tolist()) == values
    # brute force: the same function written with the quantized weights, the 1/√p factors folded into the biases
    x = torch.rand(100, 2, generator=torch.Generator().manual_seed(4))
    h = 2 * x - 1
    c = 1.0  # net = c · (a net with weights in `values` and real biases)
    for layer, q in zip(net.hidden, qs[:-1]):
        c /= math.sqrt(layer.in_features)
        h = torch.relu(h @ q.T + layer.bias.detach() / c)
    c /= math.sqrt(net.width)
    explicit = 1.7 * c * (h @ qs[-1].T + net.out.bias.detach() / c)[:, 0]
    torch.testing.assert_close(net(x).detach(), explicit, rtol=1e-5, atol=1e-5)


def test_count_weights_brute_force():
    torch.manual_seed(1)
    net = QuantizedMLP(1, 8, 2, "ternary", ternary_threshold=0.3)
    zeros = sum(int((layer.quantized_weight() == 0).sum()) for layer in [*net.hidden, net.out])
    assert count_weights(net) == {"weights": 8 + 64 + 8, "nonzero": 80 - zeros, "layers": 3}
    assert zeros > 0
    assert count_weights(QuantizedMLP(2, 4, 1, "binary"))["nonzero"] == 2 * 4 + 4
    plain = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Conv1d(1, 2, 3), QuantLinear(4, 2, weight_quantizer="ste_sign"))
    with torch.no_grad():
        plain[0].weight[0] = 0
    assert count_weights(plain) == {"weights": 15 + 6 + 8, "nonzero": 12 + 6 + 8, "layers": 3}


def test_fit_target_lowers_the_error_and_repeats_for_a_seed():
    target = get_target("holder1d")
    results = []
    for _ in range(2):
        torch.manual_seed(0)
        net = QuantizedMLP(1, 16, 2, "binary")
        before = sup_error(net, target, 1, 513)
        fit = fit_target(net, target, 1, steps=200, batch_size=128, seed=5, log_every=100)
        results.append((fit.final_loss, sup_error(net, target, 1, 513)))
        assert results[-1][1] < before
        assert [s for s, _ in fit.losses] == [100, 200]
    assert results[0] == results[1]
    assert max(float(layer.weight.detach().abs().max()) for layer in [*net.hidden, net.out]) <= 1.0  # clipped


def test_sup_error_of_any_model_and_output_shapes():
    target = get_target("sin2d")
    zero2 = lambda x: torch.zeros(len(x), 1)
    assert sup_error(zero2, target, 2, 33) == pytest.approx(1.0)
    lin = nn.Linear(2, 1)
    with torch.no_grad():
        lin.weight.zero_(), lin.bias.fill_(0.5)
    assert sup_error(lin, target, 2, 33) == pytest.approx(1.5)
    assert lin.training  # restored


# --------------------------------------------------------------------------- bad input: one clear line


@pytest.mark.parametrize("call,message", [
    (lambda: indicator_network(get_target("sin1d"), 0, 1), "n must be an integer ≥ 1, got 0"),
    (lambda: indicator_network(get_target("sin1d"), 2.5, 1), "n must be an integer ≥ 1, got 2.5"),
    (lambda: indicator_network(get_target("sin1d"), 4, 0), "dimension d must be an integer ≥ 1"),
    (lambda: indicator_network(get_target("sin1d"), 4, 2), "'sin1d' is defined on [0,1]^1, not d = 2"),
    (lambda: indicator_network(lambda x: x, 4, 2), "returned shape (16, 2) for inputs of shape (16, 2)"),
    (lambda: indicator_network(lambda x: x[:, 5], 4, 2), "the target failed on inputs of shape (16, 2)"),
    (lambda: indicator_network(get_target("sin1d"), 4, 1, a=1.0, b=1.0), "needs finite a < b"),
    (lambda: indicator_network(get_target("sin2d"), 4096, 2), "too many for an indicator network"),
    (lambda: indicator_bound(get_target("sin1d"), -1, 1), "n must be an integer ≥ 1"),
    (lambda: get_target("holder1"), "unknown target 'holder1' (did you mean 'holder1d'?)"),
    (lambda: QuantizedMLP(1, 8, 2, "binry"), "unknown weight kind 'binry' (did you mean 'binary'?)"),
    (lambda: QuantizedMLP(1, 0, 2), "width must be an integer ≥ 1"),
    (lambda: QuantizedMLP(1, 4, 2, "ternary", ternary_threshold=1.5), "ternary_threshold must be in [0, 1)"),
    (lambda: QuantizedMLP(2, 4, 1)(torch.zeros(3, 1)), "inputs must have shape (m, 2), got (3, 1)"),
    (lambda: indicator_network(get_target("sin1d"), 4, 1)(torch.zeros(3, 2)), "inputs must have shape (m, 1)"),
    (lambda: sup_error(QuantizedMLP(2, 4, 1), get_target("sin1d"), 1), "inputs must have shape (m, 2)"),
    (lambda: sup_error(nn.Linear(2, 3), get_target("sin2d"), 2, 5), "returned shape (25, 3)"),
    (lambda: sup_error(nn.Linear(2, 1), get_target("sin2d"), 2, 1), "points_per_dim must be ≥ 2"),
    (lambda: count_weights(nn.ReLU()), "ReLU has no linear or convolution layers"),
    (lambda: fit_target(QuantizedMLP(1, 4, 1), get_target("sin1d"), 1, steps=0), "steps must be an integer ≥ 1"),
    (lambda: fit_target(QuantizedMLP(1, 4, 1), get_target("sin1d"), 1, lr=0), "lr must be > 0"),
    (lambda: fit_target(indicator_network(get_target("sin1d"), 4, 1), get_target("sin1d"), 1),
     "IndicatorNetwork has no trainable parameters to fit"),
    (lambda: fit_target(nn.Linear(3, 1), get_target("sin2d"), 2, steps=1),
     "the model (Linear) failed on inputs of shape (1024, 2): mat1 and mat2 shapes cannot be multiplied"),
    (lambda: fit_target(nn.Linear(2, 2), get_target("sin2d"), 2, steps=1), "returned shape (1024, 2)"),
])
def test_bad_input_gets_one_clear_line(call, message):
    with pytest.raises((ConfigError, DataError)) as info:
        call()
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_holder_target_is_a_plain_dataclass():
    t = HolderTarget("cube", 3, 1.0, "x₁", lambda x: x[:, 0], lambda delta: delta)
    net = indicator_network(t, 2, 3)
    assert isinstance(net, IndicatorNetwork) and net.hidden_units == (3, 8)
    assert sup_error(net, t, 3, 9) == pytest.approx(0.25)


# --------------------------------------------------------------------------- the experiment


def test_loglog_slope():
    from onebit.experiments.beknazaryan2022 import loglog_slope

    assert loglog_slope([1, 2, 4, 8], [3.0, 1.5, 0.75, 0.375]) == pytest.approx(-1.0)
    assert loglog_slope([10, 100], [2.0, 2.0]) == pytest.approx(0.0)


def test_experiment_quick_run(tmp_path):
    from onebit.experiments import list_experiments, run_experiment

    assert "beknazaryan2022_expressivity" in list_experiments()
    results = run_experiment("beknazaryan2022_expressivity", tmp_path / "run", quick=True)
    assert results["quick"] and results["seeds"] == 1
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["experiment"] == "beknazaryan2022_expressivity"
    assert len(saved["claims"]) == 14 and all(c["holds"] is None for c in saved["claims"])
    assert saved["claims"][0]["measured"] == "4/4 targets"  # under the bound for every n, also in a quick run
    assert saved["claims"][1]["measured"] == "4/4 cases"  # other activation intervals [a, b)
    for plot in ("indicator_error.png", "trained_error.png"):
        assert (tmp_path / "run" / plot).stat().st_size > 1000
    assert "Depth-2 1_[a,b) net on sin(2πx) (d = 1, β = 1)" in saved["tables"]
    assert "## Claims" in (tmp_path / "run" / "results.md").read_text()
