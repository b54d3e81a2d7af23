"""Shared by the benchmark scripts: the device line, medians of repeats, a plain table, JSON results."""

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = RESULTS.parent.parent
BIN = Path(sys.executable).parent
FASHION = "/usr/share/datasets/fashion-mnist"
QUICK_NOTE = "QUICK MODE: tiny data and repeats, figures not comparable with the targets"


def cpu_count():
    from mnist_predict.files import usable_cpus

    return usable_cpus()


def device_line():
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"CPU {model}, {cpu_count()} cores usable, no GPU"


def load_average():
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def median_time(fn, repeats=5, warmup=1, clock=time.perf_counter):
    """Median wall time of fn() over repeats, after warm-up calls that are not counted."""
    return interleaved_medians({"fn": fn}, repeats, warmup, clock)["fn"]


def interleaved_medians(fns, repeats=5, warmup=1, clock=time.perf_counter, self_timed=False, pause=0.0):
    """{name: median seconds} of each fn, timed in turns (a, b, a, b, ...) so that changes in the machine's
    load hit every variant alike. With self_timed, each fn returns its own seconds (e.g. one epoch timed
    by a callback) instead of its call being timed. `pause` seconds of sleep after each call let thread
    pools that spin after their work (TensorFlow's, onnxruntime's by default) go idle before the next
    variant runs, so one variant's spinning is not billed to the next."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = clock()
            own = fn()
            times[name].append(own if self_timed else clock() - start)
            time.sleep(pause)
    return {name: statistics.median(t) for name, t in times.items()}


def num(x):
    """A figure for a table: thousands separators for large values, three significant digits for small."""
    return (f"{x:,.0f}" if abs(x) >= 100 else f"{x:.1f}" if abs(x) >= 10 else f"{x:.2f}" if abs(x) >= 0.01
            else f"{x:.3g}")


def target(what, measured, goal, higher=True, unit=""):
    """A target row: met, or MISSED and by how much of the goal (benchmarks report, they never fail)."""
    if measured is None:
        return {"target": what, "measured": "never", "goal": f"{'>=' if higher else '<='} {goal:g}{unit}",
                "met": False, "verdict": "MISSED (not reached)"}
    measured = round(float(measured), 9)  # 2.0000000000000018 is 2
    met = bool(measured >= goal if higher else measured <= goal)
    short = abs(measured - goal) / abs(goal) if goal else abs(measured)
    return {"target": what, "measured": num(measured) + unit, "goal": f"{'>=' if higher else '<='} {goal:g}{unit}",
            "met": met, "verdict": "met" if met else f"MISSED by {short:.0%}"}


def print_targets(rows):
    print_table(["target", "measured", "goal", "verdict"],
                [[r["target"], r["measured"], r["goal"], r["verdict"]] for r in rows])


def parse_args(doc, **extra):
    """--quick plus the script's own options: extra={"--flag": {argparse kwargs}}."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=doc)
    parser.add_argument("--quick", action="store_true", help="tiny data and repeats: checks the script runs")
    for flag, kwargs in extra.items():
        parser.add_argument(flag, **kwargs)
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return parser.parse_args()


def header(title, quick):
    print(f"\n== {title} ==\n{device_line()}; {load_average()}" + (f"\n{QUICK_NOTE}" if quick else ""),
          flush=True)


def bench_models(quick):
    """(dataset, data path) for the briefly trained models that inference and prediction are timed on."""
    return ("mnist-sample", None) if quick else ("fashion_mnist", FASHION)


def exported_model(name, dataset, data=None, samples=10_000, epochs=3):
    """A run of `name` trained for a few epochs of at most `samples` images, exported to ONNX with int8;
    cached in bench/results/models/. Speed does not depend on accuracy, but the int8 gate does: after one
    epoch dense-512 is right 66-70% of the time on Fashion-MNIST, with so many near-ties that its int8 file
    passes or fails the 0.99 agreement by the luck of the draw. The run's metrics.json holds the Keras test
    accuracy that a predictions file should reproduce."""
    run_dir = RESULTS / "models" / f"{dataset}-{name}-{samples}-e{epochs}"
    if (run_dir / "export" / "manifest.json").is_file():
        return run_dir
    import shutil

    from job.export import ExportConfig, export
    from job.train.training import TrainConfig, train

    shutil.rmtree(run_dir, ignore_errors=True)
    print(f"training {name} on {dataset} briefly and exporting it to {run_dir} ...", flush=True)
    train(TrainConfig(model=name, dataset=dataset, data=data, epochs=epochs, max_train_samples=samples,
                      out=str(run_dir), verbose=0))
    export(ExportConfig(run_dir=str(run_dir), format="onnx", quantize="int8"), log=lambda *a, **k: None)
    return run_dir


def best_sample_model(quick=False):
    """The model `make demo` trains: cnn-bn-aug on the bundled sample with its defaults (letters, fragments and
    cut digits included), a line reader beside it (mnist-job train-lines), exported with int8; cached in
    bench/results/models/ and shared by the benchmarks that need the best model (its metrics.json holds its
    test accuracy and training time). --quick trains 3 epochs and a small line reader. A cached run without a
    line reader, or with one from before its "?" class (no `letter_lines` in lines.json) or trained on the run's
    validation split too (no `validation_digits_left_out`), or on fewer lines than train-lines' default (20,000
    before 30,000), gets a new one, and is exported again."""
    import shutil
    import subprocess

    from job.train.line_reader import LINES

    run_dir = RESULTS / "models" / ("mnist-sample-cnn-bn-aug-e3" if quick else "mnist-sample-cnn-bn-aug-full")
    lines_json = run_dir / "lines.json"
    recorded = json.loads(lines_json.read_text()) if lines_json.is_file() else {}
    rendered = recorded.get("training_lines", 0) + recorded.get("held_out_lines", 0)
    # number_lines renders a few lines fewer than asked (a render the cleaning finds no ink in is dropped)
    current = {"letter_lines", "validation_digits_left_out"} <= set(recorded) and (quick or rendered >= 0.95 * LINES)
    if current and (run_dir / "export" / "manifest.json").is_file() and (run_dir / "export" / "lines.onnx").is_file():
        return run_dir
    commands = []
    if not (run_dir / "model.keras").is_file():
        shutil.rmtree(run_dir, ignore_errors=True)
        commands.append(["train", "--model", "cnn-bn-aug", "--dataset", "mnist-sample", "--out", str(run_dir),
                         *(["--epochs", "3"] if quick else [])])
    commands.append(["train-lines", str(run_dir), *(["--lines", "2000", "--epochs", "2"] if quick else [])])
    shutil.rmtree(run_dir / "export", ignore_errors=True)
    commands.append(["export", str(run_dir), "--quantize", "int8"])
    print(f"training cnn-bn-aug and a line reader on mnist-sample with their defaults into {run_dir} ...", flush=True)
    for command in commands:
        subprocess.run([str(BIN / "mnist-job"), *command], check=True, stdout=subprocess.DEVNULL)
    return run_dir


def png_folder(dataset, data=None):
    """The dataset's test images as <index>_<label>.png files, written once into bench/results/data/."""
    folder = RESULTS / "data" / f"{dataset}-test-png"
    if not (folder / ".complete").is_file():
        from job.data.datasets import load_dataset
        from job.data.image_sets import write_images

        ds = load_dataset(dataset, data)
        print(f"writing {len(ds.x_test)} PNG files to {folder} ...", flush=True)
        write_images(ds.x_test, ds.y_test, ds.labels, folder, overwrite=True)
        (folder / ".complete").write_text("")
    return folder


def print_table(header, rows):
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows)]
    line = lambda cells: "  ".join(str(c).rjust(w) for c, w in zip(cells, widths))  # noqa: E731
    print(line(header))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print(line(row))


def write_results(name, payload):
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **payload},
                               indent=2) + "\n")
    print(f"results: {path}")
    return path
