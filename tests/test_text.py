"""onebit.text: the tokenizer and featurizer (stable hashing, vocabulary, settings round trip), the VADER and
``label<TAB>text`` readers (bad bytes, blank and over-long lines, bad label files), the binary_text_mlp model,
engine == PyTorch, TextClassifier on raw strings without torch, and ``onebit train --data`` on text folders."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onebit.errors import ConfigError, DataError, MissingFileError, ModelFileError
from onebit.experiments.shared import shared_data
from onebit.text.features import TextFeaturizer, ngrams, stable_hash, tokenize
from tests.test_runtime_import import BLOCK_TORCH

VADER = shared_data("vader-sentences")
needs_vader = pytest.mark.skipif(VADER is None, reason="../shared/data/vader-sentences is absent (a user's clone)")
REPO = Path(__file__).resolve().parents[1]

SENTENCES = ["I loved this film, it was great!", "Terrible. I hated every minute :(", "not bad at all",
             "the worst phone I have ever owned", "Wonderful, warm & funny", "boring and far too long"]


# --------------------------------------------------------------------------- tokenizer and featurizer


def test_tokenize_keeps_words_apostrophes_and_emoticons():
    assert tokenize("I didn't like it :( &amp; NOT AT ALL!!") == ["i", "didn't", "like", "it", ":(", "&", "not",
                                                                    "at", "all", "!!"]
    assert tokenize("Ｆｕｌｌ width", lowercase=False) == ["Full", "width"]  # NFKC
    assert tokenize("a b c d", max_tokens=2) == ["a", "b"]
    assert tokenize("abcdef", max_chars=3) == ["abc"]
    with pytest.raises(ConfigError, match="a text must be a str, got bytes"):
        tokenize(b"bytes")  # type: ignore[arg-type]


def test_ngrams_words_and_characters():
    assert ngrams(["a", "b", "c"], (1, 2), (0, 0)) == ["w:a", "w:b", "w:c", "w:a b", "w:b c"]
    assert ngrams(["ab"], (0, 0), (2, 3)) == ["c:<a", "c:ab", "c:b>", "c:<ab", "c:ab>"]


def test_stable_hash_has_fixed_values():
    # BLAKE2b values pinned: a change here silently breaks every exported text model
    assert stable_hash("w:good") == 0xAA3DFADF52690FB8
    assert stable_hash("w:good", seed=1) == 0x281FEBA9C8265C55
    assert 0 <= stable_hash("") < 2**64


def test_hash_is_the_same_in_another_process():
    """Python's own hash() is salted per process; the featurizer's must not be."""
    code = ("from onebit.text.features import TextFeaturizer, stable_hash\n"
            f"f = TextFeaturizer(dim=1000, char_ngrams=(2, 3))\n"
            f"print([stable_hash(t) for t in {SENTENCES!r}], [f.columns(t) for t in {SENTENCES!r}])\n")
    outputs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                              env={"PYTHONHASHSEED": str(seed), "PATH": ""}).stdout for seed in (1, 2)}
    here = TextFeaturizer(dim=1000, char_ngrams=(2, 3))
    expected = f"{[stable_hash(t) for t in SENTENCES]} {[here.columns(t) for t in SENTENCES]}\n"
    assert outputs == {expected}


def test_transform_values_binary_count_log_and_l2():
    text = "good good bad"
    for weighting, raw in (("binary", [1.0, 1.0]), ("count", [2.0, 1.0]), ("log", [np.log1p(2), np.log1p(1)])):
        f = TextFeaturizer(dim=64, word_ngrams=(1, 1), weighting=weighting, normalize="none")
        row = f.transform([text])[0]
        good, bad = f.columns("good")[0], f.columns("bad")[0]
        assert good != bad  # these two do not collide in 64 buckets
        np.testing.assert_allclose([row[good], row[bad]], raw, rtol=1e-6)
        assert np.count_nonzero(row) == 2
    l2 = TextFeaturizer(dim=64, word_ngrams=(1, 1)).transform([text, "", "   "])
    assert l2.dtype == np.float32 and l2.shape == (3, 64)
    np.testing.assert_allclose(np.linalg.norm(l2[0]), 1.0, rtol=1e-6)
    assert not l2[1:].any()  # empty texts are rows of zeros


def test_vocabulary_is_built_from_training_texts_by_document_frequency():
    f = TextFeaturizer(kind="vocab", dim=3, word_ngrams=(1, 1)).fit(["b a", "a c", "a b", "d"])
    assert f.vocabulary == ("w:a", "w:b", "w:c")  # a: 3 texts, b: 2, then c before d (ties by text)
    row = f.transform(["a d d zzz"])[0]
    np.testing.assert_allclose(row, [1, 0, 0])  # d and zzz are outside the vocabulary
    assert TextFeaturizer(kind="vocab", dim=3, word_ngrams=(1, 1)).fit(["a c", "d", "a b", "b a"]) == f
    with pytest.raises(ConfigError, match="no vocabulary yet: call fit"):
        TextFeaturizer(kind="vocab").transform(["a"])
    with pytest.raises(ConfigError, match="min_df=5 of the 1 training texts"):
        TextFeaturizer(kind="vocab", min_df=5).fit(["a"])


def test_sequences_pad_truncate_and_reserve_ids():
    f = TextFeaturizer(dim=100)
    ids = f.sequences(["a b c d e", "a", ""], length=3)
    assert ids.shape == (3, 3) and ids.dtype == np.int64
    assert (ids[0] >= 2).all() and ids[1, 0] == ids[0, 0] and (ids[1, 1:] == 0).all() and (ids[2] == 0).all()
    v = TextFeaturizer(kind="vocab", dim=10, word_ngrams=(1, 1)).fit(["a b", "a"])
    assert v.sequences(["a b zzz"], length=4).tolist() == [[2, 3, 1, 0]]
    with pytest.raises(ConfigError, match="sequence length must be a positive integer"):
        f.sequences(["a"], length=0)


def test_settings_round_trip_and_bad_settings():
    for f in (TextFeaturizer(dim=128, char_ngrams=(2, 4), seed=7),
              TextFeaturizer(kind="vocab", dim=8, weighting="log").fit(SENTENCES)):
        settings = json.loads(json.dumps(f.to_dict()))
        back = TextFeaturizer.from_dict(settings)
        assert back == f
        np.testing.assert_array_equal(back.transform(SENTENCES), f.transform(SENTENCES))
    good = TextFeaturizer().to_dict()
    for change, message in (({"format": "x"}, "must have format 'onebit-text-featurizer'"),
                            ({"version": 9}, "version 9 is not supported"),
                            ({"colour": 1}, r"unknown featurizer setting\(s\) \['colour'\]"),
                            ({"kind": "bpe"}, "unknown featurizer kind 'bpe'; valid choices: hash, vocab"),
                            ({"dim": 0}, r"dim must be an integer in \[1, "),
                            ({"word_ngrams": [2, 1]}, "word_ngrams must be"),
                            ({"word_ngrams": [0, 0]}, "needs word_ngrams or char_ngrams"),
                            ({"weighting": "tfidf"}, "unknown weighting 'tfidf'"),
                            ({"kind": "vocab"}, "hold no vocabulary"),
                            ({"vocabulary": ["a"]}, "a vocabulary belongs to kind='vocab'")):
        with pytest.raises(ConfigError, match=message):
            TextFeaturizer.from_dict({**good, **change})
    with pytest.raises(ConfigError, match="must be a JSON object"):
        TextFeaturizer.from_dict([1])
    with pytest.raises(ConfigError, match="not one string"):
        TextFeaturizer().transform("one string")
    with pytest.raises(ConfigError, match="item 1 is int"):
        TextFeaturizer().transform(["a", 3])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.text(max_size=300), max_size=5))
def test_any_text_gives_finite_unit_rows(texts):
    x = TextFeaturizer(dim=256, char_ngrams=(1, 3)).transform(texts)
    assert x.shape == (len(texts), 256) and np.isfinite(x).all()
    norms = np.linalg.norm(x, axis=1)
    assert np.all((np.abs(norms - 1) < 1e-5) | (norms == 0))


def test_over_long_texts_cost_bounded_work():
    f = TextFeaturizer(dim=256, max_chars=50, max_tokens=5)
    long = "word " * 100_000
    assert len(f.grams(long)) == 5 + 4  # five unigrams, four bigrams
    np.testing.assert_array_equal(f.transform([long]), f.transform(["word " * 5]))


# --------------------------------------------------------------------------- readers


def write(path: Path, content: bytes, gz: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(content, mtime=0) if gz else content)
    return path


def label_folder(root: Path, train: bytes, test: bytes | None = None, labels: bytes | None = None) -> Path:
    write(root / "train.tsv", train)
    if test is not None:
        write(root / "test.tsv.gz", test, gz=True)
    if labels is not None:
        write(root / "labels.txt", labels)
    return root


TRAIN = b"pos\tgreat film\r\nneg\tawful film\n\npos\tlovely\tday\nneg\t\xff\xfe bad bytes\n"


def test_label_folder_reads_bad_bytes_blank_lines_tabs_and_crlf(tmp_path):
    from onebit.text.datasets import load_text_folder, read_label_file

    folder = label_folder(tmp_path / "mine", TRAIN, b"neg\tbad\npos\tgood\n")
    labels, texts = read_label_file(folder / "train.tsv")
    assert labels == ["pos", "neg", "pos", "neg"]
    assert texts[:3] == ["great film", "awful film", "lovely\tday"]  # the first tab splits; CR dropped
    assert texts[3] == "\ufffd\ufffd bad bytes"  # not UTF-8: replaced, not an error
    data = load_text_folder(folder)
    assert data.name == "mine" and data.class_names == ("neg", "pos")
    assert data.y_train.tolist() == [1, 0, 1, 0] and data.y_test.tolist() == [0, 1]
    assert data.x_train.dtype == np.float32 and data.in_shape == (2048,)
    featurizer = TextFeaturizer.from_dict(data.featurizer)
    assert featurizer.kind == "vocab" and "w:film" in featurizer.vocabulary  # built from train.tsv only
    assert "w:good" not in featurizer.vocabulary
    assert data.export_info()["class_names"] == ["neg", "pos"]


def test_over_long_lines_are_cut(tmp_path):
    from onebit.text.datasets import MAX_TEXT_CHARS, read_label_file

    path = write(tmp_path / "train.tsv", b"1\t" + b"x" * (3 * MAX_TEXT_CHARS) + b"\n0\tshort\n")
    labels, texts = read_label_file(path)
    assert labels == ["1", "0"] and len(texts[0]) == MAX_TEXT_CHARS


@pytest.mark.parametrize("train, test, labels, message", [
    (b"pos great film\n", b"pos\tok\n", None, r"train.tsv, line 1: expected label<TAB>text, found no tab"),
    (b"pos\tgood\n\t no label\n", b"pos\tok\n", None, r"train.tsv, line 2: the label before the tab is empty"),
    (b"\n\n", b"pos\tok\n", None, r"train.tsv: holds no label<TAB>text lines"),
    (b"pos\ta\npos\tb\n", b"pos\tok\n", None, r"the training labels: 1 class \(pos\); a classifier needs at least 2"),
    (TRAIN, b"pos\tok\nmeh\tso so\n", None,
     r"test.tsv.gz: label\(s\) 'meh' are not among the 2 classes of train.tsv \(its distinct labels\) \(neg, pos\)"),
    (TRAIN, b"pos\tok\n", b"pos\nneg\npos\n", r"labels.txt: class names listed twice: pos"),
    (TRAIN, b"pos\tok\n", b"pos\n", r"labels.txt: 1 class \(pos\); a classifier needs at least 2"),
    (TRAIN, b"pos\tok\n", b"pos\nneutral\n", r"train.tsv: label\(s\) 'neg' are not among the 2 classes of labels.txt"),
])
def test_bad_label_files_raise_one_clear_line(tmp_path, train, test, labels, message):
    from onebit.text.datasets import load_text_folder

    folder = label_folder(tmp_path / "d", train, test, labels)
    with pytest.raises(DataError, match=message) as info:
        load_text_folder(folder)
    assert "\n" not in str(info.value)


def test_labels_file_fixes_order_and_count(tmp_path):
    from onebit.text.datasets import load_text_folder

    folder = label_folder(tmp_path / "d", TRAIN, b"pos\tok\n", b"pos\nneg\nneutral\n")
    data = load_text_folder(folder)
    assert data.class_names == ("pos", "neg", "neutral") and data.num_classes == 3
    assert data.y_train.tolist() == [0, 1, 0, 1]


def test_numeric_labels_sort_numerically_and_train_only_needs_a_split(tmp_path):
    from onebit.data import load_dataset

    lines = b"".join(b"%d\ttext number %d\n" % (i % 11, i) for i in range(30))
    folder = label_folder(tmp_path / "nums", lines)
    with pytest.raises(DataError, match=r"holds only train.tsv \(30 lines\) and no test.tsv; .*--split 24:6"):
        load_dataset(folder)
    data = load_dataset(folder, split=(20, 10))
    assert data.class_names == tuple(str(i) for i in range(11)) and len(data.y_test) == 10
    assert data.y_test.tolist() == [i % 11 for i in range(20, 30)]


def test_corrupt_gzip_and_missing_files(tmp_path):
    from onebit.text.datasets import read_label_file, read_vader_file

    bad = write(tmp_path / "train.tsv.gz", gzip.compress(b"pos\tx\n" * 100)[:30])
    with pytest.raises(DataError, match="corrupt gzip data"):
        read_label_file(bad)
    with pytest.raises(MissingFileError, match="no such file"):
        read_vader_file(tmp_path / "absent.txt")
    vader = write(tmp_path / "v.txt", b"1\t2.5\tgood\n2\tvery\tbad\n")
    with pytest.raises(DataError, match=r"v.txt, line 2: the valence 'very' is not a number"):
        read_vader_file(vader)
    vader = write(tmp_path / "v.txt", b"1\t2.5\n")
    with pytest.raises(DataError, match=r"line 1: expected id<TAB>valence<TAB>text, found 1 tab\(s\)"):
        read_vader_file(vader)
    vader = write(tmp_path / "v.txt", b"1\t9\tx\n")
    with pytest.raises(DataError, match=r"the valence 9.0 is outside the rating scale"):
        read_vader_file(vader)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=400))
def test_random_bytes_raise_only_data_error(tmp_path, content):
    from onebit.text.datasets import read_label_file, read_vader_file

    path = tmp_path / "random.tsv"
    path.write_bytes(content)
    for reader in (read_label_file, read_vader_file):
        try:
            first, second = reader(path)
        except DataError as exc:
            assert "\n" not in str(exc)
        else:
            assert len(first) == len(second) > 0


def fake_vader(root: Path) -> Path:
    """A tiny folder in the VADER layout: 10 positive, 10 negative, 4 neutral sentences per domain."""
    from onebit.text.datasets import DOMAINS

    for d, name in DOMAINS.items():
        lines = [f"{i}\t{2.0 if i % 2 else -2.0}\t{d} {'good' if i % 2 else 'bad'} {i}" for i in range(20)]
        lines += [f"{20 + i}\t0.1\t{d} neutral {i}" for i in range(4)]
        write(root / f"{name}.gz", ("\r\n".join(lines) + "\r\n").encode() + b"99\t3.0\tcaf\xe9 ok\r\n", gz=True)
    return root


def test_vader_splits_per_domain_and_cross_domain(tmp_path):
    from onebit.text.datasets import vader_split

    folder = fake_vader(tmp_path / "vader-sentences")
    tweets = vader_split(folder, domain="tweets")
    assert len(tweets.train_texts) + len(tweets.test_texts) == 21  # neutral left out; the bad byte kept
    assert len(tweets.test_texts) == 4 and sorted(tweets.y_test.tolist()) == [0, 0, 1, 1]  # 20 % of each class
    assert all(t.startswith("tweets") or "caf" in t for t in tweets.train_texts)
    assert vader_split(folder, domain="tweets").test_texts == tweets.test_texts  # fixed split
    everything = vader_split(folder)
    assert len(everything.y_train) == 3 * len(tweets.y_train)
    cross = vader_split(folder, test_domain="amazon")
    assert len(cross.y_test) == 21 and all("movies" in t or "tweets" in t or "caf" in t for t in cross.train_texts)
    assert "train on tweets + movies, test on amazon" in cross.source
    with pytest.raises(ConfigError, match="unknown VADER domain 'tweet' \\(did you mean 'tweets'\\?\\)"):
        vader_split(folder, domain="tweet")
    with pytest.raises(ConfigError, match="give domain or test_domain, not both"):
        vader_split(folder, domain="tweets", test_domain="amazon")


@needs_vader
def test_real_vader_counts():
    from onebit.text.datasets import vader_split

    counts = {d: (len(s.y_train), len(s.y_test)) for d in ("tweets", "movies", "amazon")
              for s in [vader_split(VADER, domain=d)]}
    assert counts == {"tweets": (2690, 672), "movies": (8035, 2008), "amazon": (2354, 589)}
    cross = vader_split(VADER, test_domain="movies")
    assert (len(cross.y_train), len(cross.y_test)) == (2690 + 672 + 2354 + 589, 8035 + 2008)


def test_data_module_finds_text_folders(tmp_path):
    from onebit.data import check_dataset_spec, load_dataset

    folder = fake_vader(tmp_path / "vader-sentences")
    assert check_dataset_spec(folder) == "vader-sentences"
    data = load_dataset(folder, seed=1)
    assert data.name == "vader-sentences" and data.class_names == ("negative", "positive")
    assert data.featurizer["format"] == "onebit-text-featurizer"
    mine = label_folder(tmp_path / "mine", TRAIN, b"pos\tok\n")
    assert check_dataset_spec(mine) == "mine"
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"no data set found.*train-images-idx3-ubyte.*data_batch_1.*train.tsv"):
        check_dataset_spec(tmp_path / "empty")


# --------------------------------------------------------------------------- model, export, engine


def trained_text_model(tmp_path: Path, epochs: int = 3):
    import torch

    from onebit.models import create_model
    from onebit.train import fit, torch_threads
    from onebit.text.datasets import vader_split

    split = vader_split(fake_vader(tmp_path / "vader-sentences"))
    featurizer = TextFeaturizer(dim=512, char_ngrams=(2, 3))
    data = split.featurize(featurizer)
    with torch_threads(1):
        torch.manual_seed(0)
        model = create_model("binary_text_mlp", num_classes=2, in_shape=data.in_shape, hidden=64)
        fit(model, data, epochs=epochs, batch_size=16, lr=3e-3, seed=0)
    return model.eval(), split, data


def test_binary_text_mlp_builds_and_rejects_bad_arguments():
    import torch

    from onebit.models import create_model

    model = create_model("binary_text_mlp")
    assert model(torch.zeros(3, 2048)).shape == (3, 2)
    twin = create_model("binary_text_mlp", in_shape=(100,), num_classes=3, input_quantizer=None,
                        weight_quantizer=None, depth=3, shortcut=False, dropout_in=0.1, dropout=0.1)
    assert twin(torch.zeros(2, 100)).shape == (2, 3)
    for bad, message in (({"hidden": 0}, "hidden must be a positive integer"), ({"depth": 0}, "depth must be"),
                         ({"dropout_in": 1.0}, r"dropout_in must be in \[0, 1\)")):
        with pytest.raises(ConfigError, match=message):
            create_model("binary_text_mlp", **bad)


def test_engine_equals_pytorch_and_classifies_raw_strings(tmp_path):
    import torch

    from onebit.runtime import load
    from onebit.text import TextClassifier, export_text_model

    model, split, data = trained_text_model(tmp_path)
    path = tmp_path / "text.onebit"
    featurizer = TextFeaturizer.from_dict(data.featurizer)
    report = export_text_model(model, path, featurizer, split.train_texts[:32], class_names=data.class_names)
    assert report.file_bytes == path.stat().st_size
    kinds = [layer.kind for layer in report.layers]
    assert any("binary" in k for k in kinds)
    engine = load(path, num_threads=1)
    with torch.no_grad():
        expected = model(torch.from_numpy(data.x_test)).numpy()
    got = engine(data.x_test)
    np.testing.assert_allclose(got, expected, atol=1e-4 * max(1.0, np.abs(expected).max()))
    assert np.array_equal(got.argmax(1), expected.argmax(1))
    classifier = TextClassifier(path, num_threads=1)
    np.testing.assert_array_equal(classifier(split.test_texts), got)
    assert classifier.predict_names(["tweets good 1"])[0] in ("negative", "positive")
    assert classifier.class_names == ("negative", "positive")


def test_text_classifier_refuses_a_model_without_featurizer(tmp_path):
    import torch

    from onebit.export import export
    from onebit.models import create_model
    from onebit.text import TextClassifier

    model = create_model("binary_text_mlp", in_shape=(64,), hidden=16).eval()
    export(model, tmp_path / "plain.onebit", torch.randn(4, 64))
    with pytest.raises(ModelFileError, match="records no text featurizer"):
        TextClassifier(tmp_path / "plain.onebit")
    export(model, tmp_path / "wrong.onebit", torch.randn(4, 64), info={"featurizer": TextFeaturizer(dim=99).to_dict()})
    with pytest.raises(ModelFileError, match=r"takes inputs of shape \(64,\), its featurizer makes rows of shape \(99,\)"):
        TextClassifier(tmp_path / "wrong.onebit")
    export(model, tmp_path / "bad.onebit", torch.randn(4, 64), info={"featurizer": {"format": "nope"}})
    with pytest.raises(ModelFileError, match="text featurizer record is damaged"):
        TextClassifier(tmp_path / "bad.onebit")




def test_text_classifier_runs_without_torch(tmp_path):
    model, split, data = trained_text_model(tmp_path, epochs=1)
    from onebit.text import export_text_model

    path = tmp_path / "text.onebit"
    export_text_model(model, path, TextFeaturizer.from_dict(data.featurizer), split.train_texts[:8],
                      class_names=data.class_names)
    assert_same_names_without_torch(path, SENTENCES)


def assert_same_names_without_torch(path: Path, texts: list[str]) -> None:
    """The file's classifier, in a process where torch cannot be imported, names ``texts`` as here."""
    from onebit.text import TextClassifier

    expected = TextClassifier(path, num_threads=1).predict_names(texts)
    code = BLOCK_TORCH + textwrap.dedent(f"""
        from onebit.text import TextClassifier
        names = TextClassifier({str(path)!r}, num_threads=1).predict_names({texts!r})
        assert "torch" not in sys.modules
        print(names)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(expected)


def test_onebit_train_on_a_label_folder_writes_a_text_model(tmp_path):
    from onebit.cli import main
    from onebit.text import TextClassifier

    lines = b"".join(b"%s\t%s film %d\n" % ((b"pos", b"great", i) if i % 2 else (b"neg", b"awful", i))
                     for i in range(80))
    folder = label_folder(tmp_path / "mine", lines, b"pos\tgreat film\nneg\tawful film\n")
    out = tmp_path / "run"
    assert main(["train", "--data", str(folder), "--epochs", "2", "--out", str(out), "--no-progress",
                 "-M", "hidden=32"]) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["model"] == "binary_text_mlp"  # the default model for text
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_accuracy"] == metrics["runtime_test_accuracy"]
    classifier = TextClassifier(out / "model.onebit")
    assert classifier.class_names == ("neg", "pos")
    assert classifier.predict_names(["great film", "awful film"]) in (["pos", "neg"], ["neg", "pos"], ["pos", "pos"],
                                                                     ["neg", "neg"])


@needs_vader
def test_onebit_train_data_vader_sentences(tmp_path):
    from onebit.cli import main
    from onebit.text import TextClassifier

    out = tmp_path / "run"
    assert main(["train", "--data", str(VADER), "--epochs", "1", "--out", str(out), "--no-progress",
                 "-M", "hidden=32"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["runtime_test_accuracy"] == metrics["test_accuracy"] and metrics["test_accuracy"] > 0.6
    assert TextClassifier(out / "model.onebit").predict_names(["what a wonderful, happy day"]) == ["positive"]
