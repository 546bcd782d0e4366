"""Standalone C99 for microcontrollers from a ``.onebit`` file: ``model.h``, ``model.c``, ``main.c``.

:func:`to_c` reads the file with :mod:`onebit.runtime` (which checks every node and tensor;
no torch) and writes C that needs only the C standard library and allocates nothing:

- weights, thresholds and scales are ``const`` arrays (flash), binary weights packed in
  32-bit words (a Cortex-M's word; ``word_bits=64`` for 64-bit targets), bit 1 = −1,
  channels last, as the runtime packs them (``docs/deploy_c.md``);
- every intermediate value lives in one static activation arena; each value gets an
  offset there by liveness (a value's bytes are reused once its last reader has run:
  greedy placement by size, as TensorFlow Lite Micro plans its arena), so the arena is
  the peak of the live values, not their sum; the exporter prints both;
- binary layers are integer only: ``y = K − 2·popcount(x XOR w)`` per word, then the
  folded thresholds ``+1 iff flip·(y − threshold) ≥ 0`` (BatchNorm + sign, Rastegari
  et al. 2016 / FINN's MultiThreshold), a max-pool of packed bits an AND of words. The
  layers the model keeps in float (a first layer on pixels, a last layer's scale and
  bias, residual adds and RPReLU between binary convs) run in float32, one rounding per
  operation in the runtime's order (float convolutions and dense layers as its ``fmaf``
  chain), so the C output equals ``onebit.runtime``'s: integer parts bit-exact, float
  parts to the last bit where the runtime's own float kernel is the chain (convs; dense
  layers on float input may sum in another order there, within 1e-5 × max |output|).

Popcount: the compiler's builtin where the target has an instruction (x86 POPCNT,
AArch64), a branch-free SWAR count otherwise (Cortex-M has none), a 256-entry table with
``-DONEBIT_POPCOUNT_TABLE``.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from onebit.errors import ConfigError, ExportError

__all__ = ["CExport", "SUPPORTED_OPS", "to_c"]

SUPPORTED_OPS = ("to_nhwc", "flatten", "sign", "dense", "conv2d", "maxpool2d", "avgpool2d", "affine", "act", "add",
                 "concat", "sigmoid", "channel_mul")
_ACT = {"none": "OB_ACT_NONE", "relu": "OB_ACT_RELU", "hardtanh": "OB_ACT_HARDTANH"}
_KERNELS = Path(__file__).with_name("kernels.c.in")
_ALIGN = 8


@dataclass
class CExport:
    """What :func:`to_c` wrote: the files, the flash and RAM the model needs, its float layers."""

    out_dir: Path
    files: list[Path]
    word_bits: int
    const_bytes: int  # weights, thresholds, scales: the const arrays (flash, without code)
    arena_bytes: int  # the static activation arena (RAM), planned by liveness
    unplanned_bytes: int  # every intermediate value in its own buffer (what the arena saves)
    input_size: int  # floats
    output_size: int  # floats
    float32_bytes: int  # the same weights as float32 (one float per weight, threshold, scale)
    layers: list[tuple[str, str, str]] = field(default_factory=list)  # (name, op, kind)

    @property
    def float_layers(self) -> list[tuple[str, str, str]]:
        """The layers that compute in float32 (everything not binary and not a reshape)."""
        return [l for l in self.layers if l[2] not in ("binary", "reshape", "pack")]

    def to_dict(self) -> dict[str, Any]:
        return {"out_dir": str(self.out_dir), "files": [str(f) for f in self.files], "word_bits": self.word_bits,
                "const_bytes": self.const_bytes, "arena_bytes": self.arena_bytes,
                "unplanned_bytes": self.unplanned_bytes, "input_size": self.input_size,
                "output_size": self.output_size, "float32_bytes": self.float32_bytes,
                "layers": [{"name": n, "op": o, "kind": k} for n, o, k in self.layers]}

    def __str__(self) -> str:
        floats = ", ".join(f"{n} ({o}, {k})" for n, o, k in self.float_layers) or "none"
        return "\n".join([
            f"wrote {', '.join(f.name for f in self.files)} to {self.out_dir} ({self.word_bits}-bit words)",
            f"  flash: {self.const_bytes:,} bytes of const weights/thresholds/scales (+ code; float32 weights would "
            f"be {self.float32_bytes:,} bytes)",
            f"  RAM: activation arena {self.arena_bytes:,} bytes (planned by liveness; {self.unplanned_bytes:,} "
            f"bytes with one buffer per value) + input {4 * self.input_size:,} and output {4 * self.output_size:,} "
            f"bytes held by the caller",
            f"  float32 layers (kept float by the model): {floats}; every other layer is integer only",
        ])


@dataclass
class _Value:
    shape: tuple[int, ...]
    bits: bool
    nbytes: int
    root: str  # the value whose storage this one shares (itself unless a reshape aliases it)
    start: int = 0  # the node that writes it
    end: int = 0  # the last node that reads it (or its aliases)
    offset: int = -1  # in the arena; -1: the caller's input
    chw: bool = False  # a channels-last view that its readers (float convs) read in the (C, H, W) layout
    in_place: bool = False  # an elementwise step's result written over its input (root: that input's buffer)


def to_c(path: str | os.PathLike, out_dir: str | os.PathLike, *, word_bits: int = 32, prefix: str = "onebit",
         flash_kb: float | None = None, ram_kb: float | None = None, samples: np.ndarray | None = None,
         verbose: bool = False) -> CExport:
    """Write ``model.h``, ``model.c`` and an example ``main.c`` for the ``.onebit`` file ``path``.

    The C API (``model.h``): ``void <prefix>_run(const float *input, float *output)`` on one
    sample in PyTorch's layout (``<PREFIX>_INPUT_SIZE`` floats in, ``<PREFIX>_OUTPUT_SIZE``
    logits out) and ``int <prefix>_predict(const float *input)`` (the argmax, first on ties).
    ``word_bits``: 32 (Cortex-M) or 64. ``flash_kb``/``ram_kb``: budgets; a model whose
    const data or arena is larger raises :class:`ExportError` naming the numbers and the
    largest layer. ``samples``: float32 inputs ``(N, *in_shape)`` written to ``samples.h``,
    which ``main.c`` runs and prints (``-DONEBIT_SAMPLES``). ``verbose`` prints the summary.
    """
    from onebit.runtime import load
    from onebit.runtime.container import read_container
    from onebit.runtime.model import META_KEY

    if word_bits not in (32, 64):
        raise ConfigError(f"word_bits must be 32 or 64, got {word_bits!r}")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,30}", prefix):
        raise ConfigError(f"prefix must be a C identifier (letters, digits, _), got {prefix!r}")
    for name, budget in (("flash_kb", flash_kb), ("ram_kb", ram_kb)):
        if budget is not None and not (isinstance(budget, (int, float)) and budget > 0):
            raise ConfigError(f"{name} must be a positive number of KiB, got {budget!r}")
    model = load(path, num_threads=1, fuse=False)  # checks the whole file; one layer per node
    tensors, metadata = read_container(path)
    graph = json.loads(metadata[META_KEY])
    if model.out_bits:
        raise ExportError(f"{path}: the model outputs packed bits (a feature extractor); the C export writes "
                          f"float logits only")
    writer = _Writer(graph, tensors, model.layers, word_bits, prefix, str(path))
    writer.plan()
    result = CExport(out_dir=Path(out_dir), files=[], word_bits=word_bits, const_bytes=0, arena_bytes=0,
                     unplanned_bytes=0, input_size=math.prod(model.in_shape), output_size=math.prod(model.out_shape),
                     float32_bytes=0, layers=[(l.name, l.op, l.kind) for l in model.layers])
    source = writer.model_c()
    result.const_bytes, result.arena_bytes = writer.const_bytes, writer.arena_bytes
    result.unplanned_bytes, result.float32_bytes = writer.unplanned_bytes, writer.float32_bytes
    _check_budgets(result, writer, flash_kb, ram_kb)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {"model.h": writer.model_h(result), "model.c": source, "main.c": writer.main_c()}
    if samples is not None:
        files["samples.h"] = writer.samples_h(samples, model.in_shape)
    else:
        (out / "samples.h").unlink(missing_ok=True)  # a previous export's samples are not this model's
    for name, text in files.items():
        (out / name).write_text(text)
        result.files.append(out / name)
    if verbose:
        print(result)
    return result


def _check_budgets(result: CExport, writer: _Writer, flash_kb: float | None, ram_kb: float | None) -> None:
    if flash_kb is not None and result.const_bytes > flash_kb * 1024:
        name, size = writer.largest_const()
        raise ExportError(f"the model's const data is {result.const_bytes:,} bytes, over the flash budget of "
                          f"{flash_kb:g} KiB ({int(flash_kb * 1024):,} bytes); the largest layer is {name!r} "
                          f"({size:,} bytes)")
    if ram_kb is not None and result.arena_bytes > ram_kb * 1024:
        name, live = writer.peak_layer()
        raise ExportError(f"the model's activation arena is {result.arena_bytes:,} bytes, over the RAM budget of "
                          f"{ram_kb:g} KiB ({int(ram_kb * 1024):,} bytes); the peak is at layer {name!r} "
                          f"({live:,} bytes live)")


def _words(channels: int, word_bits: int) -> int:
    return (channels + word_bits - 1) // word_bits


def _c_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", text)


def _float_literal(v: float) -> str:
    """The exact float32 as a C99 hexadecimal literal (``0x1.8p+1f``); 0 as ``0.0f``."""
    return "0.0f" if v == 0 and math.copysign(1.0, v) > 0 else f"{float(v).hex()}f"


class _Writer:
    """Turns the runtime's layers (one per node) into C: the plan of the arena, then the source."""

    def __init__(self, graph: dict[str, Any], tensors: dict[str, np.ndarray], layers: list, word_bits: int,
                 prefix: str, where: str):
        self.graph, self.tensors, self.layers = graph, tensors, layers
        self.nodes = graph["nodes"]
        self.wb, self.prefix, self.where = word_bits, prefix, where
        self.values: dict[str, _Value] = {}
        self.consts: list[str] = []  # C definitions
        self.const_names: dict[tuple[int, str], str] = {}
        self.layer_const_bytes: dict[str, int] = {}
        self.const_bytes = self.float32_bytes = self.arena_bytes = self.unplanned_bytes = 0

    # ---------------------------------------------------------------- plan

    def _nbytes(self, shape: tuple[int, ...], bits: bool) -> int:
        if bits:
            return math.prod(shape[:-1]) * _words(shape[-1], self.wb) * self.wb // 8
        return 4 * math.prod(shape)

    def plan(self) -> None:
        """Each value's offset in the arena: liveness intervals, then greedy placement by size."""
        shape = tuple(self.graph["input"]["shape"])
        self.values["input"] = _Value(shape, False, 4 * math.prod(shape), "input")
        readers: dict[str, list[str]] = {}
        last_read: dict[str, int] = {self.graph["output"]: len(self.nodes)}
        for i, node in enumerate(self.nodes):
            for v in node["inputs"]:
                readers.setdefault(v, []).append(node["op"])
                last_read[v] = max(last_read.get(v, i), i)
        for i, (node, layer) in enumerate(zip(self.nodes, self.layers)):
            op = node["op"]
            if op not in SUPPORTED_OPS:
                raise ExportError(f"{self.where}: node {i} ({node['name']!r}) is a {op!r}, which the C export does not "
                                  f"support; supported: {', '.join(SUPPORTED_OPS)}")
            for v in layer.inputs:
                root = self.values[self.values[v].root]
                root.end = max(root.end, i)
            src = self.values[layer.inputs[0]]
            same_bytes = op == "to_nhwc" and (src.shape[0] == 1 or math.prod(src.shape[1:]) == 1)
            # a float conv reads the caller's (C, H, W) input in place: no channels-last copy in the arena
            chw = (op == "to_nhwc" and not same_bytes and layer.output != self.graph["output"]
                   and set(readers.get(layer.output, [])) == {"conv2d"})
            alias = op == "flatten" or same_bytes or chw
            nbytes = self._nbytes(tuple(layer.out_shape), layer.out_bits)
            root = src.root if alias else self._in_place(i, op, layer.inputs, nbytes, last_read) or layer.output
            value = _Value(tuple(layer.out_shape), layer.out_bits, nbytes, root, start=i, end=i, chw=chw,
                           in_place=not alias and root != layer.output)
            self.values[layer.output] = value
            if op == "conv2d":  # the conv's per-pixel sums (and pool window) of every channel, this node only
                scratch = f"scratch of node {i}"
                pooled = node.get("pool") is not None
                self.values[scratch] = _Value((node["cout"],), False, 4 * node["cout"] * (2 if pooled else 1),
                                              scratch, start=i, end=i)
        out_root = self.values[self.values[self.graph["output"]].root]
        out_root.end = len(self.nodes)
        own = [v for name, v in self.values.items() if v.root == name and name != "input"]
        self.unplanned_bytes = sum(_aligned(v.nbytes) for name, v in self.values.items()
                                   if name != "input" and (v.root == name or v.in_place))
        placed: list[_Value] = []
        for v in sorted(own, key=lambda v: (-v.nbytes, v.start)):
            offset = 0
            for other in sorted((p for p in placed if p.start <= v.end and v.start <= p.end), key=lambda p: p.offset):
                if offset + v.nbytes > other.offset and other.offset + other.nbytes > offset:
                    offset = max(offset, _aligned(other.offset + other.nbytes))
            v.offset = offset
            placed.append(v)
        self.arena_bytes = max((v.offset + v.nbytes for v in placed), default=0)

    def _in_place(self, i: int, op: str, inputs: tuple[str, ...], nbytes: int, last_read: dict[str, int]) -> str | None:
        """The buffer an elementwise float step (add, act, affine, sigmoid, channel_mul) may overwrite: an input's, where node
        ``i`` is the last to read it and every view of it, and it has the output's size."""
        if op not in ("add", "act", "affine", "sigmoid", "channel_mul"):
            return None
        for v in inputs:
            root = self.values[v].root
            if (root != "input" and self.values[root].nbytes == nbytes and not self.values[v].bits
                    and all(last_read.get(name, 0) <= i for name, value in self.values.items() if value.root == root)):
                return root
        return None

    def peak_layer(self) -> tuple[str, int]:
        """The layer where the most arena bytes are live, and that many bytes."""
        best = ("", -1)
        for i, layer in enumerate(self.layers):
            live = sum(v.nbytes for name, v in self.values.items()
                       if v.root == name and name != "input" and v.start <= i <= v.end)
            if live > best[1]:
                best = (layer.name, live)
        return best

    def largest_const(self) -> tuple[str, int]:
        return max(self.layer_const_bytes.items(), key=lambda kv: kv[1])

    # ---------------------------------------------------------------- constants

    def _const(self, i: int, node: dict[str, Any], key: str, kind: str) -> str:
        """The C name of the node's tensor ``key`` as a const array; ``kind``: bits, float, int32, int8."""
        if (i, key) in self.const_names:
            return self.const_names[(i, key)]
        array = np.asarray(self.tensors[node["tensors"][key]])
        name = f"ob_{_c_name(key)}_{i}"
        if kind == "bits":
            words = self._bits_words(array, _node_channels(node))
            body, ctype, nbytes = ",".join(words), "ob_word", len(words) * self.wb // 8
            self.float32_bytes += 4 * array.shape[0] * math.prod(array.shape[1:-1]) * _node_channels(node)
        elif kind == "float":
            values = array.astype(np.float32).ravel()
            body, ctype, nbytes = ",".join(_float_literal(v) for v in values.tolist()), "float", 4 * values.size
            self.float32_bytes += 4 * values.size
        elif kind == "int32":
            values = array.astype(np.int64).ravel()
            body = ",".join(str(v) if v > -2**31 else "(-2147483647 - 1)" for v in values.tolist())
            ctype, nbytes = "int32_t", 4 * values.size
            self.float32_bytes += 4 * values.size
        else:
            values = array.astype(np.int64).ravel()
            body, ctype, nbytes = ",".join(map(str, values.tolist())), "int8_t", values.size
        self.consts.append(f"static const {ctype} {name}[] = {{\n{_wrap(body)}\n}};")
        self.const_bytes += nbytes
        self.layer_const_bytes[node["name"]] = self.layer_const_bytes.get(node["name"], 0) + nbytes
        self.const_names[(i, key)] = name
        return name

    def _bits_words(self, array: np.ndarray, channels: int) -> list[str]:
        """Rows of uint64 words (..., W64) holding ``channels`` bits each (bit c in word c / 64) as
        ``ob_word`` literals, ``ceil(channels / word_bits)`` per row."""
        rows = array.reshape(-1, array.shape[-1]).astype("<u8")
        if self.wb == 64:
            return [f"0x{v:016x}u" for v in rows.ravel().tolist()]
        halves = rows.view("<u4")[:, : _words(channels, 32)]  # little-endian: 64-bit word k = 32-bit words 2k, 2k+1
        return [f"0x{v:08x}u" for v in halves.ravel().tolist()]

    # ---------------------------------------------------------------- source

    def _ptr(self, value: str, ctype: str, const: bool = False) -> str:
        v = self.values[self.values[value].root]
        if v.offset < 0:
            return "input" if ctype == "float" else f"(const {ctype} *)input"
        q = "const " if const else ""
        return f"({q}{ctype} *)(ob_arena.bytes + {v.offset})"

    def _in(self, value: str) -> str:
        return self._ptr(value, "ob_word" if self.values[value].bits else "float", const=True)

    def _out(self, value: str) -> str:
        return self._ptr(value, "ob_word" if self.values[value].bits else "float")

    def _stage_args(self, i: int, node: dict[str, Any]) -> str:
        scale, bias = self._const(i, node, "scale", "float"), self._const(i, node, "bias", "float")
        act = _ACT[node.get("act", "none")] if node["out"] == "float" else "OB_ACT_NONE"
        has_post = "post_scale" in node.get("tensors", {})
        ps = self._const(i, node, "post_scale", "float") if has_post else "NULL"
        pb = self._const(i, node, "post_bias", "float") if has_post else "NULL"
        return f"{scale}, {bias}, {act}, {ps}, {pb}"

    def _statement(self, i: int, node: dict[str, Any], layer: Any) -> list[str]:
        op, out = node["op"], layer.output
        src = layer.inputs[0]
        sv = self.values[src]
        if op == "flatten" or (self.values[out].root != out and not self.values[out].in_place):
            return []  # the same bytes, read with another shape
        if op == "to_nhwc":
            c, h, w = sv.shape if len(sv.shape) == 3 else (sv.shape[0], 1, sv.shape[1])
            return [f"ob_to_nhwc({self._in(src)}, {c}, {h}, {w}, {self._out(out)});"]
        if op == "sign":
            shift = self._const(i, node, "shift", "float") if "shift" in node.get("tensors", {}) else "NULL"
            rows = math.prod(sv.shape[:-1])
            return [f"ob_sign({self._in(src)}, {rows}, {sv.shape[-1]}, {shift}, {self._out(out)});"]
        if op == "dense":
            k, n = node["k"], node["n"]
            if sv.bits:
                w = self._const(i, node, "weight", "bits")
                if node["out"] == "bits":
                    t, f = self._const(i, node, "threshold", "int32"), self._const(i, node, "flip", "int8")
                    return [f"ob_dense_bits({self._in(src)}, {w}, {k}, {n}, {t}, {f}, {self._out(out)});"]
                return [f"ob_dense_bits_float({self._in(src)}, {w}, {k}, {n}, {self._stage_args(i, node)}, "
                        f"{self._out(out)});"]
            wf, wb = self._weights(i, node)
            return [f"ob_dense_float({self._in(src)}, {wf}, {wb}, {k}, {n}, {self._stage_args(i, node)}, "
                    f"{int(node['out'] == 'bits')}, {self._out(out)});"]
        if op == "conv2d":
            return self._conv(i, node, layer, sv)
        if op in ("maxpool2d", "avgpool2d"):
            h, w, c = sv.shape
            pool = node["pool"]
            oh, ow = layer.out_shape[:2]
            geometry = (f"{h}, {w}, {c}, {pool['kernel'][0]}, {pool['kernel'][1]}, {pool['stride'][0]}, "
                        f"{pool['stride'][1]}, {pool['padding'][0]}, {pool['padding'][1]}, {oh}, {ow}")
            if sv.bits:
                return [f"ob_maxpool_bits({self._in(src)}, {geometry}, {self._out(out)});"]
            return [f"ob_pool_float({self._in(src)}, {geometry}, {int(op == 'avgpool2d')}, {self._out(out)});"]
        rows, c = math.prod(sv.shape[:-1]), sv.shape[-1]
        if op == "affine":
            scale, bias = self._const(i, node, "scale", "float"), self._const(i, node, "bias", "float")
            return [f"ob_affine({self._in(src)}, {rows}, {c}, {scale}, {bias}, {self._out(out)});"]
        if op == "act":
            if node["act"] == "relu":
                return [f"ob_relu({self._in(src)}, {rows * c}, {self._out(out)});"]
            if node["act"] == "hardtanh":
                low, high = _float_literal(np.float32(node["low"])), _float_literal(np.float32(node["high"]))
                return [f"ob_clip({self._in(src)}, {rows * c}, {low}, {high}, {self._out(out)});"]
            si, sl, so = (self._const(i, node, k, "float") for k in ("shift_in", "slope", "shift_out"))
            return [f"ob_prelu({self._in(src)}, {rows}, {c}, {si}, {sl}, {so}, {self._out(out)});"]
        if op == "add":
            return [f"ob_add({self._in(src)}, {self._in(layer.inputs[1])}, {rows * c}, {self._out(out)});"]
        if op == "sigmoid":
            return [f"ob_sigmoid({self._in(src)}, {rows * c}, {self._out(out)});"]
        if op == "channel_mul":  # (H, W, C) times the sample's gate vector (C,)
            return [f"ob_channel_mul({self._in(src)}, {self._in(layer.inputs[1])}, {rows}, {c}, {self._out(out)});"]
        # concat: float (H, W, C_i) joined along channels
        total, at, lines = layer.out_shape[-1], 0, []
        for v in layer.inputs:
            ci = self.values[v].shape[-1]
            lines.append(f"ob_concat_part({self._in(v)}, {rows}, {ci}, {at}, {total}, {self._out(out)});")
            at += ci
        return lines

    def _weights(self, i: int, node: dict[str, Any]) -> tuple[str, str]:
        if node["weights"] == "bits":
            return "NULL", self._const(i, node, "weight", "bits")
        return self._const(i, node, "weight", "float"), "NULL"

    def _conv(self, i: int, node: dict[str, Any], layer: Any, sv: _Value) -> list[str]:
        h, w, _ = sv.shape
        kh, kw = node["kernel"]
        (sh, sw), (ph, pw), (dh, dw) = node["stride"], node["padding"], node["dilation"]
        # padding is (top, left); padding_end (bottom, right), where present, only changes the output
        # size: a tap past the input's end is a padded one either way
        end = node.get("padding_end", node["padding"])
        oh, ow = ((s + p + pe - d * (k - 1) - 1) // st + 1 for s, k, st, p, pe, d in
                  zip((h, w), (kh, kw), (sh, sw), (ph, pw), end, (dh, dw)))
        pool = node.get("pool")
        if pool is None:
            pool_fields = "0, 1, 1, 1, 1, 0, 0, 0, 0"
        else:
            pool_fields = (f"1, {pool['kernel'][0]}, {pool['kernel'][1]}, {pool['stride'][0]}, {pool['stride'][1]}, "
                           f"{pool['padding'][0]}, {pool['padding'][1]}, {layer.out_shape[0]}, {layer.out_shape[1]}")
        cfg = f"ob_conv_{i}"
        self.consts.append(f"static const ob_conv {cfg} = {{{h}, {w}, {node['cin']}, {node['cout']}, "
                           f"{node['groups']}, {kh}, {kw}, {sh}, {sw}, {ph}, {pw}, {dh}, {dw}, {node['pad_value']}, "
                           f"{oh}, {ow}, {pool_fields}, {int(sv.chw)}}};")
        src, out = layer.inputs[0], layer.output
        if sv.bits:
            if node["groups"] > 1 and node["cin"] // node["groups"] % 64:
                raise ExportError(f"{self.where}: node {i} ({node['name']!r}) is a binary conv of "
                                  f"{node['cin'] // node['groups']} channels per group, which the C export does not "
                                  "support: its groups must be whole 64-bit words (a depthwise binary conv is not)")
            wbits = self._const(i, node, "weight", "bits")
            scratch = f"(int32_t *)(ob_arena.bytes + {self.values[f'scratch of node {i}'].offset})"
            if node["out"] == "bits":
                t, f = self._const(i, node, "threshold", "int32"), self._const(i, node, "flip", "int8")
                return [f"ob_conv_bits(&{cfg}, {self._in(src)}, {wbits}, {t}, {f}, NULL, NULL, OB_ACT_NONE, NULL, NULL, "
                        f"{scratch}, {self._out(out)});"]
            return [f"ob_conv_bits(&{cfg}, {self._in(src)}, {wbits}, NULL, NULL, {self._stage_args(i, node)}, "
                    f"{scratch}, {self._out(out)});"]
        wf, wb = self._weights(i, node)
        scale, bias = self._const(i, node, "scale", "float"), self._const(i, node, "bias", "float")
        act = _ACT[node.get("act", "none")] if node["out"] == "float" else "OB_ACT_NONE"
        pad = _float_literal(float(node["pad_value"]))
        scratch = f"(float *)(ob_arena.bytes + {self.values[f'scratch of node {i}'].offset})"
        return [f"ob_conv_float(&{cfg}, {self._in(src)}, {wf}, {wb}, {pad}, {scale}, {bias}, {act}, "
                f"{int(node['out'] == 'bits')}, {scratch}, {self._out(out)});"]

    def model_c(self) -> str:
        body: list[str] = []
        for i, (node, layer) in enumerate(zip(self.nodes, self.layers)):
            statements = self._statement(i, node, layer)
            v = self.values[self.values[layer.output].root]
            where = "input (no copy)" if v.offset < 0 else f"arena [{v.offset}, {v.offset + v.nbytes})"
            value = self.values[layer.output]
            kind = ("read in place as (C, H, W) by the conv" if value.chw else "reshape, no code" if not statements
                    else f"{layer.kind}, in place" if value.in_place else layer.kind)
            body.append(f"  /* {i} {node['name']!r}: {node['op']} {layer.in_shape} -> {tuple(layer.out_shape)} "
                        f"{'bits' if layer.out_bits else 'float32'}, {kind}; {where} */".replace("*/ */", "*/"))
            body += [f"  {s}" for s in statements]
        out = self.graph["output"]
        n = math.prod(self.values[out].shape)
        p, arena = self.prefix, max(self.arena_bytes, _ALIGN)
        uses_float = any(n["op"] in ("dense", "conv2d") and not self.values[l.inputs[0]].bits
                         for n, l in zip(self.nodes, self.layers))
        uses_exp = any(n["op"] == "sigmoid" for n in self.nodes)
        head = [
            f"/* Generated by onebit.deploy.to_c from {os.path.basename(self.where)}: C99, no dynamic allocation. */",
            '#include "model.h"', "", "#include <stddef.h>", "#include <stdint.h>", "#include <string.h>",
            *(["#include <math.h> /* fmaf: the float layers' multiply-adds, one rounding each; exp: sigmoid */"]
              if uses_float or uses_exp else []),
            *(["#define OB_SIGMOID 1"] if uses_exp else []),
            "", f"#define OB_WORD_BITS {self.wb}", f"typedef uint{self.wb}_t ob_word;", "",
            _KERNELS.read_text(), "",
            f"/* The activation arena: every intermediate value at its planned offset ({self.arena_bytes} bytes by "
            f"liveness; {self.unplanned_bytes} with one buffer per value). */",
            f"static union {{ uint64_t align; unsigned char bytes[{arena}]; }} ob_arena;", "",
            "/* Weights, thresholds and scales (flash). */", *self.consts, "",
            f"void {p}_run(const float *input, float *output) {{",
            *body,
            f"  memcpy(output, {self._in(out)}, {n} * sizeof(float));",
            "}", "",
            f"int {p}_predict(const float *input) {{",
            f"  static float logits[{n}];",
            "  int i, best = 0;",
            f"  {p}_run(input, logits);",
            f"  for (i = 1; i < {n}; ++i) {{",
            "    if (logits[i] > logits[best]) best = i;",
            "  }",
            "  return best;",
            "}", "",
        ]
        return "\n".join(head)

    def model_h(self, result: CExport) -> str:
        p, P = self.prefix, self.prefix.upper()
        floats = "; ".join(f"{n} ({o}: {k})" for n, o, k in result.float_layers) or "none"
        return "\n".join([
            f"/* {os.path.basename(self.where)} as standalone C99 (onebit.deploy.to_c). */",
            f"#ifndef {P}_MODEL_H", f"#define {P}_MODEL_H", "",
            f"#define {P}_INPUT_SIZE {result.input_size} /* floats, PyTorch layout "
            f"{tuple(self.graph['input']['shape'])} */",
            f"#define {P}_OUTPUT_SIZE {result.output_size} /* logits */",
            f"#define {P}_ARENA_BYTES {self.arena_bytes} /* static activation arena, planned by liveness */",
            f"#define {P}_CONST_BYTES {self.const_bytes} /* const weights, thresholds and scales */",
            f"#define {P}_WORD_BITS {self.wb}", "",
            f"/* Float32 layers (the model keeps them float): {floats}. Every other layer is integer only. */", "",
            f"/* Runs one sample: input[{P}_INPUT_SIZE] -> output[{P}_OUTPUT_SIZE]. Not reentrant (one static arena). */",
            f"void {p}_run(const float *input, float *output);",
            "/* The argmax of the logits (the first on ties). */",
            f"int {p}_predict(const float *input);", "",
            "#endif", "",
        ])

    def main_c(self) -> str:
        p, P = self.prefix, self.prefix.upper()
        return "\n".join([
            "/* Example: runs the model on the samples of samples.h (-DONEBIT_SAMPLES) or on one zero input, and",
            " * prints each prediction and the logits' float32 bits. -DONEBIT_SYSTICK (a Cortex-M) also prints the",
            " * SysTick ticks of each inference. */",
            "#include <stdint.h>", "#include <stdio.h>", "#include <string.h>", "", '#include "model.h"',
            "#ifdef ONEBIT_SAMPLES", '#include "samples.h"', "#else",
            f"static const float {p}_samples[1][{P}_INPUT_SIZE];", f"#define {P}_SAMPLE_COUNT 1", "#endif", "",
            "#ifdef ONEBIT_SYSTICK",
            "#define OB_SYST_CSR (*(volatile uint32_t *)0xE000E010u)",
            "#define OB_SYST_RVR (*(volatile uint32_t *)0xE000E014u)",
            "#define OB_SYST_CVR (*(volatile uint32_t *)0xE000E018u)",
            "#endif", "",
            "int main(void) {",
            f"  static float logits[{P}_OUTPUT_SIZE];",
            "  int s, i, best;",
            "#ifdef ONEBIT_SYSTICK",
            "  OB_SYST_RVR = 0xFFFFFFu; /* 24-bit down-counter on the processor clock, no interrupt */",
            "  OB_SYST_CVR = 0u;",
            "  OB_SYST_CSR = 5u;",
            "#endif",
            f"  for (s = 0; s < {P}_SAMPLE_COUNT; ++s) {{",
            "#ifdef ONEBIT_SYSTICK",
            "    uint32_t t0 = OB_SYST_CVR, t1;",
            "#endif",
            f"    {p}_run({p}_samples[s], logits);",
            "#ifdef ONEBIT_SYSTICK",
            "    t1 = OB_SYST_CVR;",
            "    printf(\"ticks %lu\\n\", (unsigned long)((t0 - t1) & 0xFFFFFFu));",
            "#endif",
            f"    for (i = 1, best = 0; i < {P}_OUTPUT_SIZE; ++i) {{",
            "      if (logits[i] > logits[best]) best = i;",
            "    }",
            f"    if (s == 0 && {p}_predict({p}_samples[0]) != best) {{",
            f"      printf(\"{p}_predict disagrees with the logits\\n\");",
            "      return 1;",
            "    }",
            "    printf(\"sample %d class %d\", s, best);",
            f"    for (i = 0; i < {P}_OUTPUT_SIZE; ++i) {{",
            "      uint32_t bits;",
            "      memcpy(&bits, &logits[i], sizeof bits);",
            "      printf(\" %08lx\", (unsigned long)bits);",
            "    }",
            "    printf(\"\\n\");",
            "  }",
            "  return 0;",
            "}", "",
        ])

    def samples_h(self, samples: np.ndarray, in_shape: tuple[int, ...]) -> str:
        x = np.asarray(samples)
        if x.dtype != np.float32 or x.shape[1:] != tuple(in_shape) or len(x) == 0:
            raise ConfigError(f"samples must be float32 of shape (N, {', '.join(map(str, in_shape))}) with N >= 1, "
                              f"got {x.dtype} {x.shape}")
        if not np.isfinite(x).all():
            raise ConfigError("samples hold NaN or infinite values")
        P, p = self.prefix.upper(), self.prefix
        rows = [f"{{{_wrap(','.join(_float_literal(v) for v in row.tolist()))}}}" for row in x.reshape(len(x), -1)]
        return "\n".join([f"#define {P}_SAMPLE_COUNT {len(x)}",
                          f"static const float {p}_samples[{len(x)}][{P}_INPUT_SIZE] = {{", ",\n".join(rows), "};", ""])


def _node_channels(node: dict[str, Any]) -> int:
    """The weights per output and tap of a weighted node: k of a dense layer, cin / groups of a conv."""
    return node["k"] if node["op"] == "dense" else node["cin"] // node["groups"]


def _aligned(n: int) -> int:
    return (n + _ALIGN - 1) // _ALIGN * _ALIGN


def _wrap(body: str, width: int = 110) -> str:
    """A comma-separated C initializer broken into lines of about ``width`` characters."""
    lines, line = [], ""
    for item in body.split(","):
        if line and len(line) + len(item) + 1 > width:
            lines.append(line)
            line = ""
        line += item + ","
    lines.append(line)
    return "\n".join("  " + l for l in lines).rstrip(",")
