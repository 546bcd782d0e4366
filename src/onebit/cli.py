"""The ``onebit`` command line: parses arguments and calls the library, nothing more.

Every error about the user's input (unknown names, missing or malformed files) is a
:class:`~onebit.errors.OnebitError`; it is printed as one line and exits with status 2.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from onebit.errors import ConfigError, ExportError, OnebitError

DEFAULT_MODEL = "binarynet_mlp"
# The default run's width: BinaryNet's 4096 units are sized for MNIST and take minutes
# per epoch on 2 cores; 1024 units reach the same accuracy on the 8x8 digits in seconds.
DEFAULT_MODEL_ARGS: dict[str, Any] = {"hidden": 1024}
DEFAULT_DATA = "digits"
RECIPE_CHOICES = ("single", "two-stage", "distill")  # onebit.recipes.RECIPE_KINDS; kept here so --help needs no torch


def _model_arg(text: str) -> tuple[str, Any]:
    """``KEY=VALUE``; VALUE is a Python literal (``3``, ``0.5``, ``None``, ``[1, 2]``) or a bare string."""
    key, sep, value = text.partition("=")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    if value.lower() in ("none", "null", "float"):
        return key, None
    if value.lower() in ("true", "false"):
        return key, value.lower() == "true"
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="onebit", description="Binary neural networks: train, inspect and evaluate."
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    model_args = argparse.ArgumentParser(add_help=False)
    model_args.add_argument(
        "--model-arg", "-M", action="append", type=_model_arg, default=[], metavar="KEY=VALUE",
        help="extra model argument, repeatable (e.g. -M hidden=1024 -M dropout=0.2)",
    )
    model_args.add_argument(
        "--float", action="store_true",
        help="the float twin of the model: input_quantizer=None, weight_quantizer=None",
    )

    t = sub.add_parser("train", parents=[model_args], help="train a model and write a run folder")
    t.add_argument(
        "--model", default=None,
        help=f"registered model name (default {DEFAULT_MODEL} with {_format_args(DEFAULT_MODEL_ARGS)})",
    )
    t.add_argument("--data", default=DEFAULT_DATA, help="digits, mnist1d, or a folder (MNIST layout or cifar-10-batches-py)")
    t.add_argument("--epochs", type=int, default=None,
                   help="epochs (default: the model/data recipe; two-stage splits them between its stages)")
    t.add_argument("--batch-size", type=int, default=None)
    t.add_argument("--lr", type=float, default=None)
    t.add_argument("--optimizer", default="adam", help="adam, adamw, sgd or bop")
    t.add_argument("--schedule", default="cosine", help="cosine, constant or step")
    t.add_argument("--weight-decay", type=float, default=0.0)
    t.add_argument("--val-fraction", type=float, default=0.1)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", type=Path, default=None, help="run folder (default runs/<timestamp>)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument("--resume", type=Path, default=None, metavar="RUN_DIR",
                   help="continue an interrupted single-stage run from its last finished epoch, "
                        "with its recorded settings")
    t.add_argument("--recipe", default=None, choices=RECIPE_CHOICES,
                   help="single: one binary run; two-stage: binary weights + float activations, then fully binary "
                        "from those weights; distill: a float teacher's logits guide the binary model "
                        "(default: the model/data recipe, see docs/training.md)")
    t.add_argument("--teacher", type=Path, default=None, metavar="CHECKPOINT",
                   help="distill: the teacher's checkpoint (default: train the float twin first, into RUN_DIR/teacher)")
    t.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: the recipe's; results repeat bit for bit only at equal counts)")
    t.add_argument("--ce-weight", type=float, default=None,
                   help="distill: loss = (1 - w) KL(teacher || student) + w cross-entropy (default: the recipe's, 0)")

    s = sub.add_parser("summary", parents=[model_args], help="print a model's per-layer table")
    s.add_argument("model", help="registered model name")
    s.add_argument("--data", default=None, help="take the input shape and classes from this data set")
    s.add_argument("--in-shape", default=None, help="input shape without batch, e.g. 1,28,28 (default 1,28,28)")
    s.add_argument("--num-classes", type=int, default=None)

    e = sub.add_parser("eval", help="evaluate a checkpoint on its data set's test split")
    e.add_argument("checkpoint", type=Path)
    e.add_argument("--data", default=None, help="data set (default: the one recorded in the checkpoint)")

    x = sub.add_parser("export", help="export a checkpoint to a .onebit file for the runtime")
    x.add_argument("checkpoint", type=Path)
    x.add_argument("-o", "--output", type=Path, default=None, help="the .onebit file (default: beside the checkpoint)")
    x.add_argument("--data", default=None, help="data set for the check (default: the one recorded in the checkpoint)")

    b = sub.add_parser("bench", help="latency of a .onebit model: onebit vs PyTorch fp32, 1 and N threads")
    b.add_argument("model", type=Path, help="a .onebit file")
    b.add_argument("--batch-size", type=int, default=1)
    b.add_argument("--threads", default=None, help="comma-separated thread counts (default 1 and all cores)")
    b.add_argument("--repeats", type=int, default=50)

    sub.add_parser("models", help="list the registered models")
    return p


def _format_args(kwargs: dict[str, Any]) -> str:
    return " ".join(f"{k}={v!r}" for k, v in kwargs.items())


def _model_kwargs(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """The model name and its arguments; no --model means the default network."""
    name, kwargs = args.model, dict(args.model_arg)
    if name is None:
        name, kwargs = DEFAULT_MODEL, {**DEFAULT_MODEL_ARGS, **kwargs}
    if args.float:
        kwargs.update(input_quantizer=None, weight_quantizer=None)
    return name, kwargs


def _use_recorded_settings(args: argparse.Namespace) -> None:
    """``--resume RUN_DIR``: every setting comes from the run's saved state, none from the command line."""
    from onebit.train_state import load_train_state

    recorded = load_train_state(args.resume)["run_info"]
    if recorded.get("recipe", "single") != "single":
        raise ConfigError(
            f"{args.resume} is a {recorded['recipe']} run; --resume continues single-stage runs only: "
            f"start it again with a new --out"
        )
    args.model, args.model_arg, args.float = recorded["model"], list(recorded["model_args"].items()), False
    for key in ("data", "epochs", "batch_size", "lr", "optimizer", "schedule", "weight_decay", "val_fraction", "seed"):
        setattr(args, key, recorded[key])
    args.recipe, args.teacher, args.ce_weight = "single", None, None
    args.threads = recorded.get("threads")
    args.out = args.resume


def _train_recipe(args: argparse.Namespace, name: str, data_name: str) -> Any:
    """The model/data recipe with the command line's overrides applied."""
    from dataclasses import replace

    from onebit.recipes import recipe_for

    recipe = recipe_for(name, data_name)
    overrides = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "kind": args.recipe,
                 "ce_weight": args.ce_weight, "threads": args.threads}
    recipe = replace(recipe, **{k: v for k, v in overrides.items() if v is not None})
    if args.teacher is not None and recipe.kind != "distill":
        raise ConfigError(f"--teacher is for --recipe distill, not {recipe.kind}")
    if args.float and recipe.kind != "single":
        raise ConfigError(f"--float trains the float twin in one run; it does not combine with --recipe {recipe.kind}")
    return recipe


def _cmd_train(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from onebit.data import load_dataset
    from onebit.export import export_checked
    from onebit.model_summary import summary
    from onebit.models import create_model
    from onebit.recipes import train_with_recipe
    from onebit.train import record_metrics

    if args.resume is not None:
        _use_recorded_settings(args)
    data = load_dataset(args.data, seed=args.seed)
    name = args.model or DEFAULT_MODEL
    recipe = _train_recipe(args, name, data.name)
    kwargs = {**(DEFAULT_MODEL_ARGS if args.model is None else {}), **recipe.model_args, **dict(args.model_arg)}
    if args.float:
        kwargs.update(input_quantizer=None, weight_quantizer=None)
    out = args.out or Path("runs") / datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    if args.resume is None and out.exists() and any(out.iterdir()):
        raise ConfigError(f"run folder {out} already exists and is not empty; choose another --out")

    print(f"onebit train: model {name} {_format_args(kwargs)} on {data.name} ({data.source})")
    print(f"  {len(data.x_train)} training / {len(data.x_test)} test samples, input {data.in_shape}, "
          f"{data.num_classes} classes; {recipe.kind} recipe, {recipe.epochs} epochs, batch {recipe.batch_size}, "
          f"lr {recipe.lr}, {args.optimizer}, seed {args.seed}")
    table = summary(create_model(name, num_classes=data.num_classes, in_shape=data.in_shape, **kwargs), data.in_shape)
    print(table)
    info = {"model": name, "model_args": kwargs, "data": args.data, "data_name": data.name,
            "val_fraction": args.val_fraction, "summary": table.to_dict()["totals"], "recipe": recipe.kind,
            "threads": recipe.threads}
    if recipe.kind == "distill":
        info.update(ce_weight=recipe.ce_weight, teacher=str(args.teacher) if args.teacher else "float twin")
    trained = train_with_recipe(
        name, data, replace(recipe, model_args=kwargs), seed=args.seed, teacher=args.teacher,
        optimizer=args.optimizer, schedule=args.schedule, weight_decay=args.weight_decay,
        val_fraction=args.val_fraction, out_dir=out, progress=not args.no_progress,
        resume=args.resume is not None, info=info,
    )
    model, result = trained.model, trained.result
    for stage, r in trained.stages.items():
        print(f"{stage}: best epoch {r.best_epoch}, validation accuracy {r.best_val_accuracy:.2%}, "
              f"test accuracy {r.test_accuracy:.2%}  (run folder {out / stage})")
    print(f"best epoch {result.best_epoch}: validation accuracy {result.best_val_accuracy:.2%}")
    print(f"test accuracy: {result.test_accuracy:.2%}  ({len(data.x_test)} samples)")
    written = "checkpoint.safetensors, last.safetensors, metrics.json, curves.png, train_state.pt"
    try:
        engine = export_checked(model, out / "model.onebit", data.x_test, data.y_test, verbose=False,
                                info={"data": args.data})
    except ExportError as exc:  # a model the engine cannot run yet: the training results stand
        print(f"model.onebit not written: {exc}")
    else:
        record_metrics(out, runtime_test_accuracy=engine.accuracy, model_onebit_bytes=engine.report.file_bytes)
        print(f"engine (onebit.runtime, {engine.report.file_bytes:,} bytes, "
              f"{engine.report.compression:.1f}x smaller than float32): test accuracy {engine.accuracy:.2%}")
        written += ", model.onebit"
    print(f"wrote {out}/{{{written}}}")
    return 0


def _parse_shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(v) for v in text.replace("x", ",").split(",") if v.strip())
    except ValueError:
        raise ConfigError(f"--in-shape must be comma-separated integers like 1,28,28, got {text!r}") from None
    if not shape or min(shape) < 1:
        raise ConfigError(f"--in-shape must be positive integers like 1,28,28, got {text!r}")
    return shape


def _cmd_summary(args: argparse.Namespace) -> int:
    from onebit.models import create_model
    from onebit.model_summary import summary

    in_shape, num_classes = (1, 28, 28), 10
    if args.data is not None:
        from onebit.data import load_dataset

        data = load_dataset(args.data)
        in_shape, num_classes = data.in_shape, data.num_classes
    if args.in_shape is not None:
        in_shape = _parse_shape(args.in_shape)
    if args.num_classes is not None:
        num_classes = args.num_classes
    name, kwargs = _model_kwargs(args)
    model = create_model(name, num_classes=num_classes, in_shape=in_shape, **kwargs)
    print(summary(model, in_shape))
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from onebit.train import evaluate

    model, meta, data, spec = _checkpoint_and_data(args)
    result = evaluate(model, data.x_test, data.y_test)
    print(json.dumps({"checkpoint": str(args.checkpoint), "model": meta["model"]["name"], "data": spec,
                      "test_samples": len(data.x_test), "test_accuracy": result["accuracy"],
                      "test_loss": result["loss"]}, indent=2))
    return 0


def _checkpoint_and_data(args: argparse.Namespace) -> tuple[Any, dict[str, Any], Any, str]:
    """The model rebuilt from a checkpoint, its metadata, and the data set to check it on."""
    from onebit.checkpoint import load_checkpoint
    from onebit.data import load_dataset

    model, meta = load_checkpoint(args.checkpoint)
    spec = args.data or meta.get("info", {}).get("data")
    if spec is None:
        raise ConfigError(f"{args.checkpoint} records no data set; pass --data")
    data = load_dataset(spec)
    expected = tuple(meta["model"]["args"].get("in_shape", ()))
    if expected and tuple(data.in_shape) != expected:
        raise ConfigError(f"data set {spec!r} has input shape {data.in_shape}, the checkpoint's model expects {expected}")
    return model, meta, data, str(spec)


def _cmd_export(args: argparse.Namespace) -> int:
    from onebit.export import export_checked

    model, meta, data, spec = _checkpoint_and_data(args)
    output = args.output or args.checkpoint.with_suffix(".onebit")
    engine = export_checked(model, output, data.x_test, data.y_test, info={"data": spec})
    print(f"test accuracy on {spec} computed by onebit.runtime: {engine.accuracy:.2%} ({len(data.y_test)} samples)")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from onebit.bench import bench_model

    threads = None
    if args.threads is not None:
        try:
            threads = [int(t) for t in args.threads.split(",") if t.strip()]
        except ValueError:
            raise ConfigError(f"--threads must be comma-separated integers like 1,2, got {args.threads!r}") from None
    print(bench_model(args.model, batch_size=args.batch_size, threads=threads, repeats=args.repeats))
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from onebit.models import list_models, model_info

    for name in list_models():
        info = model_info(name)
        print(f"{name:16s} {info.family:10s} {info.description}")
    return 0


COMMANDS = {
    "train": _cmd_train, "summary": _cmd_summary, "eval": _cmd_eval, "export": _cmd_export,
    "bench": _cmd_bench, "models": _cmd_models,
}


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return COMMANDS[args.command](args)
    except OnebitError as exc:
        print(f"onebit {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"onebit {args.command}: interrupted", file=sys.stderr)
        return 130
    except ImportError as exc:
        print(f"onebit {args.command}: error: {exc}; install the training extras: pip install 'onebit[train]'",
              file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
