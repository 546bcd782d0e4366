"""Binary morphological neural networks: BiSE neurons, LUI channel combiners, BiMoNN.

Aouad & Talbot, "Binary Multi Channel Morphological Neural Network", DGMM 2022
(arXiv 2204.08768); formulas as in the reference code (TheodoreAouad/Bimonn_DGMM2022,
``deep_morpho/models/bise.py``, ``lui.py``, ``bisel.py``).

**BiSE** (binary structuring element) on one almost-binary channel ``x ∈ [0, 1]``::

    W = softplus(P_w·θ) > 0,   B = −softplus(β) − ½,   BiSE(x) = ½·tanh(P·(W ⋆ x + B)) + ½

(``⋆`` is PyTorch's cross-correlation with replicate padding; ``P`` a learned sharpness;
``P_w`` a learned scalar, 1 at initialisation: the reference's softplus weight layer
``SoftplusThresholdLayer`` drops its arguments and so learns its own ``P_``, whatever
``constant_weight_P`` says).
**Theorem** (the paper's Prop. 1, ``bias_bounds_*`` in the reference): for inputs outside
``]v1, v2[`` (binary: v1 = 0, v2 = 1), the BiSE thresholded at ½ is exactly

- the dilation by ``S`` iff  ``Σ_{W>0, ∉S} W + v1·Σ_{W>0, ∈S} W  <  −B  <  v2·min_S W + Σ_{W<0} W``,
- the erosion by ``S``  iff  ``Σ_{W>0} W − (1 − v1)·min_S W  <  −B  <  v2·Σ_{W>0, ∈S} W + Σ_{W<0} W``.

``S`` is in the kernel's (correlation) orientation: the erosion by ``S`` is
``scipy.ndimage.binary_erosion(x, S)``, the dilation by ``S`` is
``scipy.ndimage.binary_dilation(x, S[::-1, ::-1])`` (the same for the symmetric disk,
stick and cross). A BiSE that satisfies a bound is *activated*; one that does not is
*projected* to the (S, operation) whose bound interval is nearest to ``−B``
(``max(lb + B, −B − ub, 0)`` over the sets ``{W ≥ w}``).

**LUI** (learnable union/intersection) over ``C_in`` almost-binary channels, per output::

    β = softplus(θ) > 0,   B = −softplus(b) − ½,   LUI(x) = ½·tanh(P·(Σ_c β_c x_c + B)) + ½,  P = softplus(p) + 1

with the same bounds (``W → β``; dilation ↔ union, erosion ↔ intersection).

A BiSE with ``P < 0`` computes the complement of its operation (the reference's binary
forward keeps P's sign), which is how a BiMoNN can learn the (non-increasing) top-hats.
A :class:`BiMoNN` layer with ``C_in → C_out`` channels holds ``C_in`` BiSEs of ``C_out``
outputs each and one LUI per output (the reference's BiSEL); :meth:`BiMoNN.binarized`
returns a :class:`MorphologicalNet` of pure morphological operations, which
:mod:`onebit.morphology.engine` exports to a ``.onebit`` file.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from onebit.errors import ConfigError, unknown_choice

__all__ = [
    "BISE_OPERATIONS", "LUI_OPERATIONS", "BiMoNN", "BiMoNNLayer", "BiSE", "LUI", "MorphologicalLayer",
    "MorphologicalNet", "Projection", "bounds", "check_binary", "distance_to_operation", "find_operation",
    "closest_operation", "is_operation",
]

BISE_OPERATIONS = ("dilation", "erosion")
LUI_OPERATIONS = ("union", "intersection")
# union/intersection are the dilation/erosion bounds over channels instead of pixels
_AS_BISE = {"union": "dilation", "intersection": "erosion", "dilation": "dilation", "erosion": "erosion"}


def _softplus_inverse(y: torch.Tensor) -> torch.Tensor:
    """``softplus⁻¹(y) = log(eᶦ − 1)`` for ``y > 0`` (written stably as ``y + log(1 − e⁻ʸ)``)."""
    return y + torch.log(-torch.expm1(-y))


def _set_normalized(module: nn.Module, weight: torch.Tensor | np.ndarray, bias: torch.Tensor | np.ndarray,
                    what: str, scale: torch.Tensor | float = 1.0) -> None:
    """Store positive ``weight`` and a bias < −½ as the raw parameters whose softplus gives them
    (BiSE's and LUI's parametrization; ``weight = softplus(scale·raw)``); ``what`` names the
    weights in the error."""
    weight, bias = torch.as_tensor(weight, dtype=torch.float32), torch.as_tensor(bias, dtype=torch.float32)
    if weight.shape != module.weight_raw.shape or not bool((weight > 0).all()):
        raise ConfigError(f"{what} must be positive, of shape {tuple(module.weight_raw.shape)}")
    if bias.shape != module.bias_raw.shape or not bool((bias < -0.5).all()):
        raise ConfigError(f"bias must be < -0.5, of shape {tuple(module.bias_raw.shape)}")
    with torch.no_grad():
        module.weight_raw.copy_(_softplus_inverse(weight) / scale)
        module.bias_raw.copy_(_softplus_inverse(-bias - 0.5))


# ---------------------------------------------------------------- the binarization theorem


def bounds(weights: np.ndarray, S: np.ndarray, operation: str, v1: float = 0.0, v2: float = 1.0) -> tuple[float, float]:
    """The interval ``(lb, ub)`` that ``−bias`` must lie in (strictly) for a thresholded
    linear unit with ``weights`` to be exactly ``operation`` by the set ``S`` on inputs
    outside ``]v1, v2[`` (the reference's ``bias_bounds_dilation``/``_erosion``; for a LUI
    ``union``/``intersection``). ``S`` must be a non-empty boolean mask of ``weights``' shape."""
    op = _AS_BISE.get(operation)
    if op is None:
        raise unknown_choice("morphological operation", operation, _AS_BISE)
    W = np.asarray(weights, dtype=np.float64)
    S = np.asarray(S)
    if S.shape != W.shape or (S.dtype != bool and not ((S == 0) | (S == 1)).all()):
        raise ConfigError(f"the set S must be a 0/1 mask of shape {W.shape}, got {S.dtype} {S.shape}")
    S = S.astype(bool, copy=False)
    if not S.any():
        raise ConfigError("the set S must not be empty")
    pos, neg = W > 0, W < 0
    if op == "dilation":
        return float(W[~S & pos].sum() + v1 * W[S & pos].sum()), float(v2 * W[S].min() + W[neg].sum())
    return float(W[pos].sum() - (1 - v1) * W[S].min()), float(v2 * W[S & pos].sum() + W[neg].sum())


def is_operation(weights: np.ndarray, bias: float, S: np.ndarray, operation: str,
                 v1: float = 0.0, v2: float = 1.0) -> bool:
    """Whether ``[weights · x + bias > 0]`` is exactly ``operation`` by ``S`` (``lb < −bias < ub``)."""
    lb, ub = bounds(weights, S, operation, v1, v2)
    return lb < -float(bias) < ub


def distance_to_operation(weights: np.ndarray, bias: float, S: np.ndarray, operation: str,
                          v1: float = 0.0, v2: float = 1.0) -> float:
    """How far ``−bias`` is from the interval of :func:`bounds`: ``max(lb + bias, −bias − ub, 0)``."""
    lb, ub = bounds(weights, S, operation, v1, v2)
    return max(lb + float(bias), -float(bias) - ub, 0.0)


def find_operation(weights: np.ndarray, bias: float, operations: tuple[str, ...] = BISE_OPERATIONS,
                   v1: float = 0.0, v2: float = 1.0) -> tuple[np.ndarray, str] | None:
    """The ``(S, operation)`` the unit computes exactly, or None (not activated).

    For positive weights at most one ``S`` can satisfy each bound (the reference's
    ``find_selem_for_operation_chan``): dilation/union ``S = {W > −B/v2}``, erosion/
    intersection ``S = {W > (ΣW + B)/(1 − v1)}``; each candidate is then checked."""
    W = np.asarray(weights, dtype=np.float64)
    for op in operations:
        cut = -bias / v2 if _AS_BISE[op] == "dilation" else (W.sum() + bias) / (1 - v1)
        S = W > cut
        if S.any() and is_operation(W, bias, S, op, v1, v2):
            return S, op
    return None


def closest_operation(weights: np.ndarray, bias: float, operations: tuple[str, ...] = BISE_OPERATIONS,
                      v1: float = 0.0, v2: float = 1.0) -> tuple[np.ndarray, str, float]:
    """The projection: ``(S, operation, distance)`` minimizing :func:`distance_to_operation`
    over the sets ``S = {W ≥ w}`` for every weight value ``w`` and both operations (ties:
    the first operation, the largest threshold; as ``find_closest_selem_and_operation_chan``)."""
    W = np.asarray(weights, dtype=np.float64)
    best: tuple[np.ndarray, str, float] | None = None
    for op in operations:
        for value in np.unique(W):
            S = W >= value
            d = distance_to_operation(W, bias, S, op, v1, v2)
            if best is None or d < best[2]:
                best = (S, op, d)
    assert best is not None
    return best


@dataclass
class Projection:
    """One unit after binarization: its set, operation, whether it was already exact
    (activated) and the distance of its bias to the bound interval (0 when activated)."""

    S: np.ndarray
    operation: str
    activated: bool
    distance: float


def _project(weights: np.ndarray, bias: float, operations: tuple[str, ...]) -> Projection:
    found = find_operation(weights, bias, operations)
    if found is not None:
        return Projection(found[0], found[1], True, 0.0)
    S, op, d = closest_operation(weights, bias, operations)
    return Projection(S, op, False, d)


def check_binary(x: torch.Tensor | np.ndarray, what: str = "input") -> None:
    """Raise a :class:`ConfigError` unless every value of ``x`` is 0 or 1."""
    values = x.detach().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if values.dtype == bool:
        return
    ok = (values == 0) | (values == 1)
    if not ok.all():
        bad = values[~ok].flat[0].item()
        raise ConfigError(f"{what} must be a binary image (every value 0 or 1), found {bad!r}")


# ---------------------------------------------------------------- BiSE and LUI


def _odd_kernel(kernel_size: int) -> int:
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
        raise ConfigError(f"kernel_size must be an odd positive integer, got {kernel_size!r}")
    return kernel_size


def _positive_int(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return value


class BiSE(nn.Module):
    """One input channel → ``out_channels`` BiSE outputs ``½·tanh(P·(softplus(P_w·θ) ⋆ x + B)) + ½``.

    Initialisation as the reference configs (``init_weight_mode="conv_0.5"``,
    ``activation_P=0``, ``init_bias_value=−2``): normalized weights = PyTorch's default
    conv initialisation + 0.5, raw bias −2 (B ≈ −0.627), P = 0 and learned, the weight
    sharpness ``P_w`` = 1 and learned (one scalar per BiSE, as the reference's softplus layer).
    """

    def __init__(self, kernel_size: int, out_channels: int = 1, activation_P: float = 0.0,
                 init_bias_value: float = -2.0):
        super().__init__()
        self.kernel_size = _odd_kernel(kernel_size)
        self.out_channels = _positive_int("out_channels", out_channels)
        conv = nn.Conv2d(1, out_channels, kernel_size)  # for PyTorch's default weight initialisation
        with torch.no_grad():
            self.weight_raw = nn.Parameter(_softplus_inverse(conv.weight + 0.5))
        self.weight_P = nn.Parameter(torch.ones(1))
        self.bias_raw = nn.Parameter(torch.full((out_channels,), float(init_bias_value)))
        self.activation_P = nn.Parameter(torch.full((out_channels,), float(activation_P)))

    @property
    def weight(self) -> torch.Tensor:
        """The normalized (positive) weights ``softplus(P_w·θ)``, shape ``(out, 1, k, k)``."""
        return F.softplus(self.weight_raw * self.weight_P)

    @property
    def bias(self) -> torch.Tensor:
        """``B = −softplus(β) − ½`` (always ≤ −½), shape ``(out,)``."""
        return -F.softplus(self.bias_raw) - 0.5

    def set_normalized(self, weight: torch.Tensor | np.ndarray, bias: torch.Tensor | np.ndarray) -> None:
        """Set the positive weights ``(out, 1, k, k)`` and the bias ``(out,)`` (every bias ≤ −½)."""
        _set_normalized(self, weight, bias, "weights", self.weight_P.detach())

    def pre_activation(self, x: torch.Tensor) -> torch.Tensor:
        """``W ⋆ x + B`` with replicate padding, ``(N, 1, H, W)`` → ``(N, out, H, W)``."""
        p, n, o = self.kernel_size // 2, x.shape[0], self.out_channels
        xp = F.pad(x, (p, p, p, p), mode="replicate")
        # the batch as the channels of one image, a grouped channels-last conv: the same sums as
        # conv2d(xp, W, B), about 5x faster on CPU than a batch of single-channel images
        xp = xp.reshape(1, n, *xp.shape[2:]).contiguous(memory_format=torch.channels_last)
        w = self.weight.repeat(n, 1, 1, 1)
        y = F.conv2d(xp, w, self.bias.repeat(n), groups=n)
        return y.reshape(n, o, *y.shape[2:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 1:
            raise ConfigError(f"a BiSE takes one channel (N, 1, H, W), got shape {tuple(x.shape)}")
        return 0.5 * torch.tanh(self.activation_P.view(1, -1, 1, 1) * self.pre_activation(x)) + 0.5

    def projections(self) -> list[Projection]:
        """Per output channel: the exact (S, operation) if activated, else the nearest one."""
        W, B = self.weight.detach().double().numpy(), self.bias.detach().double().numpy()
        return [_project(W[o, 0], float(B[o]), BISE_OPERATIONS) for o in range(self.out_channels)]

    def complements(self) -> np.ndarray:
        """Per output channel: ``P < 0``, where the thresholded BiSE is the complement of its
        operation (``½·tanh(P·z) + ½ > ½ ⇔ z < 0``; the reference's ``forward_binary`` keeps P's sign)."""
        return self.activation_P.detach().numpy() < 0

    def is_activated(self) -> np.ndarray:
        """Per output channel: whether the BiSE is exactly a dilation or an erosion already."""
        return np.array([p.activated for p in self.projections()])


class LUI(nn.Module):
    """``in_channels`` → ``out_channels``: ``½·tanh(P·(Σ_c softplus(θ)_c x_c + B)) + ½`` per output.

    Initialisation as the reference (``init_mode="normal"``, ``P_ = 1``): θ ~ N(0, 1),
    raw bias ``−softplus(N(0, 1))``.
    """

    def __init__(self, in_channels: int, out_channels: int = 1, P: float = 1.0):
        super().__init__()
        self.in_channels = _positive_int("in_channels", in_channels)
        self.out_channels = _positive_int("out_channels", out_channels)
        self.weight_raw = nn.Parameter(torch.randn(out_channels, in_channels))
        self.bias_raw = nn.Parameter(-F.softplus(torch.randn(out_channels)))
        self.P_raw = nn.Parameter(torch.full((out_channels,), float(P)))

    @property
    def weight(self) -> torch.Tensor:
        """The positive coefficients ``β = softplus(θ)``, shape ``(out, in)``."""
        return F.softplus(self.weight_raw)

    @property
    def bias(self) -> torch.Tensor:
        return -F.softplus(self.bias_raw) - 0.5

    @property
    def activation_P(self) -> torch.Tensor:
        return F.softplus(self.P_raw) + 1

    def set_normalized(self, weight: torch.Tensor | np.ndarray, bias: torch.Tensor | np.ndarray) -> None:
        """Set the positive coefficients ``(out, in)`` and the bias ``(out,)`` (every bias < −½)."""
        _set_normalized(self, weight, bias, "coefficients")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ConfigError(f"this LUI takes {self.in_channels} channels (N, C, H, W), got shape {tuple(x.shape)}")
        return self.combine(x[:, None].expand(-1, self.out_channels, -1, -1, -1))

    def combine(self, y: torch.Tensor) -> torch.Tensor:
        """Output ``o`` over its own inputs ``y[:, o]``: ``(N, out, in, H, W)`` → ``(N, out, H, W)``."""
        z = torch.einsum("nochw,oc->nohw", y, self.weight) + self.bias.view(1, -1, 1, 1)
        return 0.5 * torch.tanh(self.activation_P.view(1, -1, 1, 1) * z) + 0.5

    def projections(self) -> list[Projection]:
        W, B = self.weight.detach().double().numpy(), self.bias.detach().double().numpy()
        return [_project(W[o], float(B[o]), LUI_OPERATIONS) for o in range(self.out_channels)]

    def is_activated(self) -> np.ndarray:
        return np.array([p.activated for p in self.projections()])


class BiMoNNLayer(nn.Module):
    """``C_in → C_out``: BiSE ``c`` (``C_out`` outputs) on input channel ``c``, then one LUI
    per output over the ``C_in`` BiSE results (the reference's BiSEL)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int):
        super().__init__()
        self.in_channels = _positive_int("in_channels", in_channels)
        self.out_channels = _positive_int("out_channels", out_channels)
        self.kernel_size = _odd_kernel(kernel_size)
        self.bises = nn.ModuleList(BiSE(kernel_size, out_channels) for _ in range(in_channels))
        self.lui = LUI(in_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ConfigError(f"this layer takes {self.in_channels} channels (N, C, H, W), got {tuple(x.shape)}")
        y = torch.stack([bise(x[:, c:c + 1]) for c, bise in enumerate(self.bises)], 2)  # (N, out, in, H, W)
        return self.lui.combine(y)

    def binarized(self) -> MorphologicalLayer:
        bise = [b.projections() for b in self.bises]  # [c][o]
        lui = self.lui.projections()
        return MorphologicalLayer(
            selems=np.stack([np.stack([bise[c][o].S for c in range(self.in_channels)]) for o in range(self.out_channels)]),
            operations=[[bise[c][o].operation for c in range(self.in_channels)] for o in range(self.out_channels)],
            channel_sets=np.stack([p.S for p in lui]), combiners=[p.operation for p in lui],
            activated=np.array([[bise[c][o].activated for c in range(self.in_channels)] for o in range(self.out_channels)]),
            lui_activated=np.array([p.activated for p in lui]),
            complements=np.stack([b.complements() for b in self.bises], 1),
        )


class BiMoNN(nn.Module):
    """A stack of :class:`BiMoNNLayer`: ``channels = [C_0, C_1, …, C_L]``, one odd kernel size
    for every layer (or one per layer)."""

    def __init__(self, channels: list[int], kernel_size: int | list[int]):
        super().__init__()
        if not isinstance(channels, (list, tuple)) or len(channels) < 2:
            raise ConfigError(f"channels must list at least the input and output channel counts, got {channels!r}")
        sizes = list(kernel_size) if isinstance(kernel_size, (list, tuple)) else [kernel_size] * (len(channels) - 1)
        if len(sizes) != len(channels) - 1:
            raise ConfigError(f"{len(channels) - 1} layers need {len(channels) - 1} kernel sizes, got {len(sizes)}")
        self.channels = list(channels)
        self.layers = nn.ModuleList(BiMoNNLayer(a, b, k) for a, b, k in zip(channels[:-1], channels[1:], sizes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x

    def is_activated(self) -> list[np.ndarray]:
        """Per layer: the BiSE activation map ``(C_out, C_in)``."""
        return [np.array([[b.is_activated()[o] for b in layer.bises] for o in range(layer.out_channels)])
                for layer in self.layers]

    def binarized(self) -> MorphologicalNet:
        """The network of pure morphological operations: every BiSE and LUI replaced by its
        exact operation if activated, else by its projection."""
        return MorphologicalNet([layer.binarized() for layer in self.layers])


# ---------------------------------------------------------------- the binarized network


class MorphologicalLayer(nn.Module):
    """Output ``o`` = ``combiners[o]`` (union/intersection) over the channels ``c`` in
    ``channel_sets[o]`` of ``operations[o][c]`` (dilation/erosion) of input channel ``c`` by
    ``selems[o, c]`` (correlation orientation, see the module docstring), complemented
    where ``complements[o, c]`` (a BiSE whose sharpness P is negative).

    Border rule: input channel ``c`` is padded with ``outside[c]``, its value far from the
    image (the layers before applied to constant images; :meth:`MorphologicalNet.forward`
    passes it, 0 by default): background (0) for the input image, as ``scipy.ndimage``'s
    ``border_value=0``, and 1 for a complemented BiSE's output. Padding a complement with the
    complement of background makes the rule hold under De Morgan's laws: ``¬δ_S(¬δ_S(x))`` is
    padded as ``ε_S(δ_S(x))`` is by ``scipy.ndimage`` (each operation's input padded with 0),
    so a closing learned in that form equals ``scipy.ndimage``'s on the whole image.
    """

    def __init__(self, selems: np.ndarray, operations: list[list[str]], channel_sets: np.ndarray,
                 combiners: list[str], activated: np.ndarray | None = None, lui_activated: np.ndarray | None = None,
                 complements: np.ndarray | None = None):
        super().__init__()
        selems, channel_sets = np.asarray(selems, bool), np.asarray(channel_sets, bool)
        if selems.ndim != 4 or selems.shape[2] != selems.shape[3] or selems.shape[2] % 2 == 0:
            raise ConfigError(f"selems must be (C_out, C_in, k, k) with k odd, got {selems.shape}")
        c_out, c_in, k = selems.shape[:3]
        if channel_sets.shape != (c_out, c_in) or not channel_sets.any(1).all():
            raise ConfigError(f"channel_sets must be (C_out, C_in) = {(c_out, c_in)} with a channel per output")
        for row in operations:
            for op in row:
                if op not in BISE_OPERATIONS:
                    raise unknown_choice("BiSE operation", op, BISE_OPERATIONS)
        for op in combiners:
            if op not in LUI_OPERATIONS:
                raise unknown_choice("LUI operation", op, LUI_OPERATIONS)
        self.selems, self.operations, self.channel_sets, self.combiners = selems, operations, channel_sets, combiners
        self.activated = np.ones((c_out, c_in), bool) if activated is None else np.asarray(activated, bool)
        self.lui_activated = np.ones(c_out, bool) if lui_activated is None else np.asarray(lui_activated, bool)
        self.complements = np.zeros((c_out, c_in), bool) if complements is None else np.asarray(complements, bool)
        if self.complements.shape != (c_out, c_in):
            raise ConfigError(f"complements must be (C_out, C_in) = {(c_out, c_in)}, got {self.complements.shape}")
        self.in_channels, self.out_channels, self.kernel_size = c_in, c_out, k

    def _outside_of_inputs(self, outside: np.ndarray | None) -> np.ndarray:
        b = np.zeros(self.in_channels, bool) if outside is None else np.asarray(outside)
        if b.shape != (self.in_channels,) or not np.isin(b, (0, 1)).all():
            raise ConfigError(f"outside must give one 0/1 value per input channel ({self.in_channels}), "
                              f"got {np.asarray(outside).tolist()}")
        return b.astype(bool)

    def outside(self, outside: np.ndarray | None = None) -> np.ndarray:
        """Each output's value (0/1) far from the image, given each input's (``outside``, default 0):
        the layer applied to a constant image (one pixel, padded with the same constants)."""
        b = self._outside_of_inputs(outside)
        constant = torch.from_numpy(b.astype(np.float32)).view(1, -1, 1, 1)
        return self(constant, b)[0, :, 0, 0].numpy().astype(bool)

    def forward(self, x: torch.Tensor, outside: np.ndarray | None = None) -> torch.Tensor:
        check_binary(x)
        p = self.kernel_size // 2
        b = self._outside_of_inputs(outside)
        xp = torch.cat([F.pad(x[:, c:c + 1].float(), (p, p, p, p), value=float(b[c]))
                        for c in range(x.shape[1])], 1)
        outs = []
        for o in range(self.out_channels):
            members = np.flatnonzero(self.channel_sets[o])
            parts = []
            for c in members:
                S = torch.as_tensor(self.selems[o, c], dtype=torch.float32)[None, None]
                count = F.conv2d(xp[:, c:c + 1], S)
                need = 1.0 if self.operations[o][c] == "dilation" else float(S.sum())
                parts.append((count >= need) ^ bool(self.complements[o, c]))
            hits = torch.stack(parts).sum(0)
            need = 1 if self.combiners[o] == "union" else len(members)
            outs.append((hits >= need).float())
        return torch.cat(outs, 1)


class MorphologicalNet(nn.Module):
    """A binarized BiMoNN: a chain of :class:`MorphologicalLayer`; ``forward`` takes and
    returns binary float images ``(N, C, H, W)``."""

    def __init__(self, layers: list[MorphologicalLayer]):
        super().__init__()
        if not layers:
            raise ConfigError("a MorphologicalNet needs at least one layer")
        for a, b in zip(layers[:-1], layers[1:]):
            if a.out_channels != b.in_channels:
                raise ConfigError(f"a layer with {a.out_channels} outputs cannot feed one with {b.in_channels} inputs")
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer, outside in zip(self.layers, self.outside()):
            x = layer(x, outside)
        return x

    def outside(self) -> list[np.ndarray]:
        """Each layer's input values (0/1 per channel) far from the image: 0 for the input image
        (background), then each layer applied to the constants before it."""
        values = [np.zeros(self.in_channels, bool)]
        for layer in self.layers[:-1]:
            values.append(layer.outside(values[-1]))
        return values

    @property
    def in_channels(self) -> int:
        return self.layers[0].in_channels

    def describe(self) -> list[str]:
        """One line per output of each layer: its operations, set sizes and combiner."""
        lines = []
        for i, layer in enumerate(self.layers):
            for o in range(layer.out_channels):
                parts = [("not " if layer.complements[o, c] else "") +
                         f"{layer.operations[o][c]}(|S|={int(layer.selems[o, c].sum())})"
                         for c in np.flatnonzero(layer.channel_sets[o])]
                lines.append(f"layer {i} out {o}: {layer.combiners[o]} of " + ", ".join(parts))
        return lines

