"""`mnist-job benchmark RUN`: every format of a run's export, and Keras itself, in one table (after
Ultralytics' benchmark mode): status, size, test accuracy through each format's own runtime, agreement with
Keras, batch-1 latency and images/s at batch 256.

    mnist-job export runs/demo --format all --quantize int8
    mnist-job benchmark runs/demo                      # a Rich table
    mnist-job benchmark runs/demo --json               # the same rows as JSON
    mnist-job benchmark runs/demo --out bench.md       # and a Markdown copy

Timings are taken in turns (every format once, then again), medians of the rounds, so that load from other
processes falls on all formats alike.
"""

import sys
import time
from pathlib import Path

import numpy as np
from mnist_predict import formats

from job.errors import JobError

BATCH = 256
# Keras, the TensorFlow-served format beside it, then each edge format with its int8 file
ROWS = [None, *sorted(formats.FORMATS, key=lambda f: (f.edge, formats.FAMILIES.index(f.family), f.quantized))]


def benchmark(run_dir, rounds=5, latency_calls=50):
    """One row per format: {format, status, size_mb, accuracy, max_abs_diff, agreement, latency_us,
    images_per_second, runtime}."""
    from job.train import rundir
    from job.train.training import run_dataset

    run_dir = Path(run_dir)
    export = run_dir / "export"
    if not rundir.is_finished(run_dir):
        raise JobError(f"{run_dir}: not a finished run directory (no model.keras)")
    if not (export / "manifest.json").is_file():
        raise JobError(f"{run_dir}: no export yet; run `mnist-job export {run_dir} --format all --quantize int8`")
    manifest = rundir.read_json(export / "manifest.json")
    data = run_dataset(rundir.read_json(run_dir / rundir.CONFIG))
    x, y = data.x_test.astype(np.float32), data.y_test
    runners, rows = {}, []
    for fmt in ROWS:
        name = fmt.display if fmt else "Keras"
        path = run_dir / "model.keras" if fmt is None else export / fmt.file
        row = {"format": name, "file": str(path.relative_to(run_dir))}
        if not path.exists():
            rows.append({**row, "status": "not exported"})
            continue
        run, runtime = load(fmt, path, manifest)
        runners[name] = run
        gate = manifest["parity"].get(fmt.key, {}) if fmt else {}
        rows.append({**row, "status": "passed" if fmt is None or gate.get("passed") else "gate failed",
                     "size_mb": round(size(path) / 1e6, 3), "runtime": runtime})
    keras = batched(runners["Keras"], x)
    for row in rows:
        if row["format"] not in runners:
            continue
        got = keras if row["format"] == "Keras" else batched(runners[row["format"]], x)
        row.update(accuracy=round(float((got.argmax(axis=1) == y).mean()), 6),
                   max_abs_diff=float(np.abs(got - keras).max()),
                   agreement=round(float((got.argmax(axis=1) == keras.argmax(axis=1)).mean()), 6))
    latency, speed = timings(runners, x, rounds, latency_calls)
    for row in rows:
        if row["format"] in runners:
            row.update(latency_us=round(1e6 * latency[row["format"]], 1),
                       images_per_second=round(speed[row["format"]], 1))
    return {"run": str(run_dir), "model": manifest["model"], "test_images": len(y), "batch": BATCH,
            "rounds": rounds, "rows": rows}


def load(fmt, path, manifest):
    """(a batch -> probabilities function, 'runtime version') for one format (None: Keras itself)."""
    if fmt is None:
        import keras

        from job.train.calibration import calibrated_model
        from job.train.rundir import load_keras_model

        model = load_keras_model(path)
        if manifest.get("calibration"):  # the exported formats serve calibrated probabilities; so must Keras
            model = calibrated_model(model, manifest["calibration"]["temperature"])
        return (lambda batch: np.asarray(model(batch, training=False))), f"keras {keras.__version__} (eager call)"
    if not fmt.edge:
        import tensorflow as tf

        from job.export.gate import runner

        return runner(fmt, path), f"tensorflow {tf.__version__} (serving signature)"
    from mnist_predict.predictor import Predictor

    predictor = Predictor(path)
    return predictor.run, f"{predictor.runtime.name} {predictor.runtime.version}"


def batched(run, x, batch=1024):
    return np.concatenate([np.asarray(run(x[i:i + batch])) for i in range(0, len(x), batch)])


def size(path):
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def timings(runners, x, rounds, latency_calls):
    """Median seconds of one batch-1 call, and images/s at batch 256, each format timed in turns."""
    one = [x[i:i + 1] for i in range(latency_calls)]
    batch = np.resize(x, (BATCH, 28, 28)).astype(np.float32)
    for run in runners.values():  # warm-up: the first calls allocate and pick kernels
        run(one[0]), run(batch)
    latency, speed = {name: [] for name in runners}, {name: [] for name in runners}
    for _ in range(rounds):
        for name, run in runners.items():
            calls = []
            for image in one:
                start = time.perf_counter()
                run(image)
                calls.append(time.perf_counter() - start)
            latency[name].append(float(np.median(calls)))
            start = time.perf_counter()
            run(batch)
            speed[name].append(BATCH / (time.perf_counter() - start))
    return ({name: float(np.median(v)) for name, v in latency.items()},
            {name: float(np.median(v)) for name, v in speed.items()})


COLUMNS = [("format", "format"), ("status", "status"), ("size MB", "size_mb"), ("accuracy", "accuracy"),
           ("max abs diff vs Keras", "max_abs_diff"), ("argmax agreement", "agreement"),
           ("batch-1 latency µs", "latency_us"), (f"images/s @{BATCH}", "images_per_second"), ("runtime", "runtime")]


def cell(key, value):
    if value is None:
        return "-"
    if key == "accuracy":
        return f"{value:.2%}"
    if key == "max_abs_diff":
        return f"{value:.1e}"
    if key == "agreement":
        return f"{value:.4f}"
    if key in ("latency_us", "images_per_second"):
        return f"{value:,.0f}"
    if key == "size_mb":
        return f"{value:.2f}"
    return str(value)


def markdown(result):
    lines = [f"`mnist-job benchmark {result['run']}`: {result['model']}, {result['test_images']} test images, "
             f"medians of {result['rounds']} rounds taken in turns.", "",
             "| " + " | ".join(title for title, _ in COLUMNS) + " |", "|" + " --- |" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell(key, row.get(key)) for _, key in COLUMNS) + " |" for row in result["rows"]]
    return "\n".join(lines) + "\n"


def print_table(result):
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{result['model']}: {result['test_images']} test images, medians of {result['rounds']} "
                        "rounds in turns")
    for title, key in COLUMNS:
        table.add_column(title, justify="left" if key in ("format", "status", "runtime") else "right")
    for row in result["rows"]:
        table.add_row(*(cell(key, row.get(key)) for _, key in COLUMNS))
    Console(width=None if sys.stdout.isatty() else 170).print(table)
