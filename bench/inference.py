"""Inference: images/s at batch 1024 and batch-1 latency, Keras against onnxruntime fp32 and int8.

    .venv/bin/python bench/inference.py            # ~2 min on 2 quiet cores, training and exporting included
    .venv/bin/python bench/inference.py --quick    # ~1 min

dense-512 and cnn-bn-aug, each trained for three epochs and exported with int8 by job/export.py (cached in
bench/results/models/; speed does not depend on accuracy). Paths: Keras `predict`, Keras `__call__`
eager and inside a `tf.function`, and onnxruntime through the edge predictor's own session
(`mnist_predict.Predictor`: threads from the CPU affinity, no spinning), fp32 and int8, plus a plain
`InferenceSession` with onnxruntime's defaults for reference. All paths of a model are timed in turns;
medians. Writes bench/results/inference.json.
"""

import time
import numpy as np

from common import (bench_models, exported_model, header, interleaved_medians, num, parse_args, print_table,
                    print_targets, target, write_results)

MODELS = ["dense-512", "cnn-bn-aug"]
FULL = {"batch_repeats": 12, "single_repeats": 15}
QUICK = {"batch_repeats": 3, "single_repeats": 5}
BATCH = 1024
PAUSE = 0.02


def paths_for(run_dir):
    """{label: fn(x) -> probabilities} for every inference path of one exported run."""
    import onnxruntime as ort
    import tensorflow as tf
    from mnist_predict import Predictor

    from job.train.rundir import load_keras_model

    model = load_keras_model(run_dir / "model.keras")
    graph_call = tf.function(lambda x: model(x, training=False))
    onnx = run_dir / "export" / "model.onnx"
    default_session = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    fp32, int8 = Predictor(onnx), Predictor(run_dir / "export" / "model.int8.onnx")
    return {
        "Keras predict": lambda x: model.predict(x, batch_size=BATCH, verbose=0),
        "Keras __call__ (eager)": lambda x: model(x, training=False).numpy(),
        "Keras __call__ in tf.function": lambda x: graph_call(x).numpy(),
        "ORT fp32 (onnxruntime defaults)": lambda x: default_session.run(None, {"image": x})[0],
        "ORT fp32": fp32.run,
        "ORT int8": int8.run,
    }


BURST = 20


def burst(fn, x):
    start = time.perf_counter()
    for _ in range(BURST):
        fn(x)
    return (time.perf_counter() - start) / BURST


def measure(name, run_dir, x, plan):
    paths = paths_for(run_dir)
    batch, single = x[:BATCH], x[:1]
    # The pause lets spinning thread pools (TensorFlow's; onnxruntime's with its defaults) go idle, so that
    # one path's spinning is not billed to the next.
    seconds = interleaved_medians({k: lambda f=f: f(batch) for k, f in paths.items()}, plan["batch_repeats"],
                                  pause=PAUSE)
    # Batch-1 latency is steady state, as a server sees it: each turn times BURST back-to-back calls. A lone
    # call after the pause costs ~0.4 ms more on ORT, its parked threads waking up (bench/README.md).
    latency = interleaved_medians({k: lambda f=f: burst(f, single) for k, f in paths.items()},
                                  plan["single_repeats"], warmup=3, pause=PAUSE, self_timed=True)
    return [{"model": name, "path": k, "images_per_second": round(BATCH / seconds[k], 1),
             "latency_ms": round(1000 * latency[k], 4),
             "vs_predict": round(seconds["Keras predict"] / seconds[k], 3),
             "latency_vs_keras_call": round(latency["Keras __call__ (eager)"] / latency[k], 2)} for k in paths]


def main():
    args = parse_args(__doc__)
    plan = QUICK if args.quick else FULL
    header("inference", args.quick)
    from job.data.datasets import load_dataset

    dataset, data = bench_models(args.quick)
    runs = {name: exported_model(name, dataset, data) for name in MODELS}
    x = np.resize(load_dataset(dataset, data).x_test, (BATCH, 28, 28)).astype(np.float32)
    rows = [row for name, run_dir in runs.items() for row in measure(name, run_dir, x, plan)]

    print(f"\nbatch {BATCH}: median of {plan['batch_repeats']}; batch 1: median of {plan['single_repeats']} "
          f"turns of {BURST} back-to-back calls")
    print_table(["model", "path", f"images/s @{BATCH}", "vs predict", "batch-1 latency", "vs Keras call"],
                [[r["model"], r["path"], num(r["images_per_second"]), f"{r['vs_predict']:.2f}x",
                  f"{num(1000 * r['latency_ms'])} µs", f"{r['latency_vs_keras_call']:.1f}x"] for r in rows])
    by = {(r["model"], r["path"]): r for r in rows}
    targets = []
    for name in MODELS:
        targets.append(target(f"{name}: ORT fp32 / Keras predict @{BATCH}", by[name, "ORT fp32"]["vs_predict"],
                              1.0, unit="x"))
        targets.append(target(f"{name}: batch-1 latency, Keras eager call / ORT fp32",
                              by[name, "ORT fp32"]["latency_vs_keras_call"], 50, unit="x"))
    int8_gain = by["cnn-bn-aug", "ORT int8"]["vs_predict"] / by["cnn-bn-aug", "ORT fp32"]["vs_predict"]
    targets.append(target(f"cnn-bn-aug: ORT int8 / fp32 @{BATCH}", int8_gain, 1.3, unit="x"))
    print()
    print_targets(targets)
    write_results("inference" + ("-quick" if args.quick else ""),
                  {"quick": args.quick, "dataset": dataset, "batch": BATCH, **plan, "rows": rows, "targets": targets})


if __name__ == "__main__":
    main()
