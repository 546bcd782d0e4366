"""The Larq side of benchmarks/bench_larq.py, run in the Larq environment (see scripts/make_larq_fixtures.py).

Builds Larq zoo's QuickNetSmall (224 x 224, 1000 classes) with random weights, saves it as
Keras HDF5, converts it with Larq Compute Engine's converter and times LCE's interpreter
(x86 build of the pip wheel) at 1 and 2 threads: median of repeated single-image runs after
warm-up. Prints one JSON object.

    TF_USE_LEGACY_KERAS=1 /work/larq-env/bin/python benchmarks/larq_lce_side.py OUT_DIR [REPEATS]
"""

import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import larq_compute_engine as lce  # noqa: E402
import larq_zoo  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from larq_compute_engine.tflite.python.interpreter import Interpreter  # noqa: E402

out = Path(sys.argv[1])
repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 20
out.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(0)
model = larq_zoo.sota.QuickNetSmall(weights=None, input_shape=(224, 224, 3))
for layer in model.layers:
    weights = layer.get_weights()
    names = [w.name.rsplit("/", 1)[-1].split(":")[0] for w in layer.weights]
    layer.set_weights([(rng.uniform(0.5, 2.0, w.shape) if n == "moving_variance" else
                        rng.normal(0, 0.5, w.shape)).astype(np.float32) if n != "depthwise_kernel" or layer.trainable
                       else w for n, w in zip(names, weights)])
model.save(out / "quicknet_small.h5", include_optimizer=False)
flatbuffer = lce.convert_keras_model(model)
(out / "quicknet_small.tflite").write_bytes(flatbuffer)
x = rng.normal(0, 1, (1, 224, 224, 3)).astype(np.float32)
np.save(out / "x.npy", x)
np.save(out / "keras.npy", model(x, training=False).numpy())
logits = tf.keras.Model(model.inputs, model.layers[-1].input)  # before the final softmax
np.save(out / "keras_logits.npy", logits(x, training=False).numpy())
result = {"lce_version": lce.__version__, "tflite_bytes": len(flatbuffer)}
# LCE's engine options on x86: its default bgemm kernels, the indirect bgemm, XNNPACK for the
# float layers, and both; each timed, the fastest is LCE's number (its best x86 engine).
CONFIGS = {"default": {}, "indirect_bgemm": {"use_indirect_bgemm": True}, "xnnpack": {"use_xnnpack": True},
           "indirect_bgemm+xnnpack": {"use_indirect_bgemm": True, "use_xnnpack": True}}
for threads in (1, 2):
    best = None
    for name, options in CONFIGS.items():
        interp = Interpreter(flatbuffer, num_threads=threads, **options)
        for _ in range(3):
            interp.predict(x)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            y = interp.predict(x)
            times.append(time.perf_counter() - t0)
        ms = 1e3 * statistics.median(times)
        result[f"lce_ms_{threads}t_{name}"] = ms
        if best is None or ms < best[1]:
            best = (name, ms)
    result[f"lce_ms_{threads}t"], result[f"lce_config_{threads}t"] = best[1], best[0]
np.save(out / "lce.npy", np.asarray(y))
print(json.dumps(result))
