"""onebit.convert.zoo: Larq-zoo files become onebit's registered zoo models, equal to Larq's own outputs.

The fixtures (tests/fixtures/larq, made by scripts/make_larq_fixtures.py with Larq zoo 2.4.0's
own classes at reduced width) hold each family's .h5 and Larq's logits on fixed inputs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("h5py")
from onebit.convert import KerasGraph, from_larq  # noqa: E402
from onebit.convert.zoo import ZOO_NAMES, to_zoo_model  # noqa: E402
from onebit.errors import ConfigError  # noqa: E402
from onebit.models import create_model  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures" / "larq"
KERAS = {"padding": "keras"}
# fixture -> (onebit's registered model, its create_model arguments read from the file)
FAMILIES = {
    "zoo_quicknet": ("quicknet", {"in_shape": [3, 32, 32], "width": 4}),
    "zoo_resnet_e18": ("binary_resnet_e18", {"in_shape": [3, 32, 32], "width": 4, **KERAS}),
    "zoo_birealnet": ("birealnet18", {"in_shape": [3, 32, 32], "width": 4, **KERAS, "bn_eps": 1e-3}),
    "zoo_binary_densenet28": ("binarydensenet28", {"in_shape": [3, 56, 56], "initial_filters": 16,
                                                   "growth_rate": 6, **KERAS}),
    "zoo_binary_alexnet": ("binary_alexnet", {"in_shape": [3, 64, 64], "channels": [4, 6, 12, 12, 8], "dense": 128}),
    "zoo_real_to_binary": ("real_to_binary_net", {"in_shape": [3, 32, 32], "width": 8, **KERAS}),
    "zoo_xnornet": ("xnornet_alexnet", {"in_shape": [3, 224, 224], "channels": [4, 8, 12, 12, 8], "hidden": 128,
                                        "variant": "larq"}),
}


def _larq(name: str) -> tuple[torch.Tensor, np.ndarray]:
    data = np.load(FIXTURES / f"{name}.npz")
    return torch.from_numpy(data["x"].astype(np.float32)).permute(0, 3, 1, 2).contiguous(), data["logits"]


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_larq_zoo_files_become_the_registered_zoo_models(name):
    """The file's model is create_model(name, **args) with the file's weights, and computes Larq's logits."""
    zoo_name, args = FAMILIES[name]
    model = from_larq(FIXTURES / f"{name}.h5")
    assert model.onebit_config == {"name": zoo_name, "args": {"num_classes": 10, **args}}
    assert type(model) is type(create_model(zoo_name, num_classes=10, **args))
    assert not model.training
    x, expected = _larq(name)
    with torch.no_grad():
        y = model(x).numpy()
    assert y.shape == expected.shape
    assert np.abs(y - expected).max() <= 1e-4 * np.abs(expected).max(), name
    assert isinstance(from_larq(FIXTURES / f"{name}.h5", zoo=False), KerasGraph)


def test_every_mapped_family_has_a_fixture():
    mapped = {family.model for family in ZOO_NAMES.values()}
    assert {zoo for zoo, _ in FAMILIES.values()} <= mapped
    # QuickNetSmall/Large and BinaryDenseNet 37/45/37-dilated are the same code as their fixture's model
    assert mapped - {zoo for zoo, _ in FAMILIES.values()} == {
        "quicknet_small", "quicknet_large", "binarydensenet37", "binarydensenet37_dilated", "binarydensenet45"}


def test_xnornet_maps_onto_the_larq_variant_not_jiecaoyus():
    """Larq zoo's XNOR-Net is xnornet_alexnet(variant="larq"); the default (jiecaoyu's) is another network,
    whose layers do not even pair with the file's."""
    from onebit.convert.zoo import _pairs, _weighted

    assert ZOO_NAMES["xnornet"].extra == {"variant": "larq"}
    graph = from_larq(FIXTURES / "zoo_xnornet.h5", zoo=False)
    args = ZOO_NAMES["xnornet"].args(_weighted(graph))
    assert args == {"channels": [4, 8, 12, 12, 8], "hidden": 128}
    jiecaoyu = create_model("xnornet_alexnet", num_classes=10, in_shape=(3, 224, 224), **args)
    larq = create_model("xnornet_alexnet", num_classes=10, in_shape=(3, 224, 224), **args, variant="larq")
    assert _pairs(_weighted(graph), _weighted(jiecaoyu)) is None
    assert _pairs(_weighted(graph), _weighted(larq)) is not None


def test_xnornet_larq_variant_has_larq_zoos_parameter_count_and_layers():
    """62,396,768 parameters at 224 x 224 and 1000 classes (Keras counting: BatchNorm without scale as 3 vectors)."""
    model = create_model("xnornet_alexnet", num_classes=1000, in_shape=(3, 224, 224), variant="larq")
    counted = sum(p.numel() for p in model.parameters()) + sum(
        b.numel() for k, b in model.state_dict().items() if "running_" in k)
    assert counted == 62_396_768
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [m.kernel_size[0] for m in convs] == [11, 5, 3, 3, 3, 6, 1]
    assert all(m.bias is None for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
    assert convs[0].input_quantizer is None and convs[0].weight_quantizer is None
    assert all(m.input_quantizer.name == "ste_sign" and m.weight_quantizer.name == "xnor_sign" for m in convs[1:])
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert [m.eps for m in bns] == [1e-5] + [1e-4] * 6 + [1e-3]
    assert all("weight" not in dict(m.named_parameters()) for m in bns)


def test_xnornet_variant_and_larq_size_are_checked():
    with pytest.raises(ConfigError, match="unknown xnornet_alexnet variant 'keras'; valid choices: jiecaoyu, larq"):
        create_model("xnornet_alexnet", num_classes=10, in_shape=(3, 224, 224), variant="keras")
    with pytest.raises(ConfigError, match="at least 217x217"):
        create_model("xnornet_alexnet", num_classes=10, in_shape=(3, 216, 224), variant="larq")
    with pytest.raises(ConfigError, match="has no dropout"):
        create_model("xnornet_alexnet", num_classes=10, in_shape=(3, 224, 224), variant="larq", dropout=0.5)


def test_xnornet_larq_variant_exports(tmp_path):
    from tests.exporting import check_export, randomize_bn

    torch.manual_seed(0)
    model = create_model("xnornet_alexnet", num_classes=10, in_shape=(3, 256, 240), channels=[4, 8, 12, 12, 8],
                         hidden=32, variant="larq")  # a 2 x 1 map after the 6 x 6 conv
    check_export(randomize_bn(model), torch.randn(8, 3, 256, 240), tmp_path / "xnornet.onebit")


def test_a_graph_the_zoo_model_does_not_compute_stays_a_graph():
    """Bi-Real Net's file with PyTorch's symmetric stem max-pool instead of Keras's "same" (0, 1): every layer
    pairs and copies, but the forward check finds the difference, so no mapping is silently wrong."""
    graph = from_larq(FIXTURES / "zoo_birealnet.h5", zoo=False)
    assert to_zoo_model(graph) is not None
    (key,) = [k for k, m in graph.layers.items() if isinstance(m, nn.Sequential) and isinstance(m[0], nn.ConstantPad2d)]
    graph.layers[key] = nn.MaxPool2d(3, stride=2, padding=1)
    assert to_zoo_model(graph) is None


def test_a_wrong_family_name_stays_a_graph():
    graph = from_larq(FIXTURES / "zoo_binary_alexnet.h5", zoo=False)
    graph.keras_name = "birealnet18"  # the layers do not fit Bi-Real Net's
    assert to_zoo_model(graph) is None


@pytest.mark.parametrize("name", ["birealnet18", "binarydensenet28", "binary_resnet_e18", "real_to_binary_net"])
def test_padding_choice_is_checked(name):
    with pytest.raises(ConfigError, match="padding 'same'; valid choices: keras, symmetric"):
        create_model(name, num_classes=10, in_shape=(3, 64, 64), padding="same")


def test_keras_padding_differs_from_symmetric_only_in_the_padding():
    """The same parameters either way; Keras's pads the stem's odd pixel after (an even input)."""
    torch.manual_seed(0)
    symmetric = create_model("birealnet18", num_classes=10, in_shape=(3, 32, 32), width=4)
    keras = create_model("birealnet18", num_classes=10, in_shape=(3, 32, 32), width=4, padding="keras")
    keras.load_state_dict(symmetric.state_dict())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert symmetric.eval()(x).shape == keras.eval()(x).shape
        assert not torch.allclose(symmetric(x), keras(x))


def test_new_model_arguments_are_checked():
    with pytest.raises(ConfigError, match="channels must be 5 positive integers"):
        create_model("binary_alexnet", num_classes=10, in_shape=(3, 64, 64), channels=[4, 6, 12])
    with pytest.raises(ConfigError, match="bn_eps must be a positive number"):
        create_model("birealnet18", num_classes=10, in_shape=(3, 64, 64), bn_eps=0.0)


@pytest.mark.parametrize("name", ["zoo_binary_alexnet", "zoo_birealnet"])
def test_mapped_models_are_ordinary_zoo_checkpoints(name, tmp_path):
    """Saved and loaded back by onebit.checkpoint alone (create_model with the recorded arguments)."""
    from onebit.checkpoint import load_checkpoint, save_checkpoint

    model = from_larq(FIXTURES / f"{name}.h5")
    loaded, _ = load_checkpoint(save_checkpoint(tmp_path / "m.safetensors", model))
    x, _ = _larq(name)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_only_the_identity_lambda_is_read():
    """Real-to-Binary Net's ``Lambda(lambda x: x)`` block outputs: recognised from the marshalled code."""
    import base64
    import marshal

    from onebit.convert.larq import _is_identity_lambda

    def lam(fn) -> dict:
        return {"function": [base64.b64encode(marshal.dumps(fn.__code__)).decode(), None, None],
                "function_type": "lambda", "arguments": {}}

    assert _is_identity_lambda(lam(lambda x: x))
    assert _is_identity_lambda(lam(lambda x, y=1: x))
    for other in (lambda x: -x, lambda x: x * 2, lambda x, y: y, lambda: 0):
        assert not _is_identity_lambda(lam(other))
    assert not _is_identity_lambda({**lam(lambda x: x), "arguments": {"y": 1}})
    assert not _is_identity_lambda({**lam(lambda x: x), "function_type": "raw"})
    assert not _is_identity_lambda({"function": ["not base64!", None, None], "function_type": "lambda"})
