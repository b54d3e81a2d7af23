"""mnist-job: train, evaluate and export MNIST-family Keras models; predict with the exported ONNX model.

The CLI is thin: every command calls a plain function that tests call too. TensorFlow is imported only
inside the commands that need it, so `mnist-job --help` answers at once.

Exit codes: 0 success, 1 a gate failed (e.g. export parity), 2 usage or input error, 3 some files failed
(predict), 130 interrupted.
"""

import json
import logging
import os
import sys
from enum import Enum
from typing import Optional

import typer

from job.errors import GateError, Interrupted, JobError

# TensorFlow's C++ log lines drown the job's own output (even a harmless tf.data "E0000 ... NodeDef mentions
# attribute" line on every run); its real failures still arrive as Python exceptions. Set it to 0 to debug.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

app = typer.Typer(
    help=__doc__.split("\n\n")[0] + "\n\nStart with `mnist-job models`, then `mnist-job train --dataset "
    "mnist-sample` (runs offline). Exit codes: 0 ok, 1 gate failed, 2 usage/input error, "
    "3 some files failed, 130 interrupted.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


# The edge predictor's own CLI, mounted as-is: `mnist-job predict ...` runs exactly `mnist-predict ...`.
from mnist_predict.cli import app as predict_app  # noqa: E402  (TF-free and light to import)

app.add_typer(predict_app, name="predict")


class Strategy(str, Enum):
    auto = "auto"
    one = "one"
    mirrored = "mirrored"
    multiworker = "multiworker"


DATASET_HELP = "mnist, fashion_mnist, or mnist-sample (bundled, offline)."
DATA_HELP = ("A Keras mnist.npz or a folder with the four IDX files (.gz or raw). "
             "Default: $MNIST_DATA, then Keras's cache/download.")


@app.command()
def models(as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON.")):
    """List the model zoo: parameters, training defaults and sources."""
    from job.models import ZOO, count_params

    rows = [{"name": s.name, "params": count_params(s.name), "optimizer": s.optimizer,
             "learning_rate": s.learning_rate, "schedule": s.schedule, "batch_size": s.batch_size,
             "epochs": s.epochs, "min_samples": s.min_samples, "augment": s.augment, "source": s.source, "notes": s.notes}
            for s in ZOO.values()]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="mnist-job model zoo (override any default from `train`)",
                  caption="epochs N+: more on small datasets, until training has seen 160k samples")
    for column in ("name", "params", "optimizer", "learning rate", "batch", "epochs", "source"):
        table.add_column(column, no_wrap=True, justify="right" if column in ("params", "batch", "epochs") else "left")
    for r in rows:
        schedule = "" if r["schedule"] == "constant" else f" ({r['schedule']})"
        table.add_row(r["name"], f"{r['params']:,}", r["optimizer"], f"{r['learning_rate']:g}{schedule}",
                      str(r["batch_size"]), f"{r['epochs']}+" if r["min_samples"] else str(r["epochs"]),
                      r["source"])
    Console(width=None if sys.stdout.isatty() else 120).print(table)


@app.command()
def train(
    model: str = typer.Option("cnn-bn-aug", help="Zoo model name (see `mnist-job models`)."),
    dataset: str = typer.Option("mnist", help=DATASET_HELP),
    data: Optional[str] = typer.Option(None, help=DATA_HELP),
    epochs: Optional[int] = typer.Option(None, help="Default: the zoo entry's."),
    batch_size: Optional[int] = typer.Option(None, help="Per-replica batch size. Default: the zoo entry's."),
    optimizer: Optional[str] = typer.Option(None, help="adam, rmsprop, sgd, adamw... Default: the zoo entry's."),
    learning_rate: Optional[float] = typer.Option(None, help="Default: the zoo entry's."),
    val_split: float = typer.Option(0.1, help="Fraction of the training data held out for validation."),
    seed: int = typer.Option(42, help="Same seed on the CPU gives identical metrics."),
    out: Optional[str] = typer.Option(None, help="Run directory. Default: runs/<model>-<UTC timestamp>."),
    resume: bool = typer.Option(False, help="Continue an interrupted run from its last finished epoch."),
    augment: Optional[bool] = typer.Option(None, help="Augmentation in the input pipeline: shifts, plus "
                                           "rotations for digits or mirror flips for Fashion-MNIST."),
    mixed_precision: bool = typer.Option(False, help="mixed_float16 (GPU); the output layer stays float32."),
    jit: bool = typer.Option(False, help="XLA-compile the train step: helps on GPUs, 2x slower on this CPU; "
                             "turns off op determinism."),
    strategy: Strategy = typer.Option(Strategy.auto, help="auto picks MirroredStrategy on >1 GPU."),
    tensorboard: bool = typer.Option(False, help="Write TensorBoard logs into the run directory."),
    max_train_samples: Optional[int] = typer.Option(None, help="Train on at most this many samples."),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON at the end."),
):
    """Train a zoo model, evaluate it on the test set, and write a run directory.

    Example: mnist-job train --model mnist-convnet --dataset fashion_mnist --data /usr/share/datasets/fashion-mnist
    """
    from job.training import TrainConfig, train as run_training

    cfg = TrainConfig(model=model, dataset=dataset, data=data, epochs=epochs, batch_size=batch_size,
                      optimizer=optimizer, learning_rate=learning_rate, val_split=val_split, seed=seed,
                      out=out, resume=resume, augment=augment, mixed_precision=mixed_precision, jit=jit,
                      strategy=strategy.value, tensorboard=tensorboard, max_train_samples=max_train_samples)
    run_dir, metrics = run_training(cfg)
    summary = {"run_dir": str(run_dir), **{k: metrics[k] for k in
               ("test_accuracy", "test_loss", "val_accuracy", "train_seconds", "samples_per_second")}}
    if as_json:
        print(json.dumps(summary))
    else:
        print(f"{model}: test accuracy {metrics['test_accuracy']:.4f}, loss {metrics['test_loss']:.4f}, "
              f"{metrics['train_seconds']:.1f} s, {metrics['samples_per_second']:.0f} samples/s -> {run_dir}")


@app.command()
def evaluate(
    run_dir: str = typer.Argument(..., help="A run directory written by `train`."),
    dataset: Optional[str] = typer.Option(None, help="Default: the run's own dataset."),
    data: Optional[str] = typer.Option(None, help=DATA_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
):
    """Reload a saved model and recompute its test figures, next to those recorded in metrics.json."""
    from job.training import evaluate as run_evaluation

    fresh, recorded = run_evaluation(run_dir, dataset, data)
    if as_json:
        print(json.dumps({"fresh": fresh, "recorded": {k: recorded.get(k) for k in fresh}}))
        return
    for key in ("test_accuracy", "test_loss"):
        print(f"{key}: {fresh[key]:.6f} (recorded {recorded.get(key)})")


@app.command()
def images(
    out: str = typer.Option(..., help="Folder to write <index>_<label>.png files into."),
    dataset: str = typer.Option("mnist-sample", help=DATASET_HELP),
    data: Optional[str] = typer.Option(None, help=DATA_HELP),
    split: str = typer.Option("test", help="test or train."),
    limit: Optional[int] = typer.Option(None, help="Write at most this many images."),
):
    """Write a dataset's images as PNG files, labels in the names, to try the predictor on.

    Example: mnist-job images --dataset mnist-sample --out digits/ && mnist-predict digits/ --model model.onnx
    """
    from job.data import load_dataset, write_pngs

    if split not in ("test", "train"):
        raise JobError(f"--split must be test or train, got {split!r}")
    ds = load_dataset(dataset, data)
    n = write_pngs(getattr(ds, f"x_{split}"), getattr(ds, f"y_{split}"), out, limit)
    print(f"wrote {n} PNG files to {out}")


@app.command()
def score(predictions: str = typer.Argument(..., help="CSV or JSONL from mnist-predict."),
          as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON.")):
    """Accuracy of a predictions file whose image names end in _<label> (as `images` writes them)."""
    from job.data import score_predictions

    correct, total = score_predictions(predictions)
    if as_json:
        print(json.dumps({"correct": correct, "total": total, "accuracy": correct / total}))
    else:
        print(f"accuracy: {correct / total:.4f} ({correct}/{total})")


def train_config(**options):
    from job.training import TrainConfig

    return TrainConfig(**options)


@app.command()
def cv(
    model: str = typer.Option("cnn-bn-aug", help="Zoo model name."),
    folds: int = typer.Option(5, help="Number of folds over the training set."),
    dataset: str = typer.Option("mnist", help=DATASET_HELP),
    data: Optional[str] = typer.Option(None, help=DATA_HELP),
    epochs: Optional[int] = typer.Option(None, help="Default: the zoo entry's."),
    batch_size: Optional[int] = typer.Option(None),
    learning_rate: Optional[float] = typer.Option(None),
    seed: int = typer.Option(42),
    out: Optional[str] = typer.Option(None, help="Default: runs/cv-<model>-<UTC timestamp>."),
    max_train_samples: Optional[int] = typer.Option(None, help="Use at most this many training samples."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
):
    """k-fold cross-validation on the training set: each fold's accuracy, mean ± std, and a box plot.

    Example: mnist-job cv --model cnn-mit --folds 5 --dataset mnist-sample --epochs 3
    """
    from job.experiments import cross_validate

    cfg = train_config(model=model, dataset=dataset, data=data, epochs=epochs, batch_size=batch_size,
                       learning_rate=learning_rate, seed=seed, out=out, max_train_samples=max_train_samples)
    out_dir, summary = cross_validate(cfg, folds)
    if as_json:
        print(json.dumps({"out": str(out_dir), **summary}))
    else:
        print(f"{model}: {folds}-fold accuracy {summary['mean']:.4f} ± {summary['std']:.4f} -> {out_dir}")


@app.command()
def sweep(
    models: str = typer.Option(..., help="Comma-separated zoo names, e.g. dense-128,cnn-mit."),
    epochs: Optional[str] = typer.Option(None, help="Comma-separated, e.g. 2,5. Default: each model's."),
    learning_rate: Optional[str] = typer.Option(None, help="Comma-separated, e.g. 1e-3,1e-2."),
    batch_size: Optional[str] = typer.Option(None, help="Comma-separated, e.g. 64,256."),
    dataset: str = typer.Option("mnist", help=DATASET_HELP),
    data: Optional[str] = typer.Option(None, help=DATA_HELP),
    seed: int = typer.Option(42),
    out: Optional[str] = typer.Option(None, help="Default: runs/sweep-<UTC timestamp>."),
    max_train_samples: Optional[int] = typer.Option(None, help="Use at most this many training samples."),
):
    """Train every combination of models and hyper-parameters, then write report.md comparing them.

    Example: mnist-job sweep --models dense-128,cnn-mit --learning-rate 1e-3,1e-2 --dataset mnist-sample
    """
    from job.experiments import sweep as run_sweep

    base = train_config(dataset=dataset, data=data, seed=seed, max_train_samples=max_train_samples)
    report, best = run_sweep(base, models, epochs, learning_rate, batch_size, out)
    print(f"report: {report} (best by validation: {best['dir'].name})")


@app.command()
def compare(
    run_dirs: list[str] = typer.Argument(..., help="Run directories written by `train`."),
    out: str = typer.Option("report.md", help="Markdown report; the curves PNG is written beside it."),
):
    """Write a Markdown report comparing runs: table, overlaid validation curves, best run in bold."""
    from job.experiments import compare as run_compare

    report, best = run_compare(run_dirs, out)
    print(f"report: {report} (best by validation: {best['dir'].name})")


@app.command()
def export(
    run_dir: str = typer.Argument(..., help="A run directory written by `train`."),
    format: str = typer.Option("all", "--format", help="onnx, savedmodel, or all."),
    opset: int = typer.Option(17, help="ONNX opset, 13-18."),
    quantize: Optional[str] = typer.Option(None, help="int8: also write model.int8.onnx (static QDQ)."),
    atol: float = typer.Option(1e-5, help="Parity gate: largest allowed |ONNX - Keras| probability."),
    out: Optional[str] = typer.Option(None, help="Export directory. Default: RUN_DIR/export."),
    as_json: bool = typer.Option(False, "--json", help="Print the manifest as JSON (progress to stderr)."),
):
    """Export to ONNX and SavedModel, gate on parity with Keras (exit 1), publish atomically.

    Example: mnist-job export runs/cnn-bn-aug-20250101T000000Z --format all --quantize int8
    """
    from job import export as ex

    cfg = ex.ExportConfig(run_dir=run_dir, format=format, opset=opset, quantize=quantize, atol=atol, out=out)
    log = (lambda message, err=False: ex.say(message, err=True)) if as_json else ex.say
    out_dir, manifest = ex.export(cfg, log=log)
    if as_json:
        print(json.dumps({"out": str(out_dir), **manifest}))
    else:
        ex.print_report(out_dir, manifest)


def main():
    # The job's own log lines (device, strategy, global batch) go to stderr, apart from the results.
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    logging.getLogger("job").addHandler(handler)
    logging.getLogger("job").setLevel(logging.INFO)
    try:
        app()
    except (JobError, GateError, Interrupted) as e:
        print(f"mnist-job: error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        print("mnist-job: interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
