"""onebit.memory: Hebbian and delta storage, Kak's B-matrix retrieval from one clamped neuron,
its packed-kernel engines (bit-exact against the numpy reference), multi-level neurons, errors,
and the quick run of the lingashetty2010_delta_rule experiment."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from onebit.errors import ConfigError
from onebit.memory import (
    active_sites,
    b_matrix,
    binarize_weights,
    delta_rule,
    hebbian,
    level_values,
    line_proximity,
    memories_retrieved,
    point_proximity,
    quantize_levels,
    quantize_weights,
    random_patterns,
    retrieve,
    spreading_order,
)
from tests.conftest import kernel_settings

X2 = np.array([[1, -1, 1], [1, 1, -1]], dtype=float)


def test_hebbian_matches_hand_computation():
    # x1 x1ᵀ + x2 x2ᵀ = [[2,0,0],[0,2,-2],[0,-2,2]], diagonal zeroed
    assert hebbian(X2).tolist() == [[0, 0, 0], [0, 0, -2], [0, -2, 0]]


def test_delta_rule_one_epoch_matches_hand_computation():
    eta = 0.1
    r = delta_rule(X2, eta=eta, epochs=1)
    w = np.zeros((3, 3))
    for x in X2:  # W ← W + η (x − W x) xᵀ, diagonal 0, written out element by element
        err = [x[u] - sum(w[u, v] * x[v] for v in range(3)) for u in range(3)]
        w = np.array([[0.0 if u == v else w[u, v] + eta * err[u] * x[v] for v in range(3)] for u in range(3)])
    np.testing.assert_allclose(r.weights, w, rtol=0, atol=1e-15)
    assert r.epochs == 1 and r.eta == eta and not r.converged
    # by hand: W1 = 0.1 x1 x1ᵀ (diag 0); W1 x2 = (−0.2, 0, 0), error (1.2, 1, −1); W2 = W1 + 0.1 error x2ᵀ
    np.testing.assert_allclose(w, [[0, 0.02, -0.02], [0, 0, -0.2], [0, -0.2, 0]], rtol=0, atol=1e-15)


def test_delta_rule_converges_to_fixed_patterns():
    x = random_patterns(4, 24, rng=np.random.default_rng(1))
    r = delta_rule(x)
    assert r.converged and r.residual < 1e-6 and r.epochs < 200
    np.testing.assert_allclose(x @ r.weights.T, x, atol=1e-6)  # W x = x for every stored pattern
    assert np.all(np.diag(r.weights) == 0)


def test_spreading_order_and_b_matrix_by_hand():
    assert spreading_order(line_proximity(5), 2).tolist() == [2, 1, 3, 0, 4]  # ties: lower index first
    assert spreading_order(line_proximity(4), 0).tolist() == [0, 1, 2, 3]
    p = point_proximity(np.array([[0.0, 0.0], [3.0, 0.0], [1.0, 0.0]]))
    assert spreading_order(p, 1).tolist() == [1, 2, 0]
    w = np.arange(9, dtype=float).reshape(3, 3)
    # order (2, 0, 1): B[a, b] = W[σa, σb] for b < a
    assert b_matrix(w, np.array([2, 0, 1])).tolist() == [[0, 0, 0], [w[0, 2], 0, 0], [w[1, 2], w[1, 0], 0]]


def test_single_memory_retrieved_from_every_neuron():
    x = random_patterns(1, 19, rng=np.random.default_rng(2))
    for w in (hebbian(x), delta_rule(x).weights):
        assert active_sites(w, x).all()
        r = retrieve(w, 7, [-x[0, 7]])  # the opposite clamp gives the opposite memory
        assert np.array_equal(r.states[0], -x[0])


def _forward_substitution(w: np.ndarray, order: np.ndarray, value: float, tie: float = 1.0) -> np.ndarray:
    f = np.zeros(len(order))
    f[order[0]] = value
    for a in range(1, len(order)):
        u, prev = order[a], order[:a]
        field = w[u, prev] @ f[prev]
        f[u] = 1.0 if field > 0 else -1.0 if field < 0 else tie
    return f


def test_iteration_reaches_the_forward_substitution_within_n_steps():
    rng = np.random.default_rng(3)
    n = 23
    w = rng.standard_normal((n, n))
    p = point_proximity(rng.random((n, 2)))
    for i in (0, 11, 22):
        r = retrieve(w, i, [1.0, -1.0], p)
        assert r.iterations <= n
        for row, v in zip(r.states, (1.0, -1.0)):
            assert np.array_equal(row, _forward_substitution(w, spreading_order(p, i), v))


def test_silent_ties_by_hand():
    # T = [[0,0,0],[0,0,-2],[0,-2,0]]: from neuron 0 = +1 the field of neuron 1 is T[1,0] = 0.
    t = hebbian(X2)
    # sgn(0) = +1: neuron 1 turns +1, neuron 2 gets −2 → −1: the second memory (1, 1, −1)
    assert retrieve(t, 0, [1.0]).states.tolist() == [[1, 1, -1]]
    # silent: neuron 1 stays 0, neuron 2's field is then 0 too: nothing retrieved
    assert retrieve(t, 0, [1.0], ties="silent").states.tolist() == [[1, 0, 0]]
    assert active_sites(t, X2).tolist() == [[False, True, True], [True, True, True]]
    assert not active_sites(t, X2, ties="silent").any()


def test_silent_ties_iteration_is_the_three_valued_forward_substitution():
    rng = np.random.default_rng(9)
    x = random_patterns(4, 21, rng=rng)  # even k: the integer Hebbian fields hit 0 often
    t = hebbian(x)
    p = line_proximity(21)
    silent = 0
    for i in range(21):
        r = retrieve(t, i, [1.0, -1.0], p, ties="silent")
        assert r.iterations <= 22
        for row, v in zip(r.states, (1.0, -1.0)):
            assert np.array_equal(row, _forward_substitution(t, spreading_order(p, i), v, tie=0.0))
        silent += int((r.states == 0).sum())
    assert silent > 0  # the rule was exercised


def test_active_sites_counts():
    sites = np.array([[True, False, False], [False, False, False]])
    assert memories_retrieved(sites) == 1
    x = random_patterns(5, 32, rng=np.random.default_rng(4))
    s = active_sites(hebbian(x), x)
    assert s.shape == (5, 32) and s.dtype == bool


@st.composite
def _problems(draw, integer: bool):
    n = draw(st.integers(1, 140))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if integer:
        w = rng.integers(-60, 61, size=(n, n)).astype(np.float64)
    else:
        w = rng.standard_normal((n, n)) * draw(st.sampled_from([1e-3, 1.0, 1e3]))
        w[rng.random((n, n)) < 0.1] = 0.0  # zeros binarize to +1
    np.fill_diagonal(w, 0.0)
    p = point_proximity(rng.random((n, 2))) if draw(st.booleans()) else line_proximity(n)
    clamped = draw(st.integers(0, n - 1))
    values = rng.choice([-1.0, 1.0], size=draw(st.integers(1, 9)))
    return w, p, clamped, values


@kernel_settings(40)
@given(_problems(integer=True))
def test_float_input_engine_is_bit_exact_with_numpy(problem):
    w, p, clamped, values = problem
    ref = retrieve(w, clamped, values, p)
    got = retrieve(w, clamped, values, p, engine="float-input", num_threads=2)
    assert np.array_equal(got.states, ref.states) and got.iterations == ref.iterations


@kernel_settings(40)
@given(_problems(integer=False))
def test_xnor_engine_is_bit_exact_with_numpy_on_the_signs(problem):
    w, p, clamped, values = problem
    ref = retrieve(binarize_weights(w), clamped, values, p)
    got = retrieve(w, clamped, values, p, engine="xnor", num_threads=2)
    assert np.array_equal(got.states, ref.states) and got.iterations == ref.iterations


def test_engines_agree_on_stored_memories():
    x = random_patterns(5, 70, rng=np.random.default_rng(5))
    t = hebbian(x)
    assert np.array_equal(active_sites(t, x, engine="float-input"), active_sites(t, x))
    q, scale = quantize_weights(delta_rule(x).weights, 8)
    assert np.abs(q).max() == 127 and scale > 0
    assert np.array_equal(active_sites(q, x, engine="float-input"), active_sites(q, x))


def test_quantize_weights_by_hand():
    q, s = quantize_weights(np.array([[0.0, 0.5], [-1.0, 0.26]]), 3)  # grid ±3, s = 1/3
    assert s == pytest.approx(1 / 3) and q.tolist() == [[0, 2], [-3, 1]]


def test_multilevel_quantizer_and_binary_case():
    assert level_values(2).tolist() == [-1, 1] and level_values(3).tolist() == [-1, 0, 1]
    assert np.allclose(level_values(4), [-1, -1 / 3, 1 / 3, 1])
    y = np.array([-2.0, -0.4, -0.0, 0.0, 1e-9, 0.6])
    assert quantize_levels(y, 2).tolist() == [-1, -1, 1, 1, 1, 1]  # sgn, sgn(0) = +1
    assert quantize_levels(np.array([-0.5, -0.49, 0.5, 0.51]), 3).tolist() == [0, 0, 1, 1]  # ties upward
    x = random_patterns(4, 20, rng=np.random.default_rng(6))
    t = hebbian(x)
    for i in (0, 9):
        a = retrieve(t, i, x[:, i], levels=2, gain=3.0)
        assert np.array_equal(a.states, retrieve(t, i, x[:, i]).states)


@kernel_settings(25)
@given(st.integers(2, 40), st.sampled_from([3, 4, 5]), st.integers(0, 2**32 - 1))
def test_multilevel_iteration_is_the_forward_substitution(n, levels, seed):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((n, n)) / 3
    gain = 1.7
    clamped = int(rng.integers(0, n))
    r = retrieve(w, clamped, level_values(levels), levels=levels, gain=gain)
    order = spreading_order(line_proximity(n), clamped)
    for row, v in zip(r.states, level_values(levels)):
        f = np.zeros(n)
        f[order[0]] = v
        for a in range(1, n):
            u, prev = order[a], order[:a]
            e = float(np.sum(f[prev] ** 2))
            f[u] = quantize_levels(np.array([gain * (w[u, prev] @ f[prev]) / e if e > 0 else 0.0]), levels)[0]
        np.testing.assert_allclose(row, f, rtol=0, atol=0)
    assert r.iterations <= n + 1


def test_multilevel_single_memory_retrieved_from_its_nonzero_neurons():
    x = random_patterns(1, 24, levels=4, rng=np.random.default_rng(7))
    sites = active_sites(hebbian(x, levels=4), x, levels=4)
    assert sites.all()
    x3 = random_patterns(1, 24, levels=3, rng=np.random.default_rng(8))
    sites3 = active_sites(hebbian(x3, levels=3), x3, levels=3)
    assert 0 in x3 and np.array_equal(sites3[0], x3[0] != 0)  # a silent clamp carries nothing


@pytest.mark.parametrize("call, message", [
    (lambda: hebbian([[1, 0, -1]]), "patterns must hold only {-1, +1}"),
    (lambda: hebbian([[1, 2]]), "got 2.0 at row 0, neuron 1"),
    (lambda: hebbian(np.zeros((2, 0))), "N ≥ 1"),
    (lambda: hebbian(np.ones((2, 2, 2))), "must be a (k, N) array"),
    (lambda: delta_rule(X2, eta=-1.0), "eta must be a positive"),
    (lambda: delta_rule(X2, init=np.zeros((2, 2))), "init must be a finite (3, 3)"),
    (lambda: active_sites(np.zeros((4, 4)), X2), "patterns have N=3 neurons but weights are (4, 4)"),
    (lambda: retrieve(np.zeros((0, 0)), 0, [1]), "N ≥ 1"),
    (lambda: retrieve(np.zeros((3, 3)), 3, [1]), "clamped must be a neuron index in [0, 2]"),
    (lambda: retrieve(np.zeros((3, 3)), 0, [0.5]), "values must be clamp values"),
    (lambda: retrieve(np.zeros((3, 3)), 0, [1], np.zeros((2, 2))), "proximity must be a finite (3, 3)"),
    (lambda: retrieve(np.zeros((3, 3)), 0, [1], engine="gpu"), "unknown retrieval engine 'gpu'"),
    (lambda: retrieve(np.full((3, 3), 0.5), 0, [1], engine="float-input"), "integer-valued weights"),
    (lambda: retrieve(np.zeros((3, 3)), 0, [1], engine="xnor", levels=3), "runs ±1 neurons only"),
    (lambda: retrieve(np.zeros((3, 3)), 0, [1], ties="zero"), "unknown ties 'zero'"),
    (lambda: active_sites(np.zeros((3, 3)), X2, engine="xnor", ties="silent"), "ties='silent' needs engine='numpy'"),
    (lambda: quantize_levels(np.zeros(2), 1), "levels must be an integer in [2, 256]"),
    (lambda: quantize_weights(np.zeros((2, 3))), "square (N, N)"),
])
def test_bad_input_gets_one_clear_line(call, message):
    with pytest.raises(ConfigError) as err:
        call()
    assert message in str(err.value) and "\n" not in str(err.value)


def test_memory_imports_without_torch():
    from tests.test_runtime_import import run_without_torch

    proc = run_without_torch("""
        import numpy as np
        from onebit.memory import hebbian, retrieve
        x = np.array([[1.0, -1.0, 1.0, 1.0]])
        assert retrieve(hebbian(x), 1, [-1.0], engine="xnor").states.tolist() == [[1.0, -1.0, 1.0, 1.0]]
        assert "torch" not in sys.modules
    """)
    assert proc.returncode == 0, proc.stderr


def test_experiment_helpers_by_hand():
    from onebit.experiments.lingashetty2010 import delta_until_sign_fixed, index_proximity, paired_gap

    assert spreading_order(index_proximity(5), 3).tolist() == [3, 4, 0, 1, 2]
    x = random_patterns(5, 16, rng=np.random.default_rng(6))
    w = delta_until_sign_fixed(x)
    assert np.array_equal(np.where(x @ w.T >= 0, 1.0, -1.0), x)  # every memory a fixed point of sgn(W x)
    assert not delta_rule(x).weights.tolist() == w.tolist()  # stopped before convergence
    # gaps (3−1, 2−2, 4−1) = (2, 0, 3): mean 5/3, sd √(7/3), half-width 1.96·sd/√3
    g, half, n = paired_gap([(0, 3), (0, 2), (1, 4)], [(0, 1), (0, 2), (1, 1)])
    assert n == 3 and g == pytest.approx(5 / 3) and half == pytest.approx(1.96 * np.sqrt(7 / 3) / np.sqrt(3))


def test_quick_experiment(tmp_path):
    from onebit.experiments import list_experiments, run_experiment

    assert "lingashetty2010_delta_rule" in list_experiments()
    results = run_experiment("lingashetty2010_delta_rule", tmp_path / "q", quick=True)
    claims = {c["claim"]: c for c in results["claims"]}
    assert claims["one stored memory: the Hebbian network retrieves it from every neuron"]["holds"] is True
    exact = next(c for c in results["claims"] if c["claim"].startswith("packed engine retrievals"))
    assert exact["holds"] is True
    assert all(c["holds"] is None for c in results["claims"] if "delta rule retrieves" in c["claim"])
    readings = results["tables"]["readings of the method, N=32"]["rows"]
    assert len(readings) == 6 and readings[0][0].startswith("main")
    assert (tmp_path / "q" / "lingashetty2010_capacity.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((tmp_path / "q" / "results.json").read_text())["experiment"] == "lingashetty2010_delta_rule"
