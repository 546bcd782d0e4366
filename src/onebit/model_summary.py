"""``summary``: per-layer bit-widths, memory and multiply-accumulate counts of a model.

``summary(model, input_shape, batch_size=1)`` runs one forward pass on zeros of shape
``(batch_size, *input_shape)`` under ``torch.no_grad()`` in eval mode (so BatchNorm
running statistics are not touched; every module's own training flag is restored
afterwards), with hooks that record each module's output shape, and returns a
:class:`Summary`: one :class:`LayerRow` per layer plus totals. ``print(summary)``
renders a table; ``summary.to_dict()`` is JSON-serializable.

Definitions
-----------

Rows
    One row per module that has parameters or buffers of its own, or that is a leaf
    changing the shape of its input (pooling, flatten, ...). A quantized layer
    (:class:`~onebit.nn.layers.QuantLayer`) is one row: its quantizer children are
    folded into it, and their parameters (e.g. an ``RSign`` used as
    ``input_quantizer``) count as the layer's float parameters. A standalone ``RSign``
    or ``RPReLU`` is a row of its own, its parameters float. Parameter-free leaves that
    keep the shape (activations, dropout, standalone parameter-free quantizers) are not
    rows. A module called several times is *one* row (at its first call): its
    parameters count once, its MACs are summed over the calls, ``calls`` says how many
    and the output shape is the first call's. A module with parameters that the
    forward never calls is still a row (output shape ``None``), so ``total_params``
    covers every parameter of the model. A parameter shared by several modules counts
    once, in the first row that holds it.

Parameters
    ``binary_params``: the weights of layers whose weight bit-width is 1.
    ``low_bit_params``: the weights of layers quantized to 2..16 bits (ternary,
    k-bit DoReFa). ``float_params``: everything else — float weights, biases, learned
    scales, quantizer parameters, RSign/RPReLU parameters and floating-point buffers.
    BatchNorm counts as 4 vectors per channel (γ, β, running mean, running variance),
    the Keras convention used by published parameter counts; integer buffers
    (``num_batches_tracked``) and non-persistent buffers are not counted.
    ``total_params = binary_params + low_bit_params + float_params``.

MACs (for the batch given: ``batch_size`` × the per-sample count)
    Linear: ``in_features · out_features`` per output row. ConvNd:
    ``output elements · (in_channels / groups) · prod(kernel_size)``; transposed
    convolutions: ``input elements · (out_channels / groups) · prod(kernel_size)``.
    A layer's MACs are *binary* when the layer ``is_binary`` (both input and weight
    1-bit); otherwise they are *float* — this includes a layer with binary weights and
    a float input (the usual first layer) and a layer with ternary or k-bit weights.
    BatchNorm, pooling, activations, RSign/RPReLU: not counted (0 MACs).

Packed bytes (what the exported ``.onebit`` file holds for a row's tensors)
    1-bit weights are packed along the input-channel axis into 64-bit words, per output
    channel and per kernel position (activations are packed along channels, NHWC):
    Linear ``out · ceil(in/64) · 8``; ConvNd ``out · prod(kernel) · ceil((in/groups)/64)
    · 8``. A weight quantizer with ``scaled=True`` (``magnitude_aware_sign``,
    ``xnor_sign``) adds ``out · 4`` bytes for α. k-bit weights (ternary: k = 2, DoReFa:
    k = ``k_bit``) are stored as k bit-planes, k times the 1-bit size. Float weights
    and every other counted parameter: 4 bytes each. :func:`packed_weight_bytes` is
    the weight part, shared with the exporter. Note that depthwise or narrow layers
    (``in/groups`` far below 64) pad every kernel position to a whole word and can take
    *more* bytes packed than in float32.

Float32 bytes
    4 bytes × every counted parameter (BatchNorm as 4 vectors); α is derived, not
    counted. ``compression = float32_bytes / packed_bytes``.

Energy (``summary(..., energy=True)``)
    Each row also records its first call's ``input_shape`` and, for a binary layer, its
    ``binary_words``: the 64-bit words of its dot products as the engine packs them
    (``dot products · kernel positions · ceil((in/groups)/64)``). :mod:`onebit.energy`
    prices the rows for the model and its float twin (``Summary.energy``,
    ``Summary.float_energy``); the table gains two columns, nJ per inference.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.modules.conv import _ConvNd, _ConvTransposeNd

from onebit.energy import (
    DEFAULT_CACHE_KB,
    EnergyEstimate,
    EnergyTable,
    estimate_energy,
    packed_outputs,
)
from onebit.errors import ConfigError
from onebit.nn.layers import QuantLayer

__all__ = ["LayerRow", "Summary", "packed_weight_bytes", "summary"]

FLOAT_BITS = 32
WORD_BITS = 64
WORD_BYTES = 8
FLOAT_BYTES = 4

_SHAPE_MODULES = (
    nn.modules.pooling._MaxPoolNd,
    nn.modules.pooling._AvgPoolNd,
    nn.modules.pooling._AdaptiveMaxPoolNd,
    nn.modules.pooling._AdaptiveAvgPoolNd,
    nn.modules.pooling._LPPoolNd,
    nn.Flatten,
    nn.Unflatten,
)


# --------------------------------------------------------------------------- sizes


def _is_weight_layer(module: nn.Module) -> bool:
    """Layers whose weight multiplies the input (the ones with MACs and bit-widths)."""
    return isinstance(module, (QuantLayer, nn.Linear, _ConvNd))


def _weight_bits(module: nn.Module) -> int:
    return int(getattr(module, "weight_bits", FLOAT_BITS))


def _input_bits(module: nn.Module) -> int:
    return int(getattr(module, "input_bits", FLOAT_BITS))


def packed_weight_bytes(layer: nn.Module) -> int:
    """Bytes the exported file holds for ``layer.weight`` (and its α, if scaled).

    Float weights (no weight quantizer): 4 bytes per element. A k-bit weight of shape
    ``(out, in/groups, *kernel)`` (``(out, in)`` for Linear): k bit-planes of
    ``out · prod(kernel) · ceil((in/groups) / 64)`` 64-bit words, plus ``out · 4`` bytes
    for α when the weight quantizer is ``scaled``. See the module docstring.
    """
    weight = getattr(layer, "weight", None)
    if not isinstance(weight, Tensor):
        raise ConfigError(f"{type(layer).__name__} has no weight tensor to size")
    bits = _weight_bits(layer)
    if bits >= FLOAT_BITS:
        return FLOAT_BYTES * weight.numel()
    if weight.dim() < 2 or isinstance(layer, _ConvTransposeNd):
        raise ConfigError(
            f"cannot pack the {bits}-bit weight of {type(layer).__name__} with shape "
            f"{tuple(weight.shape)}: expected (out, in[, *kernel])"
        )
    out, fan_in = int(weight.shape[0]), int(weight.shape[1])
    positions = math.prod(int(k) for k in weight.shape[2:])
    size = bits * out * positions * math.ceil(fan_in / WORD_BITS) * WORD_BYTES
    quantizer = getattr(layer, "weight_quantizer", None)
    if quantizer is not None and getattr(quantizer, "scaled", False):
        size += out * FLOAT_BYTES
    return size


def _call_words(module: nn.Module, macs: int, out: Tensor | None) -> int:
    """64-bit words of one call's binary dot products, packed as the engine packs them
    (channels in 64-bit words, per kernel position): ``dot products · positions ·
    ceil((in/groups)/64)``; Linear ``out elements · ceil(in/64)``. Transposed convs:
    ``ceil(macs/64)``."""
    if out is None or macs == 0:
        return 0
    if isinstance(module, nn.Linear):
        return out.numel() * math.ceil(module.in_features / WORD_BITS)
    if isinstance(module, _ConvNd) and not isinstance(module, _ConvTransposeNd):
        fan_in = module.in_channels // module.groups
        return out.numel() * math.prod(module.kernel_size) * math.ceil(fan_in / WORD_BITS)
    return math.ceil(macs / WORD_BITS)


def _call_macs(module: nn.Module, in_numel: int, out: Tensor | None) -> int:
    """MACs of one call, for the whole batch (0 for layers that are not Linear/ConvNd)."""
    if out is None:
        return 0
    if isinstance(module, nn.Linear):
        return out.numel() * module.in_features
    if isinstance(module, _ConvTransposeNd):
        return in_numel * (module.out_channels // module.groups) * math.prod(module.kernel_size)
    if isinstance(module, _ConvNd):
        return out.numel() * (module.in_channels // module.groups) * math.prod(module.kernel_size)
    return 0


# --------------------------------------------------------------------------- rows


@dataclass
class LayerRow:
    """One layer of a :class:`Summary`; byte and MAC counts are for the batch given."""

    name: str
    kind: str
    output_shape: tuple[int, ...] | None
    weight_bits: int | None
    input_bits: int | None
    binary_params: int
    low_bit_params: int
    float_params: int
    packed_bytes: int
    float32_bytes: int
    binary_macs: int
    float_macs: int
    calls: int = 1
    float_reason: str | None = None
    input_shape: tuple[int, ...] | None = None
    binary_words: int = 0

    @property
    def params(self) -> int:
        return self.binary_params + self.low_bit_params + self.float_params

    @property
    def has_weights(self) -> bool:
        return self.weight_bits is not None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["output_shape"] = None if self.output_shape is None else list(self.output_shape)
        d["input_shape"] = None if self.input_shape is None else list(self.input_shape)
        d["params"] = self.params
        return d


def _float_reason(module: nn.Module) -> str:
    wb, ib = _weight_bits(module), _input_bits(module)
    if not isinstance(module, QuantLayer):
        return "not quantized"
    if wb == FLOAT_BITS and ib == FLOAT_BITS:
        return "float input and weights"
    parts = []
    if ib != 1:
        parts.append("float input" if ib == FLOAT_BITS else f"{ib}-bit input")
    if wb != 1:
        parts.append("float weights" if wb == FLOAT_BITS else f"{wb}-bit weights")
    return ", ".join(parts)


def _own_tensors(module: nn.Module) -> list[tuple[str, Tensor]]:
    """The parameters and counted buffers a row holds: its own, or the whole subtree
    for a quantized layer (its quantizers fold into it)."""
    recurse = isinstance(module, QuantLayer)
    out: list[tuple[str, Tensor]] = [(n, p) for n, p in module.named_parameters(recurse=recurse)]
    for owner_name, owner in module.named_modules() if recurse else [("", module)]:
        skip = owner._non_persistent_buffers_set
        for n, b in owner.named_buffers(recurse=False):
            if b is not None and n not in skip and b.is_floating_point():
                out.append((f"{owner_name}.{n}" if owner_name else n, b))
    return out


@dataclass
class _Calls:
    count: int = 0
    first_in: tuple[int, ...] | None = None
    first_out: Any = None
    in_numel: int = 0
    macs: int = 0
    words: int = 0


# --------------------------------------------------------------------------- Summary


def _fmt_int(n: int) -> str:
    return f"{n:,}"


def _fmt_bytes(n: int) -> str:
    for unit, size in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n:,} B ({n / size:.1f} {unit})"
    return f"{n:,} B"


def _fmt_shape(shape: Any) -> str:
    if shape is None:
        return "(not called)"
    if isinstance(shape, tuple) and all(isinstance(s, int) for s in shape):
        return "(" + ", ".join(str(s) for s in shape) + ")"
    return str(shape)


@dataclass
class Summary:
    """Per-layer rows and totals; see the module docstring for the definitions."""

    rows: list[LayerRow]
    input_shape: tuple[int, ...] = ()
    batch_size: int = 1
    model_name: str = field(default="")
    energy: EnergyEstimate | None = None  # summary(..., energy=...): this model, priced
    float_energy: EnergyEstimate | None = None  # and its float twin

    # totals -------------------------------------------------------------------
    @property
    def binary_params(self) -> int:
        return sum(r.binary_params for r in self.rows)

    @property
    def low_bit_params(self) -> int:
        return sum(r.low_bit_params for r in self.rows)

    @property
    def float_params(self) -> int:
        return sum(r.float_params for r in self.rows)

    @property
    def total_params(self) -> int:
        return sum(r.params for r in self.rows)

    @property
    def packed_bytes(self) -> int:
        return sum(r.packed_bytes for r in self.rows)

    @property
    def float32_bytes(self) -> int:
        return sum(r.float32_bytes for r in self.rows)

    @property
    def compression(self) -> float:
        """float32_bytes / packed_bytes (1.0 for a model with nothing to store)."""
        return self.float32_bytes / self.packed_bytes if self.packed_bytes else 1.0

    @property
    def binary_macs(self) -> int:
        return sum(r.binary_macs for r in self.rows)

    @property
    def float_macs(self) -> int:
        return sum(r.float_macs for r in self.rows)

    @property
    def total_macs(self) -> int:
        return self.binary_macs + self.float_macs

    @property
    def binary_mac_fraction(self) -> float:
        """binary_macs / all MACs (0.0 for a model with no MACs)."""
        total = self.total_macs
        return self.binary_macs / total if total else 0.0

    @property
    def float_layers(self) -> list[LayerRow]:
        """Rows of layers with weights that do not run binary (float MACs)."""
        return [r for r in self.rows if r.float_reason is not None]

    # output -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Rows and totals as plain JSON-serializable values."""
        return {
            "model": self.model_name,
            "input_shape": list(self.input_shape),
            "batch_size": self.batch_size,
            "rows": [r.to_dict() for r in self.rows],
            "totals": {
                "binary_params": self.binary_params,
                "low_bit_params": self.low_bit_params,
                "float_params": self.float_params,
                "total_params": self.total_params,
                "packed_bytes": self.packed_bytes,
                "float32_bytes": self.float32_bytes,
                "compression": self.compression,
                "binary_macs": self.binary_macs,
                "float_macs": self.float_macs,
                "total_macs": self.total_macs,
                "binary_mac_fraction": self.binary_mac_fraction,
            },
            "float_layers": {r.name: r.float_reason for r in self.float_layers},
            **({"energy": self.energy.to_dict(), "float_twin_energy": self.float_energy.to_dict(),
                "energy_ratio": self.energy_ratio} if self.energy and self.float_energy else {}),
        }

    @property
    def energy_ratio(self) -> float | None:
        """Float twin's estimated energy / this model's (None without ``energy=``)."""
        if self.energy is None or self.float_energy is None or not self.energy.total_pj:
            return None
        return self.float_energy.total_pj / self.energy.total_pj

    def table(self) -> str:
        """The per-layer table and the totals block (what ``str()`` returns)."""
        header = (
            "#", "Module", "Kind", "Output shape", "Weight bits", "Input bits", "Params",
            "Packed bytes", "Float32 bytes", "Binary MACs", "Float MACs",
        )
        right = (True, False, False, False, True, True, True, True, True, True, True)
        priced = self.energy is not None and self.float_energy is not None

        def nj(estimate: EnergyEstimate, i: int) -> str:
            return f"{estimate.rows[i].total_pj / 1e3 / self.batch_size:,.1f}"

        if priced:
            header, right = (*header, "Energy nJ", "Float twin nJ"), (*right, True, True)
        body = []
        for number, r in enumerate(self.rows, start=1):
            name = r.name if r.calls == 1 else f"{r.name} (×{r.calls})"
            wbits = "-" if r.weight_bits is None else str(r.weight_bits)
            ibits = "-" if r.input_bits is None else str(r.input_bits)
            bmacs, fmacs = (_fmt_int(r.binary_macs), _fmt_int(r.float_macs)) if r.has_weights else ("-", "-")
            body.append((
                str(number), name, r.kind, _fmt_shape(r.output_shape), wbits, ibits, _fmt_int(r.params),
                _fmt_int(r.packed_bytes), _fmt_int(r.float32_bytes), bmacs, fmacs,
            ) + ((nj(self.energy, number - 1), nj(self.float_energy, number - 1)) if priced else ()))
        total_row = (
            "", "Total", "", "", "", "", _fmt_int(self.total_params), _fmt_int(self.packed_bytes),
            _fmt_int(self.float32_bytes), _fmt_int(self.binary_macs), _fmt_int(self.float_macs),
        ) + ((f"{self.energy.per_inference_pj / 1e3:,.1f}", f"{self.float_energy.per_inference_pj / 1e3:,.1f}")
             if priced else ())
        widths = [max(len(row[i]) for row in [header, total_row, *body]) for i in range(len(header))]

        def line(cells: tuple[str, ...]) -> str:
            return "  ".join(
                c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right)
            ).rstrip()

        rule = "-" * len(line(tuple("x" * w for w in widths)))
        title = (
            f"onebit summary: {self.model_name or 'model'}, "
            f"input {_fmt_shape(self.input_shape)}, batch {self.batch_size}"
        )
        out = [title, rule, line(header), rule, *(line(b) for b in body), rule, line(total_row), rule]

        params = (
            f"Params:  {_fmt_int(self.total_params)} = binary {_fmt_int(self.binary_params)}"
            + (f" + low-bit {_fmt_int(self.low_bit_params)}" if self.low_bit_params else "")
            + f" + float {_fmt_int(self.float_params)}"
        )
        memory = (
            f"Memory:  packed {_fmt_bytes(self.packed_bytes)} vs float32 "
            f"{_fmt_bytes(self.float32_bytes)}: {self.compression:.1f}× smaller\n"
            "         (parameters: 1-bit weights packed in 64-bit words, the rest float32, BatchNorm as 4 vectors;\n"
            "         an exported .onebit file folds BatchNorm into integer thresholds, so it differs)"
        )
        macs = (
            f"MACs:    {_fmt_int(self.total_macs)} = binary {_fmt_int(self.binary_macs)} + float "
            f"{_fmt_int(self.float_macs)} (binary {100 * self.binary_mac_fraction:.1f}%)"
        )
        floats = self.float_layers
        weighted = sum(r.has_weights for r in self.rows)
        if floats:
            number = {id(r): i for i, r in enumerate(self.rows, start=1)}
            listed = f"{len(floats)} of {weighted} layers with weights: " + "; ".join(
                f"#{number[id(r)]} (module {r.name}, {r.kind}): {r.float_reason}" for r in floats
            )
        else:
            listed = f"none (all {weighted} layers with weights are binary)"
        out += [params, memory, macs, f"Float layers: {listed}"]
        if priced:
            out += [
                f"Energy:  {self.energy.line()}",
                f"         float twin {self.float_energy.line()}: {self.energy_ratio:.1f}× this model's",
                (f"         (estimate: ops and compulsory memory traffic, on-chip SRAM {self.energy.cache_kb:,} KiB, "
                 "DRAM beyond it; docs/energy.md)"),
                f"         table: {self.energy.table.source or 'user table, no source given'}",
            ]
        return "\n".join(out)

    def __str__(self) -> str:
        return self.table()


# --------------------------------------------------------------------------- summary()


def _check_input_shape(input_shape: Any) -> tuple[int, ...]:
    ok = isinstance(input_shape, (tuple, list)) and len(input_shape) > 0 and all(
        isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in input_shape
    )
    if not ok:
        raise ConfigError(
            f"input_shape must be a non-empty tuple of positive ints without the batch axis, "
            f"e.g. (1, 28, 28), got {input_shape!r}"
        )
    return tuple(int(s) for s in input_shape)


def _shape_of(x: Any) -> Any:
    if isinstance(x, Tensor):
        return tuple(int(s) for s in x.shape)
    if isinstance(x, (tuple, list)):
        return tuple(_shape_of(v) for v in x)
    return None


def _first_tensor(x: Any) -> Tensor | None:
    if isinstance(x, Tensor):
        return x
    if isinstance(x, (tuple, list)):
        for v in x:
            t = _first_tensor(v)
            if t is not None:
                return t
    return None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _candidates(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Modules that can become rows: quantized layers (as units) and every module outside
    them that holds tensors of its own or is a leaf."""
    inside: set[int] = set()
    out = []
    for name, m in model.named_modules():
        if id(m) in inside:
            continue
        if isinstance(m, QuantLayer):
            inside.update(id(c) for c in m.modules() if c is not m)
        out.append((name, m))
    return out


def summary(
    model: nn.Module, input_shape: tuple[int, ...], *, batch_size: int = 1,
    energy: bool | EnergyTable | str | os.PathLike = False, cache_kb: int = DEFAULT_CACHE_KB,
) -> Summary:
    """Run one forward pass on zeros of shape ``(batch_size, *input_shape)`` and summarize.

    ``energy``: ``True`` (the default table), an :class:`~onebit.energy.EnergyTable` or the
    path of a JSON table also prices every row in picojoules, for the model and for its
    float twin (:func:`onebit.energy.estimate_energy`, with ``cache_kb`` of on-chip SRAM):
    ``Summary.energy``, ``Summary.float_energy`` and an energy column in the table.

    ``input_shape`` excludes the batch axis. The model runs in eval mode under
    ``torch.no_grad()``; each module's training flag is restored afterwards. Raises
    :class:`~onebit.errors.ConfigError` for a bad ``input_shape`` or ``batch_size`` and
    when the forward pass fails with that shape.
    """
    if not isinstance(model, nn.Module):
        raise ConfigError(f"summary expects a torch.nn.Module, got {type(model).__name__}")
    shape = _check_input_shape(input_shape)
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive int, got {batch_size!r}")

    ref = next((p for p in model.parameters() if p.is_floating_point()), None)
    if ref is None:
        ref = next((b for b in model.buffers() if b.is_floating_point()), None)
    device = ref.device if ref is not None else torch.device("cpu")
    dtype = ref.dtype if ref is not None else torch.float32

    candidates = _candidates(model)
    calls: dict[int, _Calls] = {id(m): _Calls() for _, m in candidates}
    order: list[int] = []
    handles = []

    def pre_hook(module: nn.Module, args: Any) -> None:
        rec = calls[id(module)]
        if rec.count == 0:
            order.append(id(module))
            rec.first_in = _shape_of(_first_tensor(args))
        rec.count += 1
        t = _first_tensor(args)
        rec.in_numel = 0 if t is None else t.numel()

    def post_hook(module: nn.Module, args: Any, output: Any) -> None:
        rec = calls[id(module)]
        if rec.count == 1 and rec.first_out is None:
            rec.first_out = _shape_of(output)
        macs = _call_macs(module, rec.in_numel, _first_tensor(output))
        rec.macs += macs
        rec.words += _call_words(module, macs, _first_tensor(output))

    modes = {id(m): m.training for m in model.modules()}
    try:
        for _, m in candidates:
            handles.append(m.register_forward_pre_hook(pre_hook))
            handles.append(m.register_forward_hook(post_hook))
        model.eval()
        x = torch.zeros((batch_size, *shape), dtype=dtype, device=device)
        with torch.no_grad():
            model(x)
    except Exception as exc:  # noqa: BLE001 - any forward failure becomes one clear error
        raise ConfigError(
            f"summary: the forward pass of {type(model).__name__} failed with input shape "
            f"{shape} (batch {batch_size}): {_one_line(exc)}"
        ) from None
    finally:
        for h in handles:
            h.remove()
        for m in model.modules():
            m.training = modes.get(id(m), m.training)

    # Rows in first-call order, then modules the forward never called.
    by_id = {id(m): (name, m) for name, m in candidates}
    ordered = [by_id[i] for i in order] + [(n, m) for n, m in candidates if calls[id(m)].count == 0]
    weight_ids = [id(m) for _, m in ordered if _is_weight_layer(m) and calls[id(m)].count]
    first_w, last_w = (weight_ids[0], weight_ids[-1]) if weight_ids else (None, None)

    seen: set[int] = set()
    rows: list[LayerRow] = []
    for name, m in ordered:
        rec = calls[id(m)]
        tensors = [(n, t) for n, t in _own_tensors(m) if id(t) not in seen]
        seen.update(id(t) for _, t in tensors)
        is_leaf = next(m.children(), None) is None or isinstance(m, QuantLayer)
        weighted = _is_weight_layer(m)
        reshapes = rec.count > 0 and (
            isinstance(m, _SHAPE_MODULES)
            or (is_leaf and rec.first_in is not None and rec.first_out != rec.first_in)
        )
        if not tensors and not weighted and not reshapes:
            continue

        binary = low = flt = packed = 0
        weight = getattr(m, "weight", None) if weighted else None
        wbits = _weight_bits(m) if weighted else None
        for n, t in tensors:
            count = t.numel()
            if weight is not None and t is weight:
                if wbits == 1:
                    binary += count
                elif wbits is not None and wbits < FLOAT_BITS:
                    low += count
                else:
                    flt += count
                packed += packed_weight_bytes(m)
            else:
                flt += count
                packed += FLOAT_BYTES * count
        params = binary + low + flt

        reason = None
        if weighted and not getattr(m, "is_binary", False):
            reason = _float_reason(m)
            if id(m) == first_w:
                reason = f"first layer: {reason}"
            elif id(m) == last_w:
                reason = f"last layer: {reason}"
        binary_layer = weighted and bool(getattr(m, "is_binary", False))
        rows.append(LayerRow(
            name=name or "(model)",
            kind=type(m).__name__,
            output_shape=rec.first_out,
            weight_bits=wbits,
            input_bits=_input_bits(m) if weighted else None,
            binary_params=binary,
            low_bit_params=low,
            float_params=flt,
            packed_bytes=packed,
            float32_bytes=FLOAT_BYTES * params,
            binary_macs=rec.macs if binary_layer else 0,
            float_macs=0 if binary_layer else rec.macs,
            calls=rec.count,
            float_reason=reason,
            input_shape=rec.first_in,
            binary_words=rec.words if binary_layer else 0,
        ))
    result = Summary(rows=rows, input_shape=shape, batch_size=batch_size, model_name=type(model).__name__)
    if energy is not False and energy is not None:
        table = None if energy is True else energy
        packed = packed_outputs(model, torch.zeros((batch_size, *shape), dtype=dtype, device=device))
        result.energy = estimate_energy(result, table=table, cache_kb=cache_kb, packed=packed)
        result.float_energy = estimate_energy(result, table=result.energy.table, cache_kb=cache_kb, float_twin=True)
    return result
