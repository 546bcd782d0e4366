"""`onebit search` and `onebit experiment`: one-line errors before any work, a real (tiny) search, --json."""

from __future__ import annotations

import json

import pytest

from onebit.cli import main

TINY = ["--model", "binarynet_cnn", "-M", "channels=[8,16,32]", "-M", "hidden=32", "--data", "digits",
        "--population", "3", "--generations", "2", "--proxy-epochs", "1", "--epochs", "1"]


def _fails(capsys, *argv: str) -> str:
    """The CLI exits 2 with one error line on stderr and no traceback."""
    capsys.readouterr()
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert "error" in lines[-1] and not any("error" in line for line in lines[:-1]), err
    return lines[-1]


@pytest.mark.parametrize("argv,message", [
    (["--model", "lfc", "--data", "digits"], "model 'lfc' has no per-layer width knobs to search; searchable models"),
    (["--model", "binary_cnn1", "--data", "mnist1d"], "did you mean 'binary_cnn1d'"),
    (["--model", "binary_cnn1d", "--data", "mnist1d", "--cost", "flops"],
     "unknown cost 'flops'; valid choices: binary_macs, bytes, latency"),
    (["--model", "binary_cnn1d", "--data", "mnist1d", "--budget", "1e6", "--budget-like", "uniform:2"],
     "--budget or --budget-like, not both"),
    (["--model", "binary_cnn1d", "--data", "mnist1d", "--budget-like", "twice"], "uniform:R"),
    (["--model", "binary_cnn1d", "--data", "mnist1d", "--cost", "binary_macs,bytes", "--budget", "1e6"],
     "one number per cost"),
    (["--model", "binary_cnn1d", "--data", "mnist1d", "--over-budget", "drop"], "unknown over-budget policy 'drop'"),
    (["--model", "binary_cnn1d", "--data", "mnist1d", "--backend", "spark"], "unknown backend 'spark'"),
    (["--model", "binary_cnn1d", "--data", "nope"], "unknown data set"),
    (["--data", "mnist1d"], "needs --model and --data"),
    (["--model", "binary_cnn1d", "--data", "mnist1d", "--population", "0"], "expected a positive integer"),
])
def test_bad_search_arguments_are_one_line(argv, message, capsys, tmp_path):
    assert message in _fails(capsys, "search", *argv, "--out", str(tmp_path / "s"))
    assert not (tmp_path / "s").exists()


def test_a_budget_below_the_cheapest_genome_trains_nothing(capsys, tmp_path):
    line = _fails(capsys, "search", "--model", "binary_cnn1d", "--data", "mnist1d", "--budget", "1000",
                  "--out", str(tmp_path / "s"))
    assert "binary_macs budget 1,000 MACs is below the cheapest genome's 0.338M MACs" in line
    assert not (tmp_path / "s").exists()


def test_resume_errors(capsys, tmp_path):
    assert "nothing to resume" in _fails(capsys, "search", "--resume", str(tmp_path / "none"))
    assert "drop --model, --population" in _fails(capsys, "search", "--resume", str(tmp_path), "--model",
                                                  "binary_cnn1d", "--population", "4")


def test_ray_missing_says_how_to_install(capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)
    assert "pip install 'onebit[search]'" in _fails(capsys, "search", *TINY, "--backend", "ray")


def test_a_tiny_search_writes_its_folder_and_json(capsys, tmp_path):
    out = tmp_path / "search"
    assert main(["search", *TINY, "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["budget_source"] == "uniform:2" and summary["evaluations"] == 3 + 1 * 2
    winner = summary["winner"]
    assert winner["costs"]["binary_macs"] <= summary["budget"]["binary_macs"]
    assert winner["test_accuracy"] == winner["runtime_test_accuracy"]  # the engine agrees with PyTorch
    for name in ("search.json", "pareto.png", "state.json", "winner/checkpoint.safetensors", "winner/model.onebit",
                 "winner/metrics.json"):
        assert (out / name).is_file(), name
    record = json.loads((out / "search.json").read_text())
    assert record["status"] == "done" and len(record["references"]) == 3
    assert "not empty" in _fails(capsys, "search", *TINY, "--out", str(out))
    # The text summary of a resumed (finished) search.
    assert main(["search", "--resume", str(out)]) == 0
    text = capsys.readouterr().out
    assert "winner [" in text and "random search, same evaluations" in text and "uniform x4" in text


def test_experiment_commands(capsys, tmp_path):
    assert main(["experiment", "list"]) == 0
    assert "shen2019_width_search" in capsys.readouterr().out
    assert main(["experiment", "list", "--json"]) == 0
    assert "shen2019_width_search" in [e["name"] for e in json.loads(capsys.readouterr().out)]
    assert "did you mean 'shen2019_width_search'" in _fails(capsys, "experiment", "run", "shen2019_width_serch")
    assert "did you mean 'list'" in _fails(capsys, "experiment", "lst")
    assert "needs the experiment's NAME" in _fails(capsys, "experiment", "run")
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "f").write_text("")
    assert "not empty" in _fails(capsys, "experiment", "run", "shen2019_width_search", "--out", str(tmp_path / "x"))
