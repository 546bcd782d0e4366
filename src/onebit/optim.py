"""Optimizers for binary networks: Bop, latent-weight clipping, per-parameter routing.

Two ways to train the ±1 weights of a BNN:

- **Latent weights** (BinaryNet, Bi-Real Net, ...): the layer keeps a real weight W,
  uses q(W) in the forward, and an ordinary optimizer (Adam) updates W with the
  straight-through pseudo-gradient. W is clipped to [−c, c] after every update
  (:func:`clip_latent_weights`) so it stays where the STE gradient is alive.
- **Bop** (Helwegen et al. 2019, "Latent Weights Do Not Exist"): the weights *are*
  ±1 and flip when an exponential moving average of their gradients is strong and
  points the same way as the weight (:class:`Bop`).

The other parameters of a BNN (BatchNorm, biases, learned scales, float first/last
layers) are real and want Adam; :func:`binary_parameters` and
:func:`other_parameters` split a model, :class:`CaseOptimizer` drives several
optimizers as one, and :func:`make_optimizer` builds the usual recipes by name::

    opt = make_optimizer(model, "bop", lr=1e-3, gamma=1e-4, threshold=1e-8)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)  # anneals Adam's lr
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.utils.hooks import RemovableHandle

from onebit.errors import CheckpointError, ConfigError, unknown_choice
from onebit.nn.layers import QuantLayer
from onebit.nn.quantizers import sign

__all__ = [
    "OPTIMIZERS",
    "Bop",
    "CaseOptimizer",
    "binary_parameters",
    "clip_latent_weights",
    "make_optimizer",
    "other_parameters",
]

OPTIMIZERS = ("adam", "adamw", "sgd", "bop")

Schedule = Callable[[int], float]
HyperParameter = float | Schedule

# What Bop.state_dict() writes in place of a schedule (a callable cannot go into a
# safetensors checkpoint and often cannot be pickled); load_state_dict keeps the
# schedule the optimizer was built with for such a group.
SCHEDULE_MARKER = "<schedule>"


# --------------------------------------------------------------------------- Bop


def _check_gamma(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 < float(value) <= 1.0:
        raise ConfigError(f"Bop gamma must be a number in (0, 1]{where}, got {value!r}")
    return float(value)


def _check_threshold(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= float(value) < math.inf:
        raise ConfigError(f"Bop threshold must be a finite number ≥ 0{where}, got {value!r}")
    return float(value)


_CHECKS = {"gamma": _check_gamma, "threshold": _check_threshold}


def _resolve(group: dict[str, Any], key: str, step: int) -> float:
    """The value of hyper-parameter ``key`` of ``group`` at Bop step ``step``, validated."""
    value = group[key]
    if callable(value):
        return _CHECKS[key](value(step), f" (the schedule's value at step {step})")
    return _CHECKS[key](value, "")


class Bop(Optimizer):
    r"""The Binary Optimizer (Helwegen et al. 2019): flips ±1 weights, keeps no latent weight.

    Per weight w it keeps an exponential moving average of the gradient g and flips w
    when that average is strong enough and agrees in sign with w (a gradient pointing
    the same way as w says decreasing w lowers the loss)::

        m ← (1 − γ)·m + γ·g
        w ← −w   where |m| > τ and sign(m) = sign(w),   else w

    (strictly greater: |m| = τ does not flip; sign(0) = +1 as everywhere in onebit).

    **Bop stores the binary weights directly**: every step writes ±1 into each of its
    parameters, ``sign(w)`` of the value it found there (so the first step binarizes
    a latent initialization) and then the flips. Parameters without a gradient are
    binarized but keep their m. Use it only on binary weights
    (:func:`binary_parameters`); give the rest of the model to another optimizer
    through :class:`CaseOptimizer`. With Bop, a magnitude-aware weight quantizer's
    α = mean|w| is 1.

    Args:
        params: the binary weights, or param-group dicts.
        gamma: adaptivity rate γ in (0, 1]: a float, or a schedule ``step -> γ``
            called with the number of Bop steps taken before this one (0, 1, ...).
        threshold: flip threshold τ ≥ 0, a float or a schedule ``step -> τ``.

    Both are also group keys (``"gamma"``, ``"threshold"``) that can be changed
    between steps, as with any torch optimizer. The paper decays γ by 10× every N
    epochs; with ``steps_per_epoch`` batches an epoch::

        Bop(params, gamma=lambda t: 1e-4 * 0.1 ** (t // (N * steps_per_epoch)))

    Each group also has ``"step"`` (the Bop steps that group has taken: the schedule's
    argument) and ``"lr"`` = 0.0, which **Bop never reads**: it is there so that torch
    LR schedulers, which read and write every group's ``"lr"``, work on an optimizer
    holding Bop groups (a :class:`CaseOptimizer` with Adam); they anneal Adam's lr and
    leave Bop unaffected. Decay γ with a schedule or by writing ``group["gamma"]``.

    ``state_dict()`` saves m per weight and each group's hyper-parameters; a schedule
    is saved as the string ``"<schedule>"`` and on load the optimizer keeps the
    schedule it was built with for that group.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        gamma: HyperParameter = 1e-4,
        threshold: HyperParameter = 1e-8,
    ) -> None:
        defaults = {"gamma": gamma, "threshold": threshold, "lr": 0.0, "step": 0}
        for key in ("gamma", "threshold"):
            _resolve(defaults, key, 0)
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group, as torch does, checking its γ and τ (a schedule at the group's step)."""
        if isinstance(param_group, dict):
            if not isinstance(param_group.get("params"), (Tensor, set, type(None))):
                param_group["params"] = list(param_group["params"])  # as torch does; a generator reads once
            merged = {**self.defaults, **param_group}
            for key in ("gamma", "threshold"):
                _resolve(merged, key, int(merged["step"]))
            params = merged.get("params") or []
            for p in [params] if isinstance(params, Tensor) else params:
                if isinstance(p, Tensor) and not p.is_floating_point():
                    raise ConfigError(
                        f"Bop needs floating-point weights, got a {p.dtype} tensor of shape {tuple(p.shape)}"
                    )
        super().add_param_group(param_group)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One Bop update of every group (after evaluating ``closure``, if given)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            t = int(group["step"])
            gamma = _resolve(group, "gamma", t)
            tau = _resolve(group, "threshold", t)
            for p in group["params"]:
                w = sign(p)
                grad = p.grad
                if grad is not None:
                    if grad.is_sparse:
                        raise ConfigError(
                            "Bop does not support sparse gradients (a parameter of shape "
                            f"{tuple(p.shape)} has one); use a dense layer for binary weights"
                        )
                    state = self.state[p]
                    if "m" not in state:
                        state["m"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    m = state["m"]
                    m.mul_(1.0 - gamma).add_(grad, alpha=gamma)
                    flip = (m.abs() > tau) & (sign(m) == w)
                    w = torch.where(flip, -w, w)
                p.copy_(w)
            group["step"] = t + 1
        return loss

    def state_dict(self) -> dict[str, Any]:
        """torch's state dict, with each schedule replaced by ``"<schedule>"``."""
        state = super().state_dict()
        for group in state["param_groups"]:
            for key in ("gamma", "threshold"):
                if callable(group.get(key)):
                    group[key] = SCHEDULE_MARKER
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """torch's load; a group saved with a schedule keeps this optimizer's schedule."""
        saved = state_dict.get("param_groups", []) if isinstance(state_dict, dict) else []
        schedules: list[dict[str, Schedule]] = []
        for i, (group, saved_group) in enumerate(zip(self.param_groups, saved)):
            kept = {}
            for key in ("gamma", "threshold"):
                if saved_group.get(key) == SCHEDULE_MARKER:
                    if not callable(group[key]):
                        raise CheckpointError(
                            f"the saved Bop group {i} had a {key} schedule, which a state dict "
                            f"cannot hold; build the optimizer with that schedule before loading"
                        )
                    kept[key] = group[key]
            schedules.append(kept)
        super().load_state_dict(state_dict)
        for group, kept in zip(self.param_groups, schedules):
            group.update(kept)


# ------------------------------------------------------------ parameter routing


def _binary_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    out = []
    for name, module in model.named_modules():
        if not isinstance(module, QuantLayer):
            continue
        q = module.weight_quantizer
        if q is not None and q.bits == 1 and q.signed:
            out.append((name, module))
    return out


def binary_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The latent weights of the quantized layers whose weights are ±1.

    A weight is binary when its layer is a :class:`~onebit.nn.QuantLayer` whose
    weight quantizer is 1-bit and signed (ste_sign, approx_sign, swish_sign,
    magnitude_aware_sign, xnor_sign, 1-bit DoReFa weights). Order: ``model.modules()``;
    a weight shared by two layers appears once.
    """
    seen: set[int] = set()
    out = []
    for _, layer in _binary_layers(model):
        w = layer.weight
        if id(w) not in seen:
            seen.add(id(w))
            out.append(w)
    return out


def other_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Every parameter of ``model`` that :func:`binary_parameters` does not return.

    Biases, BatchNorm, float layers, learned scales, RSign/RPReLU parameters,
    few-bit (ternary, k-bit) weights. Order: ``model.parameters()``, no duplicates.
    """
    binary = {id(p) for p in binary_parameters(model)}
    return [p for p in model.parameters() if id(p) not in binary]


# ----------------------------------------------------------------- CaseOptimizer


class CaseOptimizer(Optimizer):
    """Several optimizers, over disjoint parameters, driven as one (Larq's CaseOptimizer).

    ``CaseOptimizer(Bop(binary_parameters(m)), Adam(other_parameters(m), lr=1e-3))``.

    - ``param_groups`` is the list of every child's group dicts, in child order: the
      same dict objects, read live (so an LR scheduler that sets ``group["lr"]`` sets
      the child's, and groups a child gains later appear). Bop groups carry an
      ``"lr"`` that Bop ignores, so schedulers anneal the other children only.
      ``defaults`` is empty: OneCycleLR/CyclicLR need ``cycle_momentum=False``.
    - ``step(closure)`` evaluates the closure once, then steps every child.
    - ``zero_grad``, ``state_dict``/``load_state_dict`` act on every child;
      ``state`` is a merged read-only view of the children's states.
    - A parameter held by two children is a :class:`~onebit.errors.ConfigError`;
      add groups to a child (``case.optimizers[i].add_param_group``), not to this.
    """

    def __init__(self, *optimizers: Optimizer) -> None:
        if not optimizers:
            raise ConfigError("CaseOptimizer needs at least one optimizer")
        owner: dict[int, int] = {}
        params: list[Tensor] = []
        for i, opt in enumerate(optimizers):
            if not isinstance(opt, Optimizer):
                raise ConfigError(
                    f"CaseOptimizer takes torch.optim.Optimizer instances, argument {i} is {type(opt).__name__}"
                )
            if isinstance(opt, torch.optim.LBFGS):
                raise ConfigError("CaseOptimizer cannot drive LBFGS, which re-evaluates the closure per step")
            for group in opt.param_groups:
                for p in group["params"]:
                    if id(p) in owner:
                        j = owner[id(p)]
                        where = "twice in optimizer" if i == j else f"in optimizers {j} and"
                        raise ConfigError(
                            f"a parameter of shape {tuple(p.shape)} appears {where} {i} "
                            f"({type(opt).__name__}); each parameter must belong to exactly one optimizer"
                        )
                    owner[id(p)] = i
                    params.append(p)
        # torch's constructor installs the hook tables and the step wrapper; the group
        # and state it builds are scaffolding, replaced by the children's views below.
        super().__init__([{"params": params}], {})
        self.__dict__.pop("_scaffold_groups", None)
        self.__dict__.pop("_scaffold_state", None)
        self.__dict__["optimizers"] = tuple(optimizers)

    optimizers: tuple[Optimizer, ...]

    @property  # type: ignore[override]
    def param_groups(self) -> list[dict[str, Any]]:
        children = self.__dict__.get("optimizers")
        if children is None:  # inside torch.optim.Optimizer.__init__
            return self.__dict__.setdefault("_scaffold_groups", [])
        return [group for opt in children for group in opt.param_groups]

    @param_groups.setter
    def param_groups(self, value: list[dict[str, Any]]) -> None:
        if "optimizers" in self.__dict__:
            raise ConfigError("a CaseOptimizer's param_groups are its children's; change those")
        self.__dict__["_scaffold_groups"] = value

    @property  # type: ignore[override]
    def state(self) -> dict[Tensor, Any]:
        children = self.__dict__.get("optimizers")
        if children is None:
            return self.__dict__.setdefault("_scaffold_state", {})
        merged: dict[Tensor, Any] = {}
        for opt in children:
            merged.update(opt.state)
        return merged

    @state.setter
    def state(self, value: Any) -> None:
        if "optimizers" in self.__dict__:
            raise ConfigError("a CaseOptimizer's state is its children's; change those")
        self.__dict__["_scaffold_state"] = value

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        if "optimizers" in self.__dict__:
            raise ConfigError(
                "add the group to one of the child optimizers (case.optimizers[i].add_param_group), "
                "a CaseOptimizer cannot tell which one it is for"
            )
        super().add_param_group(param_group)

    def __getstate__(self) -> dict[str, Any]:  # pickle / deepcopy keep the children
        return {"defaults": self.defaults, "optimizers": self.optimizers}

    def __repr__(self) -> str:
        inner = ",\n".join("  " + repr(opt).replace("\n", "\n  ") for opt in self.optimizers)
        return f"{type(self).__name__}(\n{inner}\n)"

    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        """Evaluate ``closure`` once (with gradients enabled), then step every child."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for opt in self.optimizers:
            opt.step()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:
        """``{"optimizers": [child.state_dict(), ...], "types": [class names]}``."""
        for hook in self._optimizer_state_dict_pre_hooks.values():
            hook(self)
        state: dict[str, Any] = {
            "optimizers": [opt.state_dict() for opt in self.optimizers],
            "types": [type(opt).__name__ for opt in self.optimizers],
        }
        for hook in self._optimizer_state_dict_post_hooks.values():
            result = hook(self, state)
            if result is not None:
                state = result
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load every child from a :meth:`state_dict` of a CaseOptimizer of the same shape."""
        state_dict = dict(state_dict)
        for hook in self._optimizer_load_state_dict_pre_hooks.values():
            result = hook(self, state_dict)
            if result is not None:
                state_dict = result
        saved = state_dict.get("optimizers")
        types = [type(opt).__name__ for opt in self.optimizers]
        if not isinstance(saved, list) or len(saved) != len(self.optimizers):
            n = len(saved) if isinstance(saved, list) else "no"
            raise CheckpointError(
                f"the CaseOptimizer state dict holds {n} optimizer states, this one has {len(types)} ({types})"
            )
        if "types" in state_dict and list(state_dict["types"]) != types:
            raise CheckpointError(f"the state dict is for optimizers {state_dict['types']}, this one has {types}")
        for opt, child in zip(self.optimizers, saved):
            opt.load_state_dict(child)
        for hook in self._optimizer_load_state_dict_post_hooks.values():
            hook(self)


# ------------------------------------------------------------------- clipping


def _is_positive(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, numbers.Real) and float(value) > 0


def clip_latent_weights(optimizer: Optimizer, params: Iterable[Tensor], value: float = 1.0) -> RemovableHandle:
    """After every ``optimizer.step()``, clamp ``params`` in place to [−value, value] (BinaryNet).

    Keeps latent weights where the clipped STE gradient is non-zero. Returns the
    hook's handle (``handle.remove()`` stops the clipping).
    """
    if not _is_positive(value):
        raise ConfigError(f"the latent-weight clip value must be a number > 0, got {value!r}")
    bound = float(value)
    clipped = list(params)

    def clip(_optimizer: Optimizer, _args: Any, _kwargs: Any) -> None:
        with torch.no_grad():
            for p in clipped:
                p.clamp_(-bound, bound)

    return optimizer.register_step_post_hook(clip)


# -------------------------------------------------------------------- recipes


def _bop_gradient_problems(model: nn.Module) -> list[str]:
    """Binary layers whose weight quantizer passes no positive gradient at w = ±1.

    Bop's weights sit at ±1 and it reads the gradient there: approx_sign's is 0 at
    |w| = 1 (Bop would never flip), swish_sign's is negative (it would flip the wrong
    way), ste_sign with clip_value < 1 is 0. Probed with autograd on ±1 weights.
    """
    problems = []
    for name, layer in _binary_layers(model):
        q = layer.weight_quantizer
        with torch.enable_grad():
            w = sign(layer.weight.detach()).requires_grad_(True)
            out = q(w)
            (grad,) = torch.autograd.grad(out, w, torch.ones_like(out), allow_unused=True)
        if grad is None or not bool((grad > 0).all()):
            problems.append(f"{name or type(layer).__name__} ({q.name})")
    return problems


def _check_rate(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= float(value) < math.inf:
        raise ConfigError(f"{name} must be a finite number ≥ 0, got {value!r}")
    return float(value)


def _real_groups(params: Sequence[Tensor], weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on ≥ 2-D real parameters only; 1-D ones (BN, biases, scales) get none."""
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = []
    if decay:
        groups.append({"params": decay, "weight_decay": weight_decay})
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def make_optimizer(
    model: nn.Module,
    name: str,
    lr: float,
    weight_decay: float = 0.0,
    **kwargs: Any,
) -> Optimizer:
    """The optimizer recipe ``name`` (one of :data:`OPTIMIZERS`) for ``model``.

    - ``"adam"`` (the usual choice for BNNs), ``"adamw"``, ``"sgd"`` (momentum 0.9,
      Nesterov): one optimizer over every trainable parameter; binary latent weights
      are clipped to [−c, c] after each step, c = ``latent_clip`` (default 1.0;
      ``latent_clip=None`` turns it off).
    - ``"bop"``: ``CaseOptimizer(Bop(binary weights, gamma, threshold), Adam(rest, lr))``;
      ``gamma`` (default 1e-4) and ``threshold`` (1e-8) are keyword arguments, floats
      or schedules. A ConfigError if the model has no binary weights, or if a binary
      weight's quantizer gives Bop no usable gradient at ±1 (approx_sign, swish_sign,
      ste_sign with clip_value < 1).

    Weight decay goes only to real parameters with ≥ 2 dimensions: never to binary
    latent weights, nor to BatchNorm, biases and scales. Other keyword arguments go
    to the torch optimizer (Adam for ``"bop"``). Frozen parameters are left out.
    """
    if name not in OPTIMIZERS:
        raise unknown_choice("optimizer", name, OPTIMIZERS)
    lr = _check_rate("lr", lr)
    weight_decay = _check_rate("weight_decay", weight_decay)
    binary = [p for p in binary_parameters(model) if p.requires_grad]
    real = [p for p in other_parameters(model) if p.requires_grad]
    if not binary and not real:
        raise ConfigError(f"{type(model).__name__} has no trainable parameters to optimize")
    real_groups = _real_groups(real, weight_decay)

    if name == "bop":
        if not binary:
            raise ConfigError(
                f"optimizer 'bop' trains binary weights and {type(model).__name__} has none "
                "(no QuantLayer with a 1-bit signed weight quantizer); use 'adam'"
            )
        problems = _bop_gradient_problems(model)
        if problems:
            raise ConfigError(
                "Bop reads the weight gradient at w = ±1, where the weight quantizer of "
                f"{', '.join(problems)} passes none or a negative one; use ste_sign "
                "(clip_value ≥ 1 or None), magnitude_aware_sign, xnor_sign or dorefa weights, "
                "or a latent-weight optimizer ('adam')"
            )
        gamma = kwargs.pop("gamma", 1e-4)
        threshold = kwargs.pop("threshold", 1e-8)
        children: list[Optimizer] = [Bop(binary, gamma=gamma, threshold=threshold)]
        if real_groups:
            children.append(_build(torch.optim.Adam, name, real_groups, lr, kwargs))
        return CaseOptimizer(*children)

    latent_clip = kwargs.pop("latent_clip", 1.0)
    if latent_clip is not None and not _is_positive(latent_clip):
        raise ConfigError(f"latent_clip must be a number > 0 or None, got {latent_clip!r}")
    groups = ([{"params": binary, "weight_decay": 0.0}] if binary else []) + real_groups
    if name == "adam":
        opt = _build(torch.optim.Adam, name, groups, lr, kwargs)
    elif name == "adamw":
        # AdamW's own default weight_decay is 0.01: every group states its own here.
        opt = _build(torch.optim.AdamW, name, groups, lr, kwargs)
    else:
        kwargs.setdefault("momentum", 0.9)
        kwargs.setdefault("nesterov", True)
        opt = _build(torch.optim.SGD, name, groups, lr, kwargs)
    if latent_clip is not None and binary:
        clip_latent_weights(opt, binary, latent_clip)
    return opt


def _build(
    cls: type[Optimizer], name: str, groups: list[dict[str, Any]], lr: float, kwargs: dict[str, Any]
) -> Optimizer:
    try:
        return cls(groups, lr=lr, **kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"bad arguments for optimizer {name!r}: {exc}") from None
