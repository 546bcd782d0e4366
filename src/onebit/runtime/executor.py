"""The C++ graph executor: a model's nodes planned once at load, run without Python between them.

:func:`plan_runs` turns the runtime's layer list (after fusion) into *runs*: each maximal
stretch of consecutive layers that have executor steps (``Layer.native``) becomes one
:class:`Segment`, a ``_core.Plan`` (``csrc/executor.h``) that holds every node's kernel
call bound at load, with the intermediate values in one arena laid out by their lifetimes;
a layer without steps (a depthwise binary conv, whose groups are narrower than a word) runs
as before between segments. Every zoo network is one segment.

Each step calls the kernel the layer's Python ``run`` calls, with the same arguments and
thread count, so the executor's outputs are the Python runtime's bits (the Python runtime
stays the readable reference: ``load(..., executor="python")``; tested on every zoo model).
A segment whose batch exceeds a step's limit (a float-input product that switches to BLAS
beyond 16 rows) runs its layers in Python for that call.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from onebit import _core
from onebit.runtime.ops import Layer, Values, words

__all__ = ["Segment", "plan_runs", "time_layer"]

Shapes = dict[str, tuple[tuple[int, ...], bool]]


def _per_sample(shape: tuple[int, ...], bits: bool) -> int:
    """Elements per sample of a value: float32 (*shape), or packed bits (*shape[:-1], words(C))."""
    return math.prod(shape[:-1]) * words(shape[-1]) if bits else math.prod(shape)


def _array_shape(shape: tuple[int, ...], bits: bool) -> tuple[int, ...]:
    return (*shape[:-1], words(shape[-1])) if bits else shape


@dataclass
class Segment:
    """Consecutive layers run as one ``_core.Plan``: reads ``inputs`` from the values, writes ``outputs``."""

    layers: list[Layer]
    plan: Any
    inputs: list[str]
    outputs: list[str]  # values the plan returns, in the plan's output order
    aliases: dict[str, str]  # values that are another one seen through flatten: name -> that value
    shapes: Shapes
    max_batch: int | None
    spans: list[tuple[int, int]]  # per layer, its steps' [start, end) in the plan
    checks: list[Callable[[Values], None]]  # the layers' checks of their inputs (Layer.check)

    def run(self, values: Values, threads: int) -> None:
        n = len(values[self.inputs[0]])
        if self.max_batch is not None and n > self.max_batch:
            for layer in self.layers:
                layer.run(values, threads)
            return
        for check in self.checks:
            check(values)
        arrays = self.plan.run([np.ascontiguousarray(values[v]) for v in self.inputs], n, threads)
        for name, array in zip(self.outputs, arrays):
            values[name] = array.reshape(n, *_array_shape(*self.shapes[name]))
        for name, src in self.aliases.items():
            values[name] = values[src].reshape(n, *_array_shape(*self.shapes[name]))

    def run_profiled(self, values: Values, threads: int) -> None:
        """:meth:`run`, adding each layer's time in its steps to ``layer.seconds`` (``Model.profile``)."""
        n = len(values[self.inputs[0]])
        if self.max_batch is not None and n > self.max_batch:
            for layer in self.layers:
                time_layer(layer, values, threads)
            return
        self.plan.reset_profile()
        self.plan.set_profile(True)
        try:
            self.run(values, threads)
        finally:
            self.plan.set_profile(False)
        seconds = self.plan.step_seconds()
        for layer, (start, end) in zip(self.layers, self.spans):
            layer.seconds += sum(seconds[start:end])
            layer.calls += 1


def time_layer(layer: Layer, values: Values, threads: int) -> None:
    """``layer.run``, its wall time added to ``layer.seconds``."""
    start = time.perf_counter()
    layer.run(values, threads)
    layer.seconds += time.perf_counter() - start
    layer.calls += 1


def plan_runs(layers: list[Layer], graph_output: str, input_shape: tuple[int, ...]) -> list[Segment | Layer]:
    """The model's runs in order: a :class:`Segment` for each stretch of layers with executor
    steps, the layer itself for the others (each has ``run(values, threads)``)."""
    shapes: Shapes = {"input": (tuple(input_shape), False)}
    for layer in layers:
        shapes[layer.output] = (tuple(layer.out_shape), layer.out_bits)
        for k, extra in enumerate(layer.also_writes):
            shape, bits = layer.also_shapes[k] if layer.also_shapes else (layer.out_shape, True)
            shapes[extra] = (tuple(shape), bits)
    # Who reads each value, by position; the caller reads the graph output after the last.
    last_read: dict[str, int] = {graph_output: len(layers)}
    for i, layer in enumerate(layers):
        for v in layer.inputs:
            last_read[v] = max(last_read.get(v, -1), i)

    runs: list[Segment | Layer] = []
    i = 0
    while i < len(layers):
        if layers[i].native is None and layers[i].op != "flatten":
            runs.append(layers[i])
            i += 1
            continue
        j = i
        while j < len(layers) and (layers[j].native is not None or layers[j].op == "flatten"):
            j += 1
        segment = _segment(layers[i:j], shapes, {v: r for v, r in last_read.items() if r >= j})
        runs.extend([segment] if segment is not None else layers[i:j])
        i = j
    return runs


def _segment(layers: list[Layer], shapes: Shapes, read_later: dict[str, int]) -> Segment | None:
    """The plan of ``layers``; None for a stretch of reshapes only (nothing to run in C++)."""
    if all(layer.op == "flatten" for layer in layers):
        return None
    plan = _core.Plan()
    ids: dict[str, int] = {}
    inputs: list[str] = []
    spans: list[tuple[int, int]] = []
    for layer in layers:
        for v in layer.inputs:
            if v not in ids:
                ids[v] = plan.value(_per_sample(*shapes[v]), shapes[v][1])
                inputs.append(v)
        start = plan.num_steps
        spans.append((start, start))
        if layer.op == "flatten":  # the same bytes under another shape
            ids[layer.output] = ids[layer.inputs[0]]
            continue
        for v in (layer.output, *layer.also_writes):
            ids[v] = plan.value(_per_sample(*shapes[v]), shapes[v][1])
        layer.native(plan, ids, shapes)
        spans[-1] = (start, plan.num_steps)
    produced = [v for layer in layers for v in (layer.output, *layer.also_writes)]
    input_ids = {ids[v]: v for v in inputs}
    outputs: list[str] = []
    aliases: dict[str, str] = {}
    seen: dict[int, str] = {}
    for v in produced:
        if v not in read_later:
            continue
        if ids[v] in input_ids:
            aliases[v] = input_ids[ids[v]]
        elif ids[v] in seen:  # a flatten of another output
            aliases[v] = seen[ids[v]]
        else:
            seen[ids[v]] = v
            outputs.append(v)
    # Aliases of outputs are set after the outputs (Segment.run), so order them after.
    plan.set_io([ids[v] for v in inputs], [ids[v] for v in outputs])
    limits = [layer.native_max_batch for layer in layers if layer.native_max_batch is not None]
    checks = [layer.check for layer in layers if layer.check is not None]
    return Segment(layers, plan, inputs, outputs, aliases, shapes, min(limits) if limits else None, spans, checks)
