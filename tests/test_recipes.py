"""Training recipes: two-stage training, distillation from a float teacher, the recipe table."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import onebit.recipes as recipes
from onebit.data import load_dataset
from onebit.errors import ConfigError
from onebit.models import create_model
from onebit.recipes import Recipe, recipe_for, train_distilled, train_two_stage, train_with_recipe
from onebit.train import distillation_loss, fit, set_seed

QUIET = {"progress": False, "verbose": False}


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def _record_fit_calls(monkeypatch) -> list[dict]:
    """Wrap recipes.fit: remember each call's model, its weights on entry, and its teacher."""
    calls: list[dict] = []

    def recording_fit(model, data, **kwargs):
        calls.append({"model": model, "start": {k: t.clone() for k, t in model.state_dict().items()},
                      "teacher": kwargs.get("teacher")})
        return fit(model, data, **kwargs)

    monkeypatch.setattr(recipes, "fit", recording_fit)
    return calls


def test_single_recipe_is_one_fit_from_seeded_weights(digits, monkeypatch):
    calls = _record_fit_calls(monkeypatch)
    threads = torch.get_num_threads()
    out = train_with_recipe("tfc", digits, Recipe(epochs=1, threads=1), seed=3, **QUIET)
    assert len(calls) == 1 and calls[0]["model"] is out.model and out.stages == {} and out.teacher is None
    set_seed(3)
    fresh = create_model("tfc", num_classes=10, in_shape=digits.in_shape)
    assert all(torch.equal(calls[0]["start"][k], t) for k, t in fresh.state_dict().items())  # the seed fixes the start
    assert torch.get_num_threads() == threads  # the recipe's thread count is restored afterwards


def test_two_stage_starts_stage_two_from_stage_one(digits, monkeypatch):
    calls = _record_fit_calls(monkeypatch)
    out = train_two_stage("tfc", digits, epochs=2, seed=1, **QUIET)
    assert len(calls) == 2 and set(out.stages) == {"stage1"}
    stage1, stage2 = calls[0]["model"], calls[1]["model"]
    # stage 1: binary weights, float activations; stage 2: both binary
    assert all(m.input_quantizer is None for m in stage1.modules() if hasattr(m, "input_quantizer"))
    quantized = [m for m in stage2.modules() if hasattr(m, "input_quantizer")]
    assert stage2 is out.model and quantized[0].input_quantizer is None  # the first layer sees the real input
    assert all(m.input_quantizer is not None for m in quantized[1:])
    # stage 2 starts from stage 1's final (best-epoch) weights, BatchNorm statistics included
    for key, tensor in stage1.state_dict().items():
        assert torch.equal(calls[1]["start"][key], tensor), key
    assert out.stages["stage1"].history[-1].epoch == 1 and out.result.history[-1].epoch == 1


def test_two_stage_needs_two_epochs(digits):
    with pytest.raises(ConfigError, match="at least 2 epochs"):
        train_two_stage("tfc", digits, epochs=1, **QUIET)
    with pytest.raises(ConfigError, match="at least 2 epochs"):
        Recipe(epochs=1, kind="two-stage")


def test_distillation_loss_is_kl_teacher_to_student_mixed_with_ce():
    gen = torch.Generator().manual_seed(0)
    s = torch.randn(5, 4, generator=gen, requires_grad=True)
    t = torch.randn(5, 4, generator=gen, requires_grad=True)
    y = torch.tensor([0, 3, 1, 2, 3])
    pt, ps = F.softmax(t, 1), F.softmax(s, 1)
    kl = (pt * (pt.log() - ps.log())).sum(1).mean()
    assert torch.allclose(distillation_loss(s, t), kl, atol=1e-6)
    mixed = 0.7 * kl + 0.3 * F.cross_entropy(s, y)
    assert torch.allclose(distillation_loss(s, t, y, ce_weight=0.3), mixed, atol=1e-6)
    # d KL / d s = (softmax(s) − softmax(t)) / B, and nothing flows into the teacher's logits
    distillation_loss(s, t).backward()
    assert torch.allclose(s.grad, (ps - pt).detach() / 5, atol=1e-6)
    assert t.grad is None
    with pytest.raises(ConfigError, match="ce_weight"):
        distillation_loss(s, t, y, ce_weight=1.5)


def test_distill_keeps_the_teacher_frozen_and_in_eval_mode(digits, monkeypatch):
    calls = _record_fit_calls(monkeypatch)
    out = train_distilled("tfc", digits, epochs=1, seed=2, ce_weight=0.5, **QUIET)
    teacher = out.teacher
    assert len(calls) == 2 and calls[0]["model"] is teacher and calls[1]["teacher"] is teacher
    # the teacher is the float twin of the student's architecture
    assert all(getattr(m, "weight_quantizer", "x") is None for m in teacher.modules() if hasattr(m, "weight_quantizer"))
    # while the student trains, every teacher forward runs in eval mode without grad; its weights stay put
    modes = []
    teacher.register_forward_pre_hook(lambda m, _: modes.append((m.training, torch.is_grad_enabled())))
    before = {k: t.clone() for k, t in teacher.state_dict().items()}
    teacher.zero_grad(set_to_none=True)  # its own training left gradients behind
    fit(create_model("tfc", num_classes=10, in_shape=digits.in_shape), digits, epochs=1, teacher=teacher, **QUIET)
    assert modes and all(mode == (False, False) for mode in modes)
    assert all(p.grad is None for p in teacher.parameters())
    assert all(torch.equal(before[k], t) for k, t in teacher.state_dict().items())


def test_distill_from_a_checkpoint_and_bad_teachers(digits, tmp_path):
    from onebit.checkpoint import save_checkpoint

    teacher = create_model("tfc", num_classes=10, in_shape=digits.in_shape, input_quantizer=None, weight_quantizer=None)
    path = save_checkpoint(tmp_path / "teacher.safetensors", teacher)
    out = train_distilled("tfc", digits, epochs=1, teacher=path, **QUIET)
    assert out.stages == {} and out.result.test_accuracy is not None
    wide = create_model("tfc", num_classes=12, in_shape=digits.in_shape)
    with pytest.raises(ConfigError, match="teacher outputs 12 logits"):
        fit(create_model("tfc", num_classes=10, in_shape=digits.in_shape), digits, epochs=1, teacher=wide, **QUIET)
    with pytest.raises(ConfigError, match="needs a teacher"):
        fit(teacher, digits, epochs=1, ce_weight=0.5, **QUIET)
    with pytest.raises(ConfigError, match="only used by the distill recipe"):
        train_with_recipe("tfc", digits, Recipe(epochs=1), teacher=teacher, **QUIET)
    mnist1d_teacher = save_checkpoint(tmp_path / "t1d.safetensors",
                                      create_model("tfc", num_classes=10, in_shape=(1, 40)))
    with pytest.raises(ConfigError, match="inputs of shape"):
        train_distilled("tfc", digits, epochs=1, teacher=mnist1d_teacher, **QUIET)


def test_recipe_table_and_kinds():
    assert recipe_for("binarynet_mlp", "digits").model_args == {"hidden": 1024}
    assert recipe_for("tfc", "digits").epochs == 30 and recipe_for("tfc", "mnist1d").epochs == 40
    assert recipe_for("lfc", "mnist").kind == "single"
    with pytest.raises(ConfigError, match="unknown recipe 'three-stage'"):
        Recipe(kind="three-stage")


def test_two_stage_accuracy_on_fixed_seed(digits):
    """Two-stage TFC on digits, 6 epochs (3 + 3), seed 0: both stages well above chance (10 %)."""
    out = train_with_recipe("tfc", digits, Recipe(epochs=6, lr=3e-3, kind="two-stage"), seed=0, **QUIET)
    assert out.stages["stage1"].test_accuracy >= 0.75, out.stages["stage1"].test_accuracy
    assert out.result.test_accuracy >= 0.75, out.result.test_accuracy
