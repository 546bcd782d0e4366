"""Frozen binary feature extractors: any trained model cut at a named layer (Leroux et al. 2017).

``FeatureExtractor(model, "15")`` keeps ``model`` up to and including the module named
``"15"`` (a qualified name as in ``model.named_modules()``, a block as well as a layer;
:func:`layer_names` lists the candidates), flattens that module's output and binarizes it: the features are
``sign(h(x))`` with sign(0) = +1, the ±1 activations a binary layer after the cut would
see. The kept part is frozen: no gradients, eval mode (BatchNorm uses its running
statistics) whatever mode the extractor is put in. Cutting goes through ``torch.fx``, so
residual and concatenating models (Bi-Real Net, DenseNet) cut as well as sequential ones.

:meth:`FeatureExtractor.export` writes the extractor to a ``.onebit`` file whose output is
the packed feature bits: ``onebit.load(path)(x)`` returns ``uint64`` words (1 bit per
feature), ``(x, unpack=True)`` the ±1 features in the same order as the PyTorch module's.

Reference: Leroux, Bohez, Verbelen, Vankeirsbilck, Simoens, Dhoedt, "Transfer Learning with
Binary Neural Networks", arXiv:1711.10761 (2017).
"""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np
import torch
import torch.fx as fx
from torch import nn

from onebit.errors import ConfigError, DataError, unknown_choice
from onebit.export.graph import _Tracer
from onebit.nn.layers import QuantLayer
from onebit.nn.modes import eval_mode
from onebit.nn.quantizers import SteSign

__all__ = ["FeatureExtractor", "layer_names"]

log = logging.getLogger(__name__)


class _CutTracer(_Tracer):
    """The exporter's tracer, with the module to cut at kept whole (a Bi-Real block, a DenseNet
    layer): its output is then one node of the graph, whatever the module computes inside."""

    def __init__(self, cut: str) -> None:
        super().__init__()
        self.cut = cut

    def is_leaf_module(self, m: nn.Module, qualified_name: str) -> bool:
        return qualified_name == self.cut or super().is_leaf_module(m, qualified_name)


def _trace(model: nn.Module, cut: str) -> fx.Graph:
    try:
        return _CutTracer(cut).trace(model)
    except Exception as exc:  # tracing runs the model's Python forward symbolically
        raise ConfigError(f"cannot cut {type(model).__name__}: torch.fx cannot trace it ({exc})") from None


def layer_names(model: nn.Module) -> list[str]:
    """The names a model can be cut at: its submodules (as ``model.named_modules()`` names them),
    blocks included, but not the quantizers inside a quantized layer."""
    names, inside = [], set()
    for name, m in model.named_modules():
        if name and id(m) not in inside:
            names.append(name)
        if isinstance(m, QuantLayer):
            inside.update(id(c) for c in m.modules() if c is not m)
    return names


class FeatureExtractor(nn.Module):
    """``model`` up to the module ``cut``, flattened, then signed: ±1 features of a frozen backbone.

    ``binarize=False`` keeps the float activations instead (the float-feature baseline;
    such an extractor does not export to packed bits). ``in_shape`` defaults to the one
    ``create_model`` recorded on the model.
    """

    def __init__(self, model: nn.Module, cut: str, *, binarize: bool = True,
                 in_shape: tuple[int, ...] | None = None) -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise ConfigError(f"FeatureExtractor needs a torch module, got {type(model).__name__}")
        if cut not in layer_names(model):
            raise unknown_choice("layer", cut, layer_names(model))
        graph = _trace(model, cut)
        calls = [n for n in graph.nodes if n.op == "call_module" and str(n.target) == cut]
        if len(calls) != 1:
            raise ConfigError(f"layer {cut!r} is called {len(calls)} times by the forward; cut at a layer called once")
        target = calls[0]
        output = next(n for n in graph.nodes if n.op == "output")
        graph.erase_node(output)
        graph.output(target)
        self.backbone = fx.GraphModule(model, graph)
        self.backbone.graph.eliminate_dead_code()  # the layers after the cut
        self.backbone.delete_all_unused_submodules()
        self.backbone.recompile()
        for p in self.backbone.parameters():
            p.requires_grad_(False)
        self.backbone.eval()
        self.flatten = nn.Flatten()
        self.sign = SteSign() if binarize else None
        self.cut, self.binarize = cut, binarize
        recorded = getattr(model, "onebit_config", {}).get("args", {}).get("in_shape")
        self.in_shape = tuple(in_shape) if in_shape is not None else tuple(recorded) if recorded else None
        self.source = getattr(model, "onebit_config", None)
        self.num_features = None if self.in_shape is None else int(self.features(
            np.zeros((1, *self.in_shape), np.float32)).shape[1])

    def train(self, mode: bool = True) -> FeatureExtractor:
        """The backbone stays in eval mode: it is frozen (BatchNorm keeps its running statistics)."""
        super().train(mode)
        self.backbone.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.flatten(self.backbone(x))
        return h if self.sign is None else self.sign(h)

    @torch.no_grad()
    def features(self, x: np.ndarray | torch.Tensor, batch_size: int = 1024) -> np.ndarray:
        """The features of ``x`` computed by PyTorch, float32 ``(N, F)`` (±1 when binarized)."""
        x = torch.as_tensor(np.asarray(x, dtype=np.float32))
        if self.in_shape is not None and tuple(x.shape[1:]) != self.in_shape:
            raise DataError(f"the extractor takes inputs of shape {self.in_shape}, got samples of shape "
                            f"{tuple(x.shape[1:])}")
        with eval_mode(self):
            try:
                parts = [self(chunk) for chunk in x.split(batch_size)] if len(x) else [self(x)]
            except (RuntimeError, ValueError) as exc:
                raise DataError(f"the backbone cannot take samples of shape {tuple(x.shape[1:])}: "
                                f"{str(exc).splitlines()[0]}") from None
        return torch.cat(parts).numpy()

    def export(self, path: str | os.PathLike, example: np.ndarray, **kwargs: Any) -> Any:
        """Write the extractor to ``path`` as a ``.onebit`` model that outputs packed feature bits
        (checked against this module on ``example``); returns the ExportReport."""
        from onebit.export import export

        if not self.binarize:
            raise ConfigError("only a binarizing extractor exports to packed bits (binarize=True)")
        info = {"feature_extractor": {"cut": self.cut, "features": self.num_features}, **kwargs.pop("info", {})}
        return export(self, path, example, info=info, **kwargs)
