"""Folder prediction: `mnist-predict` on 10,000 PNGs against a tutorial's per-image `model.predict` loop.

    .venv/bin/python bench/folder_predict.py            # ~2.5 min on 2 quiet cores
    .venv/bin/python bench/folder_predict.py --quick    # ~1 min: the sample's 2,000 test digits

The Fashion-MNIST test set is written once as <index>_<label>.png (bench/results/data/). For dense-512 and
cnn-bn-aug (three epochs each, exported with int8, cached in bench/results/models/):
- the CLI in a subprocess, as a user runs it, with --workers 1 and 2, in turns; end-to-end images/s is
  files / wall seconds of the whole command (interpreter start included); the CLI's own figure too;
- the per-image loop (Pillow open -> array -> model.predict on a batch of 1), timed on a subset;
- the machine's bound: bound = cores / (decode + infer) images/s, with decode the per-file CPU time of the
  predictor's own decoding (Pillow + polarity check) in one process and infer the per-image CPU time of
  onnxruntime at the CLI's batch size with one thread. Both stages are CPU-bound and the CLI overlaps them
  (workers decode while ORT infers), so at best every core does useful work all the time: no split of
  cores between decoding and inference beats cores / (decode + infer). Process start, IPC and the CSV are
  overheads the bound leaves out. CPU time (process_time), not wall time, so that other load on the
  machine does not inflate the costs; the achieved rate, in wall time, does suffer from such load.
- accuracy from the predictions CSV (labels are in the file names) next to the model's Keras test accuracy.
Writes bench/results/folder_predict.json.
"""

import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from common import (BIN, bench_models, cpu_count, exported_model, header, interleaved_medians, num,
                    parse_args, png_folder, print_table, print_targets, target, write_results)

MODELS = ["dense-512", "cnn-bn-aug"]
FULL = {"repeats": 3, "loop_images": 300, "decode_images": 2000}
QUICK = {"repeats": 1, "loop_images": 40, "decode_images": 500}
BATCH = 256  # the CLI's default --batch-size


def cli(folder, model, out, *options):
    """Run mnist-predict as a user would; returns (wall seconds, its --json summary)."""
    cmd = [str(BIN / "mnist-predict"), str(folder), "--model", str(model), "--out", str(out), "--json", *options]
    start = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if result.returncode not in (0, 3):  # 3: some files are error rows (a garment with no ink to frame)
        raise SystemExit(f"{' '.join(cmd)} failed ({result.returncode}): {result.stderr.strip()[-500:]}")
    return wall, json.loads(result.stdout.strip().splitlines()[-1])


def per_image_loop(run_dir, paths):
    """Images/s of the loop a tutorial writes: open, to array, predict a batch of one."""
    from PIL import Image

    from job.train.rundir import load_keras_model

    model = load_keras_model(run_dir / "model.keras")

    def loop(files):
        for path in files:
            image = np.array(Image.open(path).convert("L"), dtype=np.float32)
            int(np.argmax(model.predict(image[np.newaxis], verbose=0)))

    loop(paths[:3])  # warm-up: predict builds its function on the first call
    start = time.perf_counter()
    loop(paths)
    return len(paths) / (time.perf_counter() - start)


def decode_seconds(paths):
    """CPU seconds per file: the predictor's decoding, and Pillow's decode alone for reference."""
    from mnist_predict import images
    from PIL import Image

    def raw(path):
        with Image.open(path) as image:
            np.asarray(image.convert("L"))

    # decode, as the CLI's workers do: a garment with no ink to frame is an error row there, not a crash
    seconds = interleaved_medians({"predictor": lambda: [images.decode(p) for p in paths],
                                   "pillow": lambda: [raw(p) for p in paths]}, repeats=3, warmup=1,
                                  clock=time.process_time)
    return {k: v / len(paths) for k, v in seconds.items()}


def infer_seconds(onnx, x):
    """CPU seconds per image of onnxruntime with one thread at the CLI's batch size."""
    from mnist_predict import Predictor

    predictor, batch = Predictor(onnx, threads=1), x[:BATCH]
    return interleaved_medians({"run": lambda: predictor.run(batch)}, repeats=10, warmup=2,
                               clock=time.process_time)["run"] / BATCH


def main():
    args = parse_args(__doc__)
    plan = QUICK if args.quick else FULL
    header("folder prediction", args.quick)
    from job.data.datasets import load_dataset
    from job.data.scoring import score_predictions

    dataset, data = bench_models(args.quick)
    folder = png_folder(dataset, data)
    paths = sorted(folder.glob("*.png"))
    runs = {name: exported_model(name, dataset, data) for name in MODELS}
    x = load_dataset(dataset, data).x_test.astype(np.float32)
    cores, decode = cpu_count(), decode_seconds(paths[:plan["decode_images"]])
    print(f"decode per file: {1e6 * decode['predictor']:.0f} µs (Pillow alone {1e6 * decode['pillow']:.0f} µs)",
          flush=True)

    tmp = Path(tempfile.mkdtemp(prefix="folder-predict-"))
    cli_runs, summaries = {}, {}
    for name, run_dir in runs.items():
        for workers in (1, 2):
            def run(name=name, run_dir=run_dir, workers=workers):
                wall, summary = cli(folder, run_dir / "export" / "model.onnx", tmp / f"{name}-w{workers}.csv",
                                    "--workers", str(workers))
                summaries[name, workers] = summary
                return wall
            cli_runs[name, workers] = run
    wall = interleaved_medians(cli_runs, repeats=plan["repeats"], warmup=0, self_timed=True)

    rows, targets = [], []
    for name, run_dir in runs.items():
        infer = infer_seconds(run_dir / "export" / "model.onnx", x)
        bound = cores / (decode["predictor"] + infer)
        loop = per_image_loop(run_dir, paths[:plan["loop_images"]])
        scores = score_predictions(tmp / f"{name}-w2.csv")
        correct, total = scores["correct"], scores["predicted"]
        keras_accuracy = json.loads((run_dir / "metrics.json").read_text())["test_accuracy"]
        for workers in (1, 2):
            rate = len(paths) / wall[name, workers]
            rows.append({"model": name, "workers": workers, "images_per_second": round(rate, 1),
                         "cli_reported_images_per_second": summaries[name, workers]["images_per_second"],
                         "bound": round(bound, 1), "of_bound": round(rate / bound, 3),
                         "loop_images_per_second": round(loop, 2), "vs_loop": round(rate / loop, 1),
                         "decode_us": round(1e6 * decode["predictor"], 1), "infer_us": round(1e6 * infer, 1),
                         "csv_accuracy": round(correct / total, 4), "keras_test_accuracy": keras_accuracy})
        two = rows[-1]
        targets.append(target(f"{name}: --workers 2, share of the bound", 100 * two["of_bound"], 70, unit="%"))
        targets.append(target(f"{name}: --workers 2 / per-image predict loop", two["vs_loop"], 500, unit="x"))
    shutil.rmtree(tmp)

    print(f"\n{len(paths):,} PNG files of {dataset}; {cores} cores; bound = cores / (decode + infer at batch "
          f"{BATCH}, 1 thread); median of {plan['repeats']} run(s); loop on {plan['loop_images']} files")
    print_table(["model", "workers", "images/s", "(CLI's own)", "decode µs", "infer µs", "bound", "of bound",
                 "loop images/s", "vs loop", "CSV acc", "Keras acc"],
                [[r["model"], r["workers"], num(r["images_per_second"]), num(r["cli_reported_images_per_second"]),
                  num(r["decode_us"]), num(r["infer_us"]), num(r["bound"]), f"{r['of_bound']:.0%}",
                  num(r["loop_images_per_second"]), f"{r['vs_loop']:,.0f}x", f"{r['csv_accuracy']:.4f}",
                  f"{r['keras_test_accuracy']:.4f}"] for r in rows])
    print()
    print_targets(targets)
    write_results("folder_predict" + ("-quick" if args.quick else ""),
                  {"quick": args.quick, "dataset": dataset, "files": len(paths), "cores": cores,
                   "pillow_decode_us": round(1e6 * decode["pillow"], 1), **plan, "rows": rows, "targets": targets})


if __name__ == "__main__":
    main()
