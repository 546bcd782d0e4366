"""Training recipes: two-step training, distillation from a float teacher, the named recipes."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

import onebit.recipes as recipes
from onebit.data import load_dataset
from onebit.errors import ConfigError
from onebit.models import create_model
from onebit.recipes import Recipe, inapplicable_choices, named_recipe, recipe_for, train_with_recipe
from onebit.train import distillation_loss, fit, set_seed

QUIET = {"progress": False, "verbose": False}


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def _record_fit_calls(monkeypatch) -> list[dict]:
    """Wrap recipes.fit: remember each call's model, its weights on entry, and its teacher."""
    calls: list[dict] = []

    def recording_fit(model, data, **kwargs):
        kwargs.pop("out_dir", None)
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


def test_two_step_weights_first_starts_step_two_from_step_one(digits, monkeypatch):
    calls = _record_fit_calls(monkeypatch)
    out = train_with_recipe("tfc", digits, Recipe(epochs=2, two_step="weights"), seed=1, **QUIET)
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


def test_two_step_activations_first_trains_real_weights_then_binary_ones(digits, monkeypatch):
    calls = _record_fit_calls(monkeypatch)
    out = train_with_recipe("tfc", digits, Recipe(epochs=3, two_step="activations"), seed=1, **QUIET)
    step1, step2 = calls[0]["model"], calls[1]["model"]
    layers1 = [m for m in step1.modules() if hasattr(m, "weight_quantizer")]
    assert all(m.weight_quantizer is None for m in layers1)  # step 1: real weights ...
    assert all(m.input_quantizer is not None for m in layers1[1:])  # ... and binary activations
    assert all(m.weight_quantizer is not None for m in step2.modules() if hasattr(m, "weight_quantizer"))
    for key, tensor in step1.state_dict().items():  # the hand-over: step 1's best weights and BN statistics
        assert torch.equal(calls[1]["start"][key], tensor), key
    assert len(out.stages["stage1"].history) == 1 and len(out.result.history) == 2  # epochs // 2, then the rest


def test_two_step_needs_two_epochs():
    with pytest.raises(ConfigError, match="at least 2 epochs"):
        Recipe(epochs=1, two_step="weights")
    with pytest.raises(ConfigError, match="unknown two_step setting 'both'"):
        Recipe(epochs=4, two_step="both")


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
    out = train_with_recipe("tfc", digits, Recipe(epochs=1, distill=True, ce_weight=0.5), seed=2, **QUIET)
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
    out = train_with_recipe("tfc", digits, Recipe(epochs=1, distill=True), teacher=path, **QUIET)
    assert out.stages == {} and out.result.test_accuracy is not None
    wide = create_model("tfc", num_classes=12, in_shape=digits.in_shape)
    with pytest.raises(ConfigError, match="teacher outputs 12 logits"):
        fit(create_model("tfc", num_classes=10, in_shape=digits.in_shape), digits, epochs=1, teacher=wide, **QUIET)
    with pytest.raises(ConfigError, match="needs a teacher"):
        fit(teacher, digits, epochs=1, ce_weight=0.5, **QUIET)
    with pytest.raises(ConfigError, match="only used by a distilled recipe"):
        train_with_recipe("tfc", digits, Recipe(epochs=1), teacher=teacher, **QUIET)
    mnist1d_teacher = save_checkpoint(tmp_path / "t1d.safetensors",
                                      create_model("tfc", num_classes=10, in_shape=(1, 40)))
    with pytest.raises(ConfigError, match="inputs of shape"):
        train_with_recipe("tfc", digits, Recipe(epochs=1, distill=True), teacher=mnist1d_teacher, **QUIET)


def test_recipe_table_and_named_recipes():
    assert recipe_for("binarynet_mlp", "mnist1d").model_args == {"hidden": 1024}
    assert recipe_for("lfc", "mnist").kind == "single" and named_recipe("default", "lfc", "mnist1d").name == "default"
    bireal = named_recipe("bireal", "binary_cnn1d", "mnist1d")
    assert bireal.model_args["shortcut"] is True and bireal.model_args["input_quantizer"] == "approx_sign"
    assert bireal.augment and bireal.epochs == recipe_for("binary_cnn1d", "mnist1d").epochs
    react = named_recipe("reactnet", "tfc", "digits")
    assert react.two_step == "activations" and react.distill and react.kind == "two-stage+distill"
    assert react.model_args["input_quantizer"] == "rsign" and react.model_args["activation"] == "rprelu"
    assert named_recipe("binarynet", "tfc", "digits").loss == "squared_hinge"
    # a named recipe keeps the pair's size arguments and drops what the model does not take
    assert named_recipe("bireal", "binarynet_mlp", "mnist1d").model_args["hidden"] == 1024
    assert inapplicable_choices("bireal", "birealnet18") == ["activation", "shortcut"]
    assert "shortcut" not in named_recipe("bireal", "birealnet18", "digits").model_args
    assert named_recipe("two-stage", "tfc", "digits").two_step == "weights"
    # RSign needs a channel count: models that cannot build it per layer leave it out, and say so
    assert inapplicable_choices("reactnet", "birealnet18") == ["activation", "input_quantizer", "shortcut"]
    assert named_recipe("reactnet", "binarynet_cnn", "digits").model_args["input_quantizer"] == "rsign"
    with pytest.raises(ConfigError, match="one learned threshold per input channel"):
        create_model("birealnet18", input_quantizer="rsign")
    with pytest.raises(ConfigError, match="unknown recipe 'three-stage'"):
        named_recipe("three-stage", "tfc", "digits")


@pytest.mark.parametrize(("settings", "message"), [
    ({"ce_weight": 0.5}, "belong to distillation"),
    ({"distill": True, "loss": "squared_hinge"}, "distributional loss"),
    ({"warmup_epochs": 20}, "warmup_epochs"),
    ({"schedule": "exponential"}, "unknown recipe schedule 'exponential'"),
    ({"loss": "hinge"}, "unknown recipe loss 'hinge'"),
    ({"label_smoothing": 1.0}, "label_smoothing must be a number in"),
    ({"augment": "yes"}, "true or false"),
    ({"bn_momentum": 0.0}, "bn_momentum"),
])
def test_bad_recipes_are_named(settings, message):
    with pytest.raises(ConfigError, match=message):
        Recipe(**settings)
    with pytest.raises(ConfigError, match="unknown recipe setting 'epoch'"):
        Recipe.from_dict({"epoch": 3})


def test_bn_momentum_reaches_every_batchnorm(digits, monkeypatch):
    calls = _record_fit_calls(monkeypatch)
    train_with_recipe("tfc", digits, Recipe(epochs=1, bn_momentum=0.01), **QUIET)
    norms = [m for m in calls[0]["model"].modules() if isinstance(m, torch.nn.BatchNorm1d)]
    assert norms and all(m.momentum == 0.01 for m in norms)


def test_recipe_settings_are_not_fit_arguments(digits):
    with pytest.raises(ConfigError, match="lr are the recipe's settings"):
        train_with_recipe("tfc", digits, Recipe(epochs=1), lr=0.1, **QUIET)


def test_two_stage_accuracy_on_fixed_seed(digits):
    """Two-step TFC on digits, 6 epochs (3 + 3), seed 0: both steps well above chance (10 %)."""
    out = train_with_recipe("tfc", digits, Recipe(epochs=6, lr=3e-3, two_step="weights"), seed=0, **QUIET)
    assert out.stages["stage1"].test_accuracy >= 0.75, out.stages["stage1"].test_accuracy
    assert out.result.test_accuracy >= 0.75, out.result.test_accuracy


def test_reactnet_recipe_runs_end_to_end_and_exports(digits, tmp_path):
    """The full ReActNet recipe (RSign, RPReLU, shortcuts, teacher, two steps) on TFC: runtime == PyTorch."""
    from onebit.export import export_checked

    recipe = named_recipe("reactnet", "tfc", "digits")
    out = train_with_recipe("tfc", digits, replace(recipe, epochs=4), seed=0, out_dir=tmp_path, **QUIET)
    assert set(out.stages) == {"teacher", "stage1"} and out.result.test_accuracy > 0.25  # chance: 0.1
    engine = export_checked(out.model, tmp_path / "m.onebit", digits.x_test, digits.y_test, verbose=False)
    assert engine.accuracy == pytest.approx(out.result.test_accuracy)
    assert (tmp_path / "teacher" / "metrics.json").is_file() and (tmp_path / "stage1" / "metrics.json").is_file()
