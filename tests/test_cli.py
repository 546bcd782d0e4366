"""The ``onebit`` command: errors are one line before any work, outputs are text or --json, options documented."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest

import onebit
import onebit.data
from onebit import cli
from onebit.checkpoint import save_checkpoint
from onebit.cli import main
from onebit.data import load_dataset
from onebit.models import create_model, list_models, model_info


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """The installed entry point, as a user runs it (a fresh interpreter)."""
    return subprocess.run([sys.executable, "-m", "onebit.cli", *args], capture_output=True, text=True, timeout=300)


def _error_line(stderr: str) -> str:
    """The one error line, the last on stderr; lines before it may only be progress ("reading the
    training and test parts of ...")."""
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert [i for i, line in enumerate(lines) if "error" in line] == [len(lines) - 1], stderr
    return lines[-1]


def assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    assert proc.returncode == 2, proc.stderr
    line = _error_line(proc.stderr)
    for fragment in fragments:
        assert fragment in line, line


def _one_line_from_main(capsys, *argv: str) -> str:
    """Run the CLI in this process; it must fail with status 2 and one error line on stderr
    (argparse's own refusals exit through SystemExit, the library's return 2)."""
    capsys.readouterr()  # what earlier calls wrote
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = exc.code
    assert code == 2
    return _error_line(capsys.readouterr().err)


# --------------------------------------------------------------------------- errors


def test_unknown_model_names_the_choices_and_the_closest():
    assert_one_line_error(run_cli("train", "--model", "resnet9000"), "unknown model 'resnet9000'", "lfc", "tfc")
    assert_one_line_error(run_cli("train", "--model", "binarynet_mpl"), "did you mean 'binarynet_mlp'?")


def test_unknown_data_names_the_choices():
    assert_one_line_error(run_cli("train", "--data", "imagenet"), "imagenet", "digits", "mnist1d")
    assert_one_line_error(run_cli("train", "--data", "digts"), "did you mean 'digits'?")


def test_missing_data_folder(tmp_path):
    assert_one_line_error(run_cli("train", "--data", str(tmp_path / "nothing")), str(tmp_path / "nothing"))


def test_folder_that_is_no_data_set(tmp_path):
    (tmp_path / "readme.txt").write_text("hello")
    assert_one_line_error(run_cli("train", "--data", str(tmp_path)), str(tmp_path))


def test_missing_and_corrupted_checkpoints(tmp_path):
    assert_one_line_error(run_cli("eval", str(tmp_path / "none.safetensors")), "not found")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{garbage")
    assert_one_line_error(run_cli("eval", str(bad)), "bad.safetensors")
    text = tmp_path / "notes.txt"
    text.write_text("hello, this is not a checkpoint\n")
    proc = run_cli("eval", str(text))
    assert_one_line_error(proc, "notes.txt is not a onebit checkpoint", "onebit train writes")
    assert "header" not in proc.stderr  # no library wording ("header too large")


def test_corrupted_idx_file_in_a_data_folder(tmp_path):
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):
        (tmp_path / name).write_bytes(b"\x00\x00\x08\x03\x00\x00\x00\x05garbage")
    assert_one_line_error(run_cli("train", "--data", str(tmp_path)), "idx")


def test_bad_model_arg_and_bad_option_values():
    assert_one_line_error(run_cli("summary", "lfc", "-M", "width=3"), "unknown argument", "width")
    assert_one_line_error(run_cli("summary", "lfc", "--in-shape", "a,b"), "--in-shape")
    assert_one_line_error(run_cli("train", "--epochs", "0"), "--epochs", "positive integer")
    assert_one_line_error(run_cli("train", "--optimizer", "lamb"), "unknown optimizer 'lamb'", "adam", "bop")
    assert_one_line_error(run_cli("train", "-M", "oops"), "KEY=VALUE")


# The loader must never run for these: every one is refused before any data is read.
BAD_TRAIN_ARGS = [
    (["--epochs", "-1"], "--epochs: expected a positive integer, got '-1'"),
    (["--batch-size", "0"], "--batch-size: expected a positive integer"),
    (["--lr", "-3"], "--lr: expected a positive number"),
    (["--lr", "nan"], "--lr: expected a positive number"),
    (["--optimizer", "adamm"], "unknown optimizer 'adamm' (did you mean 'adam'?)"),
    (["--schedule", "cosin"], "unknown schedule 'cosin' (did you mean 'cosine'?)"),
    (["--recipe", "three-stage"], "unknown recipe 'three-stage'"),
    (["--keep", "everything"], "unknown --keep setting 'everything'"),
    (["--model", "binarynet_mpl"], "did you mean 'binarynet_mlp'?"),
    (["--model", "binarynet_mlp", "-M", "hiden=3"], "did you mean 'hidden' for 'hiden'?"),
    (["-M", "chanels=3"], "did you mean 'channels' for 'chanels'?"),
    (["--val-fraction", "1.5"], "--val-fraction: expected a number strictly between 0 and 1"),
    (["--seed", "-1"], "--seed: expected a non-negative integer"),
    (["--weight-decay", "-0.1"], "--weight-decay: expected a non-negative number"),
    (["--threads", "0"], "--threads: expected a positive integer"),
    (["--ce-weight", "2"], "--ce-weight: expected a number from 0 to 1"),
    (["--split", "0:5"], "--split: expected TRAIN:TEST"),
    (["--data", "digts"], "did you mean 'digits'?"),
    (["--recipe", "two-stage", "--epochs", "1"], "at least 2 epochs"),
    (["--teacher", "t.safetensors"], "--teacher is for a distilled recipe"),
    (["--ce-weight", "0.5"], "ce_weight and attention_weight belong to distillation"),
    (["--float", "--recipe", "distill"], "does not combine with the distill recipe"),
    (["--recipe", "reactnt"], "unknown recipe 'reactnt' (did you mean 'reactnet'?)"),
    (["--set", "label_smoothin=0.1"], "unknown recipe setting (--set) 'label_smoothin' (did you mean 'label_smoothing'?)"),
    (["--set", "lr=0.1"], "use --lr to set lr"),
    (["--set", "two_step=both"], "unknown two_step setting 'both'"),
    (["--set", "augment=3"], "true or false"),
    (["--schedule", "linear", "--set", "warmup_epochs=100"], "warmup_epochs (100) must be fewer"),
    (["--recipe", "distill", "--teacher", "missing.safetensors"], "checkpoint not found: missing.safetensors"),
]


@pytest.mark.parametrize("argv,message", BAD_TRAIN_ARGS, ids=[" ".join(a) for a, _ in BAD_TRAIN_ARGS])
def test_bad_train_arguments_are_refused_before_the_data_is_loaded(argv, message, capsys, monkeypatch, tmp_path):
    def loader_must_not_run(*args, **kwargs):
        raise AssertionError("load_dataset was called for a bad argument")

    monkeypatch.setattr(onebit.data, "load_dataset", loader_must_not_run)
    line = _one_line_from_main(capsys, "train", *argv, "--out", str(tmp_path / "run"))
    assert message in line, line
    assert not (tmp_path / "run").exists()


def test_errors_that_need_the_data_still_come_before_training(tmp_path, capsys):
    assert "larger than the 1293 training samples" in _one_line_from_main(
        capsys, "train", "--model", "tfc", "--batch-size", "5000", "--out", str(tmp_path / "b"))


def test_out_folder_that_is_not_empty(tmp_path):
    (tmp_path / "x").write_text("keep me")
    assert_one_line_error(run_cli("train", "--out", str(tmp_path)), "already exists")


# --------------------------------------------------------------------------- help, version


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = cli._parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_option_has_help_and_states_its_default():
    for name, sub in _subparsers().items():
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, f"onebit {name} {action.option_strings or action.dest}: no help text"
            if action.option_strings and not (action.default is None or action.default is False
                                              or action.default == []):
                text = sub.formatter_class(prog="x")._get_help_string(action)
                assert "default" in text, f"onebit {name} {action.option_strings}: default not stated"
        assert "--json" in sub.format_help(), name


def test_help_names_the_library_choices():
    from onebit.optim import OPTIMIZERS
    from onebit.recipes import RECIPE_CHOICES
    from onebit.train import KEEP_CHOICES, SCHEDULES

    assert cli.OPTIMIZER_CHOICES == OPTIMIZERS and cli.SCHEDULE_CHOICES == SCHEDULES
    assert cli.RECIPE_CHOICES == RECIPE_CHOICES and cli.KEEP_CHOICES == KEEP_CHOICES
    text = _subparsers()["train"].format_help()
    for option in ("--batch-size", "--lr", "--seed", "--weight-decay", "--val-fraction", "--ce-weight", "--split"):
        assert option in text


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"onebit {onebit.__version__}"


# --------------------------------------------------------------------------- native shapes


@pytest.mark.parametrize("name", list_models())
def test_summary_with_no_options_is_the_published_network(name, capsys):
    """`onebit summary NAME` builds the native network; its count equals the published one where there is one."""
    info = model_info(name)
    assert main(["summary", name, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert tuple(report["input_shape"]) == info.in_shape and report["num_classes"] == info.num_classes
    if info.params is not None:
        assert report["totals"]["total_params"] == info.params, info.params_source


def test_create_model_with_no_arguments_builds_the_native_network():
    for name in ("birealnet18", "binarynet_cnn", "binary_cnn1d", "lfc"):
        info = model_info(name)
        args = create_model(name).onebit_config["args"]
        assert (tuple(args["in_shape"]), args["num_classes"]) == (info.in_shape, info.num_classes)


def test_summary_text_uses_native_shapes_and_overrides(capsys):
    assert main(["summary", "birealnet18"]) == 0
    out = capsys.readouterr().out
    assert "input (3, 224, 224)" in out and "Published count: 11,699,112 parameters" in out and ": equal" in out
    assert main(["summary", "lfc", "--in-shape", "1,8,8", "--num-classes", "4"]) == 0
    out = capsys.readouterr().out
    assert "QuantLinear" in out and "Params:" in out and "MACs:" in out and "Published" not in out
    assert main(["summary", "binary_cnn1d", "--float"]) == 0
    assert main(["summary", "tfc", "--data", "digits"]) == 0
    assert "input (1, 8, 8)" in capsys.readouterr().out


def test_models_command(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "lfc" in out and "3×224×224" in out and "11,699,112" in out
    assert main(["models", "--json"]) == 0
    models = {m["name"]: m for m in json.loads(capsys.readouterr().out)}
    assert models["birealnet18"]["in_shape"] == [3, 224, 224] and models["birealnet18"]["num_classes"] == 1000
    assert set(models) == set(list_models())


# --------------------------------------------------------------------------- eval, export, bench


@pytest.fixture
def tfc_checkpoint(tmp_path):
    data = load_dataset("digits")
    model = create_model("tfc", num_classes=10, in_shape=data.in_shape)
    return save_checkpoint(tmp_path / "c.safetensors", model, epoch=3, info={"data": "digits"})


def test_eval_command_reads_everything_from_the_checkpoint(tfc_checkpoint, capsys):
    assert main(["eval", str(tfc_checkpoint)]) == 0
    out = capsys.readouterr().out
    assert "tfc (epoch 3) on digits: test accuracy" in out and "(360 samples)" in out
    assert main(["eval", str(tfc_checkpoint), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["model"] == "tfc" and report["test_samples"] == 360 and 0 <= report["test_accuracy"] <= 1
    assert main(["eval", str(tfc_checkpoint), "--data", "mnist1d"]) == 2  # wrong input shape: clear error
    assert "input shape" in capsys.readouterr().err


def test_export_and_bench_commands(tfc_checkpoint, tmp_path, capsys):
    """`onebit export` writes a .onebit file the runtime scores; `onebit bench` prints the latency table."""
    assert main(["export", str(tfc_checkpoint), "-o", str(tmp_path / "m.onebit")]) == 0
    out = capsys.readouterr().out
    assert "binary weights, float input" in out and "test accuracy on digits computed by onebit.runtime" in out
    assert "BatchNorm folded into integer thresholds" in out
    assert main(["export", str(tfc_checkpoint), "-o", str(tmp_path / "j.onebit"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["file_bytes"] == (tmp_path / "j.onebit").stat().st_size and report["test_samples"] == 360
    assert main(["bench", str(tmp_path / "m.onebit"), "--threads", "1,2", "--repeats", "3"]) == 0
    table = capsys.readouterr().out
    assert "| threads |" in table and "PyTorch fp32" in table and len(table.strip().splitlines()) == 6
    one, two = (row.split("|") for row in table.strip().splitlines()[4:])
    assert "onebit vs 1 thread" in table and one[3].strip() == "1.00×" and two[3].strip().endswith("×")
    assert main(["bench", str(tmp_path / "m.onebit"), "--threads", "1", "--repeats", "2", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert [r["threads"] for r in rows] == [1] and rows[0]["onebit_ms"]["median"] > 0
    assert_one_line_error(run_cli("bench", str(tmp_path / "none.onebit")), "not found")
    assert_one_line_error(run_cli("bench", str(tmp_path / "m.onebit"), "--threads", "x"), "--threads")


def test_bench_says_how_to_export_a_checkpoint(tfc_checkpoint):
    proc = run_cli("bench", str(tfc_checkpoint))
    assert_one_line_error(proc, "is a training checkpoint", f"onebit export {tfc_checkpoint} -o")


def test_bench_times_a_registered_model_at_its_native_size(capsys):
    assert main(["bench", "tfc", "--threads", "1", "--repeats", "2"]) == 0
    out = capsys.readouterr().out
    assert "tfc (random weights)" in out and "| threads |" in out
    assert main(["bench", "binarynet_mpl"]) == 2
    assert "did you mean 'binarynet_mlp'?" in capsys.readouterr().err


# --------------------------------------------------------------------------- train


def test_train_with_a_fixed_seed_repeats_exactly(tmp_path):
    """Two processes, same seed: byte-identical weights (initialisation included)."""
    for run in ("a", "b"):
        proc = run_cli("train", "--no-progress", "--model", "tfc", "--epochs", "2", "--keep", "last",
                       "--out", str(tmp_path / run))
        assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "a" / "last.safetensors").read_bytes() == (tmp_path / "b" / "last.safetensors").read_bytes()


def test_train_text_output_counts_and_files(tmp_path, capsys):
    out_dir = tmp_path / "run"
    assert main(["train", "--model", "tfc", "--epochs", "2", "--no-progress", "--out", str(out_dir)]) == 0
    captured = capsys.readouterr()
    out = captured.out
    # 1,437 training rows of digits: 144 (10 %) are held out for validation, 1,293 are trained on.
    assert "1,293 training + 144 validation (0.1 of the training part) + 360 test samples" in out
    assert "epoch   2/2" in captured.err and "samples/s" in captured.err  # progress: stderr
    assert "test accuracy: " in out and "engine (onebit.runtime on model.onebit)" in out
    assert f"wrote {out_dir}/:" in out and "removed train_state.pt" in out and "--keep all" in out
    assert sorted(p.name for p in out_dir.iterdir()) == [
        "checkpoint.safetensors", "curves.png", "last.safetensors", "metrics.json", "model.onebit", "report.html",
        "run.json"]


def test_train_json_output_and_keep(tmp_path, capsys):
    best = tmp_path / "best"
    assert main(["train", "--model", "tfc", "--epochs", "1", "--keep", "best", "--json", "--out", str(best)]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)  # stdout is the JSON object alone
    assert "epoch   1/1" in captured.err  # progress lines moved to stderr
    assert report["samples"] == {"train": 1293, "validation": 144, "test": 360}
    assert report["runtime_test_accuracy"] is not None and report["run_dir"] == str(best)
    assert set(report["files"]) == {"checkpoint.safetensors", "metrics.json", "curves.png", "model.onebit", "run.json",
                                    "report.html"}
    assert set(report["removed"]) == {"train_state.pt", "last.safetensors"}
    assert report["files"]["checkpoint.safetensors"] == (best / "checkpoint.safetensors").stat().st_size

    everything = tmp_path / "all"
    assert main(["train", "--model", "tfc", "--epochs", "1", "--keep", "all", "--json", "--out", str(everything)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert "train_state.pt" in report["files"] and report["removed"] == {}


def test_train_on_a_folder_with_one_part_needs_a_split(tmp_path, capsys):
    """A folder with only MNIST's test files (as ../shared/data/mnist-t10k) trains with --split TRAIN:TEST."""
    from onebit.data import write_idx

    digits = load_dataset("digits")
    images = (digits.x_train[:300, 0] * 255).astype("uint8")
    folder = tmp_path / "t10k-only"
    folder.mkdir()
    write_idx(folder / "t10k-images-idx3-ubyte.gz", images)
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", digits.y_train[:300].astype("uint8"))
    line = _one_line_from_main(capsys, "train", "--model", "tfc", "--data", str(folder), "--out", str(tmp_path / "x"))
    assert "holds only the test part (300 images)" in line and "--split 240:60" in line
    run = tmp_path / "run"
    assert main(["train", "--model", "tfc", "--data", str(folder), "--split", "200:100", "--epochs", "1",
                 "--no-progress", "--out", str(run)]) == 0
    out = capsys.readouterr().out
    assert "180 training + 20 validation (0.1 of the training part) + 100 test samples" in out
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["split"] == [200, 100]
    # eval and export find the split in the checkpoint
    assert main(["eval", str(run / "checkpoint.safetensors"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["test_samples"] == 100


def test_train_two_stage_and_distill_recipes(tmp_path, capsys):
    """Both procedures run from the command line and record themselves; a finished run resumes to itself."""
    common = ["train", "--model", "tfc", "--no-progress", "--epochs", "2"]
    assert main([*common, "--recipe", "two-stage", "--keep", "all", "--out", str(tmp_path / "two")]) == 0
    assert (tmp_path / "two" / "stage1" / "checkpoint.safetensors").is_file()
    metrics = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert metrics["recipe"] == "two-stage" and metrics["procedure"] == "two-stage"
    assert metrics["epochs"] == 1  # 2 epochs: one per step
    run = json.loads((tmp_path / "two" / "run.json").read_text())
    assert run["recipe"]["two_step"] == "weights" and run["model"] == "tfc"
    before = (tmp_path / "two" / "last.safetensors").read_bytes()
    assert main(["train", "--resume", str(tmp_path / "two"), "--no-progress"]) == 0  # nothing left to train
    assert (tmp_path / "two" / "last.safetensors").read_bytes() == before
    assert "drop --epochs" in _one_line_from_main(capsys, "train", "--resume", str(tmp_path / "two"), "--epochs", "3")

    assert main(["train", "--model", "tfc", "--no-progress", "--epochs", "1", "--float", "--out",
                 str(tmp_path / "teacher")]) == 0
    teacher = tmp_path / "teacher" / "checkpoint.safetensors"
    assert main([*common, "--recipe", "distill", "--teacher", str(teacher), "--ce-weight", "0.5",
                 "--out", str(tmp_path / "kd")]) == 0
    metrics = json.loads((tmp_path / "kd" / "metrics.json").read_text())
    assert metrics["recipe"] == "distill" and metrics["teacher"] == str(teacher)
    assert metrics["recipe_settings"]["ce_weight"] == 0.5
    assert not (tmp_path / "kd" / "teacher").exists()  # the given checkpoint was used, none trained
    assert "model.onebit" in capsys.readouterr().out
    assert not list((tmp_path / "kd").rglob("train_state.pt"))  # pruned, sub-runs included


def test_named_recipe_with_settings_from_the_command_line(tmp_path, capsys):
    """--recipe bireal on TFC with --set overrides: the choices reach the run and the model exports."""
    out = tmp_path / "bireal"
    assert main(["train", "--model", "tfc", "--no-progress", "--epochs", "2", "--recipe", "bireal", "--set",
                 "label_smoothing=0.1", "--set", "warmup_epochs=1", "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["recipe"] == "bireal" and report["runtime_test_accuracy"] == report["test_accuracy"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model_args"]["shortcut"] is True and metrics["model_args"]["input_quantizer"] == "approx_sign"
    assert metrics["label_smoothing"] == 0.1 and metrics["warmup_epochs"] == 1 and metrics["augment"] == "shift"



def _run_on_a_terminal(argv: list[str], until: str | None = None, timeout: float = 300) -> tuple[int, str]:
    """Run ``onebit ARGV`` with stdin/stdout/stderr on a pseudo-terminal (as `script -c` does); returns
    (exit status, everything it drew). With ``until``, SIGINT (Ctrl-C) is sent once that text appeared."""
    import os
    import pty
    import signal
    import time

    master, slave = pty.openpty()
    # preexec_fn: a shell's `cmd &` without job control starts children with SIGINT ignored, which
    # exec keeps; the Ctrl-C under test must reach the CLI wherever the suite was started from
    proc = subprocess.Popen([sys.executable, "-m", "onebit.cli", *argv], stdin=slave, stdout=slave, stderr=slave,
                            close_fds=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    os.close(slave)
    text, deadline, sent = b"", time.monotonic() + timeout, False
    try:
        while time.monotonic() < deadline:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            text += chunk
            if until is not None and not sent and until.encode() in text:
                proc.send_signal(signal.SIGINT)
                sent = True
    finally:
        os.close(master)
        code = proc.wait(timeout=60)
    return code, text.decode("utf-8", "replace")


def test_progress_bar_per_epoch_on_a_terminal(tmp_path):
    """On a terminal each epoch draws a bar: batches done of the total, samples/s and the running loss."""
    # hidden=2048: batches slow enough for the bar to redraw; no report.html, which this test does not read.
    code, text = _run_on_a_terminal(["train", "--model", "binarynet_mlp", "-M", "hidden=2048", "--epochs", "2",
                                     "--no-report", "--out", str(tmp_path / "run")])
    assert code == 0, text
    assert "epoch 1/2:" in text and "epoch 2/2:" in text and "/21 [" in text  # 1,293 rows in batches of 64
    assert "samples/s" in text and "loss " in text and "batch/s" in text
    assert "epoch   2/2  loss" in text  # the epoch's line replaces its bar


def test_ctrl_c_during_training_says_how_to_resume(tmp_path):
    run = tmp_path / "run"
    code, text = _run_on_a_terminal(["train", "--model", "binarynet_mlp", "--no-progress", "--out", str(run)],
                                    until="epoch   1/30")
    assert code == 130, text
    assert f"holds the last finished epoch: continue with onebit train --resume {run}" in text
    assert "Traceback" not in text
