"""Make the Larq fixtures of onebit's Larq import (tests/test_convert.py): .h5 files and Larq's outputs.

Runs in its own environment, not onebit's (Larq is frozen on Keras 2 / TensorFlow 2.16 and numpy < 2):

    python3.11 -m venv /work/larq-env
    /work/larq-env/bin/pip install "tensorflow-cpu==2.16.*" "tf-keras==2.16.*" "numpy<2" larq larq-zoo h5py
    TF_USE_LEGACY_KERAS=1 /work/larq-env/bin/python scripts/make_larq_fixtures.py [--out tests/fixtures/larq]

Made with tensorflow-cpu 2.16.2, tf-keras 2.16.0, larq 0.14.0, larq-zoo 2.4.0, numpy 1.26.4, Python 3.11.

Writes, per fixture NAME, ``NAME.h5`` (``model.save``: Keras 2 HDF5 with architecture and
weights) and ``NAME.npz`` with ``x`` (fixed NHWC inputs, float32), ``y`` (Larq's output on
them) and, where the model ends with a softmax, ``logits`` (the softmax's input). Every
weight, including BatchNorm's moving statistics, is random (seed fixed), so a layout or
order mistake shows. The fixtures:

- each Larq-zoo family at a small width and input (QuickNet at width 4, which is onebit's
  ``create_model("quicknet", width=4)``; QuickNetSmall/Large differ only in two factory
  fields; Bi-Real Net; BinaryDenseNet-28 (37 and 45 differ
  only in block counts and reductions); BinaryResNetE18;
  XNOR-Net (at 224 x 224, one image), BinaryAlexNet and DoReFa-Net, whose layer widths are
  not factory fields, built with every conv and dense layer 16 times narrower (``narrow``),
  the layer structure unchanged);
- hand-made Larq models: every quantizer (``quantizers``: ste_sign, approx_sign, swish_sign,
  magnitude_aware_sign, ste_heaviside, ste_tern with a fixed threshold and the TWN rule,
  dorefa on activations and weights, with inputs exactly at 0 and at ±Δ); every padding
  case (``paddings``: "same" with pad_values −1, 0, +1 at strides 1 and 2 on even inputs,
  an even kernel, dilation, "valid"); depthwise and separable convs and "same" pooling
  (``depthwise``);
- ``architectures.json.gz``: every full-size Larq-zoo model's Keras configuration (224 x 224,
  1000 classes; no weights) with its Keras parameter count;
- added later, each with its own seed so the files above stay byte for byte as committed
  (``--only NAME`` writes just that one): ``zoo_real_to_binary``, Larq zoo's Real-to-Binary Net
  (``RealToBinNetBNNFactory``, the class ``RealToBinaryNet`` builds) at 32 x 32 with its stem's
  64 filters made 8 (the stem width is a literal in Larq zoo's code; every later width follows
  from it, and 8 is the least its C/8 gates allow), the other layers unchanged. Its weights are
  float16 values and its binary kernels ±0.5 (only their signs matter), so the
  file, saved by Keras and then rewritten with HDF5's shuffle + gzip filters (which h5py and
  Keras read transparently), stays under 300 KB.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import os
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import larq as lq  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from zookeeper import factory  # noqa: E402

SEED = 2026
layers = tf.keras.layers


def randomize(model: tf.keras.Model, rng: np.random.Generator) -> None:
    """Random weights everywhere: kernels N(0, 0.5²), BN γ, β, mean random, variance in [0.5, 2]."""
    for layer in model.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        names = [w.name.rsplit("/", 1)[-1].split(":")[0] for w in layer.weights]
        new = []
        for name, w in zip(names, weights):
            if name == "moving_variance":
                new.append(rng.uniform(0.5, 2.0, w.shape))
            elif name == "gamma":
                new.append(rng.uniform(0.5, 1.5, w.shape) * rng.choice([-1, 1], w.shape, p=[0.1, 0.9]))
            elif name in ("beta", "moving_mean", "bias"):
                new.append(rng.normal(0, 0.3, w.shape))
            elif name == "alpha":
                new.append(rng.uniform(0.05, 0.4, w.shape))
            else:
                new.append(rng.normal(0, 0.5, w.shape))
        layer.set_weights([a.astype(np.float32) for a in new])


def save(model: tf.keras.Model, name: str, x: np.ndarray, out: Path) -> None:
    model.save(out / f"{name}.h5", include_optimizer=False)
    y = model(x, training=False).numpy()
    arrays = {"x": x, "y": y}
    last = model.layers[-1]
    if isinstance(last, layers.Activation) and last.get_config()["activation"] == "softmax":
        arrays["logits"] = tf.keras.Model(model.inputs, last.input)(x, training=False).numpy()
    arrays["x"] = x.astype(np.float16)  # exact: the inputs are float16 values
    np.savez_compressed(out / f"{name}.npz", **arrays)
    size = (out / f"{name}.h5").stat().st_size + (out / f"{name}.npz").stat().st_size
    print(f"{name:22s} {model.count_params():9d} params {size / 1024:7.1f} KiB")


@contextlib.contextmanager
def narrow(div: int, keep: int):
    """While building: every Conv2D/QuantConv2D/Dense/QuantDense gets 1/div of its width (at least 4),
    except a layer of ``keep`` units (the classifier); the layer structure is unchanged."""
    patched = [(lq.layers, "QuantConv2D"), (lq.layers, "QuantDense"), (layers, "Conv2D"), (layers, "Dense")]
    originals = [getattr(mod, name) for mod, name in patched]

    def wrap(cls):
        def make(width, *args, **kwargs):
            return cls(width if width == keep else max(width // div, 4), *args, **kwargs)
        return make

    for (mod, name), cls in zip(patched, originals):
        setattr(mod, name, wrap(cls))
    try:
        yield
    finally:
        for (mod, name), cls in zip(patched, originals):
            setattr(mod, name, cls)


def zoo_models(rng: np.random.Generator) -> dict[str, tuple[tf.keras.Model, tuple[int, int, int]]]:
    from larq_zoo.literature.binary_alex_net import BinaryAlexNetFactory
    from larq_zoo.literature.birealnet import BiRealNetFactory
    from larq_zoo.literature.densenet import (
        BinaryDenseNet28Factory,
    )
    from larq_zoo.literature.dorefanet import DoReFaNetFactory
    from larq_zoo.literature.resnet_e import BinaryResNetE18Factory
    from larq_zoo.literature.xnornet import XNORNetFactory
    from larq_zoo.sota.quicknet import QuickNetFactory

    small = {"weights": None, "num_classes": 10}
    models = {}
    # QuickNet at width 4 (onebit's create_model("quicknet", width=4), which the import maps it onto).
    # QuickNetSmall and QuickNetLarge are the same code with other section_filters / section_blocks.
    models["zoo_quicknet"] = (QuickNetFactory(input_shape=(32, 32, 3), section_filters=(4, 8, 16, 32), **small).build(),
                              (32, 32, 3))
    models["zoo_birealnet"] = (BiRealNetFactory(input_shape=(32, 32, 3), filters=4, **small).build(), (32, 32, 3))
    # At 56 x 56 the ImageNet stem (7 x 7 stride-2 conv, 3 x 3 stride-2 'same' max-pool) is built.
    models["zoo_binary_densenet28"] = (BinaryDenseNet28Factory(input_shape=(56, 56, 3), initial_filters=16,
                                                               growth_rate=6, **small).build(), (56, 56, 3))

    @factory
    class SmallResNetE18(BinaryResNetE18Factory):  # the section widths are a property, not a field
        @property
        def spec(self):
            return ([2, 2, 2, 2], [4, 8, 16, 32])

    models["zoo_resnet_e18"] = (SmallResNetE18(input_shape=(32, 32, 3), initial_filters=4, **small).build(),
                                (32, 32, 3))
    with narrow(32, keep=10):
        models["zoo_binary_alexnet"] = (BinaryAlexNetFactory(input_shape=(64, 64, 3), **small).build(), (64, 64, 3))
        models["zoo_xnornet"] = (XNORNetFactory(input_shape=(224, 224, 3), **small).build(), (224, 224, 3))
        models["zoo_dorefanet"] = (DoReFaNetFactory(input_shape=(64, 64, 3), **small).build(), (64, 64, 3))
    return models


def quantizers_model() -> tf.keras.Model:
    """One QuantDense branch per (input, kernel) quantizer pair, summed; exact 0 and ±Δ in the inputs."""
    x = layers.Input((32,))
    pairs = [
        ("ste_sign", lq.quantizers.SteSign(clip_value=1.25)),
        (lq.quantizers.ApproxSign(), "ste_sign"),
        (lq.quantizers.SwishSign(beta=3.0), lq.quantizers.MagnitudeAwareSign(clip_value=1.5)),
        (lq.quantizers.SteHeaviside(clip_value=1.0), "ste_sign"),
        (lq.quantizers.SteTern(threshold_value=0.25), lq.quantizers.SteTern(threshold_value=0.3)),
        (None, lq.quantizers.SteTern(ternary_weight_networks=True)),
        (lq.quantizers.DoReFa(k_bit=2, mode="activations"), lq.quantizers.DoReFa(k_bit=3, mode="weights")),
        ("ste_sign", "magnitude_aware_sign"),
    ]
    branches = [lq.layers.QuantDense(12, input_quantizer=iq, kernel_quantizer=kq, use_bias=i % 2 == 0)(x)
                for i, (iq, kq) in enumerate(pairs)]
    y = layers.Add()(branches)
    y = layers.BatchNormalization(momentum=0.9, epsilon=1e-4)(y)
    y = lq.quantizers.SteSign()(y)  # a quantizer used as a layer
    y = lq.layers.QuantDense(6, kernel_quantizer="ste_sign", activation="softmax")(y)
    return tf.keras.Model(x, y, name="quantizers")


def paddings_model() -> tf.keras.Model:
    """'same' with pad_values −1, 0, +1 at strides 1 and 2 on even inputs, an even kernel, dilation, 'valid'."""
    x = layers.Input((16, 16, 3))
    y = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(x)  # 16 -> 8: pads (0, 1)
    y = layers.BatchNormalization()(y)
    y = lq.layers.QuantConv2D(16, 3, strides=2, padding="same", pad_values=1.0, input_quantizer="ste_sign",
                              kernel_quantizer="ste_sign", use_bias=False)(y)  # 8 -> 4, +1
    y = layers.BatchNormalization()(y)
    y = lq.layers.QuantConv2D(16, 3, padding="same", pad_values=-1.0, input_quantizer="ste_sign",
                              kernel_quantizer="ste_sign", use_bias=False)(y)  # 4 -> 4, −1
    y = layers.BatchNormalization()(y)
    y = lq.layers.QuantConv2D(16, 3, padding="same", dilation_rate=2, input_quantizer="ste_sign",
                              kernel_quantizer="ste_sign", use_bias=False)(y)  # dilated, 0
    y = layers.BatchNormalization()(y)
    y = lq.layers.QuantConv2D(16, 2, padding="same", pad_values=1.0, input_quantizer="ste_sign",
                              kernel_quantizer="ste_sign", use_bias=False)(y)  # even kernel: pads (0, 1)
    y = layers.BatchNormalization()(y)
    y = lq.layers.QuantConv2D(16, 3, strides=2, padding="same", input_quantizer="approx_sign",
                              kernel_quantizer="magnitude_aware_sign", use_bias=False)(y)  # 4 -> 2, 0
    y = layers.BatchNormalization()(y)
    y = lq.layers.QuantConv2D(64, 2, padding="valid", input_quantizer="ste_sign", kernel_quantizer="ste_sign",
                              use_bias=False)(y)  # 2 -> 1
    y = layers.BatchNormalization()(y)
    y = layers.Flatten()(y)
    y = lq.layers.QuantDense(10, input_quantizer="ste_sign", kernel_quantizer="ste_sign")(y)
    return tf.keras.Model(x, y, name="paddings")


def depthwise_model() -> tf.keras.Model:
    """Depthwise (multiplier 2) and separable convs, 'same' at stride 2 on even inputs, 'same' pools, flatten."""
    x = layers.Input((16, 16, 4))
    y = lq.layers.QuantDepthwiseConv2D(3, strides=2, padding="same", depth_multiplier=2, pad_values=-1.0,
                                       input_quantizer="ste_sign", depthwise_quantizer="ste_sign",
                                       use_bias=False)(x)  # 16 -> 8, −1
    y = layers.BatchNormalization()(y)
    y = layers.DepthwiseConv2D(3, padding="same", use_bias=True)(y)
    y = layers.BatchNormalization()(y)
    y = lq.layers.QuantSeparableConv2D(16, 3, strides=2, padding="same", pad_values=1.0,
                                       input_quantizer="ste_sign", depthwise_quantizer="ste_sign",
                                       pointwise_quantizer="ste_sign")(y)  # 8 -> 4, +1
    y = layers.BatchNormalization()(y)
    y = layers.MaxPool2D(3, strides=2, padding="same")(y)  # 4 -> 2, pads (0, 1)
    y = layers.PReLU(shared_axes=[1, 2])(y)
    y = layers.AveragePooling2D(2, strides=1, padding="valid")(y)  # 2 -> 1
    y = layers.Flatten()(y)
    y = layers.Dense(5)(y)
    return tf.keras.Model(x, y, name="depthwise")


LATER_SEEDS = {"zoo_real_to_binary": 2027}


@contextlib.contextmanager
def stem_filters(filters: int):
    """While building: the 7 x 7 ``Conv2D`` (Larq zoo's Real-to-Binary stem, 64 filters) gets ``filters``."""
    original = layers.Conv2D

    def make(width, *args, **kwargs):
        size = kwargs.get("kernel_size", args[0] if args else None)
        return original(filters if size in (7, (7, 7)) else width, *args, **kwargs)

    layers.Conv2D = make
    try:
        yield
    finally:
        layers.Conv2D = original


def real_to_binary_model() -> tf.keras.Model:
    from larq_zoo.literature.real_to_bin_nets import RealToBinNetBNNFactory

    with stem_filters(8):
        return RealToBinNetBNNFactory(input_shape=(32, 32, 3), weights=None, num_classes=10).build()


def compact(model: tf.keras.Model, rng: np.random.Generator) -> None:
    """float16-exact weights; the kernels of QuantConv2D layers with a sign kernel quantizer ±0.5 (random signs)."""
    for layer in model.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        binary = isinstance(layer, lq.layers.QuantConv2D) and layer.get_config().get("kernel_quantizer") is not None
        new = []
        for w in weights:
            if binary and w.ndim == 4:
                w = rng.choice([-0.5, 0.5], w.shape)
            new.append(w.astype(np.float16).astype(np.float32))
        layer.set_weights(new)


def repack(path: Path) -> None:
    """Rewrite an HDF5 file with its datasets of ≥ 64 values shuffle + gzip compressed (the same groups,
    attributes, values; the model_config JSON without spaces)."""
    import h5py

    tmp = path.with_suffix(".tmp.h5")
    with h5py.File(path, "r") as src, h5py.File(tmp, "w", libver="latest") as dst:  # compact groups: no B-tree per layer
        def copy(group, into):
            for key, value in group.attrs.items():
                if key == "model_config":  # the same JSON without its spaces
                    value = json.dumps(json.loads(value), separators=(",", ":"))
                into.attrs[key] = value
            for name, item in group.items():
                if isinstance(item, h5py.Group):
                    copy(item, into.create_group(name))
                else:
                    data = item[()]
                    big = data.size >= 64  # a chunk index costs more than it saves on the smallest vectors
                    opts = {"compression": "gzip", "compression_opts": 9, "shuffle": True} if big else {}
                    ds = into.create_dataset(name, data=data, **opts)
                    for key, value in item.attrs.items():
                        ds.attrs[key] = value
        copy(src, dst)
    tmp.replace(path)


def later_fixtures(names: list[str], out: Path) -> None:
    """The fixtures added after the first set (``LATER_SEEDS``), each from its own seed."""
    for name in names:
        rng = np.random.default_rng(LATER_SEEDS[name])
        tf.random.set_seed(LATER_SEEDS[name])
        model = real_to_binary_model()
        randomize(model, rng)
        compact(model, rng)
        x = rng.normal(0, 1, (2, *model.input_shape[1:])).astype(np.float16).astype(np.float32)
        save(model, name, x, out)
        repack(out / f"{name}.h5")
        data = dict(np.load(out / f"{name}.npz"))
        last = model.layers[-1]
        if isinstance(last, layers.Softmax):  # Larq zoo's Real-to-Binary head ends in a Softmax layer
            data["logits"] = tf.keras.Model(model.inputs, last.input)(x, training=False).numpy()
        np.savez_compressed(out / f"{name}.npz", **data)
        reloaded = tf.keras.models.load_model(out / f"{name}.h5", compile=False)
        assert np.array_equal(reloaded(x, training=False).numpy(), data["y"]), name
        size = (out / f"{name}.h5").stat().st_size
        print(f"{name:22s} repacked: {size / 1024:7.1f} KiB .h5")


def architectures(out: Path) -> None:
    """``architectures.json.gz``: the full-size Larq-zoo models' Keras configurations (no weights) and
    their Keras parameter counts, for the test that they convert at Larq zoo's exact sizes."""
    import larq_zoo as lqz

    builders = {
        "quicknet": lqz.sota.QuickNet, "quicknet_small": lqz.sota.QuickNetSmall, "quicknet_large": lqz.sota.QuickNetLarge,
        "birealnet18": lqz.literature.BiRealNet, "binary_densenet28": lqz.literature.BinaryDenseNet28,
        "binary_densenet37": lqz.literature.BinaryDenseNet37,
        "binary_densenet37_dilated": lqz.literature.BinaryDenseNet37Dilated,
        "binary_densenet45": lqz.literature.BinaryDenseNet45, "binary_resnet_e18": lqz.literature.BinaryResNetE18,
        "binary_alexnet": lqz.literature.BinaryAlexNet, "xnornet": lqz.literature.XNORNet,
        "dorefanet": lqz.literature.DoReFaNet, "real_to_binary_net": lqz.literature.RealToBinaryNet,
        "meliusnet22": lqz.literature.MeliusNet22,
    }
    result = {}
    for name, build in builders.items():
        model = build(weights=None, input_shape=(224, 224, 3))
        result[name] = {"params": int(model.count_params()), "config": json.loads(model.to_json())}
        print(f"{name:26s} {model.count_params():12,d} params")
        tf.keras.backend.clear_session()
    (out / "architectures.json.gz").write_bytes(gzip.compress(json.dumps(result, separators=(",", ":")).encode(), 9))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "larq"))
    parser.add_argument("--architectures-only", action="store_true", help="write only architectures.json.gz")
    parser.add_argument("--only", nargs="+", choices=sorted(LATER_SEEDS),
                        help="write only these later fixtures (each from its own seed)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.only:
        later_fixtures(args.only, out)
        return
    architectures(out)
    if args.architectures_only:
        return
    tf.random.set_seed(SEED)
    rng = np.random.default_rng(SEED)
    x_q = rng.normal(0, 0.6, (8, 32)).astype(np.float16).astype(np.float32)
    x_q[:, :4] = [0.0, 0.25, -0.25, 0.3]  # exact zero and exactly ±Δ for the quantizers that treat them specially
    models = {"quantizers": (quantizers_model(), x_q), "paddings": (paddings_model(), None),
              "depthwise": (depthwise_model(), None)}
    for name, (model, shape) in zoo_models(rng).items():
        n = 1 if shape[0] > 100 else 2  # 224 x 224 (XNOR-Net's 6 x 6 conv needs them): one image
        models[name] = (model, rng.normal(0, 1, (n, *shape)).astype(np.float16).astype(np.float32))
    for name, (model, x) in models.items():
        randomize(model, rng)
        if x is None:
            x = rng.normal(0, 1, (8, *model.input_shape[1:])).astype(np.float16).astype(np.float32)
        save(model, name, x, out)
    later_fixtures(sorted(LATER_SEEDS), out)


if __name__ == "__main__":
    main()
