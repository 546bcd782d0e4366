"""The binary text CNN: token-id featurizer rows, the runtime's ``embedding`` op (float and packed-sign
tables), its export node, engine == PyTorch on raw strings, bad ids and unknown ops, ``onebit train``."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onebit.errors import ConfigError, InputError, ModelFileError
from onebit.text.features import TextFeaturizer
from tests.test_text import SENTENCES, label_folder

TEXTS = SENTENCES + ["great great film", "awful, just awful", "I did not like it", "a warm and lovely day"]


def _ids_featurizer(length: int = 12, dim: int = 64) -> TextFeaturizer:
    return TextFeaturizer(kind="vocab", dim=dim, word_ngrams=(1, 1), sequence_length=length).fit(TEXTS)


def _cnn(binary: bool, length: int = 12, vocab: int = 64, **args):
    import torch

    from onebit.models import create_model

    torch.manual_seed(0)
    quant = {} if binary else {"input_quantizer": None, "weight_quantizer": None}
    model = create_model("binary_text_cnn", num_classes=3, in_shape=(length,), vocab_size=vocab, embed_dim=40,
                         channels=24, depth=2, **quant, **args)
    generator = torch.Generator().manual_seed(1)
    for m in model.modules():  # BatchNorm statistics away from 0/1 so the thresholds are not trivial
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.uniform_(-3, 3, generator=generator)
            m.running_var.uniform_(1, 9, generator=generator)
    return model.eval()


def test_featurizer_token_id_rows_and_settings():
    f = _ids_featurizer()
    x = f.transform(["great film", "a " * 30])
    assert x.dtype == np.float32 and x.shape == (2, 12) and f.row_shape == (12,)
    np.testing.assert_array_equal(x, f.sequences(["great film", "a " * 30], 12))
    assert x[0, 2:].tolist() == [0.0] * 10 and (x[1] >= 2).all()  # padded / truncated
    settings_ = f.to_dict()
    assert settings_["version"] == 2 and settings_["sequence_length"] == 12
    assert TextFeaturizer.from_dict(settings_) == f
    rows = TextFeaturizer(dim=32).to_dict()  # bag-of-n-gram settings are still written as version 1
    assert rows["version"] == 1 and "sequence_length" not in rows and TextFeaturizer.from_dict(rows).row_shape == (32,)
    with pytest.raises(ConfigError, match="version 1 have no sequence_length"):
        TextFeaturizer.from_dict({**rows, "sequence_length": 4})
    with pytest.raises(ConfigError, match=r"sequence_length must be an integer in \[0, 4096\]"):
        TextFeaturizer(sequence_length=-1)
    with pytest.raises(ConfigError, match="need dim >= 3"):
        TextFeaturizer(dim=2, sequence_length=4)


@pytest.mark.parametrize("binary", [True, False])
def test_engine_equals_pytorch_on_raw_strings(tmp_path, binary):
    import torch

    from onebit.text import TextClassifier, export_text_model

    f = _ids_featurizer()
    model = _cnn(binary)
    path = tmp_path / "cnn.onebit"
    report = export_text_model(model, path, f, TEXTS, class_names=["neg", "neu", "pos"])
    node = next(n for n in json.loads(_graph(path))["nodes"] if n["op"] == "embedding")
    assert node["table"] == ("bits" if binary else "float")  # a sign after the lookup: the table is packed signs
    assert report.layers[0].kind == "lookup"
    clf = TextClassifier(path, num_threads=1)
    with torch.no_grad():
        expected = model(torch.from_numpy(f.transform(TEXTS))).numpy()
    got = clf(TEXTS)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    assert np.array_equal(clf.predict(TEXTS), expected.argmax(1))
    assert clf.predict_names(["a brand new word"])[0] in ("neg", "neu", "pos")


def _graph(path) -> str:
    from onebit.runtime.container import read_container

    return read_container(path)[1]["onebit"]


def test_binarized_embedding_and_bad_ids(tmp_path):
    import torch

    from onebit.export import export
    from onebit.runtime import load

    model = _cnn(True, embedding_quantizer="ste_sign")
    x = torch.from_numpy(_ids_featurizer().transform(TEXTS))
    export(model, tmp_path / "m.onebit", x)
    engine = load(tmp_path / "m.onebit", num_threads=1)
    with torch.no_grad():
        np.testing.assert_allclose(engine(x.numpy()), model(x).numpy(), rtol=1e-5, atol=1e-5)
    for bad in (64.0, -1.0, 2.5):
        ids = x.numpy().copy()
        ids[1, 3] = bad
        with pytest.raises(InputError, match=r"token ids must be integers in \[0, 64\)"):
            engine(ids)
        with pytest.raises(InputError, match=r"token ids must be whole numbers in \[0, 64\)"):
            model(torch.from_numpy(ids))


def test_unknown_op_and_bad_embedding_nodes_are_one_clear_line(tmp_path):
    from onebit.runtime import load
    from onebit.runtime.container import read_container, write_container

    path = tmp_path / "m.onebit"
    from onebit.export import export

    export(_cnn(True), path, _ids_featurizer().transform(TEXTS))
    tensors, meta = read_container(path)
    graph = json.loads(meta["onebit"])

    def broken(**change) -> str:
        g = json.loads(json.dumps(graph))
        g["nodes"][0].update(change)
        write_container(tmp_path / "bad.onebit", tensors, {"onebit": json.dumps(g)})
        with pytest.raises(ModelFileError) as info:
            load(tmp_path / "bad.onebit")
        return str(info.value)

    assert "'gather'" in broken(op="gather") and "embedding" in broken(op="gather")  # names the valid ops
    assert "vocab must be an integer" in broken(vocab=0)
    assert "table must be a string (valid: float, bits)" in broken(table="half")
    assert "must be uint64 (63, 1)" in broken(vocab=63)


@settings(max_examples=30, deadline=None)
@given(vocab=st.integers(2, 40), dim=st.integers(1, 130), length=st.integers(1, 9), seed=st.integers(0, 2**16))
def test_embedding_op_is_an_exact_lookup(vocab, dim, length, seed):
    """Property: the op returns table[ids] (float) and the packed signs of table[ids] (bits), for any sizes."""
    from onebit.runtime.bitpack import pack_bits
    from onebit.runtime.embedding import embedding
    from onebit.runtime.ops import NodeReader

    rng = np.random.default_rng(seed)
    table = rng.standard_normal((vocab, dim)).astype(np.float32)
    table[rng.random((vocab, dim)) < 0.1] = 0.0  # sign(0) = +1
    ids = rng.integers(0, vocab, (3, length)).astype(np.float32)
    for form, stored in (("float", table), ("bits", pack_bits(table))):
        node = {"name": "e", "op": "embedding", "vocab": vocab, "dim": dim, "table": form, "tensors": {"table": "t"}}
        layer = embedding(NodeReader(node, 0, {"t": stored}, "f"), "input", "out", (length,), False)
        values = {"input": ids}
        layer.run(values, 1)
        assert layer.out_shape == (1, length, dim) and layer.out_bits == (form == "bits")
        np.testing.assert_array_equal(values["out"], stored[ids.astype(np.int64)].reshape(3, 1, length, -1))


def test_model_arguments_are_checked():
    from onebit.models import create_model

    for bad, message in (({"kernel_size": 2}, "kernel_size must be a positive odd integer"),
                         ({"vocab_size": 2}, "vocab_size must be an integer >= 3"),
                         ({"in_shape": (4, 4)}, r"takes token ids of shape \(L,\)")):
        with pytest.raises(ConfigError, match=message):
            create_model("binary_text_cnn", **bad)


def test_onebit_train_text_cnn_on_a_label_folder(tmp_path):
    from onebit.cli import main
    from onebit.data import load_dataset
    from onebit.text import TextClassifier

    lines = b"".join(b"%s\t%s film %d\n" % ((b"pos", b"great", i) if i % 2 else (b"neg", b"awful", i))
                     for i in range(100))
    folder = label_folder(tmp_path / "mine", lines, b"pos\tgreat film\nneg\tawful film\n")
    assert load_dataset(folder, model="binary_text_cnn").in_shape == (48,)
    assert load_dataset(folder).in_shape == (2048,)  # bag-of-words rows for every other model
    out = tmp_path / "run"
    assert main(["train", "--data", str(folder), "--model", "binary_text_cnn", "--epochs", "2", "--out", str(out),
                 "--no-progress", "-M", "channels=16", "-M", "embed_dim=16"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_accuracy"] == metrics["runtime_test_accuracy"]
    clf = TextClassifier(out / "model.onebit")
    assert clf.featurizer.sequence_length == 48 and clf.class_names == ("neg", "pos")
    assert len(clf.predict_names(["great film", "awful film"])) == 2


def test_text_cnn_classifies_without_torch(tmp_path):
    from onebit.text import export_text_model
    from tests.test_text import assert_same_names_without_torch

    path = tmp_path / "cnn.onebit"
    export_text_model(_cnn(True), path, _ids_featurizer(), TEXTS, class_names=["a", "b", "c"])
    assert_same_names_without_torch(path, TEXTS)
