"""The ``onebit`` command: error paths exit non-zero with one clear line; summary and eval work."""

from __future__ import annotations

import json
import subprocess
import sys


from onebit.cli import main
from onebit.data import load_dataset
from onebit.models import create_model
from onebit.checkpoint import save_checkpoint


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """The installed entry point, as a user runs it (a fresh interpreter)."""
    return subprocess.run([sys.executable, "-m", "onebit.cli", *args], capture_output=True, text=True, timeout=300)


def assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_unknown_model_names_the_choices():
    assert_one_line_error(run_cli("train", "--model", "resnet9000"), "unknown model 'resnet9000'", "lfc", "tfc")


def test_unknown_data_names_the_choices():
    assert_one_line_error(run_cli("train", "--data", "imagenet"), "imagenet", "digits", "mnist1d")


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


def test_corrupted_idx_file_in_a_data_folder(tmp_path):
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):
        (tmp_path / name).write_bytes(b"\x00\x00\x08\x03\x00\x00\x00\x05garbage")
    assert_one_line_error(run_cli("train", "--data", str(tmp_path)), "idx")


def test_bad_model_arg_and_bad_option_values():
    assert_one_line_error(run_cli("summary", "lfc", "-M", "width=3"), "unknown argument", "width")
    assert_one_line_error(run_cli("summary", "lfc", "--in-shape", "a,b"), "--in-shape")
    assert_one_line_error(run_cli("train", "--epochs", "0"), "epochs")
    assert_one_line_error(run_cli("train", "--optimizer", "lamb"), "unknown optimizer 'lamb'", "adam", "bop")
    proc = run_cli("train", "-M", "oops")
    assert proc.returncode == 2 and "KEY=VALUE" in proc.stderr and "Traceback" not in proc.stderr


def test_summary_command(capsys):
    assert main(["summary", "lfc", "--in-shape", "1,8,8", "--num-classes", "4"]) == 0
    out = capsys.readouterr().out
    assert "QuantLinear" in out and "Params:" in out and "MACs:" in out
    assert main(["summary", "binary_cnn1d", "--in-shape", "1,40", "--float"]) == 0


def test_models_command(capsys):
    assert main(["models"]) == 0
    assert "lfc" in capsys.readouterr().out


def test_eval_command_reads_everything_from_the_checkpoint(tmp_path, capsys):
    data = load_dataset("digits")
    model = create_model("tfc", num_classes=10, in_shape=data.in_shape)
    path = save_checkpoint(tmp_path / "c.safetensors", model, info={"data": "digits"})
    assert main(["eval", str(path)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["model"] == "tfc" and report["test_samples"] == 360 and 0 <= report["test_accuracy"] <= 1
    assert main(["eval", str(path), "--data", "mnist1d"]) == 2  # wrong input shape: clear error
    assert "input shape" in capsys.readouterr().err


def test_out_folder_that_is_not_empty(tmp_path):
    (tmp_path / "x").write_text("keep me")
    assert_one_line_error(run_cli("train", "--out", str(tmp_path)), "already exists")


def test_export_and_bench_commands(tmp_path, capsys):
    """`onebit export` writes a .onebit file the runtime scores; `onebit bench` prints the latency table."""
    data = load_dataset("digits")
    model = create_model("tfc", num_classes=10, in_shape=data.in_shape)
    path = save_checkpoint(tmp_path / "c.safetensors", model, info={"data": "digits"})
    assert main(["export", str(path), "-o", str(tmp_path / "m.onebit")]) == 0
    out = capsys.readouterr().out
    assert "binary weights, float input" in out and "test accuracy on digits computed by onebit.runtime" in out
    assert main(["bench", str(tmp_path / "m.onebit"), "--threads", "1,2", "--repeats", "3"]) == 0
    table = capsys.readouterr().out
    assert "| threads |" in table and "PyTorch fp32" in table and len(table.strip().splitlines()) == 6
    one, two = (row.split("|") for row in table.strip().splitlines()[4:])
    assert "onebit vs 1 thread" in table and one[3].strip() == "1.00×" and two[3].strip().endswith("×")
    assert_one_line_error(run_cli("bench", str(tmp_path / "none.onebit")), "not found")
    assert_one_line_error(run_cli("bench", str(path)), "c.safetensors")  # a checkpoint is not a .onebit file
    assert_one_line_error(run_cli("bench", str(tmp_path / "m.onebit"), "--threads", "x"), "--threads")


def test_train_with_a_fixed_seed_repeats_exactly(tmp_path):
    """Two processes, same seed: byte-identical weights (initialisation included)."""
    for run in ("a", "b"):
        proc = run_cli("train", "--no-progress", "--model", "tfc", "--epochs", "2", "--out", str(tmp_path / run))
        assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "a" / "last.safetensors").read_bytes() == (tmp_path / "b" / "last.safetensors").read_bytes()


def _one_line_from_main(capsys, *argv: str) -> str:
    """Run the CLI in this process; it must fail with status 2 and a single line on stderr."""
    assert main(list(argv)) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_train_rejects_bad_training_options(tmp_path, capsys):
    assert "batch_size must be a positive integer" in _one_line_from_main(
        capsys, "train", "--batch-size", "0", "--out", str(tmp_path / "a"))
    assert "larger than the 1293 training samples" in _one_line_from_main(
        capsys, "train", "--model", "tfc", "--batch-size", "5000", "--out", str(tmp_path / "b"))
    assert "validation fraction" in _one_line_from_main(
        capsys, "train", "--model", "tfc", "--val-fraction", "1.5", "--out", str(tmp_path / "c"))
    assert "at least 2 epochs" in _one_line_from_main(capsys, "train", "--recipe", "two-stage", "--epochs", "1")
    assert "--teacher is for --recipe distill" in _one_line_from_main(capsys, "train", "--teacher", "t.safetensors")
    assert "does not combine with --recipe distill" in _one_line_from_main(
        capsys, "train", "--float", "--recipe", "distill")
    assert "threads must be a positive integer" in _one_line_from_main(capsys, "train", "--threads", "0")
    proc = run_cli("train", "--recipe", "three-stage")
    assert proc.returncode == 2 and "invalid choice: 'three-stage'" in proc.stderr and "Traceback" not in proc.stderr


def test_train_two_stage_and_distill_recipes(tmp_path, capsys):
    """Both recipes run from the command line, record themselves, and refuse --resume."""
    common = ["train", "--model", "tfc", "--no-progress", "--epochs", "2"]
    assert main([*common, "--recipe", "two-stage", "--out", str(tmp_path / "two")]) == 0
    assert (tmp_path / "two" / "stage1" / "checkpoint.safetensors").is_file()
    metrics = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert metrics["recipe"] == "two-stage" and metrics["epochs"] == 1  # 2 epochs: one per stage
    assert "continues single-stage runs only" in _one_line_from_main(capsys, "train", "--resume", str(tmp_path / "two"))

    assert main(["train", "--model", "tfc", "--no-progress", "--epochs", "1", "--float", "--out",
                 str(tmp_path / "teacher")]) == 0
    teacher = tmp_path / "teacher" / "checkpoint.safetensors"
    assert main([*common, "--recipe", "distill", "--teacher", str(teacher), "--ce-weight", "0.5",
                 "--out", str(tmp_path / "kd")]) == 0
    metrics = json.loads((tmp_path / "kd" / "metrics.json").read_text())
    assert metrics["recipe"] == "distill" and metrics["teacher"] == str(teacher) and metrics["ce_weight"] == 0.5
    assert not (tmp_path / "kd" / "teacher").exists()  # the given checkpoint was used, none trained
    assert "model.onebit" in capsys.readouterr().out
