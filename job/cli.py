"""mnist-job: train, evaluate and export MNIST-family Keras models; predict with the exported ONNX model.

The CLI is thin: every command calls a plain function that tests call too. TensorFlow is imported only
inside the commands that need it, so `mnist-job --help` answers at once.

Exit codes: 0 success, 1 a gate failed (export parity, evaluate far below the recorded accuracy) or the output
could not be written (a full disk), 2 usage or input error, 3 some files failed (predict), 130 interrupted.
"""

import contextlib
import json
import logging
import os
import sys
from enum import Enum
from typing import Optional

import typer

from job.distributed.multiworker import DEFAULT_CONNECT_TIMEOUT
from job.errors import ExitError, Interrupted, JobError
from job.train.line_reader import EPOCHS as LINE_EPOCHS
from job.train.line_reader import LINES
from job.train.run_config import help_for, help_text

# TensorFlow's C++ log lines drown the job's own output (even a harmless tf.data "E0000 ... NodeDef mentions
# attribute" line on every run); its real failures still arrive as Python exceptions. Set it to 0 to debug.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

app = typer.Typer(
    help=__doc__.split("\n\n")[0] + "\n\nStart with `mnist-job models`, then `mnist-job train --dataset "
    "mnist-sample` (runs offline). Exit codes: 0 ok, 1 gate failed or a worker lost, 2 usage/input error, "
    "3 some files failed, 130 interrupted.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]})


# The edge predictor's own CLI, mounted as-is: `mnist-job predict ...` runs exactly `mnist-predict ...`.
from mnist_predict.cli import app as predict_app  # noqa: E402  (TF-free and light to import)

app.add_typer(predict_app, name="predict")


class Strategy(str, Enum):
    auto = "auto"
    one = "one"
    mirrored = "mirrored"
    multiworker = "multiworker"


DATASET_HELP, DATA_HELP = help_text("dataset"), help_text("data")
JsonOption = typer.Option(False, "--json", help="Print one JSON document on stdout; progress goes to stderr.")
INVOCATION = []  # the arguments main() was given


@contextlib.contextmanager
def json_stdout(as_json):
    """With --json, everything the work prints (Keras's epoch lines, fold lines) goes to stderr, so that
    stdout holds the JSON document alone."""
    if not as_json:
        yield
        return
    with contextlib.redirect_stdout(sys.stderr):
        yield


@app.command()
def models(as_json: bool = JsonOption):
    """List the model zoo: parameters, training defaults and sources.

    Example: mnist-job models --json | jq '.[] | select(.params < 200000) | .name'
    """
    from job.train.models import MAX_DEFAULT_EPOCHS, PARAMS, ZOO

    rows = [{"name": s.name, "params": PARAMS[s.name], "optimizer": s.optimizer, "learning_rate": s.learning_rate,
             "schedule": s.schedule, "batch_size": s.batch_size, "epochs": s.epochs, "min_samples": s.min_samples,
             "augment": s.augment, "outlier_exposure": s.outliers, "source": s.source, "notes": s.notes}
            for s in ZOO.values()]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="mnist-job model zoo (override any default from `train`)",
                  caption="epochs N+: more on small datasets, until training has seen 160k samples (at most "
                          f"{MAX_DEFAULT_EPOCHS} epochs)")
    for column in ("name", "params", "optimizer", "learning rate", "batch", "epochs", "source"):
        table.add_column(column, no_wrap=True, justify="right" if column in ("params", "batch", "epochs") else "left")
    for r in rows:
        schedule = "" if r["schedule"] == "constant" else f" ({r['schedule']})"
        table.add_row(r["name"], f"{r['params']:,}", r["optimizer"], f"{r['learning_rate']:g}{schedule}",
                      str(r["batch_size"]), f"{r['epochs']}+" if r["min_samples"] else str(r["epochs"]),
                      r["source"])
    Console(width=None if sys.stdout.isatty() else 120).print(table)


def settings_options(*names):
    """Give a command one option per TrainConfig setting named (job.train.run_config): its name (CLI_NAMES), type,
    default and help are the setting's own, so no command declares them again. The command takes them as
    **settings; None means "not given"."""
    import inspect
    from dataclasses import fields
    from typing import get_args

    from job.train.run_config import CLI_NAMES, TrainConfig

    declared = {f.name: f for f in fields(TrainConfig)}

    def option(name):
        f = declared[name]
        kind = Strategy if name == "strategy" else next(t for t in (get_args(f.type) or (f.type,)) if t is not type(None))
        annotation = kind if f.default is not None else Optional[kind]
        return inspect.Parameter(CLI_NAMES.get(name, name), inspect.Parameter.KEYWORD_ONLY, annotation=annotation,
                                 default=typer.Option(f.default, help=help_for(name)))

    def decorate(command):
        own = [p for p in inspect.signature(command).parameters.values() if p.kind != p.VAR_KEYWORD]
        command.__signature__ = inspect.Signature([*map(option, names), *(p.replace(kind=p.KEYWORD_ONLY) for p in own)])
        return command

    return decorate


@app.command()
@settings_options("model", "dataset", "data", "epochs", "batch_size", "optimizer", "learning_rate", "val_split",
                  "test_split", "seed", "out", "init_from", "freeze_base", "restandardize", "replay", "resume", "resume_or_start",
                  "augment", "outliers", "early_stopping", "mixed_precision", "jit", "strategy", "tensorboard",
                  "max_train_samples")
def train(
    local_workers: Optional[int] = typer.Option(None, min=1, help="Start this many multiworker processes on this "
                                                 "machine (loopback ports, a share of the cores each) and wait for "
                                                 "them; worker 0 writes the run."),
    workers_from_indexed_job: Optional[int] = typer.Option(None, min=1, help="Run as pod $JOB_COMPLETION_INDEX of a "
                                                           "Kubernetes Indexed Job of this many pods (sets "
                                                           "TF_CONFIG; see deploy/k8s/train-multiworker.yaml)."),
    worker_host: Optional[str] = typer.Option(None, help="With --workers-from-indexed-job: the address of pod {i}, "
                                              "e.g. 'mnist-train-{i}.mnist-train:2222'."),
    connect_timeout: float = typer.Option(DEFAULT_CONNECT_TIMEOUT, min=1.0, help=help_for("connect_timeout")),
    as_json: bool = JsonOption,
    **settings,
):
    """Train a zoo model, evaluate its best epoch on the test set, and write a run directory.

    Example: mnist-job train --model mnist-convnet --dataset fashion_mnist --data /usr/share/datasets/fashion-mnist

    Across workers (MultiWorkerMirroredStrategy; worker 0 writes the run): --local-workers 2 on this machine,
    TF_CONFIG with --strategy multiworker, or --workers-from-indexed-job N in Kubernetes.
    """
    from job.train.rundir import default_out
    from job.train.training import TrainConfig, train as run_training

    options = {**settings, "connect_timeout": connect_timeout}
    if local_workers:
        from job.distributed.launcher import launch

        raise typer.Exit(launch(INVOCATION, local_workers, settings["out"] or default_out(settings["model"] or "cnn-bn-aug")))
    if workers_from_indexed_job or worker_host:
        from job.distributed.multiworker import indexed_job_tf_config

        if not (workers_from_indexed_job and worker_host):
            raise JobError("--workers-from-indexed-job N and --worker-host PATTERN go together")
        if settings["strategy"] not in (None, Strategy.multiworker):
            raise JobError(f"--workers-from-indexed-job runs --strategy multiworker, not {settings['strategy'].value}")
        os.environ["TF_CONFIG"] = json.dumps(indexed_job_tf_config(workers_from_indexed_job, worker_host))
        options["strategy"] = Strategy.multiworker
    cfg = TrainConfig.of(options)
    with json_stdout(as_json):
        run_dir, metrics = run_training(cfg)
    if metrics is None:  # a multiworker run's worker 1, 2...: the chief writes and reports the run
        print(json.dumps({"run_dir": str(run_dir), "chief": False}) if as_json else
              f"this worker is done; worker 0 writes the run to {run_dir}")
        return
    summary = {"run_dir": str(run_dir), **{k: metrics[k] for k in
               ("test_accuracy", "test_loss", "val_accuracy", "kept_epoch", "epochs_run", "train_seconds",
                "samples_per_second")}, **({"versus_base": metrics["versus_base"]} if "versus_base" in metrics else {})}
    if as_json:
        print(json.dumps(summary))
    else:
        stopped = ", stopped early" if metrics["stopped_early"] else ""
        if metrics["kept"] == "base":  # a fine-tuned run whose epochs all did worse than where they started
            kept = f"kept the base model (none of {metrics['epochs_run']} epochs{stopped} beat its"
        else:
            kept = f"kept epoch {metrics['kept_epoch']} of {metrics['epochs_run']}{stopped} (best"
        from job.train.rundir import read_json

        print(f"{read_json(run_dir / 'config.json')['model']}: {kept} validation accuracy {metrics['val_accuracy']:.4f}); test accuracy "
              f"{metrics['test_accuracy']:.4f}, loss {metrics['test_loss']:.4f}; {metrics['train_seconds']:.1f} s, "
              f"{metrics['samples_per_second']:.0f} samples/s -> {run_dir}")
        versus = metrics.get("versus_base")
        if versus:
            pct = lambda a: "-" if a is None else f"{a:.1%}"  # noqa: E731
            base, new = versus["base"], versus["new"]
            print(f"on its {versus['images']} held-out new images, base -> new: accuracy {pct(base['accuracy'])} -> "
                  f"{pct(new['accuracy'])}, flagged {pct(base['flagged'])} -> {pct(new['flagged'])}, accuracy of the "
                  f"unflagged {pct(base['unflagged_accuracy'])} -> {pct(new['unflagged_accuracy'])} (top probability "
                  f"below {versus['threshold']:g}, before export's calibration)")


@app.command()
def evaluate(
    run_dir: str = typer.Argument(..., help="A run directory written by `train`, or its model.keras."),
    dataset: Optional[str] = typer.Option(None, help="Default: the run's own dataset."),
    data: Optional[str] = typer.Option(None, help=DATA_HELP),
    as_json: bool = JsonOption,
):
    """Reload a saved model and recompute its test figures, next to those recorded in metrics.json.

    On other data (--data), the figures and plots also go to RUN_DIR/eval-<data name>/. A labelled folder is
    matched to the run's classes by name: its test/ is used, or all of it. On IDX or npz data, exits 1 when
    the test accuracy falls more than 5 points below the recorded one.

    Example: mnist-job evaluate runs/demo --data photos/
    """
    from job.train.training import evaluate as run_evaluation

    with json_stdout(as_json):
        fresh, recorded = run_evaluation(run_dir, dataset, data)
    if as_json:
        print(json.dumps({"fresh": fresh, "recorded": {k: recorded.get(k) for k in fresh if k in recorded}}))
        return
    print(f"{fresh['data']}: {fresh['images']} images")
    for key in ("test_accuracy", "test_loss"):
        print(f"{key}: {fresh[key]:.6f} (recorded {recorded.get(key)})")
    from job.train.rundir import read_json

    labels = read_json(run_dir_path(run_dir) / "config.json")["labels"]
    print("per-class accuracy: " + ", ".join(f"{name} {'n/a' if acc is None else f'{acc:.3f}'}" for name, acc in
                                            zip(labels, fresh["per_class_accuracy"])))
    missing = [name for name, acc in zip(labels, fresh["per_class_accuracy"]) if acc is None]
    if missing:
        print(f"n/a: no test image of {', '.join(missing)}")
    if "plots" in fresh:
        print(f"confusion matrix, plots and metrics.json: {fresh['plots']}")


@app.command("train-lines")
def train_lines(
    run_dir: str = typer.Argument(..., help="A finished digit run (mnist-job train) to train a line reader beside."),
    lines: int = typer.Option(LINES, min=1100, help="Rendered numbers of the run's training digits to train on "
                                                    "(1,000 of them are held out for the figure)."),
    epochs: int = typer.Option(LINE_EPOCHS, min=1, help="Passes over the lines."),
    seed: int = typer.Option(0, help="Seed of the renders, the split and the weights."),
    data: Optional[str] = typer.Option(None, help=DATA_HELP + " Default: the run's own."),
    as_json: bool = JsonOption,
):
    """Train a line reader beside a digit model: it reads a whole line of digits at once, touching and
    crossing ones included, and `mnist-predict read` weighs its reading against the digit-by-digit one.

    It reads a letter or symbol standing in a number as "?", so that `read` flags the row. It writes
    RUN_DIR/lines.keras and lines.json (the share of 1,000 held-out lines it reads exactly), and the
    next `mnist-job export RUN_DIR` writes export/lines.onnx beside model.onnx. About 55 minutes on 2 CPU
    cores with the defaults.

    Example: mnist-job train-lines runs/demo
    """
    from job.train.line_reader import train_line_reader

    with json_stdout(as_json):
        metrics = train_line_reader(run_dir_path(run_dir), lines, epochs, seed, data,
                                    log=lambda message: print(message, file=sys.stderr, flush=True))
    if as_json:
        print(json.dumps(metrics))
        return
    letters = metrics["letters_read_as_unknown"]
    print(f"line reader: {metrics['lines_read_exactly']:.1%} of {metrics['held_out_lines']:,} held-out lines read "
          f"exactly" + (f", {letters:.1%} of the {metrics['letter_lines']} with a letter read with a \"?\""
                        if letters is not None else "") + f"; {run_dir_path(run_dir) / 'lines.keras'}")


def run_dir_path(run_dir):
    from job.train.rundir import run_dir_of

    return run_dir_of(run_dir)


@app.command()
def images(
    out: str = typer.Option(..., help="Folder to write the images into; it must be new or empty."),
    dataset: Optional[str] = typer.Option(None, help=DATASET_HELP + " Default: mnist-sample, or mnist with --data "
                                          "(a labelled folder is its own dataset)."),
    data: Optional[str] = typer.Option(None, help=DATA_HELP),
    split: str = typer.Option("test", help="test or train."),
    limit: Optional[int] = typer.Option(None, help="Write at most this many images."),
    layout: str = typer.Option("flat", help="flat: <index>_<label>.png; classes: <class>/<index>.png, the layout "
                               "`train --data FOLDER` reads."),
    condition: Optional[str] = typer.Option(None, help="Render each digit as a photo or scan first: clean, "
                                            "grey-paper, uneven-light, shadow, noise, blue-ink, pencil, ruled, "
                                            "blur, phone, ... (job/data/photos.py)."),
    seed: int = typer.Option(0, help="Seed of the --condition renders."),
    overwrite: bool = typer.Option(False, help="Replace what --out holds."),
    numbers: bool = typer.Option(False, "--numbers", help="Write whole numbers instead, for `mnist-predict read`: "
                                 "2-8 of the digits side by side, named <index>_<number>, --limit of them (100), "
                                 "as scans (--condition off-white, the default) or photos (phone)."),
    spacing: str = typer.Option("tight", help="With --numbers: loose, tight, touching or overlapping digits."),
):
    """Write a dataset's images as files, labels in the names or in class folders, to try the predictor on.

    Example: mnist-job images --dataset mnist-sample --out digits/ && mnist-predict digits/ --model model.onnx
    Example: mnist-job images --numbers --condition phone --out numbers/ && mnist-predict read numbers/ --model model.onnx
    """
    from job.data.datasets import DIGITS, load_dataset
    from job.data.image_sets import write_images
    from job.data.photos import CONDITIONS

    if split not in ("test", "train"):
        raise JobError(f"--split must be test or train, got {split!r}")
    if condition is not None and condition not in CONDITIONS:
        raise JobError(f"unknown --condition {condition!r}: choose one of {', '.join(CONDITIONS)}")
    if not numbers and spacing != "tight":
        raise JobError("--spacing sets the spacing of --numbers: add --numbers")
    ds = load_dataset(dataset or ("mnist" if data else "mnist-sample"), data)
    if numbers:
        from job.data.number_images import write_numbers

        if ds.labels != DIGITS:
            raise JobError(f"--numbers needs a digit dataset, and {ds.name} has the classes {', '.join(ds.labels[:4])}, ...")
        if layout != "flat":
            raise JobError("--layout classes has no meaning for --numbers: a number is named by its digits")
        try:
            n = write_numbers(getattr(ds, f"x_{split}"), getattr(ds, f"y_{split}"), out, limit or 100, spacing,
                              condition or "off-white", seed, overwrite)
        except ValueError as error:
            raise JobError(str(error)) from None
        print(f"wrote {n} numbers to {out} ({spacing}, {condition or 'off-white'})")
        return
    n = write_images(getattr(ds, f"x_{split}"), getattr(ds, f"y_{split}"), ds.labels, out, layout, condition,
                     limit, seed, overwrite)
    print(f"wrote {n} images to {out} ({layout} layout{f', {condition}' if condition else ''})")


@app.command()
def score(predictions: str = typer.Argument(..., help="CSV or JSONL from mnist-predict."),
          model: Optional[str] = typer.Option(None, help="The model's export folder, manifest.json or model file, "
                                              "or its run directory: the label set that tells class folders "
                                              "apart. Default: the one --shard recorded beside PREDICTIONS."),
          as_json: bool = JsonOption):
    """Accuracy of a predictions file against the labels in its paths (`images` writes them); of a `read` file,
    against the numbers in its file names (`images --numbers` writes them).

    A file's label is its class folder (a folder named as one of the model's classes), else a name ending in
    _<label index> (00042_7.png); a class folder wins (3/IMG_0065.jpg is a 3). Error rows count as wrong in
    the accuracy over all labelled files; the accuracy over the predicted files and over those not flagged
    for review are given beside it. Without the model's label set, rows in folders that name no class the
    file predicts are refused, not guessed.

    Example: mnist-job score predictions.csv --model runs/demo/export
    """
    from job.data.scoring import model_labels, score_predictions
    from mnist_predict.wording import count

    s = score_predictions(predictions, model_labels(model) if model else None)
    if as_json:
        print(json.dumps(s))
        return
    pct = lambda a: "-" if a is None else f"{a:.4f}"  # noqa: E731
    if s.get("kind") == "numbers":
        print(f"files {s['files']}: {s['labelled']} named with their number, {s['read']} read, "
              f"{count(s['errors'], 'error')}, {s['review']} flagged for review")
        print(f"whole numbers right, over all named files (errors count as wrong): {pct(s['accuracy_labelled'])} "
              f"({s['correct']}/{s['labelled']}); digits right, in order: {pct(s['digit_accuracy'])}")
        print(f"over the files not flagged for review: {pct(s['accuracy_unflagged'])} ({s['unflagged']} files); "
              f"accepted wrong (ok, not flagged, wrong): {pct(s['accepted_wrong'])}")
        return
    print(f"files {s['files']}: {s['labelled']} labelled ({s['unlabelled']} without a label), "
          f"{s['predicted']} predicted, {count(s['errors'], 'error')}, {s['review']} flagged for review")
    if s["unknown_class"]:
        print(f"not scored: {count(s['unknown_class'], 'file')} in folders of classes the model does not know "
              f"({', '.join(s['unknown_folders'])})")
    print(f"accuracy over all labelled files (errors count as wrong): {pct(s['accuracy_labelled'])} "
          f"({s['correct']}/{s['labelled']})")
    print(f"accuracy over the predicted files: {pct(s['accuracy_predicted'])} ({s['correct']}/{s['predicted']})")
    print(f"accuracy over the files not flagged for review: {pct(s['accuracy_unflagged'])} ({s['unflagged']} files)")


@app.command()
@settings_options("model", "dataset", "data", "epochs", "batch_size", "learning_rate", "seed", "max_train_samples")
def cv(
    folds: int = typer.Option(5, help="Number of folds over the training set."),
    out: Optional[str] = typer.Option(None, help="Default: runs/cv-<model>-<UTC timestamp>."),
    as_json: bool = JsonOption,
    **settings,
):
    """k-fold cross-validation on the training set: each fold's accuracy, mean ± std, and a box plot.

    Example: mnist-job cv --model cnn-mit --folds 5 --dataset mnist-sample --epochs 3
    """
    from job.train.experiments import cross_validate
    from job.train.training import TrainConfig

    cfg = TrainConfig.of({**settings, "out": out})
    with json_stdout(as_json):
        out_dir, summary = cross_validate(cfg, folds)
    if as_json:
        print(json.dumps({"out": str(out_dir), **summary}))
    else:
        print(f"{summary['model']}: {folds}-fold accuracy {summary['mean']:.4f} ± {summary['std']:.4f} -> {out_dir}")


@app.command()
@settings_options("dataset", "data", "seed", "max_train_samples")
def sweep(
    models: str = typer.Option(..., help="Comma-separated zoo names, e.g. dense-128,cnn-mit."),
    epochs: Optional[str] = typer.Option(None, help="Comma-separated, e.g. 2,5. Default: each model's."),
    learning_rate: Optional[str] = typer.Option(None, help="Comma-separated, e.g. 1e-3,1e-2."),
    batch_size: Optional[str] = typer.Option(None, help="Comma-separated, e.g. 64,256."),
    out: Optional[str] = typer.Option(None, help="Default: runs/sweep-<UTC timestamp>."),
    **settings,
):
    """Train every combination of models and hyper-parameters, then write report.md comparing them.

    Example: mnist-job sweep --models dense-128,cnn-mit --learning-rate 1e-3,1e-2 --dataset mnist-sample --out runs/sweep
    """
    from job.train.experiments import sweep as run_sweep
    from job.train.training import TrainConfig

    base = TrainConfig.of(settings)
    report, bests = run_sweep(base, models, epochs, learning_rate, batch_size, out)
    print(f"report: {report} (best by validation: {', '.join(b['dir'].name for b in bests.values())})")


@app.command()
def compare(
    run_dirs: list[str] = typer.Argument(..., help="Run directories written by `train`, or folders of them "
                                         "(a sweep's --out)."),
    out: str = typer.Option("report.md", help="Markdown report; the curves PNG is written beside it."),
):
    """Write a Markdown report comparing runs, per dataset: a table ranked by validation accuracy with its 95%
    interval (ties with the best marked), and overlaid validation curves. Unfinished runs are skipped.

    Example: mnist-job compare runs/sweep runs/cnn-mit-20250101T000000Z --out report.md
    """
    from job.train.experiments import compare as run_compare

    report, bests = run_compare(run_dirs, out, warn=lambda message: print(message, file=sys.stderr))
    print(f"report: {report} (best by validation: {', '.join(b['dir'].name for b in bests.values())})")


@app.command()
def export(
    run_dir: str = typer.Argument(..., help="A run directory written by `train`."),
    format: str = typer.Option("all", "--format", help="onnx, savedmodel, litert, or all."),
    opset: int = typer.Option(17, help="ONNX opset, 13-18."),
    quantize: Optional[str] = typer.Option(None, help="int8: also write model.int8.onnx (static QDQ) and "
                                           "model.int8.tflite (full integer), each gated on accuracy and size."),
    atol: float = typer.Option(1e-5, help="Parity gate: largest allowed |ONNX - Keras| probability."),
    out: Optional[str] = typer.Option(None, help="Export directory. Default: RUN_DIR/export."),
    calibrate: bool = typer.Option(True, help="Fit a temperature on the validation split and fold it into "
                                   "the exported graph, so its probabilities are calibrated; with a line reader, "
                                   "fit read's confidence on numbers of those digits too (about 30 s)."),
    review_data: Optional[str] = typer.Option(None, help="A labelled folder of images like those the model will "
                                              "see: choose the review threshold on it (with --max-error), which "
                                              "mnist-predict and the web page then take as their default."),
    max_error: Optional[float] = typer.Option(None, help="With --review-data: the largest error rate allowed among "
                                              "rows not flagged for review, e.g. 0.01."),
    delta: Optional[float] = typer.Option(None, help="With --review-data: the chance, at most, that the threshold "
                                          "misses --max-error on such images (learn-then-test). Default: 0.05."),
    force: bool = typer.Option(False, help="Export a fine-tuned run even when it is worse than its base on its "
                               "held-out new images."),
    as_json: bool = typer.Option(False, "--json", help="Print the manifest as JSON (progress to stderr)."),
):
    """Export to ONNX, SavedModel and LiteRT, gate each on parity with Keras (exit 1), publish atomically.

    With --review-data FOLDER --max-error E, the review threshold is chosen so that, with probability at least
    1 - delta, at most E of the unflagged rows are wrong on images like the folder's (exchangeable with them).

    Example: mnist-job export runs/cnn-bn-aug-20250101T000000Z --format all --quantize int8
    Example: mnist-job export runs/demo --review-data my-labelled-scans/ --max-error 0.01
    """
    from job import export as ex

    cfg = ex.ExportConfig(run_dir=str(run_dir), format=format, opset=opset, quantize=quantize, atol=atol, out=out,
                          calibrate=calibrate, review_data=review_data, max_error=max_error, delta=delta, force=force)
    log = (lambda message, err=False: ex.say(message, err=True)) if as_json else ex.say
    with json_stdout(as_json):
        out_dir, manifest = ex.export(cfg, log=log)
    if as_json:
        print(json.dumps({"out": str(out_dir), **manifest}))
    else:
        ex.print_report(out_dir, manifest)


review_app = typer.Typer(help="The review loop: flagged rows to a queue a person labels, and the labels back into a "
                         "folder that `train --init-from RUN --data FOLDER` fine-tunes on.", no_args_is_help=True)
app.add_typer(review_app, name="review")


@review_app.command("export")
def review_export(
    predictions: str = typer.Argument(..., help="CSV or JSONL from `mnist-predict` or `mnist-predict read`."),
    out: str = typer.Option(..., help="The queue folder to write; it must be new or empty."),
    model: Optional[str] = typer.Option(None, help="The model's run directory, export folder or model file: the "
                                        "labels the queue offers. Default: the one --shard recorded."),
    every: bool = typer.Option(False, "--all", help="Queue every row, not only those flagged for review."),
    overwrite: bool = typer.Option(False, help="Replace what --out holds."),
    as_json: bool = JsonOption,
):
    """Write a review queue: review.csv (path, predicted, probability and an empty label column to fill in),
    tasks.json and label_config.xml (the same rows as Label Studio tasks, the prediction as a pre-annotation),
    preview.png (a contact sheet of its head) and queue.json.

    Flagged rows come first, least sure first; with --all the rest follow, by rising probability.

    Example: mnist-job review export predictions.csv --out queue/ --model runs/demo
    """
    from job.review.queue import export_queue

    out_dir, counts = export_queue(predictions, out, model, every, overwrite)
    if as_json:
        print(json.dumps({"out": str(out_dir), **counts}))
    else:
        print(f"queued {counts['rows']} rows ({counts['flagged']} flagged for review) -> {out_dir}/review.csv, "
              "tasks.json (Label Studio), preview.png")


@review_app.command("import")
def review_import(
    labelled: str = typer.Argument(..., help="The queue's review.csv with its label column filled in, or a Label "
                                   "Studio JSON export of its tasks.json."),
    into: str = typer.Option(..., help="The labelled folder to add to: FOLDER/<label>/, as `train --data` reads it."),
    model: Optional[str] = typer.Option(None, help="The labels the model knows, from its run or export. Default: "
                                        "those the queue recorded (queue.json beside the file)."),
    new_classes: bool = typer.Option(False, help="Accept labels the model does not know, as new classes."),
    as_json: bool = JsonOption,
):
    """Add each labelled image to FOLDER/<label>/, named by its content's sha256: rows without a label are
    skipped, an image already there is not copied again, and no file is overwritten. A label the model does
    not know stops the import before anything is copied. A whole number's digits are cropped by the boxes
    `read` found, each filed under its digit.

    Example: mnist-job review import queue/review.csv --into corrections/ && mnist-job train --init-from runs/demo --data corrections/
    """
    from job.review.queue import import_queue

    report = import_queue(labelled, into, model, new_classes).summary()
    if as_json:
        print(json.dumps({"into": str(into), **report}))
        return
    classes = ", ".join(f"{name}: {n}" for name, n in report["by_class"].items()) or "none"
    print(f"added {report['added']} images to {into} ({classes}); skipped {report['unlabelled']} without a label, "
          f"{report['duplicates']} already there, {report['conflicts']} already there under another label, "
          f"{report['mismatched']} numbers whose digits did not match their label, {report['missing']} unreadable")
    for problem in report["problems"][:10]:
        print(f"  {problem}", file=sys.stderr)


INTERRUPTED = {
    "train": "interrupted during start-up; nothing was written",
    "export": "interrupted; nothing was published, and the previous export is untouched",
    "cv": "interrupted; no cv.json was written",
    "evaluate": "interrupted; nothing was written",
}


@app.command()
def benchmark(
    run_dir: str = typer.Argument(..., help="A run directory whose export/ `mnist-job export` wrote."),
    rounds: int = typer.Option(5, min=1, help="Timing rounds: every format once a round, medians reported."),
    out: Optional[str] = typer.Option(None, help="Also write the table as Markdown to this file."),
    as_json: bool = JsonOption,
):
    """Every format of a run's export beside Keras: status, size, accuracy through its own runtime, agreement
    with Keras, batch-1 latency and images/s at batch 256, timed in turns.

    Example: mnist-job benchmark runs/demo --out bench.md
    """
    from job.export import benchmark as bench

    with json_stdout(as_json):
        result = bench.benchmark(run_dir, rounds=rounds)
    if out:
        from mnist_predict.files import write_text

        write_text(out, bench.markdown(result))
    if as_json:
        print(json.dumps(result))
    else:
        bench.print_table(result)


def main(argv=None):
    """Console script: every failure is one line on stderr with a meaningful exit code (see --help)."""
    try:  # recent Typer vendors click as typer._click; older releases depend on click itself
        from typer._click.exceptions import ClickException
    except ImportError:
        from click.exceptions import ClickException

    from job.native_logs import filter_native_logs

    filter_native_logs()  # before the log handler below takes sys.stderr
    # The job's own log lines (device, strategy, global batch) go to stderr, apart from the results.
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    logging.getLogger("job").addHandler(handler)
    logging.getLogger("job").setLevel(logging.INFO)
    args = sys.argv[1:] if argv is None else list(argv)
    INVOCATION[:] = args  # for --local-workers, which starts workers with the same arguments
    command = next((a for a in args if not a.startswith("-")), "")
    try:
        code = typer.main.get_command(app).main(args or ["--help"], "mnist-job", standalone_mode=False)
    except ExitError as e:
        print(f"mnist-job: {'error: ' if not isinstance(e, Interrupted) else ''}{e}", file=sys.stderr)
        code = e.exit_code
    except ClickException as e:
        print(f"mnist-job: error: {e.format_message()}", file=sys.stderr)
        code = e.exit_code
    except (KeyboardInterrupt, typer.Abort):  # where the command had nothing of its own to say
        print(f"mnist-job {command}: {INTERRUPTED.get(command, 'interrupted; nothing was written')}",
              file=sys.stderr)
        code = 130
    finally:  # main() called in-process (tests, notebooks) must not leave a handler on a stream closed later
        logging.getLogger("job").removeHandler(handler)
    sys.exit(code or 0)


if __name__ == "__main__":
    main()
