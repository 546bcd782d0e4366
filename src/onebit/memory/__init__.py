"""Associative memories of ±1 patterns retrieved from a single neuron (Kak's B-matrix approach,
arXiv:0906.0798; Lingashetty's active sites and delta rule, arXiv:1006.4754, 1007.0417).

Storage by the Hebbian rule (:func:`hebbian`) or the delta rule (:func:`delta_rule`); retrieval
by ``f ← sgn(B f)`` from one clamped neuron (:func:`retrieve`), in numpy or on onebit's packed
kernels (``engine="float-input"`` / ``"xnor"``); the active sites (:func:`active_sites`); a
multi-level neuron (``levels=L``). Needs numpy and onebit's C++ core, never torch.
"""

from onebit.memory.engine import binarize_weights
from onebit.memory.multilevel import level_values, quantize_levels, random_patterns
from onebit.memory.retrieval import (
    ENGINES,
    TIES,
    Retrieval,
    active_sites,
    b_matrix,
    line_proximity,
    memories_retrieved,
    point_proximity,
    retrieve,
    spreading_order,
)
from onebit.memory.storage import DeltaResult, check_patterns, delta_rule, hebbian, quantize_weights

__all__ = ["ENGINES", "TIES", "DeltaResult", "Retrieval", "active_sites", "b_matrix", "binarize_weights",
           "check_patterns", "delta_rule", "hebbian", "level_values", "line_proximity", "memories_retrieved",
           "point_proximity", "quantize_levels", "quantize_weights", "random_patterns", "retrieve",
           "spreading_order"]
