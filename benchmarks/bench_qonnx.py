"""QONNX export of the BNN-PYNQ models (tfc, sfc, lfc, cnv): agreement with PyTorch on 1,000 real inputs, and time.

For each model: ``onebit.deploy.to_qonnx`` writes the file (batch 1, as FINN takes it); QONNX's own
executor (``qonnx.core.onnx_exec.execute_onnx``, after ``cleanup_model(override_inpsize=1000)``)
runs it on 1,000 inputs in one batch, and so does onnxruntime on the copy with the quantizers
expanded to standard ops (``expand_quantizers``), once with graph optimizations off and once with
onnxruntime's defaults (which fuse Conv/MatMul with BatchNormalization and so round differently);
the file written with ``fold_thresholds=True`` (MultiThreshold) runs in QONNX's executor too.
Each is compared with the PyTorch forward: same predictions (count of differing inputs) and
max |a − b| / max(|b|, 1) over the logits. Times: median of ``--repeats`` calls of the whole
batch after a warm-up call, PyTorch fp32 (the baseline, same process, torch's default threads)
beside them.

Inputs and weights: tfc/sfc/lfc are the shipped ``pretrained="digits"`` models on 1,000 real 8×8
digits (scikit-learn's set, training rows then test rows, pixels in [0, 1]). No trained CNV ships
and no CIFAR-10 is at hand, so cnv has random binary weights (seed 0) and BatchNorm statistics
from one training-mode pass over 256 real MNIST test digits (padded to 32×32, repeated on 3
channels, scaled to [−1, 1]) and is checked on 1,000 other MNIST digits. Needs ``../shared``.

    python benchmarks/bench_qonnx.py [--repeats 3] [--models tfc,sfc,lfc,cnv]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_bgemm import cpu_model, load_avg

from onebit.bench import time_call
from onebit.data import load_dataset
from onebit.deploy.qonnx import expand_quantizers, to_qonnx
from onebit.models import create_model

MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist-t10k"


def _model_and_inputs(name: str) -> tuple[nn.Module, np.ndarray]:
    if name != "cnv":
        d = load_dataset("digits")
        return create_model(name, pretrained="digits"), np.concatenate([d.x_train, d.x_test])[:1000]
    images = load_dataset(str(MNIST), split=(8000, 2000)).x_test[:1256]
    x = np.repeat(np.pad(images, ((0, 0), (0, 0), (2, 2), (2, 2))), 3, axis=1) * 2.0 - 1.0
    torch.manual_seed(0)
    model = create_model("cnv")
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d):
            m.momentum = None
    with torch.no_grad():
        model.train()(torch.from_numpy(x[:256]))
    return model.eval(), np.ascontiguousarray(x[256:])


def _compare(got: np.ndarray, want: np.ndarray) -> str:
    differ = int(np.sum(got.argmax(1) != want.argmax(1)))
    rel = float(np.max(np.abs(got - want) / np.maximum(np.abs(want), 1.0)))
    return f"{differ} differ, rel {rel:.1e}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", default="tfc,sfc,lfc,cnv")
    args = parser.parse_args()

    import onnx
    import onnxruntime as ort
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.change_batchsize import ChangeBatchSize
    from qonnx.util.cleanup import cleanup_model

    print(f"# bench_qonnx: {datetime.now(UTC):%Y-%m-%d}, {cpu_model()}, load {load_avg()} (shared machine), "
          f"onnx {onnx.__version__}, onnxruntime {ort.__version__}, torch {torch.__version__}\n")
    rows = []
    for name in args.models.split(","):
        model, x = _model_and_inputs(name)
        xt = torch.from_numpy(x)
        with tempfile.TemporaryDirectory() as tmp:
            path = to_qonnx(model, Path(tmp) / f"{name}.onnx", in_shape=x.shape[1:])
            file_bytes = path.stat().st_size
            wrapper = cleanup_model(ModelWrapper(str(path)), override_inpsize=len(x))
            folded = to_qonnx(model, Path(tmp) / f"{name}_folded.onnx", in_shape=x.shape[1:], fold_thresholds=True)
            folded = cleanup_model(ModelWrapper(str(folded)), override_inpsize=len(x))
            expanded = ModelWrapper(expand_quantizers(onnx.load(str(path)))).transform(ChangeBatchSize(len(x))).model
        with torch.no_grad():
            want = model(xt).numpy()
        got_qonnx = execute_onnx(wrapper, {"global_in": x})["global_out"]
        got_folded = execute_onnx(folded, {"global_in": x})["global_out"]
        sessions = {}
        for label, level in (("no opt", ort.GraphOptimizationLevel.ORT_DISABLE_ALL),
                             ("default", ort.GraphOptimizationLevel.ORT_ENABLE_ALL)):
            options = ort.SessionOptions()
            options.graph_optimization_level = level
            sessions[label] = ort.InferenceSession(expanded.SerializeToString(), options,
                                                   providers=["CPUExecutionProvider"])
        got_ort = {k: s.run(None, {"global_in": x})[0] for k, s in sessions.items()}
        with torch.no_grad():
            t_torch = time_call(lambda m=model, v=xt: m(v), args.repeats, warmup=1)[0]
        t_qonnx = time_call(lambda w=wrapper, v=x: execute_onnx(w, {"global_in": v}), args.repeats, warmup=1)[0]
        t_ort = time_call(lambda s=sessions["default"], v=x: s.run(None, {"global_in": v}), args.repeats, warmup=1)[0]
        params = sum(p.numel() for p in model.parameters())
        rows.append((name, f"{params:,}", f"{file_bytes:,}", len(x), _compare(got_qonnx, want),
                     _compare(got_folded, want),
                     _compare(got_ort["no opt"], want), _compare(got_ort["default"], want),
                     f"{t_torch * 1e3:.0f}", f"{t_qonnx * 1e3:.0f} ({t_qonnx / t_torch:.2g}x)",
                     f"{t_ort * 1e3:.0f} ({t_ort / t_torch:.2g}x)"))
    head = ("model", "params", "file B", "inputs", "QONNX exec vs torch", "folded, QONNX exec", "ORT no-opt vs torch", "ORT default vs torch",
            "torch ms", "QONNX ms (ratio)", "ORT ms (ratio)")
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    for r in [head, tuple("-" * w for w in widths), *rows]:
        print(" | ".join(str(c).ljust(w) for c, w in zip(r, widths)))
    print("\nms: one call on the whole batch of inputs, median of", args.repeats, "after a warm-up call")


if __name__ == "__main__":
    main()
