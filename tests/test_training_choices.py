"""The training choices of the recipes: augmentation, losses, schedules, attention transfer, the ablation."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from onebit.augment import augmentation_for, default_augmentation, shift_images, warp_signals
from onebit.data import load_dataset
from onebit.distill import AttentionTransfer, attention_map
from onebit.errors import ConfigError
from onebit.models import create_model
from onebit.train import _lr_lambda, fit, set_seed, squared_hinge_loss

QUIET = {"progress": False, "verbose": False}


def _shift_reference(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """out[y, x] = image[y − dy, x − dx] where that lies inside, else 0 (a scalar loop: the specification)."""
    c, h, w = image.shape
    out = np.zeros_like(image)
    for y in range(h):
        for x in range(w):
            if 0 <= y - dy < h and 0 <= x - dx < w:
                out[:, y, x] = image[:, y - dy, x - dx]
    return out


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(1, 3), st.integers(1, 4), st.integers(4, 9))
def test_shift_images_moves_each_image_by_whole_pixels(seed, max_shift, n, size):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 2, size, size, generator=gen)
    g1, g2 = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
    out = shift_images(x, g1, max_shift)
    offsets = torch.randint(0, 2 * max_shift + 1, (n, 2), generator=g2) - max_shift  # what it drew
    for i in range(n):
        # a crop at offset o of the padded image moves the content by −o
        want = _shift_reference(x[i].numpy(), -int(offsets[i, 0]), -int(offsets[i, 1]))
        assert np.array_equal(out[i].numpy(), want)


def test_warp_signals_is_the_identity_without_warp_shift_or_noise_and_shifts_exactly():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(5, 1, 40, generator=gen)
    assert torch.allclose(warp_signals(x, gen, max_shift=0, scale=0.0, noise=0.0), x, atol=1e-6)
    out = warp_signals(x, torch.Generator().manual_seed(1), max_shift=2, scale=0.0, noise=0.0)
    g = torch.Generator().manual_seed(1)
    torch.rand(5, 1, generator=g)  # the scale draw
    shifts = torch.randint(-2, 3, (5, 1), generator=g)
    for i in range(5):
        s = int(shifts[i])
        src = np.clip(np.arange(40) - s, 0, 39)  # edges held
        assert np.allclose(out[i, 0].numpy(), x[i, 0].numpy()[src], atol=1e-6)


def test_augmentations_follow_the_data_shape_and_refuse_the_wrong_one():
    assert default_augmentation((1, 8, 8)) == "shift" and default_augmentation((1, 40)) == "signal"
    assert default_augmentation((64,)) is None
    with pytest.raises(ConfigError, match="shift augmentation is for images"):
        augmentation_for("shift", (1, 40))
    with pytest.raises(ConfigError, match="signal augmentation is for sequences"):
        augmentation_for("signal", (1, 8, 8))
    with pytest.raises(ConfigError, match="unknown augmentation 'rotate'"):
        augmentation_for("rotate", (1, 8, 8))


def test_squared_hinge_is_binarynets_loss():
    logits = torch.tensor([[0.5, -2.0, 1.5], [-0.2, 0.3, 0.0]])
    y = torch.tensor([2, 0])
    t = torch.tensor([[-1.0, -1.0, 1.0], [1.0, -1.0, -1.0]])
    want = np.mean(np.maximum(0.0, 1.0 - (t * logits).numpy()) ** 2)
    assert math.isclose(float(squared_hinge_loss(logits, y)), want, rel_tol=1e-6)


def test_schedules_with_warm_up():
    f = _lr_lambda("linear", 110, warmup_steps=10)
    assert [round(f(s), 6) for s in (0, 4, 9)] == [round(1 / 11, 6), round(5 / 11, 6), round(10 / 11, 6)]
    assert f(10) == 1.0 and math.isclose(f(60), 0.5) and f(110) == 0.0
    c = _lr_lambda("cosine", 100)
    assert c(0) == 1.0 and math.isclose(c(50), 0.5) and math.isclose(c(100), 0.0, abs_tol=1e-12)
    s = _lr_lambda("step", 100)
    assert (s(49), s(50), s(75)) == (1.0, 0.1, 0.1 ** 2)


def test_attention_maps_and_the_transfer_hooks():
    a = torch.randn(3, 4, 5, 5)
    q = attention_map(a)
    assert q.shape == (3, 25) and torch.allclose(q.norm(dim=1), torch.ones(3))
    assert torch.allclose(q[0], (a[0] ** 2).sum(0).flatten() / (a[0] ** 2).sum(0).norm())
    assert attention_map(torch.randn(3, 7)).shape == (3, 7)  # dense: one value per unit
    set_seed(0)
    student = create_model("tfc", num_classes=10, in_shape=(1, 8, 8))
    twin = create_model("tfc", num_classes=10, in_shape=(1, 8, 8), input_quantizer=None, weight_quantizer=None)
    student.train()
    transfer = AttentionTransfer(student, twin)
    assert transfer.points == ["2", "6", "10", "14"]
    x = torch.randn(8, 1, 8, 8)
    twin.load_state_dict(student.state_dict())
    student(x)
    with torch.no_grad():
        twin.eval()(x)
    assert float(transfer.loss().detach()) > 0  # the binary student differs from its float twin
    transfer.remove()
    assert not any(m._forward_hooks for m in student.modules()) and not any(m._forward_hooks for m in twin.modules())
    with pytest.raises(ConfigError, match="teacher has no"):
        AttentionTransfer(student, torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)))


def test_fit_with_attention_transfer_leaves_no_hooks_and_repeats_exactly():
    data = load_dataset("digits")
    twin = create_model("tfc", num_classes=10, in_shape=(1, 8, 8), input_quantizer=None, weight_quantizer=None)
    runs = []
    for _ in range(2):
        set_seed(1)
        student = create_model("tfc", num_classes=10, in_shape=(1, 8, 8))
        r = fit(student, data, epochs=2, teacher=twin, attention_weight=1.0, augment="shift", seed=1, **QUIET)
        runs.append((r.history[-1].train_loss, {k: v.clone() for k, v in student.state_dict().items()}))
        assert not any(m._forward_hooks for m in student.modules())
    assert runs[0][0] == runs[1][0] and all(torch.equal(runs[0][1][k], runs[1][1][k]) for k in runs[0][1])
    with pytest.raises(ConfigError, match="needs a teacher"):
        fit(student, data, epochs=1, attention_weight=1.0, **QUIET)
    with pytest.raises(ConfigError, match="label_smoothing belongs to the cross_entropy loss"):
        fit(student, data, epochs=1, loss="squared_hinge", label_smoothing=0.1, **QUIET)
    with pytest.raises(ConfigError, match="warmup_epochs"):
        fit(student, data, epochs=2, warmup_epochs=2, **QUIET)


def test_label_smoothing_reaches_the_loss(monkeypatch):
    seen = []
    original = F.cross_entropy

    def spy(*args, **kwargs):
        seen.append(kwargs.get("label_smoothing", 0.0))
        return original(*args, **kwargs)

    monkeypatch.setattr("onebit.train.F.cross_entropy", spy)
    model = create_model("tfc", num_classes=10, in_shape=(1, 8, 8))
    fit(model, load_dataset("digits"), epochs=1, label_smoothing=0.1, **QUIET)
    assert 0.1 in seen


def test_training_ablation_quick_run(tmp_path):
    """`onebit experiment run bnn_training_ablation --quick`: every step on both tasks, small."""
    from onebit.experiments import run_experiment
    from onebit.experiments.shared import shared_data
    from onebit.experiments.training_ablation import STEPS

    results = run_experiment("bnn_training_ablation", tmp_path / "ablation", quick=True)
    rows = results["tables"]["ablation"]["rows"]
    tasks = ["MNIST-1D"] + (["MNIST split"] if shared_data("mnist-t10k") else [])
    assert [r[1] for r in rows] == ([label for label, _ in STEPS] + ["float twin"]) * len(tasks)
    assert all(0.0 <= r[2] <= 100.0 and r[6] > 0 for r in rows)
    assert all(c["holds"] is None for c in results["claims"])  # a quick run decides nothing
    assert (tmp_path / "ablation" / "ablation.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((tmp_path / "ablation" / "results.json").read_text())["experiment"] == "bnn_training_ablation"
