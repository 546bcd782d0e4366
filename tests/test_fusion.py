"""Load-time fusion (onebit.runtime.fusion): a binary conv's channel gate, residual add, RPReLU
and sign run inside its kernel, with exactly the results of running the nodes one by one."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import onebit.runtime as rt
from onebit.models import create_model
from onebit.nn import BiRealBlock, QuantConv2d
from tests.exporting import check_export, randomize_bn, randomize_react


class _TwoBranches(nn.Module):
    """add(conv_a(x), conv_b(x)): both operands are binary convs that could take the add."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64))
        q = dict(padding=1, bias=False, input_quantizer="ste_sign", weight_quantizer="ste_sign")
        self.a, self.b = QuantConv2d(64, 64, 3, **q), QuantConv2d(64, 64, 3, **q)
        self.bn_a, self.bn_b = nn.BatchNorm2d(64), nn.BatchNorm2d(64)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))

    def forward(self, x):
        x = self.stem(x)
        return self.head(self.bn_a(self.a(x)) + self.bn_b(self.b(x)))


def _bireal():
    return nn.Sequential(
        nn.Conv2d(3, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64),
        BiRealBlock(64, 64), BiRealBlock(64, 64, pad_value=1.0), BiRealBlock(64, 128, stride=2),
        BiRealBlock(128, 128, pad_value=-1.0), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 10),
    )


def _random_prelu(model: nn.Module) -> nn.Module:
    """PReLU slopes of both signs (trained nets have some below 0, which RPReLU keeps)."""
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.PReLU):
                m.weight.uniform_(-0.5, 0.5, generator=generator)
    return model


MODELS = {
    "bireal": lambda: randomize_bn(_bireal()),
    "reactnet_resnet18": lambda: randomize_react(randomize_bn(
        create_model("reactnet_resnet18", num_classes=10, in_shape=(3, 32, 32), width=8))),
    "reactnet_a": lambda: randomize_react(randomize_bn(
        create_model("reactnet_a", num_classes=10, in_shape=(3, 32, 32), width=4))),
    "two_branches": lambda: randomize_bn(_TwoBranches()),
    "quicknet_small": lambda: randomize_bn(create_model("quicknet_small", num_classes=10, in_shape=(3, 32, 32))),
    # conv → gate → RPReLU → + shortcut: the residual after the RPReLU, the gate per sample
    "real_to_binary_net": lambda: _random_prelu(randomize_bn(
        create_model("real_to_binary_net", num_classes=10, in_shape=(3, 32, 32), width=16))),
    # growth 16 from 32 channels: parts that start mid-word
    "densenet": lambda: randomize_bn(create_model("binarydensenet28", num_classes=10, in_shape=(3, 32, 32),
                                                  initial_filters=32, growth_rate=16)),
}
# The chains each model's binary convs fuse into (fused layer names end with these).
CHAINS = {
    "bireal": ["+add+", "+add_1+", "+add_2+", "+add_3"],  # the last block's sum feeds only the pool
    "reactnet_resnet18": ["+add+", "+add_1+"],
    "reactnet_a": ["+add+", "+add_1", "+add_2"],
    "two_branches": ["+add"],
    # each section's last block: its sum feeds only the transition's ReLU, which the stage takes
    "quicknet_small": ["+add_3+section2.0.0", "+add_7+section3.0.0", "+add_11+section4.0.0"],
    "real_to_binary_net": ["conv+mul+", "+mul_1+", "+mul_2+"],
    "densenet": [],  # no conv chain; its concats unfold (test below)
}


@pytest.mark.parametrize("name", list(MODELS))
def test_fused_equals_unfused_and_pytorch(tmp_path, name):
    torch.manual_seed(0)
    model = MODELS[name]()
    shape = (3, 32, 32) if name.startswith(("reactnet", "densenet", "quicknet", "real")) else (3, 16, 16)
    path = tmp_path / "m.onebit"
    check_export(model, torch.randn(64, *shape), path)  # the runtime (fused by default) == PyTorch
    x = np.random.default_rng(1).standard_normal((5, *shape)).astype(np.float32)
    for threads in (1, 2, 3):
        fused, plain = rt.load(path, num_threads=threads), rt.load(path, num_threads=threads, fuse=False)
        assert fused(x).tobytes() == plain(x).tobytes()
    names = [layer.name for layer in fused.layers if "+" in layer.name]
    assert len(fused.layers) < len(plain.layers)
    assert all(len(set(layer.inputs)) == len(layer.inputs) for layer in fused.layers if layer.op == "concat")
    for chain in CHAINS[name]:
        assert any(chain in n or n.endswith(chain) for n in names), (chain, names)
    # A fused layer reads the conv's input (and the residual) and writes the chain's values.
    by_output = {layer.output: layer for layer in plain.layers}
    for layer in fused.layers:
        if "+" in layer.name:
            assert all(v == "input" or v in by_output or v.endswith(".planes") for v in layer.inputs)
            assert all(v in by_output for v in (layer.output, *layer.also_writes))


def test_two_branches_fuse_the_add_once(tmp_path):
    """add(conv_a, conv_b): the first conv takes the add, the second runs before it unfused."""
    path = tmp_path / "m.onebit"
    check_export(randomize_bn(_TwoBranches()), torch.randn(16, 3, 8, 8), path)
    layers = rt.load(path).layers
    fused = [layer for layer in layers if "+add" in layer.name]
    assert len(fused) == 1 and sum(layer.op == "add" for layer in layers) == 0
    assert sum(layer.op == "conv2d" and layer.kind == "binary" for layer in layers) == 2


def test_fusion_keeps_values_other_layers_read(tmp_path):
    """Bi-Real: each block's sum is both the next block's residual and its sign's input, so
    the float sum is still written next to the packed signs."""
    path = tmp_path / "m.onebit"
    check_export(randomize_bn(_bireal()), torch.randn(16, 3, 16, 16), path)
    layers = rt.load(path).layers
    reads = {v for layer in layers for v in layer.inputs}
    for layer in layers:
        if layer.also_writes:
            assert layer.output in reads and all(v in reads for v in layer.also_writes)


def test_densenet_blocks_copy_their_features_once(tmp_path):
    """Each dense block's growing concats unfold: the signs pack the block's parts directly
    and only the block's last concat (the transition's input) is formed, from all its parts,
    in one pass with the transition's BatchNorm, which its max-pool and ReLU take in."""
    model = MODELS["densenet"]()
    path = tmp_path / "d.onebit"
    check_export(model, torch.randn(32, 3, 32, 32), path)
    plain, fused = rt.load(path, fuse=False).layers, rt.load(path).layers
    assert sum(layer.op == "concat" for layer in plain) == 23 and not any(layer.op == "concat" for layer in fused)
    joined = [layer for layer in fused if len(layer.inputs) > 1 and layer.op in ("affine", "maxpool2d")]
    assert [layer.name.split("+", 1)[1] for layer in joined] == [
        f"transition{i}.bn+transition{i}.pool+transition{i}.relu" for i in (1, 2, 3)] + ["head_bn"]
    produced = {layer.output: layer for layer in plain}
    assert all(produced[v].op != "concat" for layer in joined for v in layer.inputs)
    signs = [layer for layer in fused if layer.op == "sign" and len(layer.inputs) > 1]
    assert len(signs) == 23 - 4  # every dense layer's sign but the first of each block reads several parts


def test_densenet_features_are_packed_once_for_all_their_readers(tmp_path):
    """share_signs: each feature of a dense block is packed once, right after the layer that makes
    it, one plane per later layer that reads it; every layer's sign joins its parts' planes. The
    parts start mid-word here (growth 16), and the result is the unfused graph's, bit for bit, on
    the executor and on the Python runtime, 1-3 threads (test_fused_equals_unfused_and_pytorch)."""
    model = MODELS["densenet"]()
    path = tmp_path / "d.onebit"
    check_export(model, torch.randn(32, 3, 32, 32), path)
    fused = rt.load(path).layers
    position = {layer.output: i for i, layer in enumerate(fused)}
    planes = [layer for layer in fused if layer.op == "sign_planes"]
    signs = [layer for layer in fused if layer.op == "sign" and len(layer.inputs) > 1]
    assert len(signs) == 23 - 4 and all(v.endswith(".planes") for layer in signs for v in layer.inputs)
    for layer in planes:  # right after the feature's layer, one plane per sign that reads it
        (feature,) = layer.inputs
        assert fused[position[feature] + 1] is layer
        readers = sum(layer.output in s.inputs for s in signs)
        channels = fused[position[feature]].out_shape[-1]
        assert layer.out_shape[-1] == readers * ((channels + 63) // 64) * 64
    # the block's input (the stem's or transition's output) and every dense layer's output but
    # the block's last are read by a later layer's sign
    assert len(planes) == 4 + 23 - 4
    x = np.random.default_rng(2).standard_normal((3, 3, 32, 32)).astype(np.float32)
    python = rt.load(path, executor="python", num_threads=2)
    assert rt.load(path)(x).tobytes() == python(x).tobytes() == rt.load(path, fuse=False)(x).tobytes()


class _PReLUStem(nn.Module):
    """Real-to-Binary Net's stem, conv → BN → PReLU → 3×3/2 max-pool, before a binary conv."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 32, 7, stride=2, padding=3, bias=False), nn.BatchNorm2d(32),
                                  nn.PReLU(32), nn.MaxPool2d(3, 2, 1))
        self.conv = QuantConv2d(32, 64, 3, padding=1, bias=False, input_quantizer="ste_sign",
                                weight_quantizer="ste_sign")
        self.head = nn.Sequential(nn.BatchNorm2d(64), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))

    def forward(self, x):
        return self.head(self.conv(self.stem(x)))


@pytest.mark.parametrize("slopes", ["rising", "one negative"])
def test_prelu_stem_pools_its_raw_product(tmp_path, slopes):
    """pool_stems: with every BatchNorm scale > 0 and every PReLU slope >= 0 the conv pools its
    raw product and the executor gives the unfused bits (1-3 threads, ties and zeros included:
    the input holds runs of equal pixels); one negative slope leaves the chain apart."""
    torch.manual_seed(0)
    model = randomize_bn(_PReLUStem(), positive=True)
    with torch.no_grad():
        model.stem[2].weight.uniform_(0.0, 0.5)
        if slopes == "one negative":
            model.stem[2].weight[5] = -0.25
    path = tmp_path / "stem.onebit"
    check_export(model, torch.randn(16, 3, 32, 32), path)
    x = np.random.default_rng(4).standard_normal((3, 3, 32, 32)).astype(np.float32)
    x[:, :, 8:20, 8:20] = 0.5  # flat patches: equal conv outputs inside a pool window
    plain = rt.load(path, fuse=False)(x)
    for threads in (1, 2, 3):
        fused = rt.load(path, num_threads=threads)
        assert fused(x).tobytes() == plain.tobytes()
    names = [layer.name for layer in fused.layers]
    assert any(n.endswith("+stem.2+stem.3") for n in names) == (slopes == "rising"), names


def test_real_to_binary_gate_inputs_in_one_pass(tmp_path):
    """fuse_gate_inputs: each block's BatchNorm, which only the gate's mean and the binary conv's
    sign read, runs as one step writing both (the BatchNorm's output is not stored); the
    executor equals the Python runtime and the unfused graph (1-3 threads, a batch of 5)."""
    torch.manual_seed(0)
    model = MODELS["real_to_binary_net"]()
    path = tmp_path / "r2b.onebit"
    check_export(model, torch.randn(16, 3, 32, 32), path)
    layers = rt.load(path).layers
    gates = [layer for layer in layers if layer.also_shapes]
    assert len(gates) == 16  # one per binary conv
    for layer in gates:
        assert "+mean" in layer.name and layer.out_shape[:2] == (1, 1)
        assert layer.also_shapes[0] == (layer.in_shape, True)  # the sign: one bit per input value
    x = np.random.default_rng(5).standard_normal((5, 3, 32, 32)).astype(np.float32)
    plain = rt.load(path, fuse=False)(x)
    for threads in (1, 2, 3):
        assert rt.load(path, num_threads=threads)(x).tobytes() == plain.tobytes()
        assert rt.load(path, num_threads=threads, executor="python")(x).tobytes() == plain.tobytes()
