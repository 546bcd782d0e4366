"""Energy per inference, estimated from op counts and memory traffic priced per operation.

:func:`estimate_energy` prices the rows of a :class:`~onebit.model_summary.Summary`
(``onebit.summary(model, shape, energy=True)`` calls it, for the model and for its float
twin) with an :class:`EnergyTable` of per-operation energies. The default table is
Horowitz's 45 nm, 0.9 V figures:

    M. Horowitz, "1.1 Computing's energy problem (and what we can do about it)",
    2014 IEEE International Solid-State Circuits Conference (ISSCC), Digest of Technical
    Papers, pp. 10-14, doi:10.1109/ISSCC.2014.6757323 (the table "Rough energy costs for
    various operations in 45nm 0.9V").

- ``fp32_add`` 0.9 pJ, ``fp32_mult`` 3.7 pJ: 32-bit float add and multiply (Horowitz).
- ``int8_add`` 0.03 pJ, ``int32_add`` 0.1 pJ, ``int32_mult`` 3.1 pJ: integer add and
  multiply (Horowitz; ``int8_add`` and ``int32_mult`` are listed, the method does not use them).
- ``xor64`` 0.1 pJ: a 64-bit XNOR, derived: priced as one 32-bit add.
- ``popcount64`` 0.375 pJ: a 64-bit popcount, derived: 120 adder bit-slices = 120/32 of
  the 32-bit add.
- ``sram_8kb`` 10 pJ, ``sram_32kb`` 20 pJ, ``sram_1mb`` 100 pJ: one 64-bit access to an
  SRAM of that size (Horowitz's "cache (64 bit)" rows).
- ``dram`` 1300 pJ: one 64-bit DRAM access (Horowitz: 1.3-2.6 nJ; the low end).

The two derived figures. Horowitz lists no logic op; a 64-bit XOR is 64 XOR gates, and
a 32-bit ripple-carry add is 32 full adders of two XOR gates plus carry logic each, so
pricing the XOR as one 32-bit add is an upper bound. A 64-bit popcount is a tree of
adders: 32 one-bit, 16 two-bit, 8 three-bit, 4 four-bit, 2 five-bit and 1 six-bit adds,
``32·1 + 16·2 + 8·3 + 4·4 + 2·5 + 1·6 = 120`` adder bit-slices, against 32 in a 32-bit
add: ``popcount64 = 120/32 · 0.1 pJ = 0.375 pJ``. DRAM takes Horowitz's low end, the
choice least favourable to a binary model (it moves fewer bytes).

Method (per layer, for the batch the summary ran; ``per inference`` divides by it)

- Binary layer (1-bit input and weights), packed as the engine packs it (channels in
  64-bit words, per kernel position): ``words = dot products · positions ·
  ceil((in/groups)/64)``; each word costs one XNOR, one popcount and one 32-bit
  accumulate: ``words · (xor64 + popcount64 + int32_add)``.
- Float MACs with ±1 weights (the float first layer of a BNN, float input): a sign
  selects add or subtract, so each MAC is one float add (the engine's float × binary
  kernel adds, it does not multiply): ``macs · fp32_add``. Other float MACs (float or
  k-bit weights): ``macs · (fp32_mult + fp32_add)``.
- Memory traffic, compulsory: the layer reads its stored tensors once (packed bytes;
  float twin: float32 bytes), reads its input once and writes its output once.
  Activations are counted at the layers that compute on them (layers with weights, and
  shape-changing ones such as pooling; BatchNorm, activations, flatten are fused): packed
  1-bit along channels in 64-bit words (``positions · ceil(C/64) · 8`` bytes) where the
  engine writes bits (:func:`packed_outputs`: module calls alone lead to a layer with
  1-bit input, so BatchNorm and sign fold into thresholds), float32 otherwise (a residual
  stream, the logits; always in the float twin). A layer with 1-bit input reads bits.
  The traffic goes to SRAM when the layer's working set (stored tensors + input +
  output) fits ``cache_kb``, else all of it to DRAM; it is priced per 64-bit access
  (``ceil(bytes/8)``) at the SRAM entry of the smallest listed size holding the cache
  (8 KB, 32 KB, else 1 MB) or at ``dram``.
- Float twin: the same rows with every layer float: all MACs priced as float MACs,
  stored tensors as float32, activations as float32.

Limits: the op counts are of the arithmetic only (no instruction fetch, control or
register-file energy, which Horowitz shows dominate on a general-purpose CPU); BatchNorm,
thresholds, pooling, activations and residual adds cost no compute, and the adds' reads
of the shortcut are not counted; a layer whose working set exceeds the cache is priced
wholly at DRAM, with no tiling. See ``docs/energy.md``.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from onebit.errors import ConfigError

__all__ = [
    "DEFAULT_CACHE_KB",
    "DEFAULT_TABLE",
    "ENERGY_KEYS",
    "EnergyEstimate",
    "EnergyTable",
    "LayerEnergy",
    "estimate_energy",
    "estimate_file",
    "format_pj",
    "load_table",
    "packed_outputs",
    "resolve_table",
    "table_from_dict",
]

WORD_BITS = 64
WORD_BYTES = 8
FLOAT_BYTES = 4
DEFAULT_CACHE_KB = 1024
HOROWITZ_2014 = (
    'M. Horowitz, "Computing\'s energy problem (and what we can do about it)", ISSCC 2014, '
    "pp. 10-14, doi:10.1109/ISSCC.2014.6757323 (45 nm, 0.9 V); xor64 and popcount64 derived "
    "from its 32-bit add (docs/energy.md)"
)


@dataclass(frozen=True)
class EnergyTable:
    """Energy per operation in picojoules; memory entries are per 64-bit access."""

    fp32_add: float
    fp32_mult: float
    int8_add: float
    int32_add: float
    int32_mult: float
    xor64: float
    popcount64: float
    sram_8kb: float
    sram_32kb: float
    sram_1mb: float
    dram: float
    source: str = ""

    @property
    def binary_word(self) -> float:
        """pJ per 64-bit word of a binary dot product: XNOR + popcount + accumulate."""
        return self.xor64 + self.popcount64 + self.int32_add

    @property
    def float_mac(self) -> float:
        """pJ per float32 multiply-accumulate."""
        return self.fp32_mult + self.fp32_add

    def sram(self, cache_bytes: int) -> float:
        """pJ per 64-bit access to an SRAM of ``cache_bytes``: the smallest listed size that holds it."""
        if cache_bytes <= 8 << 10:
            return self.sram_8kb
        if cache_bytes <= 32 << 10:
            return self.sram_32kb
        return self.sram_1mb

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


ENERGY_KEYS = tuple(f.name for f in fields(EnergyTable) if f.name != "source")

DEFAULT_TABLE = EnergyTable(
    fp32_add=0.9, fp32_mult=3.7, int8_add=0.03, int32_add=0.1, int32_mult=3.1,
    xor64=0.1, popcount64=120 / 32 * 0.1,
    sram_8kb=10.0, sram_32kb=20.0, sram_1mb=100.0, dram=1300.0,
    source=HOROWITZ_2014,
)


def load_table(path: str | os.PathLike) -> EnergyTable:
    """Read a table of per-operation energies (pJ) from a JSON object.

    The object holds every key of :data:`DEFAULT_TABLE` (``fp32_add`` ... ``dram``) as a
    non-negative number, and optionally ``"source"`` (a string saying where the numbers
    come from). A missing or unknown key, a value that is not a number, or a file that is
    not JSON raises :class:`~onebit.errors.ConfigError` naming it.
    """
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigError(f"energy table {p}: cannot read it ({exc.strerror or exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"energy table {p}: not JSON ({exc.msg} at line {exc.lineno})") from None
    return table_from_dict(data, where=f"energy table {p}")


def table_from_dict(data: Any, *, where: str = "energy table") -> EnergyTable:
    """An :class:`EnergyTable` from a mapping, checked as :func:`load_table` says."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a JSON object of pJ per operation, got {type(data).__name__}")
    valid = (*ENERGY_KEYS, "source")
    unknown = sorted(k for k in data if k not in valid)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; valid keys: {', '.join(valid)}")
    missing = [k for k in ENERGY_KEYS if k not in data]
    if missing:
        raise ConfigError(f"{where}: missing key(s) {', '.join(map(repr, missing))}; every one of "
                          f"{', '.join(ENERGY_KEYS)} is needed (pJ per operation, memory per 64-bit access)")
    values: dict[str, Any] = {}
    for k in ENERGY_KEYS:
        v = data[k]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise ConfigError(f"{where}: {k!r} must be a non-negative number of picojoules, got {v!r}")
        values[k] = float(v)
    source = data.get("source", "")
    if not isinstance(source, str):
        raise ConfigError(f"{where}: 'source' must be a string, got {type(source).__name__}")
    return EnergyTable(**values, source=source)


def resolve_table(table: EnergyTable | str | os.PathLike | None) -> EnergyTable:
    """``None``: the default table; a path: :func:`load_table`; an :class:`EnergyTable`: itself."""
    if table is None:
        return DEFAULT_TABLE
    if isinstance(table, EnergyTable):
        return table
    if isinstance(table, (str, os.PathLike)):
        return load_table(table)
    raise ConfigError(f"energy table must be an EnergyTable or the path of a JSON file, got {type(table).__name__}")


# --------------------------------------------------------------------------- estimate


@dataclass
class LayerEnergy:
    """One summary row priced: op counts, bytes moved and picojoules (for the batch)."""

    name: str
    binary_words: int
    float_macs: int
    float_adds: int
    weight_bytes: int
    activation_bytes: int
    sram_bytes: int
    dram_bytes: int
    compute_pj: float
    memory_pj: float

    @property
    def total_pj(self) -> float:
        return self.compute_pj + self.memory_pj

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "total_pj": self.total_pj}


@dataclass
class EnergyEstimate:
    """Per-layer energy of one model (or of its float twin) and the totals."""

    rows: list[LayerEnergy]
    batch_size: int
    cache_kb: int
    float_twin: bool
    table: EnergyTable = field(default_factory=lambda: DEFAULT_TABLE)

    @property
    def compute_pj(self) -> float:
        return sum(r.compute_pj for r in self.rows)

    @property
    def memory_pj(self) -> float:
        return sum(r.memory_pj for r in self.rows)

    @property
    def total_pj(self) -> float:
        """For the whole batch."""
        return self.compute_pj + self.memory_pj

    @property
    def per_inference_pj(self) -> float:
        return self.total_pj / self.batch_size

    @property
    def sram_bytes(self) -> int:
        return sum(r.sram_bytes for r in self.rows)

    @property
    def dram_bytes(self) -> int:
        return sum(r.dram_bytes for r in self.rows)

    def by_name(self) -> dict[str, LayerEnergy]:
        return {r.name: r for r in self.rows}

    def to_dict(self) -> dict[str, Any]:
        return {
            "float_twin": self.float_twin, "batch_size": self.batch_size, "cache_kb": self.cache_kb,
            "rows": [r.to_dict() for r in self.rows],
            "totals": {"compute_pj": self.compute_pj, "memory_pj": self.memory_pj, "total_pj": self.total_pj,
                       "per_inference_pj": self.per_inference_pj, "sram_bytes": self.sram_bytes,
                       "dram_bytes": self.dram_bytes},
            "table": self.table.to_dict(),
        }

    def line(self) -> str:
        """One line: per inference, compute and memory parts, bytes by level."""
        b = self.batch_size
        return (f"{format_pj(self.per_inference_pj)} per inference = compute {format_pj(self.compute_pj / b)} + "
                f"memory {format_pj(self.memory_pj / b)} (SRAM {self.sram_bytes / b:,.0f} B, "
                f"DRAM {self.dram_bytes / b:,.0f} B)")


def format_pj(pj: float) -> str:
    """``1234.5`` → ``'1.23 nJ'``: picojoules in the unit that keeps 1-3 integer digits."""
    for unit, scale in (("J", 1e12), ("mJ", 1e9), ("µJ", 1e6), ("nJ", 1e3)):
        if abs(pj) >= scale:
            return f"{pj / scale:.3g} {unit}"
    return f"{pj:.3g} pJ"


def _packed_activation_bytes(shape: tuple[int, ...], channel_axis: int) -> int:
    """Bytes of a ±1 tensor packed along ``channel_axis`` into 64-bit words."""
    channels = shape[channel_axis]
    positions = math.prod(shape) // channels
    return positions * math.ceil(channels / WORD_BITS) * WORD_BYTES


def _activation_bytes(shape: Any, packed: bool, linear: bool) -> int:
    if not isinstance(shape, tuple) or not shape or not all(isinstance(s, int) for s in shape):
        return 0  # several outputs (a tuple of shapes) or none: not priced
    if not packed:
        return FLOAT_BYTES * math.prod(shape)
    return _packed_activation_bytes(shape, -1 if linear or len(shape) == 2 else 1)


def packed_outputs(model: Any, x: Any) -> frozenset[str]:
    """Names of the modules whose output the engine writes as packed bits: a layer with weights
    (or a pooling layer) from which a chain of module calls alone (BatchNorm, activations,
    pooling, flatten: no residual add, no concat) reaches a layer with 1-bit input.

    Runs ``model(x)`` under ``torch.no_grad()`` with a hook on every module that records,
    for each output tensor, the innermost module that made it and that module's input, then
    walks back from the input of every layer with 1-bit input. An output that a functional
    op (a residual add, a concat) produced has no producing module: the chain stops there,
    and the layer before it writes float32 (the residual stream).
    """
    import torch
    from torch.nn.modules.conv import _ConvNd

    from onebit.nn.layers import QuantLayer

    def has_weights(m: Any) -> bool:
        return isinstance(m, (QuantLayer, torch.nn.Linear, _ConvNd))

    producer: dict[int, tuple[str, Any, Any]] = {}  # id(output) -> (name, module, input)
    first_input: dict[str, Any] = {}
    alive: list[Any] = []  # keep every tensor alive so that ids are not reused
    names = {id(m): n for n, m in model.named_modules()}

    def hook(module: Any, args: Any, output: Any) -> None:
        inp = args[0] if args and isinstance(args[0], torch.Tensor) else None
        name = names[id(module)]
        if has_weights(module) and name not in first_input:
            first_input[name] = inp
        if isinstance(output, torch.Tensor) and id(output) not in producer:  # innermost module first
            producer[id(output)] = (name, module, inp)
        alive.extend(t for t in (inp, output) if isinstance(t, torch.Tensor))

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    modes = {id(m): m.training for m in model.modules()}
    try:
        model.eval()
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
        for m in model.modules():
            m.training = modes.get(id(m), m.training)

    packed: set[str] = set()
    for name, module in model.named_modules():
        if name not in first_input or not has_weights(module) or int(getattr(module, "input_bits", 32)) != 1:
            continue
        t = first_input[name]
        while t is not None and id(t) in producer:
            src, m, t = producer[id(t)]
            src = src or "(model)"
            if has_weights(m):
                packed.add(src)
                break
            packed.add(src)  # a pass-through module on the chain (pooling works on packed words)
    return frozenset(packed)


def _changes_size(row: Any) -> bool:
    """A row without weights whose output holds a different number of elements than its
    input (pooling, upsampling): it reads and writes its activations. Elementwise rows
    (BatchNorm, activations) and reshapes (flatten) keep the count: fused, not counted."""
    a, b = row.input_shape, row.output_shape
    flat = lambda s: isinstance(s, tuple) and all(isinstance(v, int) for v in s)
    return flat(a) and flat(b) and math.prod(a) != math.prod(b)


def estimate_energy(
    summary: Any, *, table: EnergyTable | str | os.PathLike | None = None, cache_kb: int = DEFAULT_CACHE_KB,
    float_twin: bool = False, packed: frozenset[str] | None = None,
) -> EnergyEstimate:
    """Price the rows of ``summary`` (a :class:`~onebit.model_summary.Summary`); see the module docstring.

    ``float_twin=True`` prices the same architecture with float weights and activations.
    ``cache_kb`` is the on-chip SRAM a layer's working set must fit to stay off DRAM.
    ``packed``: the rows whose output is written as packed bits (:func:`packed_outputs`,
    which ``onebit.summary`` passes); ``None``: every row whose next layer with weights, in
    call order, takes a 1-bit input (right for a plain chain, not for a residual stream).
    """
    if isinstance(cache_kb, bool) or not isinstance(cache_kb, int) or cache_kb < 1:
        raise ConfigError(f"cache_kb must be a positive int (KiB of on-chip SRAM), got {cache_kb!r}")
    prices = resolve_table(table)
    cache = cache_kb << 10
    sram = prices.sram(cache)
    rows = list(summary.rows)
    called = [r for r in rows if r.output_shape is not None]

    def writes_packed(row: Any) -> bool:
        """``row``'s output is written as packed bits (see ``packed``)."""
        if float_twin:
            return False
        if packed is not None:
            return row.name in packed
        later = called[called.index(row) + 1:]
        nxt = next((r for r in later if r.has_weights), None)
        return nxt is not None and nxt.input_bits == 1

    out: list[LayerEnergy] = []
    for row in rows:
        stored = row.float32_bytes if float_twin else row.packed_bytes
        words = macs = adds = act = 0
        if row.output_shape is not None and row.has_weights:
            linear = row.kind.endswith("Linear")
            if float_twin:
                macs = row.binary_macs + row.float_macs
            else:
                words, macs = row.binary_words, row.float_macs
                if row.weight_bits == 1:
                    adds, macs = macs, 0
            reads_packed = not float_twin and row.input_bits == 1
            act = row.calls * (_activation_bytes(row.input_shape, reads_packed, linear)
                               + _activation_bytes(row.output_shape, writes_packed(row), linear))
        elif row.output_shape is not None and _changes_size(row):
            bits = writes_packed(row)
            act = row.calls * (_activation_bytes(row.input_shape, bits, False)
                               + _activation_bytes(row.output_shape, bits, False))
        moved = stored + act
        in_dram = moved > cache
        accesses = math.ceil(moved / WORD_BYTES)
        compute = words * prices.binary_word + macs * prices.float_mac + adds * prices.fp32_add
        out.append(LayerEnergy(
            name=row.name, binary_words=words, float_macs=macs, float_adds=adds, weight_bytes=stored,
            activation_bytes=act,
            sram_bytes=0 if in_dram else moved, dram_bytes=moved if in_dram else 0,
            compute_pj=compute, memory_pj=accesses * (prices.dram if in_dram else sram),
        ))
    return EnergyEstimate(rows=out, batch_size=summary.batch_size, cache_kb=cache_kb, float_twin=float_twin,
                          table=prices)


def estimate_file(
    path: str | os.PathLike, *, batch_size: int = 1, table: EnergyTable | str | os.PathLike | None = None,
    cache_kb: int = DEFAULT_CACHE_KB,
) -> Any:
    """The :class:`~onebit.model_summary.Summary`, with energy, of the architecture a ``.onebit``
    file records (its registry name and arguments, rebuilt in PyTorch at the file's input shape)."""
    from onebit.model_summary import summary
    from onebit.models import create_model
    from onebit.runtime import load

    model_file = load(path)
    source = (model_file.graph.get("source") or {}).get("model")
    if not isinstance(source, dict) or "name" not in source:
        raise ConfigError(f"{path} records no registered model architecture, so there is nothing to estimate; "
                          "call onebit.summary(model, input_shape, energy=True) on the PyTorch model instead")
    model = create_model(source["name"], **dict(source.get("args", {})))
    result = summary(model, model_file.in_shape, batch_size=batch_size, energy=table or True, cache_kb=cache_kb)
    result.model_name = source["name"]
    return result
