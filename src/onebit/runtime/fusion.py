"""Load-time fusion: fewer, larger steps with the results of the graph's nodes one by one.

:func:`fuse_layers`: a binary conv with a float output that feeds only a residual ``add``,
whose result (or the conv's own output) feeds only an RPReLU or ReLU ``act``, runs those steps
inside its kernel per tile, while the tile is in cache, and a ``sign`` of the final value is
packed there too (``BinaryConv2d.run_float``'s residual, prelu and signs;
``csrc/float_stage.h``): one pass over the activation instead of up to four, threaded with the
conv. This is Bi-Real Net's and ReActNet's block (conv → BN → + shortcut → RPReLU → sign of the
next block), and QuickNet's last block before a transition (conv → + shortcut → ReLU). A
per-sample ``channel_mul`` gate right after the conv, and an RPReLU before the ``add`` instead
of after it, fuse the same way (the stage's gate and residual_last): Real-to-Binary Net's
block, conv → gate → RPReLU → + shortcut. The results are the bits of running the nodes one by
one: each step rounds to float32 as numpy's separate operations do.

:func:`unfold_concats`: DenseNet blocks pack their growing features without forming each
concatenation (see there).

:func:`share_signs`: each of a DenseNet block's features is packed once, right after it is
made, for every later layer that reads it; each layer's input is then joined from those bits.

:func:`pool_stems`: a float conv → PReLU → max-pool (Real-to-Binary Net's stem) pools the conv's
raw product in its kernel, as the exporter does for a ReLU, where every channel's stage rises.

:func:`fuse_gate_inputs`: a BatchNorm read only by a global mean and a sign (Real-to-Binary
Net's block input) runs as one pass that writes the mean and the bits, not the BatchNorm.

:func:`fuse_transitions`: a BatchNorm affine (of one value or of a concat's parts) read only
by a float max-pool, itself optionally read only by a ReLU (a DenseNet transition), runs as
one executor step that makes each input row as it pools it.

``onebit.runtime.load(..., fuse=False)`` keeps every node apart.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from onebit.runtime.ops import (Layer, Plane, Values, affine_of_parts_native, affine_of_parts_run, concat_native,
                                concat_planes_native, concat_planes_run, concat_run, sign_of_parts_native,
                                sign_of_parts_run, sign_planes_native, sign_planes_run, words)

__all__ = ["fuse_gate_inputs", "fuse_layers", "fuse_transitions", "pool_stems", "share_signs", "unfold_concats"]


def fuse_layers(layers: list[Layer], graph_output: str) -> list[Layer]:
    """The layers with every fusable conv → [gate] → [add] → [RPReLU] → [sign] chain (or with the
    RPReLU before the add) merged into one."""
    consumers: dict[str, list[int]] = defaultdict(list)
    for i, layer in enumerate(layers):
        for v in layer.inputs:
            consumers[v].append(i)
    consumers[graph_output].append(len(layers))  # the caller reads it
    by_output = {layer.output: i for i, layer in enumerate(layers)}

    merged: dict[int, Layer] = {}  # position -> fused layer
    removed: set[int] = set()  # positions taken into a fused layer

    def sole_consumer(value: str) -> Layer | None:
        """The one layer that reads ``value`` (not the caller), if it is not taken yet."""
        users = consumers[value]
        if len(users) != 1 or users[0] == len(layers) or users[0] in removed:
            return None
        return layers[users[0]]

    def residual_of(add: Layer | None, value: str) -> str | None:
        """The other input of an ``add`` that reads ``value`` once, or None."""
        if add is None or add.op != "add" or add.inputs.count(value) != 1:
            return None
        return next(v for v in add.inputs if v != value)

    for i, conv in enumerate(layers):
        if "fuse" not in conv.fusion:
            continue
        chain = [i]
        value, residual, prelu, gate, residual_last = conv.output, None, None, None, False
        nxt = sole_consumer(value)
        if nxt is not None and nxt.op == "channel_mul" and nxt.inputs[0] == value and nxt.inputs[1] != value:
            gate = nxt.inputs[1]  # a per-sample channel gate on the conv's output (Real-to-Binary Net)
            chain.append(by_output[nxt.output])
            value, nxt = nxt.output, sole_consumer(nxt.output)
        if nxt is not None and isinstance(nxt.fusion.get("prelu"), tuple):
            after = sole_consumer(nxt.output)
            shortcut = residual_of(after, nxt.output)
            if shortcut is not None:  # RPReLU, then the shortcut (Real-to-Binary Net)
                prelu, residual, residual_last = nxt.fusion["prelu"], shortcut, True
                chain += [by_output[nxt.output], by_output[after.output]]
                value, nxt = after.output, None
        if nxt is not None and (shortcut := residual_of(nxt, value)) is not None:
            residual = shortcut
            chain.append(by_output[nxt.output])
            value, nxt = nxt.output, sole_consumer(nxt.output)
        if nxt is not None and "prelu" in nxt.fusion:
            prelu = nxt.fusion["prelu"]
            chain.append(by_output[nxt.output])
            value = nxt.output
        signs = [j for j in consumers[value] if j < len(layers) and j not in removed and "sign" in layers[j].fusion]
        sign = layers[signs[0]] if signs else None
        if len(chain) == 1 and sign is None:
            continue
        parts = [layers[j] for j in chain] + ([sign] if sign is not None else [])
        last = layers[chain[-1]]
        steps = (residual, prelu, sign is not None, None if sign is None else sign.fusion["sign"], value,
                 None if sign is None else sign.output, gate, residual_last)
        fused = Layer(
            "+".join(p.name for p in parts), conv.op, conv.kind, conv.in_shape, last.out_shape, False,
            output=value, inputs=conv.inputs + tuple(v for v in (gate, residual) if v is not None),
            also_writes=(sign.output,) if sign is not None else (),
            run=conv.fusion["fuse"](*steps), native=conv.fusion["fuse_native"](*steps),
        )
        # It runs where the last float step of the chain ran: its inputs (the residual too)
        # exist there, and every reader of its outputs comes later.
        merged[chain[-1]] = fused
        removed.update(chain + ([signs[0]] if sign is not None else []))
    return [merged[i] if i in merged else layer for i, layer in enumerate(layers) if i not in removed or i in merged]


def unfold_concats(layers: list[Layer], graph_output: str) -> list[Layer]:
    """DenseNet blocks without their growing copies.

    A dense block grows its features by concatenation, c_k = concat(c_(k-1), y_k), and packs
    each c_k (through its own BatchNorm: a sign's shift, or an affine before the sign) for
    the next binary conv: every layer copied all the features so far, O(L²) floats per
    block (1.9 of BinaryDenseNet-28's 8 ms). Here a sign of a concat (or of an affine of one
    that nothing else reads) packs the concat's parts row by row without forming it (the
    same bits), every concat reads the base parts directly, an affine of a concat that more
    than a sign reads (a transition's BatchNorm) joins and scales the parts in one pass, and
    concats no one reads any more are dropped: at most one copy per block.
    """
    parts: dict[str, list[str]] = {}  # concat output -> the non-concat values it joins
    concat_names: dict[str, str] = {}  # concat output -> its layer's name
    readers: dict[str, int] = defaultdict(int)
    for layer in layers:
        if layer.op == "concat":
            parts[layer.output] = [p for v in layer.inputs for p in parts.get(v, [v])]
            concat_names[layer.output] = layer.name
        for v in layer.inputs:
            readers[v] += 1
    readers[graph_output] += 1
    # affine output -> (its name, its concat's parts, (scale, bias)) for the affines that read
    # a concat; a sign reading one takes it in where the sign is its only reader
    affines = {layer.output: (layer.name, parts[layer.inputs[0]], layer.fusion["affine"]) for layer in layers
               if "affine" in layer.fusion and layer.inputs[0] in parts}

    out: list[Layer] = []
    for layer in layers:
        src = layer.inputs[0] if layer.inputs else None
        if layer.op == "concat":
            joined = parts[layer.output]
            if joined != list(layer.inputs):
                layer = Layer(layer.name, "concat", layer.kind, layer.in_shape, layer.out_shape, False,
                              output=layer.output, inputs=tuple(joined), run=concat_run(joined, layer.output),
                              native=concat_native(joined, layer.output))
        elif "sign" in layer.fusion and (src in parts or (src in affines and readers[src] == 1)):
            name, joined, affine = (layer.name, parts[src], None) if src in parts else affines[src]
            layer = Layer(layer.name if affine is None else f"{name}+{layer.name}", "sign", layer.kind,
                          layer.in_shape, layer.out_shape, True, output=layer.output, inputs=tuple(joined),
                          fusion={"sign_parts": (tuple(joined), layer.fusion["sign"], affine)},
                          run=sign_of_parts_run(joined, layer.fusion["sign"], affine, layer.output),
                          native=sign_of_parts_native(joined, layer.fusion["sign"], affine, layer.output))
        elif layer.output in affines:  # read by more than a sign (a transition's pool): join and scale at once
            name, joined, (scale, bias) = affines[layer.output]
            layer = Layer(f"{concat_names[layer.inputs[0]]}+{name}", "affine", layer.kind, layer.in_shape,
                          layer.out_shape, False, output=layer.output, inputs=tuple(joined), fusion=layer.fusion,
                          run=affine_of_parts_run(joined, scale, bias, layer.output),
                          native=affine_of_parts_native(joined, scale, bias, layer.output))
        out.append(layer)
    # Drop the concats and affines whose value no one reads now (walking back, so chains go
    # at once).
    read = {graph_output}
    kept: list[Layer] = []
    for layer in reversed(out):
        if (layer.op == "concat" or layer.output in affines) and layer.output not in read:
            continue
        read.update(layer.inputs)
        kept.append(layer)
    return kept[::-1]


def fuse_transitions(layers: list[Layer], graph_output: str) -> list[Layer]:
    """The layers with every affine → float max-pool [→ ReLU] chain merged into one layer.

    Its Python run is the three runs in order (the reference); its executor step
    (``Plan.transition``) computes each affine row as the pool reads it, so the affine's
    output (5.6 MB at BinaryDenseNet's first transition) is never stored."""
    sole_reader = _sole_reader(layers, graph_output)

    merged: dict[int, Layer] = {}
    removed: set[int] = set()
    for i, affine in enumerate(layers):
        if "affine" not in affine.fusion or i in removed:
            continue
        pool = sole_reader(i)
        if pool is None or "maxpool" not in layers[pool].fusion:
            continue
        positions = [i, pool]
        relu = sole_reader(pool)
        if relu is not None and layers[relu].fusion.get("prelu") == "relu":
            positions.append(relu)
        chain = [layers[j] for j in positions]
        last = chain[-1]
        fused = Layer("+".join(layer.name for layer in chain), "maxpool2d", "float", affine.in_shape, last.out_shape,
                      False, output=last.output, inputs=affine.inputs,
                      run=_in_order([layer.run for layer in chain]),
                      native=_transition_native(affine, layers[pool].fusion["maxpool"], len(chain) == 3, last.output))
        merged[positions[-1]] = fused
        removed.update(positions)
    return [merged[i] if i in merged else layer for i, layer in enumerate(layers) if i not in removed or i in merged]


def _in_order(runs: list[Callable[[Values, int], None]]) -> Callable[[Values, int], None]:
    def run(values: Values, threads: int) -> None:
        for step in runs:
            step(values, threads)

    return run


def _transition_native(affine: Layer, pool: tuple, relu: bool, out: str) -> Callable[[Any, dict[str, int], Any], None]:
    scale, bias = affine.fusion["affine"]
    h, w, _ = affine.out_shape

    def native(plan: Any, ids: dict[str, int], shapes: Any) -> None:
        plan.transition([ids[v] for v in affine.inputs], [shapes[v][0][-1] for v in affine.inputs], ids[out], h, w,
                        scale, bias, pool, relu)

    return native


def share_signs(layers: list[Layer], graph_output: str) -> list[Layer]:
    """Each DenseNet feature packed once for all the layers that read it.

    After :func:`unfold_concats`, layer k of a dense block packs the sign of its BatchNorm of
    the block's features y_0 … y_(k-1), re-reading every y_j: O(L²) float reads per block, from
    L3 once a 56×56 block outgrows L2. Here each sign of parts becomes a join of bits
    (``concat_bits``), and right after y_j is made one step packs it under each of its readers'
    BatchNorm and shift ("planes", ``pack_planes``), while y_j is still in cache. The
    arithmetic is the same O(L²); what goes is the re-reading (BinaryDenseNet-28, one thread:
    its packs 0.9–1.1 → 0.65 ms; -45: 2.2 → 1.2 ms).
    Each plane's bits are those the sign of parts computes for y_j's channels (the same
    per-channel product, sum and difference, in the same order), so the result is the same bits.
    A plain sign of a feature that a sign of parts also reads takes its plane the same way.
    """
    producer = {layer.output: i for i, layer in enumerate(layers)}
    # sign position -> (its parts, shift, (scale, bias) or None) over the parts' concatenation
    signs: dict[int, tuple[tuple[str, ...], Any, Any]] = {
        i: layer.fusion["sign_parts"] for i, layer in enumerate(layers) if "sign_parts" in layer.fusion
        and all(p in producer and not layers[producer[p]].out_bits for p in layer.fusion["sign_parts"][0])}
    shared = {p for parts, _, _ in signs.values() for p in parts}
    for i, layer in enumerate(layers):
        if layer.op == "sign" and "sign" in layer.fusion and len(layer.inputs) == 1 and layer.inputs[0] in shared:
            signs[i] = (layer.inputs, layer.fusion["sign"], None)
    if not signs:
        return layers
    channels = {p: layers[producer[p]].out_shape[-1] for p in shared}
    readers: dict[str, list[tuple[int, Plane]]] = defaultdict(list)  # part -> (sign position, its plane)
    for i in sorted(signs):
        parts, shift, affine = signs[i]
        at = 0
        for p in parts:
            cut = slice(at, at + channels[p])
            readers[p].append((i, (None if shift is None else shift[cut],
                                   None if affine is None else affine[0][cut],
                                   None if affine is None else affine[1][cut])))
            at += channels[p]

    after: dict[int, list[Layer]] = defaultdict(list)  # producer position -> its planes step
    for p, rs in readers.items():
        made = layers[producer[p]]
        planes = [plane for _, plane in rs]
        shape = (*made.out_shape[:-1], len(planes) * words(channels[p]) * 64)
        after[producer[p]].append(Layer(
            f"{made.name}.planes", "sign_planes", "pack", made.out_shape, shape, True, output=f"{p}.planes",
            inputs=(p,), run=sign_planes_run(p, planes, f"{p}.planes"),
            native=sign_planes_native(p, channels[p], planes, f"{p}.planes")))
    joins: dict[int, Layer] = {}
    for i, (parts, _, _) in signs.items():
        planes = [f"{p}.planes" for p in parts]
        offsets = [[j for j, _ in readers[p]].index(i) * words(channels[p]) for p in parts]
        strides = [len(readers[p]) * words(channels[p]) for p in parts]
        bits = [channels[p] for p in parts]
        layer = layers[i]
        joins[i] = Layer(layer.name, "sign", "pack", layer.in_shape, layer.out_shape, True, output=layer.output,
                         inputs=tuple(planes), run=concat_planes_run(planes, offsets, bits, layer.output),
                         native=concat_planes_native(planes, offsets, bits, strides, layer.output))
    out: list[Layer] = []
    for i, layer in enumerate(layers):
        out.append(joins.get(i, layer))
        out.extend(after.get(i, []))
    return out


def pool_stems(layers: list[Layer], graph_output: str) -> list[Layer]:
    """The layers with every float conv → PReLU → float max-pool chain as one conv that pools.

    The conv (no pool of its own, a BatchNorm stage z = y·scale + bias, no activation) is read
    only by the PReLU, the PReLU only by the max-pool. Where every scale is > 0 and every slope
    ≥ 0, z and the PReLU of it rise with y in every channel, so the max of the PReLU over a
    window is the PReLU of the window's max of y: the conv pools its raw product in its kernel
    (fconv.h, pool_stage), a quarter of the output at stride 2, and the BatchNorm and PReLU run
    on the pooled values. The exporter pools a ReLU's input the same way (export/graph.py).
    The PReLU never gives −0 (its sum has a +0 term), so ties keep their bits. Python runs the
    three steps in order (the reference); the executor runs the pooled form.
    """
    sole_reader = _sole_reader(layers, graph_output)

    merged: dict[int, Layer] = {}
    removed: set[int] = set()
    for i, conv in enumerate(layers):
        if "fconv" not in conv.fusion or conv.fusion["fconv"][3] is None or i in removed:
            continue
        act, pool = sole_reader(i), None
        if act is not None and isinstance(layers[act].fusion.get("prelu"), tuple):
            pool = sole_reader(act)
        if pool is None or "maxpool" not in layers[pool].fusion:
            continue
        fconv, (shift_in, slope, shift_out) = conv.fusion["fconv"], layers[act].fusion["prelu"]
        if not ((fconv[3] > 0).all() and (slope >= 0).all()):
            continue
        chain = [conv, layers[act], layers[pool]]
        merged[pool] = Layer(
            "+".join(layer.name for layer in chain), "conv2d", conv.kind, conv.in_shape, layers[pool].out_shape,
            False, output=layers[pool].output, inputs=conv.inputs, run=_in_order([layer.run for layer in chain]),
            native=_pooled_stem_native(conv.inputs[0], fconv, layers[pool].fusion["maxpool"],
                                       (shift_in, slope, shift_out), layers[pool].out_shape, layers[pool].output))
        removed.update((i, act))
    return [merged.get(i, layer) for i, layer in enumerate(layers) if i not in removed]


def _in_order(runs: list[Callable[[Values, int], None]]) -> Callable[[Values, int], None]:
    def run(values: Values, threads: int) -> None:
        for step in runs:
            step(values, threads)

    return run


def _pooled_stem_native(src: str, fconv: tuple, pool: tuple, prelu: tuple, out_shape: tuple[int, ...],
                        out: str) -> Callable[[Any, dict[str, int], Any], None]:
    """The conv pooling its raw product with its BatchNorm after the pool, then the PReLU."""
    conv, h, w, scale, bias = fconv
    kernel, stride, pad, pad_end = pool

    def native(plan: Any, ids: dict[str, int], shapes: Any) -> None:
        pooled = plan.value(math.prod(out_shape), False)
        plan.fconv(ids[src], pooled, conv, h, w, scale, bias, "none", False, (kernel, stride, pad, pad_end), False)
        plan.prelu(pooled, ids[out], out_shape[-1], *prelu)

    return native


def fuse_gate_inputs(layers: list[Layer], graph_output: str) -> list[Layer]:
    """The layers with every BatchNorm that only a global mean and a sign read as one layer.

    Real-to-Binary Net's block normalizes its input (an affine), then squeezes it for the gate
    (a global average pool) and packs its sign for the binary conv: three passes over the
    activation and one stored copy of it. Here one executor step (``Plan.affine_mean_sign``)
    reads the input once and writes the mean and the bits: the BatchNorm's output is summed in
    row order from the first row, as the average pool sums it, and packed with the sign's
    shift, so the results are the three steps' bits. Python runs the three steps in order.
    """
    readers = _readers(layers)
    merged: dict[int, Layer] = {}
    removed: set[int] = set()
    for i, affine in enumerate(layers):
        users = readers[affine.output]
        if ("affine" not in affine.fusion or affine.output == graph_output or affine.also_writes
                or len(affine.in_shape) != 3 or len(users) != 2):
            continue
        pool = next((j for j in users if "avgpool" in layers[j].fusion), None)
        sign = next((j for j in users if "sign" in layers[j].fusion and len(layers[j].inputs) == 1), None)
        if pool is None or sign is None:
            continue
        h, w, c = affine.in_shape
        kernel, _, pad = layers[pool].fusion["avgpool"]
        if tuple(kernel) != (h, w) or tuple(pad) != (0, 0) or layers[pool].output == graph_output:
            continue
        chain = [affine, layers[pool], layers[sign]]
        mean_out, bits_out = layers[pool].output, layers[sign].output
        merged[min(pool, sign)] = Layer(
            "+".join(layer.name for layer in chain), "affine", "float", affine.in_shape, layers[pool].out_shape,
            False, output=mean_out, inputs=affine.inputs, also_writes=(bits_out,),
            also_shapes=((layers[sign].out_shape, True),), run=_in_order([layer.run for layer in chain]),
            native=_gate_inputs_native(affine.inputs[0], h * w, c, affine.fusion["affine"],
                                       layers[sign].fusion["sign"], mean_out, bits_out))
        removed.update((i, pool, sign))
    return [merged[i] if i in merged else layer for i, layer in enumerate(layers) if i not in removed or i in merged]


def _gate_inputs_native(src: str, hw: int, c: int, affine: tuple, shift: Any, mean_out: str,
                        bits_out: str) -> Callable[[Any, dict[str, int], Any], None]:
    scale, bias = affine

    def native(plan: Any, ids: dict[str, int], shapes: Any) -> None:
        plan.affine_mean_sign(ids[src], ids[mean_out], ids[bits_out], hw, c, scale, bias, shift)

    return native


def _readers(layers: list[Layer]) -> dict[str, list[int]]:
    """Value name -> the positions of the layers that read it."""
    readers: dict[str, list[int]] = defaultdict(list)
    for i, layer in enumerate(layers):
        for v in layer.inputs:
            readers[v].append(i)
    return readers


def _sole_reader(layers: list[Layer], graph_output: str) -> Callable[[int], int | None]:
    """sole_reader(i): the position of the one layer that reads layer i's output (not the
    caller), if any."""
    readers = _readers(layers)

    def sole_reader(i: int) -> int | None:
        users = readers[layers[i].output]
        if layers[i].output == graph_output or layers[i].also_writes or len(users) != 1:
            return None
        return users[0]

    return sole_reader
