"""onebit.optim: Bop's flip rule, schedules, routing, clipping, recipes, and a Bop training run."""

from __future__ import annotations

import copy
import io
import math
import pickle

import pytest
import torch
from torch import nn

from onebit.errors import CheckpointError, ConfigError
from onebit.nn import DoReFa, QuantConv2d, QuantLinear, RPReLU, RSign, SteSign
from onebit.optim import (
    OPTIMIZERS,
    Bop,
    CaseOptimizer,
    binary_parameters,
    clip_latent_weights,
    make_optimizer,
    other_parameters,
)


def _param(values: list[float]) -> nn.Parameter:
    return nn.Parameter(torch.tensor(values, dtype=torch.float32))


def _bop_step(opt: Bop, p: nn.Parameter, grad: list[float]) -> None:
    p.grad = torch.tensor(grad, dtype=torch.float32)
    opt.step()


# ----------------------------------------------------------------------- Bop


def test_bop_flip_rule_by_hand() -> None:
    # γ = 1/2 and dyadic gradients: every m below is exact in float32.
    w = _param([1.0, 1.0, -1.0, -1.0, 1.0, 1.0])
    opt = Bop([w], gamma=0.5, threshold=0.5)
    # step 1: m = g/2 = [1, 0.5, -1, 1, -2, 0]
    _bop_step(opt, w, [2.0, 1.0, -2.0, 2.0, -4.0, 0.0])
    assert opt.state[w]["m"].tolist() == [1.0, 0.5, -1.0, 1.0, -2.0, 0.0]
    # w0: |m|=1 > τ, same sign → flips; w1: |m| = τ exactly → no flip;
    # w2: m=-1, w=-1 → flips; w3: m=+1, w=-1 (opposite signs) → stays; w4: opposite → stays
    assert w.tolist() == [-1.0, 1.0, 1.0, -1.0, 1.0, 1.0]
    # step 2: m = m/2 + g/2
    _bop_step(opt, w, [0.0, 0.25, 0.0, 0.0, 0.0, 2.0])
    assert opt.state[w]["m"].tolist() == [0.5, 0.375, -0.5, 0.5, -1.0, 1.0]
    # w0 = -1, m = +0.5: opposite; w1: |m| < τ; w2 = +1, m < 0: opposite; w3: opposite;
    # w4 = +1, m = -1: opposite; w5 = +1, m = 1 > τ: flips
    assert w.tolist() == [-1.0, 1.0, 1.0, -1.0, 1.0, -1.0]
    # step 3: a gradient that agrees with w0 = -1 again
    _bop_step(opt, w, [-3.0, 1.0, 0.0, 0.0, 0.0, -2.0])
    assert opt.state[w]["m"].tolist() == [-1.25, 0.6875, -0.25, 0.25, -0.5, -0.5]
    # w0: m=-1.25, w=-1 → flips to +1; w1: 0.6875 > τ, w=+1 → flips;
    # w5: m = -0.5 = -τ (boundary) → stays -1
    assert w.tolist() == [1.0, -1.0, 1.0, -1.0, 1.0, -1.0]


def test_bop_zero_threshold_zero_momentum_does_not_flip() -> None:
    # |m| > τ is strict: with τ = 0 a zero average never flips.
    w = _param([1.0, -1.0])
    opt = Bop([w], gamma=1.0, threshold=0.0)
    _bop_step(opt, w, [0.0, 0.0])
    assert w.tolist() == [1.0, -1.0]
    _bop_step(opt, w, [1e-30, -1e-30])  # γ = 1: m = g, any agreeing gradient flips
    assert w.tolist() == [-1.0, 1.0]


def test_bop_weights_become_plus_minus_one() -> None:
    torch.manual_seed(0)
    w = nn.Parameter(torch.randn(5, 7))
    w.data[0, 0] = 0.0  # sign(0) = +1
    w.data[0, 1] = -0.0
    no_grad = nn.Parameter(torch.randn(4))
    latent = w.detach().clone()
    opt = Bop([w, no_grad], gamma=1e-3, threshold=1.0)  # τ too high to flip anything
    w.grad = torch.randn(5, 7)
    opt.step()
    expected = torch.where(latent >= 0, 1.0, -1.0)
    assert torch.equal(w.detach(), expected)
    assert w[0, 0].item() == 1.0 and w[0, 1].item() == 1.0
    assert set(no_grad.detach().abs().tolist()) == {1.0}  # held by Bop: binarized too
    assert "m" not in opt.state[no_grad]


def test_bop_flips_from_latent_sign() -> None:
    w = _param([0.3, -0.2, 0.0])
    opt = Bop([w], gamma=1.0, threshold=0.1)
    _bop_step(opt, w, [0.5, -0.5, 0.05])  # first two agree and are strong; third is weak
    assert w.tolist() == [-1.0, 1.0, 1.0]


def test_bop_gamma_schedule_changes_per_step() -> None:
    seen: list[int] = []

    def gamma(step: int) -> float:
        seen.append(step)
        return 0.5 if step == 0 else 0.25

    w = _param([1.0])
    opt = Bop([w], gamma=gamma, threshold=10.0)
    seen.clear()  # the constructor checks the schedule at step 0
    _bop_step(opt, w, [4.0])  # m = 0.5·4 = 2
    _bop_step(opt, w, [4.0])  # m = 0.75·2 + 0.25·4 = 2.5
    _bop_step(opt, w, [0.0])  # m = 0.75·2.5 = 1.875
    assert seen == [0, 1, 2]
    assert opt.state[w]["m"].item() == 1.875
    assert opt.param_groups[0]["step"] == 3


def test_bop_threshold_schedule() -> None:
    w = _param([1.0])
    opt = Bop([w], gamma=1.0, threshold=lambda t: 10.0 if t < 2 else 0.5)
    _bop_step(opt, w, [1.0])
    _bop_step(opt, w, [1.0])
    assert w.item() == 1.0
    _bop_step(opt, w, [1.0])  # step 2: τ = 0.5 < 1
    assert w.item() == -1.0


def test_bop_step_decay_example_from_docstring() -> None:
    steps_per_epoch, n = 3, 2
    gamma = lambda t: 1e-4 * 0.1 ** (t // (n * steps_per_epoch))  # noqa: E731
    assert [gamma(t) for t in (0, 5, 6, 12)] == pytest.approx([1e-4, 1e-4, 1e-5, 1e-6])
    Bop([_param([1.0])], gamma=gamma)  # accepted


def test_bop_param_group_change() -> None:
    w = _param([1.0])
    opt = Bop([w], gamma=0.5, threshold=10.0)
    _bop_step(opt, w, [2.0])
    opt.param_groups[0]["gamma"] = 1.0
    opt.param_groups[0]["threshold"] = 0.5
    _bop_step(opt, w, [3.0])
    assert opt.state[w]["m"].item() == 3.0
    assert w.item() == -1.0
    opt.param_groups[0]["gamma"] = 2.0
    with pytest.raises(ConfigError, match="gamma"):
        _bop_step(opt, w, [1.0])


def test_bop_per_group_hyper_parameters() -> None:
    a, b = _param([1.0]), _param([1.0])
    opt = Bop([{"params": [a], "threshold": 0.1}, {"params": [b]}], gamma=1.0, threshold=5.0)
    a.grad = torch.tensor([1.0])
    b.grad = torch.tensor([1.0])
    opt.step()
    assert (a.item(), b.item()) == (-1.0, 1.0)
    assert opt.param_groups[1]["threshold"] == 5.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"gamma": 0.0}, "gamma"),
        ({"gamma": 1.5}, "gamma"),
        ({"gamma": -1e-4}, "gamma"),
        ({"gamma": float("nan")}, "gamma"),
        ({"gamma": True}, "gamma"),
        ({"gamma": "0.1"}, "gamma"),
        ({"threshold": -1e-8}, "threshold"),
        ({"threshold": float("inf")}, "threshold"),
        ({"gamma": lambda t: 2.0}, "schedule"),
    ],
)
def test_bop_validates_hyper_parameters(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        Bop([_param([1.0])], **kwargs)


def test_bop_schedule_checked_at_every_step() -> None:
    w = _param([1.0])
    opt = Bop([w], gamma=lambda t: 0.5 if t == 0 else 0.0)
    _bop_step(opt, w, [1.0])
    with pytest.raises(ConfigError, match="step 1"):
        _bop_step(opt, w, [1.0])


def test_bop_gamma_one_accepted_and_bad_group() -> None:
    Bop([_param([1.0])], gamma=1.0, threshold=0.0)
    opt = Bop([_param([1.0])])
    with pytest.raises(ConfigError, match="threshold"):
        opt.add_param_group({"params": [_param([1.0])], "threshold": -1.0})
    assert len(opt.param_groups) == 1  # nothing half-added


def test_bop_rejects_sparse_gradients_and_integer_weights() -> None:
    emb = nn.Embedding(4, 3, sparse=True)
    opt = Bop(emb.parameters())
    emb(torch.tensor([0, 2])).sum().backward()
    with pytest.raises(ConfigError, match="sparse"):
        opt.step()
    with pytest.raises(ConfigError, match="floating"):
        Bop([torch.zeros(3, dtype=torch.int32)])


def test_bop_state_dict_round_trip() -> None:
    torch.manual_seed(1)
    grads = [torch.randn(6) for _ in range(8)]

    def run(opt: Bop, w: nn.Parameter, gs: list[torch.Tensor]) -> list[list[float]]:
        out = []
        for g in gs:
            w.grad = g.clone()
            opt.step()
            out.append(w.tolist())
        return out

    w = nn.Parameter(torch.randn(6))
    opt = Bop([w], gamma=0.3, threshold=0.2)
    run(opt, w, grads[:4])
    saved_w = w.detach().clone()
    saved = copy.deepcopy(opt.state_dict())
    reference = run(opt, w, grads[4:])

    w2 = nn.Parameter(saved_w.clone())
    opt2 = Bop([w2], gamma=0.9, threshold=0.0)  # overwritten by the load
    opt2.load_state_dict(saved)
    assert opt2.param_groups[0]["gamma"] == 0.3 and opt2.param_groups[0]["step"] == 4
    assert run(opt2, w2, grads[4:]) == reference


def test_bop_state_dict_with_schedule() -> None:
    w = _param([1.0, -1.0])
    schedule = lambda t: 0.5  # noqa: E731
    opt = Bop([w], gamma=schedule, threshold=0.25)
    _bop_step(opt, w, [0.25, 0.25])
    state = opt.state_dict()
    assert state["param_groups"][0]["gamma"] == "<schedule>"
    pickle.dumps(state)  # no callable inside
    assert opt.param_groups[0]["gamma"] is schedule  # the live group keeps it

    other = lambda t: 0.5  # noqa: E731
    opt2 = Bop([_param([1.0, -1.0])], gamma=other)
    opt2.load_state_dict(state)
    assert opt2.param_groups[0]["gamma"] is other
    assert opt2.param_groups[0]["threshold"] == 0.25
    with pytest.raises(CheckpointError, match="schedule"):
        Bop([_param([1.0, -1.0])], gamma=0.5).load_state_dict(state)


def test_bop_closure_and_lr_key() -> None:
    w = _param([1.0])
    opt = Bop([w], gamma=1.0, threshold=0.0)
    assert opt.param_groups[0]["lr"] == 0.0

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = (w * 3.0).sum()
        loss.backward()
        return loss

    assert opt.step(closure).item() == 3.0
    assert w.item() == -1.0


# --------------------------------------------------------- parameter routing


class _Mixed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = QuantConv2d(
            3, 4, 3, padding=1, bias=False, input_quantizer=RSign(3),
            weight_quantizer="magnitude_aware_sign", pad_value=1.0,
        )
        self.bn = nn.BatchNorm2d(4)
        self.act = RPReLU(4)
        self.fc_bin = QuantLinear(4, 8, input_quantizer="ste_sign", weight_quantizer="ste_sign", scaling="learned")
        self.fc_tern = QuantLinear(8, 8, weight_quantizer="ste_tern")
        self.fc_dorefa1 = QuantLinear(8, 8, bias=False, weight_quantizer=DoReFa(k_bit=1, mode="weights"))
        self.fc_dorefa2 = QuantLinear(8, 8, bias=False, weight_quantizer=DoReFa(k_bit=2, mode="weights"))
        self.fc_heaviside = QuantLinear(8, 8, bias=False, weight_quantizer="ste_heaviside")
        self.fc_float = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.bn(self.conv(x))).mean(dim=(2, 3))
        x = self.fc_dorefa2(self.fc_dorefa1(self.fc_tern(self.fc_bin(x))))
        return self.fc_float(self.fc_heaviside(x))


def test_binary_and_other_parameters() -> None:
    model = _Mixed()
    binary = binary_parameters(model)
    assert [id(p) for p in binary] == [id(model.conv.weight), id(model.fc_bin.weight), id(model.fc_dorefa1.weight)]
    other = other_parameters(model)
    binary_ids = {id(p) for p in binary}
    assert not binary_ids & {id(p) for p in other}
    assert {id(p) for p in other} | binary_ids == {id(p) for p in model.parameters()}
    assert len(other) == len({id(p) for p in other})
    assert [id(p) for p in other] == [id(p) for p in model.parameters() if id(p) not in binary_ids]
    for p in (
        model.conv.input_quantizer.shift, model.bn.weight, model.act.slope, model.fc_bin.scale,
        model.fc_bin.bias, model.fc_tern.weight, model.fc_dorefa2.weight, model.fc_heaviside.weight,
        model.fc_float.weight,
    ):
        assert id(p) in {id(q) for q in other}
    assert binary_parameters(model) == binary  # deterministic


@pytest.mark.parametrize("quantizer", ["ste_sign", "approx_sign", "swish_sign", "magnitude_aware_sign", "xnor_sign"])
def test_binary_parameters_quantizers(quantizer: str) -> None:
    layer = QuantLinear(4, 4, weight_quantizer=quantizer)
    assert binary_parameters(layer) == [layer.weight]
    assert other_parameters(layer) == [layer.bias]


def test_binary_parameters_shared_weight_once() -> None:
    a = QuantLinear(4, 4, bias=False, weight_quantizer="ste_sign")
    b = QuantLinear(4, 4, bias=False, weight_quantizer="ste_sign")
    b.weight = a.weight
    model = nn.Sequential(a, b, nn.Linear(4, 2))
    assert binary_parameters(model) == [a.weight]
    assert len(other_parameters(model)) == 2


# ------------------------------------------------------------ CaseOptimizer


def _small_bnn(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        QuantLinear(6, 8, bias=False, weight_quantizer="ste_sign"),
        nn.BatchNorm1d(8),
        QuantLinear(8, 3, input_quantizer="ste_sign", weight_quantizer="ste_sign"),
    )


def _loss(model: nn.Module, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(16, 6, generator=g)
    y = torch.randint(0, 3, (16,), generator=g)
    return nn.functional.cross_entropy(model(x), y)


def test_case_optimizer_routes() -> None:
    model = _small_bnn()
    binary, other = binary_parameters(model), other_parameters(model)
    bop = Bop(binary, gamma=0.5, threshold=0.0)
    adam = torch.optim.Adam(other, lr=0.1)
    opt = CaseOptimizer(bop, adam)
    assert opt.optimizers == (bop, adam)
    assert all(a is b for a, b in zip(opt.param_groups, bop.param_groups + adam.param_groups))
    before = [p.detach().clone() for p in other]
    for step in range(3):
        opt.zero_grad()
        _loss(model, step).backward()
        opt.step()
    for p in binary:
        assert set(p.detach().abs().flatten().tolist()) == {1.0}
        assert id(p) in {id(q) for q in bop.state}
    for p, b in zip(other, before):
        assert not torch.equal(p.detach(), b)
        assert adam.state[p]["step"].item() == 3
    assert set(opt.state) == set(bop.state) | set(adam.state)
    opt.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_case_optimizer_closure_evaluated_once() -> None:
    model = _small_bnn()
    opt = CaseOptimizer(Bop(binary_parameters(model)), torch.optim.Adam(other_parameters(model)))
    calls = []

    def closure() -> torch.Tensor:
        calls.append(1)
        opt.zero_grad()
        loss = _loss(model)
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert len(calls) == 1 and loss.dim() == 0


def test_case_optimizer_with_cosine_annealing() -> None:
    model = _small_bnn()
    bop = Bop(binary_parameters(model), gamma=1e-3)
    adam = torch.optim.Adam(other_parameters(model), lr=0.1)
    opt = CaseOptimizer(bop, adam)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=4)
    lrs = []
    for step in range(4):
        opt.zero_grad()
        _loss(model, step).backward()
        opt.step()
        sched.step()
        lrs.append(adam.param_groups[0]["lr"])
    assert lrs == pytest.approx([0.1 * (1 + math.cos(math.pi * t / 4)) / 2 for t in (1, 2, 3, 4)], abs=1e-12)
    assert bop.param_groups[0]["lr"] == 0.0  # ignored by Bop, left at 0 by the schedule
    assert bop.param_groups[0]["gamma"] == 1e-3
    assert len(sched.get_last_lr()) == 2


@pytest.mark.parametrize(
    "make_scheduler",
    [
        lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=1, gamma=0.5),
        lambda o: torch.optim.lr_scheduler.LambdaLR(o, lambda e: 0.5**e),
        lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.1, total_steps=10, cycle_momentum=False),
        lambda o: torch.optim.lr_scheduler.SequentialLR(
            o,
            [torch.optim.lr_scheduler.LinearLR(o, 0.5, total_iters=2), torch.optim.lr_scheduler.ExponentialLR(o, 0.9)],
            milestones=[2],
        ),
    ],
)
def test_case_optimizer_with_other_schedulers(make_scheduler) -> None:  # noqa: ANN001
    model = _small_bnn()
    bop = Bop(binary_parameters(model), gamma=1e-3)
    adam = torch.optim.Adam(other_parameters(model), lr=0.1)
    opt = CaseOptimizer(bop, adam)
    sched = make_scheduler(opt)
    start = adam.param_groups[0]["lr"]
    for step in range(3):
        opt.zero_grad()
        _loss(model, step).backward()
        opt.step()
        sched.step()
    assert adam.param_groups[0]["lr"] != start
    assert bop.param_groups[0]["gamma"] == 1e-3
    assert set(bop.param_groups[0]["params"][0].detach().abs().flatten().tolist()) == {1.0}


def test_case_optimizer_state_dict_survives_torch_save_weights_only() -> None:
    model = _small_bnn()
    opt = make_optimizer(model, "bop", lr=1e-2, gamma=lambda t: 1e-3)
    opt.zero_grad()
    _loss(model).backward()
    opt.step()
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)
    opt2 = make_optimizer(model, "bop", lr=1e-2, gamma=lambda t: 1e-3)
    opt2.load_state_dict(loaded)
    assert opt2.optimizers[0].param_groups[0]["step"] == 1
    assert callable(opt2.optimizers[0].param_groups[0]["gamma"])


def test_case_optimizer_state_dict_round_trip() -> None:
    model = _small_bnn(3)
    opt = make_optimizer(model, "bop", lr=1e-2, gamma=0.2, threshold=1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10)
    for step in range(3):
        opt.zero_grad()
        _loss(model, step).backward()
        opt.step()
        sched.step()
    saved_model = copy.deepcopy(model.state_dict())
    saved_opt = copy.deepcopy(opt.state_dict())
    assert saved_opt["types"] == ["Bop", "Adam"]

    def run(m: nn.Module, o: torch.optim.Optimizer) -> list[torch.Tensor]:
        for step in range(3, 6):
            o.zero_grad()
            _loss(m, step).backward()
            o.step()
        return [p.detach().clone() for p in m.parameters()]

    reference = run(model, opt)
    model2 = _small_bnn(4)
    model2.load_state_dict(saved_model)
    opt2 = make_optimizer(model2, "bop", lr=1.0, gamma=0.9, threshold=0.5)
    opt2.load_state_dict(saved_opt)
    assert opt2.param_groups[0]["gamma"] == 0.2
    result = run(model2, opt2)
    for a, b in zip(reference, result):
        assert torch.equal(a, b)

    with pytest.raises(CheckpointError):
        opt2.load_state_dict({"optimizers": saved_opt["optimizers"][:1]})
    with pytest.raises(CheckpointError, match="optimizers"):
        opt2.load_state_dict({**saved_opt, "types": ["Bop", "SGD"]})


def test_case_optimizer_duplicate_parameter() -> None:
    model = _small_bnn()
    params = list(model.parameters())
    with pytest.raises(ConfigError, match="exactly one optimizer"):
        CaseOptimizer(torch.optim.Adam(params), torch.optim.SGD(params[:1], lr=0.1))
    adam = torch.optim.Adam(params)
    with pytest.raises(ConfigError):
        CaseOptimizer(adam, adam)
    with pytest.raises(ConfigError):
        CaseOptimizer()
    with pytest.raises(ConfigError):
        CaseOptimizer(adam, "sgd")  # type: ignore[arg-type]


def test_case_optimizer_live_groups_and_copies() -> None:
    model = _small_bnn()
    adam = torch.optim.Adam([model[1].weight], lr=0.1)
    opt = CaseOptimizer(Bop(binary_parameters(model)), adam)
    adam.add_param_group({"params": [model[1].bias]})
    assert len(opt.param_groups) == 3
    with pytest.raises(ConfigError, match="child"):
        opt.add_param_group({"params": [model[2].bias]})
    clone = copy.deepcopy(opt)
    assert len(clone.optimizers) == 2 and len(clone.param_groups) == 3
    assert "Bop" in repr(opt) and "Adam" in repr(opt)


# --------------------------------------------------------------- clipping


def test_clip_latent_weights_hook() -> None:
    w = nn.Parameter(torch.tensor([0.5, -0.5, 0.9]))
    free = nn.Parameter(torch.tensor([0.0]))
    opt = torch.optim.SGD([w, free], lr=1.0)
    handle = clip_latent_weights(opt, [w], value=0.8)
    w.grad = torch.tensor([-1.0, 1.0, 0.0])
    free.grad = torch.tensor([-5.0])
    opt.step()
    assert w.tolist() == pytest.approx([0.8, -0.8, 0.8])
    assert free.item() == 5.0  # not clipped
    assert w.requires_grad
    handle.remove()
    w.grad = torch.tensor([-1.0, 0.0, 0.0])
    opt.step()
    assert w[0].item() == pytest.approx(1.8)


def test_clip_latent_weights_on_case_optimizer() -> None:
    w = nn.Parameter(torch.tensor([0.5]))
    opt = CaseOptimizer(torch.optim.SGD([w], lr=1.0))
    clip_latent_weights(opt, [w])
    w.grad = torch.tensor([-3.0])
    opt.step()
    assert w.item() == 1.0


@pytest.mark.parametrize("value", [0.0, -1.0, float("nan"), True])
def test_clip_latent_weights_validates(value: float) -> None:
    with pytest.raises(ConfigError):
        clip_latent_weights(torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0), [], value)


# ----------------------------------------------------------- make_optimizer


def _wd_of(opt: torch.optim.Optimizer) -> dict[int, float]:
    return {id(p): g["weight_decay"] for g in opt.param_groups for p in g["params"]}


def test_make_optimizer_names_and_types() -> None:
    assert OPTIMIZERS == ("adam", "adamw", "sgd", "bop")
    model = _small_bnn()
    assert type(make_optimizer(model, "adam", 1e-3)) is torch.optim.Adam
    assert type(make_optimizer(model, "adamw", 1e-3)) is torch.optim.AdamW
    sgd = make_optimizer(model, "sgd", 0.1)
    assert type(sgd) is torch.optim.SGD
    assert all(g["momentum"] == 0.9 and g["nesterov"] for g in sgd.param_groups)
    bop = make_optimizer(model, "bop", 1e-3, gamma=1e-3, threshold=1e-6)
    assert isinstance(bop, CaseOptimizer)
    assert [type(o) for o in bop.optimizers] == [Bop, torch.optim.Adam]
    assert bop.optimizers[0].param_groups[0]["gamma"] == 1e-3
    assert bop.optimizers[0].param_groups[0]["threshold"] == 1e-6
    assert bop.optimizers[1].param_groups[0]["lr"] == 1e-3
    assert [id(p) for p in bop.optimizers[0].param_groups[0]["params"]] == [id(p) for p in binary_parameters(model)]


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd", "bop"])
def test_make_optimizer_weight_decay_groups(name: str) -> None:
    model = _Mixed()
    opt = make_optimizer(model, name, 1e-3, weight_decay=0.05)
    wd = _wd_of(opt if name != "bop" else opt.optimizers[1])
    binary = {id(p) for p in binary_parameters(model)}
    for p in model.parameters():
        if id(p) in binary:
            if name != "bop":
                assert wd[id(p)] == 0.0
            else:
                assert id(p) not in wd
        elif p.dim() >= 2:
            assert wd[id(p)] == 0.05, p.shape
        else:
            assert wd[id(p)] == 0.0, p.shape
    covered = {id(p) for g in opt.param_groups for p in g["params"]}
    assert covered == {id(p) for p in model.parameters()}


def test_make_optimizer_adam_clips_binary_latent_weights() -> None:
    model = _small_bnn()
    opt = make_optimizer(model, "adam", lr=10.0)
    for step in range(3):
        opt.zero_grad()
        _loss(model, step).backward()
        opt.step()
    assert all(p.detach().abs().max().item() <= 1.0 for p in binary_parameters(model))
    assert model[1].weight.detach().abs().max().item() > 1.0  # BN weight not clipped
    opt = make_optimizer(_small_bnn(), "adam", lr=10.0, latent_clip=None)
    assert not opt._optimizer_step_post_hooks


def test_make_optimizer_frozen_parameters_left_out() -> None:
    model = _small_bnn()
    model[1].weight.requires_grad_(False)
    opt = make_optimizer(model, "adam", 1e-3)
    assert id(model[1].weight) not in {id(p) for g in opt.param_groups for p in g["params"]}


def test_make_optimizer_errors() -> None:
    model = _small_bnn()
    with pytest.raises(ConfigError, match="unknown optimizer 'lamb'.*adam, adamw, bop, sgd"):
        make_optimizer(model, "lamb", 1e-3)
    with pytest.raises(ConfigError, match="no binary weights|has none"):
        make_optimizer(nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3)), "bop", 1e-3)
    with pytest.raises(ConfigError, match="lr"):
        make_optimizer(model, "adam", -1.0)
    with pytest.raises(ConfigError, match="weight_decay"):
        make_optimizer(model, "adam", 1e-3, weight_decay=-0.1)
    with pytest.raises(ConfigError, match="bad arguments"):
        make_optimizer(model, "adam", 1e-3, gamma=0.1)
    with pytest.raises(ConfigError, match="gamma"):
        make_optimizer(model, "bop", 1e-3, gamma=2.0)
    with pytest.raises(ConfigError, match="latent_clip"):
        make_optimizer(model, "sgd", 1e-3, latent_clip=0.0)
    with pytest.raises(ConfigError, match="no trainable"):
        make_optimizer(nn.ReLU(), "adam", 1e-3)


@pytest.mark.parametrize(("quantizer", "ok"), [
    ("ste_sign", True), ("magnitude_aware_sign", True), ("xnor_sign", True),
    ("approx_sign", False), ("swish_sign", False),
])
def test_make_optimizer_bop_needs_a_gradient_at_plus_minus_one(quantizer: str, ok: bool) -> None:
    model = nn.Sequential(QuantLinear(4, 4, weight_quantizer=quantizer), nn.BatchNorm1d(4))
    if ok:
        make_optimizer(model, "bop", 1e-3)
    else:
        with pytest.raises(ConfigError, match=quantizer):
            make_optimizer(model, "bop", 1e-3)
    make_optimizer(QuantLinear(4, 4, weight_quantizer=SteSign(clip_value=None)), "bop", 1e-3)
    with pytest.raises(ConfigError, match="ste_sign"):  # gradient cut at |w| > 0.5: zero at ±1
        make_optimizer(QuantLinear(4, 4, weight_quantizer=SteSign(clip_value=0.5)), "bop", 1e-3)


# ----------------------------------------------------------- Bop trains


@pytest.fixture
def one_thread():
    """Tiny matmuls: one thread is faster and immune to a busy machine; restored after."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _train_toy(gamma: float, threshold: float, steps: int = 100) -> tuple[float, int]:
    torch.manual_seed(0)
    n, d = 512, 16
    x = torch.randn(n, d)
    y = (x @ torch.randn(d) > 0).long()
    model = nn.Sequential(
        QuantLinear(d, 64, bias=False, weight_quantizer="ste_sign"),
        nn.BatchNorm1d(64),
        QuantLinear(64, 2, bias=False, input_quantizer="ste_sign", weight_quantizer="ste_sign"),
        nn.BatchNorm1d(2),
    )
    opt = make_optimizer(model, "bop", lr=1e-2, gamma=gamma, threshold=threshold)
    binary = binary_parameters(model)
    first = None
    for _ in range(steps):
        idx = torch.randint(0, n, (64,))
        loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if first is None:
            first = [p.detach().clone() for p in binary]
    flips = sum(int((p.detach() != f).sum()) for p, f in zip(binary, first))
    for p in binary:
        assert set(p.detach().abs().flatten().tolist()) == {1.0}
    model.eval()
    with torch.no_grad():
        acc = (model(x).argmax(1) == y).float().mean().item()
    return acc, flips


def test_bop_trains_a_binary_mlp(one_thread: None) -> None:
    acc, flips = _train_toy(gamma=1e-3, threshold=1e-5)
    assert acc >= 0.9
    assert flips > 0
    # the same run with flips disabled (τ out of reach): only BN learns, and falls short
    frozen_acc, frozen_flips = _train_toy(gamma=1e-3, threshold=1e3)
    assert frozen_flips == 0
    assert acc > frozen_acc + 0.2
