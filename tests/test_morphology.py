"""BiMoNN (onebit.nn.morphological, onebit.morphology): the binarization theorem against
brute force, BiSE/LUI against hand computation, the engine against scipy.ndimage."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from onebit.errors import ConfigError
from onebit.morphology.engine import morphology_graph
from onebit.morphology import (
    MorphologyEngine, diskorect, export_morphology, morphological_target, structuring_element, train_bimonn,
)
from onebit.nn import BiMoNN, BiSE, LUI, MorphologicalLayer, MorphologicalNet
from onebit.nn.morphological import bounds, closest_operation, find_operation, is_operation

# every binary 2 × 3 window, and every non-empty set S of its 6 pixels
WINDOWS = np.array(list(itertools.product((0, 1), repeat=6)), np.float64)  # (64, 6)
SETS = WINDOWS[1:].astype(bool)  # (63, 6)
DILATIONS = (WINDOWS @ SETS.T.astype(float)) >= 1  # (64, 63): dilation by S of each window
EROSIONS = (WINDOWS @ SETS.T.astype(float)) >= SETS.sum(1)


def _exact_sets(w: np.ndarray, b: float) -> dict[str, np.ndarray]:
    """By brute force: for each operation, the sets S whose truth table the unit reproduces."""
    unit = (WINDOWS @ w + b > 0)[:, None]
    return {"dilation": np.flatnonzero((DILATIONS == unit).all(0)), "erosion": np.flatnonzero((EROSIONS == unit).all(0))}


def test_bounds_theorem_matches_brute_force_on_all_2x3_sets():
    """For positive weights the bounds are exact: is_operation(S) ⇔ the thresholded unit is
    the operation by S on all 64 binary windows (ties lb = −B have probability 0)."""
    rng = np.random.default_rng(0)
    seen = {"dilation": 0, "erosion": 0}
    for trial in range(90):
        w = rng.uniform(0.05, 2.0, 6).reshape(2, 3)
        b = -rng.uniform(0.5, w.sum())
        if trial % 3:  # a planted operation: bias drawn inside its interval
            S = rng.random((2, 3)) < 0.5
            S[0, rng.integers(3)] = True
            op = ("dilation", "erosion")[trial % 3 - 1]
            w = np.where(S, rng.uniform(1.0, 2.0, S.shape), rng.uniform(0.0, 0.15, S.shape))
            lb, ub = bounds(w, S, op)
            b = -rng.uniform(lb, ub)
        exact = _exact_sets(w.ravel(), b)
        for op in ("dilation", "erosion"):
            predicted = [i for i in range(len(SETS)) if is_operation(w, b, SETS[i].reshape(2, 3), op)]
            assert predicted == list(exact[op]), (trial, op)
            seen[op] += len(predicted)
            found = find_operation(w, b, (op,))
            if len(exact[op]):
                assert len(exact[op]) == 1 and found is not None and (found[0].ravel() == SETS[exact[op][0]]).all()
                assert found[1] == op
            else:
                assert found is None
    assert seen["dilation"] >= 30 and seen["erosion"] >= 30  # both cases were exercised


def test_bounds_are_sufficient_with_negative_weights_and_almost_binary_inputs():
    rng = np.random.default_rng(1)
    checked = 0
    for _ in range(300):
        w = rng.normal(0.5, 1.0, 6)
        b = -rng.uniform(0.0, 4.0)
        exact = _exact_sets(w, b)
        for op in ("dilation", "erosion"):
            for i in range(len(SETS)):
                if is_operation(w, b, SETS[i], op):
                    assert i in exact[op]
                    checked += 1
    assert checked >= 5
    # almost-binary inputs: values in [0, v1] ∪ [v2, 1] act as their binarization
    v1, v2 = 0.1, 0.9
    for _ in range(100):
        S = rng.random(9) < 0.5
        S[4] = True
        w = np.where(S, rng.uniform(1.0, 2.0, 9), rng.uniform(0.0, 0.05, 9))
        for op in ("dilation", "erosion"):
            lb, ub = bounds(w, S, op, v1, v2)
            if lb >= ub:
                continue
            b = -rng.uniform(lb, ub)
            assert is_operation(w, b, S, op, v1, v2)
            bits = rng.random((400, 9)) < 0.5
            x = np.where(bits, rng.uniform(v2, 1.0, bits.shape), rng.uniform(0.0, v1, bits.shape))
            count = bits[:, S].sum(1)
            want = count >= 1 if op == "dilation" else count == S.sum()
            assert ((x @ w + b > 0) == want).all()


def test_projection_picks_the_nearest_upper_set():
    w = np.array([2.0, 2.0, 0.1, 0.1, 2.0, 0.1, 0.1, 0.1, 0.1])
    S, op, d = closest_operation(w, -1.0)  # Σ_{∉S} w = 0.6 < 1 < 2: an exact dilation by {0, 1, 4}
    assert op == "dilation" and d == 0 and S.tolist() == [w_ > 1 for w_ in w]
    S, op, d = closest_operation(w, -0.55)  # the bias leaves the interval (0.6, 2) by 0.05
    assert op == "dilation" and d == pytest.approx(0.05) and S.tolist() == [w_ > 1 for w_ in w]
    assert find_operation(w, -0.55) is None


def _replicate_conv(x: np.ndarray, w: np.ndarray, b: float) -> np.ndarray:
    """Replicate-padded correlation by explicit loops (the hand computation)."""
    k = w.shape[0]
    p = k // 2
    xp = np.pad(x, p, mode="edge")
    out = np.empty_like(x, dtype=np.float64)
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            out[i, j] = (xp[i:i + k, j:j + k] * w).sum() + b
    return out


def test_bise_and_lui_outputs_match_hand_computation():
    torch.manual_seed(0)
    bise = BiSE(3, out_channels=2)
    w = np.stack([np.array([[0.1, 1.0, 0.1], [1.0, 1.0, 1.0], [0.1, 1.0, 0.1]]), np.full((3, 3), 0.5)])[:, None]
    bise.set_normalized(w, np.array([-0.7, -4.2]))
    with torch.no_grad():
        bise.activation_P.copy_(torch.tensor([3.0, 0.5]))
    assert np.allclose(bise.weight.detach().numpy(), w, atol=1e-6)
    assert np.allclose(bise.bias.detach().numpy(), [-0.7, -4.2], atol=1e-6)
    x = np.random.default_rng(0).random((6, 7))
    got = bise(torch.tensor(x, dtype=torch.float32)[None, None])[0].detach().numpy()
    for o, (P, b) in enumerate([(3.0, -0.7), (0.5, -4.2)]):
        want = 0.5 * np.tanh(P * _replicate_conv(x, w[o, 0], b)) + 0.5
        assert np.allclose(got[o], want, atol=1e-5)
    # the cross with bias −0.7 is exactly the dilation by the cross, and activated
    (p0, p1) = bise.projections()
    assert p0.activated and p0.operation == "dilation" and p0.S.tolist() == (w[0, 0] > 0.5).tolist()
    assert p1.activated and p1.operation == "erosion" and p1.S.all()  # 4.0 < 4.2 < 4.5

    lui = LUI(2, 1)
    lui.set_normalized(np.array([[1.0, 2.0]]), np.array([-1.5]))
    P = float(torch.nn.functional.softplus(lui.P_raw).item() + 1)
    y = lui(torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]).T.reshape(1, 2, 1, 4))[0, 0, 0]
    want = 0.5 * np.tanh(P * (np.array([0, 2, 1, 3]) - 1.5)) + 0.5
    assert np.allclose(y.detach().numpy(), want, atol=1e-6)
    (proj,) = lui.projections()  # 1·x0 + 2·x1 > 1.5 ⇔ x1: the union of {1}... is the identity on channel 1
    assert proj.activated and proj.operation == "union" and proj.S.tolist() == [False, True]


def _random_net(rng: np.random.Generator, channels: list[int], k: int) -> MorphologicalNet:
    layers = []
    for c_in, c_out in zip(channels[:-1], channels[1:]):
        selems = rng.random((c_out, c_in, k, k)) < 0.35
        selems[..., k // 2, k // 2] |= rng.random((c_out, c_in)) < 0.5
        selems[..., 0, 0] |= ~selems.any((2, 3))  # never empty
        sets = rng.random((c_out, c_in)) < 0.6
        sets[np.arange(c_out), rng.integers(0, c_in, c_out)] = True
        ops = [[("dilation", "erosion")[rng.integers(2)] for _ in range(c_in)] for _ in range(c_out)]
        comb = [("union", "intersection")[rng.integers(2)] for _ in range(c_out)]
        layers.append(MorphologicalLayer(selems, ops, sets, comb, complements=rng.random((c_out, c_in)) < 0.3))
    return MorphologicalNet(layers)


def _scipy_layer(layer: MorphologicalLayer, x: np.ndarray, outside: np.ndarray) -> np.ndarray:
    """One layer by scipy.ndimage (dilation by the reflected kernel; complements by ¬), input
    channel c padded with outside[c]."""
    outs = []
    for o in range(layer.out_channels):
        parts = []
        for c in np.flatnonzero(layer.channel_sets[o]):
            S, border = layer.selems[o, c][None], int(outside[c])
            if layer.operations[o][c] == "dilation":
                part = ndimage.binary_dilation(x[:, c].astype(bool), S[:, ::-1, ::-1], border_value=border)
            else:
                part = ndimage.binary_erosion(x[:, c].astype(bool), S, border_value=border)
            parts.append(part ^ layer.complements[o, c])
        outs.append(np.logical_or.reduce(parts) if layer.combiners[o] == "union" else np.logical_and.reduce(parts))
    return np.stack(outs, 1).astype(np.uint8)


def _scipy_net(net: MorphologicalNet, x: np.ndarray) -> np.ndarray:
    """The same network by scipy.ndimage, each layer's input padded with its value far from the
    image: found by running the layers before on a constant 3 × 3 image (background at first)."""
    outside = np.zeros(net.in_channels, np.uint8)
    for layer in net.layers:
        constant = np.broadcast_to(outside[None, :, None, None], (1, len(outside), 3, 3))
        x, outside = _scipy_layer(layer, x, outside), _scipy_layer(layer, constant, outside)[0, :, 1, 1]
    return x


@pytest.mark.parametrize("channels,k", [([1, 1], 7), ([1, 1, 1], 5), ([2, 3, 1], 3), ([1, 2, 2], 5),
                                        ([1, 1, 1, 1], 3), ([1, 3, 2, 1], 3)])
def test_engine_is_bit_exact_with_scipy_and_the_torch_net(tmp_path, channels, k):
    rng = np.random.default_rng(len(channels) * 10 + k)
    net = _random_net(rng, channels, k)
    x = (rng.random((5, channels[0], 19, 23)) < rng.uniform(0.2, 0.8)).astype(np.uint8)
    want = _scipy_net(net, x)
    torch_out = net(torch.from_numpy(x.astype(np.float32))).numpy().astype(np.uint8)
    assert (torch_out == want).all()
    path = export_morphology(net, tmp_path / "m.onebit", 19, 23)
    for threads in (1, 2):
        assert (MorphologyEngine(path, num_threads=threads)(x) == want).all()


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), k=st.sampled_from([1, 3, 5, 7]), h=st.integers(1, 12), w=st.integers(1, 12))
def test_engine_single_operation_property(tmp_path_factory, seed, k, h, w):
    rng = np.random.default_rng(seed)
    net = _random_net(rng, [1, 1], k)
    x = (rng.random((3, 1, h, w)) < rng.random()).astype(np.uint8)
    path = export_morphology(net, tmp_path_factory.mktemp("p") / "m.onebit", h, w)
    assert (MorphologyEngine(path, num_threads=1)(x) == _scipy_net(net, x)).all()


@pytest.mark.parametrize("name", ["disk", "hstick", "dcross"])
def test_paper_selems_engine_equals_scipy_targets(tmp_path, name):
    S = structuring_element(name, 7)
    x = diskorect(6, 50, seed=3)
    ops = {"dilation": [["dilation"]], "erosion": [["erosion"]]}
    for op, table in ops.items():
        net = MorphologicalNet([MorphologicalLayer(S[None, None], table, np.ones((1, 1), bool), ["union"])])
        path = export_morphology(net, tmp_path / f"{op}.onebit", 50, 50)
        assert (MorphologyEngine(path)(x)[:, 0] == morphological_target(x, op, S)).all()
    layers = [MorphologicalLayer(S[None, None], [["erosion"]], np.ones((1, 1), bool), ["union"]),
              MorphologicalLayer(S[None, None], [["dilation"]], np.ones((1, 1), bool), ["union"])]
    path = export_morphology(MorphologicalNet(layers), tmp_path / "open.onebit", 50, 50)
    assert (MorphologyEngine(path)(x)[:, 0] == morphological_target(x, "opening", S)).all()
    graph, _ = morphology_graph(MorphologicalNet(layers), 50, 50)  # existing nodes only
    assert [n["op"] for n in graph["nodes"]] == ["to_nhwc", "concat", "sign", "conv2d", "conv2d"]
    assert [n["pad_value"] for n in graph["nodes"][3:]] == [-1, -1]


def test_closing_learned_as_complemented_dilations_equals_scipy_on_the_whole_image(tmp_path):
    # ¬δ_S(¬δ_S(x)) = ε_S(δ_S(x)): the second layer reads a complement, padded with 1 (its value far
    # from the image); foreground along the left edge makes the border matter
    S = structuring_element("dcross", 7)
    one = np.ones((1, 1), bool)
    layers = [MorphologicalLayer(S[None, None], [["dilation"]], one, ["union"], complements=one) for _ in range(2)]
    net = MorphologicalNet(layers)
    assert [b.tolist() for b in net.outside()] == [[False], [True]]
    rng = np.random.default_rng(5)
    x = (rng.random((20, 24, 24)) < 0.3).astype(np.uint8)
    x[:, :, :3] = 1  # foreground on the left edge
    want = morphological_target(x, "closing", S)
    assert (net(torch.from_numpy(x[:, None].astype(np.float32)))[:, 0].numpy() == want).all()
    path = export_morphology(net, tmp_path / "close.onebit", 24, 24)
    assert (MorphologyEngine(path)(x)[:, 0] == want).all()
    # padding the complement with background instead (the rule before 2026-12-07) differs on the border
    naive = layers[1](layers[0](torch.from_numpy(x[:, None].astype(np.float32))))[:, 0].numpy()
    assert (naive != want).any() and (naive[:, 3:-3, 3:-3] == want[:, 3:-3, 3:-3]).all()


def test_outside_values_are_the_layer_on_constant_images():
    rng = np.random.default_rng(9)
    for _ in range(20):
        net = _random_net(rng, [2, 3, 2], 3)
        for layer, b in zip(net.layers, net.outside()):
            const = torch.from_numpy(np.broadcast_to(b[None, :, None, None], (1, len(b), 5, 5)).astype(np.float32))
            got = layer(const.contiguous(), b)[0, :, 2, 2].numpy().astype(bool)
            assert (got == layer.outside(b)).all()
    with pytest.raises(ConfigError, match="one 0/1 value per input channel"):
        net.layers[0].outside([1, 0, 1])
    with pytest.raises(ConfigError, match="one 0/1 value per input channel"):
        net.layers[0](torch.zeros(1, 2, 4, 4), np.array([2, 0]))


def test_selems_and_data():
    assert structuring_element("disk").sum() == 29 and structuring_element("hstick").sum() == 7
    assert structuring_element("dcross").sum() == 13
    x = diskorect(4, 32, seed=0)
    assert x.shape == (4, 32, 32) and set(np.unique(x)) <= {0, 1} and x[:, :4].max() == 0
    assert (diskorect(4, 32, seed=0) == x).all()


def test_bad_input_gets_one_clear_line(tmp_path):
    net = _random_net(np.random.default_rng(0), [1, 1], 3)
    path = export_morphology(net, tmp_path / "m.onebit", 8, 8)
    engine = MorphologyEngine(path)
    grey = np.full((1, 1, 8, 8), 0.5, np.float32)
    for call in (lambda: engine(grey), lambda: net(torch.from_numpy(grey)),
                 lambda: morphological_target(grey[:, 0], "dilation", np.ones((3, 3)))):
        with pytest.raises(ConfigError, match="binary image") as info:
            call()
        assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match=r"\(N, 1, 8, 8\), got shape \(1, 9, 8\)"):
        engine(np.zeros((1, 9, 8), np.uint8))
    with pytest.raises(ConfigError, match="valid choices: .*dilation"):
        morphological_target(np.zeros((1, 5, 5)), "dilate", np.ones((3, 3)))
    with pytest.raises(ConfigError, match="odd"):
        BiSE(4)
    with pytest.raises(ConfigError, match="valid choices: dcross, disk, hstick"):
        structuring_element("square")
    with pytest.raises(ConfigError, match="binary images"):
        train_bimonn(np.full((2, 9, 9), 2), np.zeros((2, 9, 9)), "dilation", 3, steps=1)
    with pytest.raises(ConfigError, match="check_every must be a positive integer"):
        train_bimonn(np.zeros((2, 9, 9)), np.zeros((2, 9, 9)), "dilation", 3, steps=1, check_every=0)


def test_training_recovers_a_3x3_dilation_and_binarizes_exactly(tmp_path):
    """A small end-to-end check: a 3×3 cross dilation learned, activated, exported."""
    S = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], bool)
    x = diskorect(64, 24, seed=5, max_shape=8, max_hole=4, border=2)
    y = morphological_target(x, "dilation", S)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: the same float sums on any machine
    try:
        result = train_bimonn(x, y, "dilation", 3, steps=600, batch_size=16, seed=0, stop_when_exact=True)
    finally:
        torch.set_num_threads(threads)
    model: BiMoNN = result.model
    # the early stop fired: every BiSE/LUI activated (exact before projection), binarized net exact on the batch
    assert result.stopped_at is not None and result.steps == result.stopped_at
    assert all(a.all() for a in model.is_activated())
    net = model.binarized()
    layer = net.layers[0]
    assert layer.operations == [["dilation"]] and (layer.selems[0, 0] == S).all()
    path = export_morphology(net, tmp_path / "d.onebit", 24, 24)
    assert (MorphologyEngine(path)(x)[:, 0] == y).all()


def test_quick_experiment_runs_end_to_end(tmp_path):
    """`onebit experiment run aouad2022_bimonn --quick`: train, binarize, score, export, report."""
    from onebit.experiments import run_experiment

    results = run_experiment("aouad2022_bimonn", tmp_path / "out", quick=True)
    claims = {c["claim"]: c for c in results["claims"]}
    engine = next(c for k, c in claims.items() if k.startswith("the exported .onebit net"))
    assert engine["measured"] is True  # the packed engine equals the PyTorch binarized net on every pixel
    assert all(c["holds"] in (None, True) for c in results["claims"])  # a quick run decides nothing else
    rows = results["tables"]["every run"]["rows"]
    assert [r[:2] for r in rows] == [["dilation", "disk"]]
    assert (tmp_path / "out" / "aouad2022_bimonn.png").read_bytes()[:4] == b"\x89PNG"


def test_recovery_reads_complements_through_de_morgan():
    from onebit.experiments.aouad2022_bimonn import _recovered

    S, one = structuring_element("disk", 7), np.ones((1, 1), bool)

    def net(*layers: tuple[str, bool]) -> MorphologicalNet:
        return MorphologicalNet([MorphologicalLayer(S[None, None], [[op]], one, ["union"], complements=np.array([[c]]))
                                 for op, c in layers])

    x = diskorect(4, 32, seed=2)
    dual = net(("dilation", True), ("dilation", True))  # ¬δ(¬δ(x)) = ε(δ(x)): a closing
    assert (dual(torch.from_numpy(x[:, None].astype(np.float32)))[:, 0].numpy() == morphological_target(x, "closing", S)).all()
    assert _recovered(dual, "closing", S) and _recovered(net(("dilation", False), ("erosion", False)), "closing", S)
    assert not _recovered(net(("dilation", True), ("dilation", False)), "closing", S)
    assert not _recovered(net(("erosion", False), ("dilation", False)), "closing", S)


def test_reference_dice_is_per_column_and_weight_sharpness_round_trips():
    """The reference's MaskedDiceLoss sums over axis 1 of (N, H, W): one Dice per image column;
    BiSE weights are softplus(P_w·θ) with a learned P_w, and set_normalized honours it."""
    from onebit.morphology.training import _loss

    pred = torch.tensor([[[[0.9, 0.2], [0.8, 0.0]]], [[[0.1, 0.5], [0.3, 0.7]]]])  # (2, 1, 2, 2)
    target = torch.tensor([[[[1.0, 0.0], [1.0, 0.0]]], [[[0.0, 1.0], [0.0, 1.0]]]])
    columns = []
    for n in range(2):
        for j in range(2):
            p, t = pred[n, 0, :, j], target[n, 0, :, j]
            columns.append(1 - 2 * (p * t).sum() / ((t ** 2).sum() + (p ** 2).sum() + 1e-6))
    assert torch.allclose(_loss("dice", pred, target), torch.stack(columns).mean())
    per_image = torch.stack([1 - 2 * (pred[n] * target[n]).sum() / ((target[n] ** 2).sum() + (pred[n] ** 2).sum() + 1e-6)
                             for n in range(2)]).mean()
    assert torch.allclose(_loss("dice_image", pred, target), per_image)

    bise = BiSE(3)
    with torch.no_grad():
        bise.weight_P.fill_(2.5)
    w = np.linspace(0.05, 1.2, 9).reshape(1, 1, 3, 3)
    bise.set_normalized(w, np.array([-1.3]))
    assert np.allclose(bise.weight.detach().numpy(), w, atol=1e-5) and np.isclose(float(bise.bias.detach()), -1.3)
    assert {n for n, _ in bise.named_parameters()} == {"weight_raw", "weight_P", "bias_raw", "activation_P"}
