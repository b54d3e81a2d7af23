"""Folder prediction: `mnist-predict` on 10,000 PNGs against a tutorial's per-image `model.predict` loop, and
on 12-megapixel phone JPEGs against the JPEG decode floor.

    .venv/bin/python bench/folder_predict.py            # ~2.5 min on 2 quiet cores
    .venv/bin/python bench/folder_predict.py --full     # ~4 min: --workers 1 beside 2
    .venv/bin/python bench/folder_predict.py --quick    # ~1 min: the sample's 2,000 test digits, 24 photos

The Fashion-MNIST test set is written once as <index>_<label>.png (bench/results/data/). For dense-512 and
cnn-bn-aug (three epochs each, exported with int8, cached in bench/results/models/):
- the CLI in a subprocess, as a user runs it, with --workers 2 (and 1, with --full), in turns; end-to-end
  images/s is files / wall seconds of the whole command (interpreter start included); the CLI's own figure too;
- the per-image loop (Pillow open -> array -> model.predict on a batch of 1), timed on a subset;
- the machine's bound: bound = cores / (decode + infer) images/s, with decode the per-file CPU time of the
  predictor's own decoding (Pillow, then the export's preprocessing) in one process and infer the per-image
  CPU time of onnxruntime at the CLI's batch size with one thread. Both stages are CPU-bound and the CLI overlaps them
  (workers decode while ORT infers), so at best every core does useful work all the time: no split of
  cores between decoding and inference beats cores / (decode + infer). Process start, IPC and the CSV are
  overheads the bound leaves out. CPU time (process_time), not wall time, so that other load on the
  machine does not inflate the costs; the achieved rate, in wall time, does suffer from such load.
- accuracy from the predictions CSV (labels are in the file names) next to the model's Keras test accuracy.

Phone photos: 150 JPEGs of 4000x3000 (`job.data.photos.phone_photo`, 1.5-3 MB each) of the sample's test
digits, made once. `mnist-predict` on them as a user runs it (the best sample model, the whole command), in
turns with the decode floor: Pillow's DCT-scaled greyscale decode alone (`draft("L", (w/8, h/8))` and
`load()`), the same files spread over one process per core that is already running. The floor is what any
predictor that reads these files with Pillow must pay; everything else the CLI does (process start, cleaning,
framing, the model, the CSV) shows as the distance from it.
Writes bench/results/folder_predict.json.
"""

import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from common import (BIN, RESULTS, bench_models, best_sample_model, cpu_count, exported_model, header,
                    interleaved_medians, num, parse_args, png_folder, print_table, print_targets, target,
                    write_results)

MODELS = ["dense-512", "cnn-bn-aug"]
DEFAULT = {"repeats": 2, "loop_images": 150, "decode_images": 1000, "photos": 150, "workers": (2,)}
FULL = {**DEFAULT, "workers": (1, 2)}
QUICK = {"repeats": 1, "loop_images": 40, "decode_images": 500, "photos": 24, "workers": (1, 2)}
PHOTO_VERSION = 1  # bump when job.data.photos.phone_photo changes, so the photos are made again
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


def decode_seconds(paths, resize):
    """CPU seconds per file: the predictor's decoding with the model's preprocessing (`resize`, as the CLI
    takes it from the export), and Pillow's decode alone for reference."""
    from mnist_predict import images
    from PIL import Image

    def raw(path):
        with Image.open(path) as image:
            np.asarray(image.convert("L"))

    # decode, as the CLI's workers do: a garment with no ink to frame is an error row there, not a crash
    seconds = interleaved_medians({"predictor": lambda: [images.decode(p, resize=resize) for p in paths],
                                   "pillow": lambda: [raw(p) for p in paths]}, repeats=3, warmup=1,
                                  clock=time.process_time)
    return {k: v / len(paths) for k, v in seconds.items()}


def infer_seconds(onnx, x):
    """CPU seconds per image of onnxruntime with one thread at the CLI's batch size."""
    from mnist_predict import Predictor

    predictor, batch = Predictor(onnx, threads=1), x[:BATCH]
    return interleaved_medians({"run": lambda: predictor.run(batch)}, repeats=10, warmup=2,
                               clock=time.process_time)["run"] / BATCH


def phone_folder(count):
    """bench/results/data/phone-12mp-v<N>-<count>/<index>_<label>.jpg: 12 MP phone JPEGs, made once."""
    from concurrent.futures import ProcessPoolExecutor

    folder = RESULTS / "data" / f"phone-12mp-v{PHOTO_VERSION}-{count}"
    if not (folder / ".complete").is_file():
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        print(f"writing {count} 12-megapixel phone JPEGs to {folder} ...", flush=True)
        from job.data.datasets import load_dataset

        test = load_dataset("mnist-sample")
        jobs = [(folder / f"{i:04d}_{test.y_test[i]}.jpg", test.x_test[i], i) for i in range(count)]
        with ProcessPoolExecutor(cpu_count()) as pool:
            list(pool.map(_phone_file, jobs))
        (folder / ".complete").write_text("")
    return folder


def _phone_file(job):
    from job.data.photos import phone_photo

    path, digit, seed = job
    path.write_bytes(phone_photo(digit, seed=seed))


def _floor_decode(paths):
    """The decode floor for a few files: Pillow's greyscale decode at 1/8 scale, nothing else."""
    from PIL import Image

    for path in paths:
        with Image.open(path) as image:
            image.draft("L", (image.width // 8, image.height // 8))
            image.load()
    return len(paths)


def photos(plan, tmp):
    """The CLI on the phone JPEGs against the decode floor on every core, in turns: a result row."""
    from concurrent.futures import ProcessPoolExecutor

    from job.data.scoring import score_predictions

    folder = phone_folder(plan["photos"])
    paths = sorted(folder.glob("*.jpg"))
    model = best_sample_model(plan is QUICK) / "export" / "model.onnx"
    cores = cpu_count()
    chunks = [paths[i::4 * cores] for i in range(4 * cores)]  # several per core, so that none waits at the end
    with ProcessPoolExecutor(cores) as pool:
        list(pool.map(abs, range(cores)))  # every process started before the clock runs
        summary = {}

        def cli_run():
            wall, summary["cli"] = cli(folder, model, tmp / "phone.csv")
            return wall

        wall = interleaved_medians({"floor": lambda: sum(pool.map(_floor_decode, chunks)), "cli": cli_run},
                                   repeats=plan["repeats"], warmup=1)
    scores = score_predictions(tmp / "phone.csv")
    megabytes = sum(p.stat().st_size for p in paths) / len(paths) / 1e6
    return {"files": len(paths), "mean_mb": round(megabytes, 2), "cores": cores,
            "floor_images_per_second": round(len(paths) / wall["floor"], 1),
            "cli_images_per_second": round(len(paths) / wall["cli"], 1),
            "cli_reported_images_per_second": summary["cli"]["images_per_second"],
            "of_floor": round(wall["floor"] / wall["cli"], 3),
            "csv_accuracy": round(scores["correct"] / len(paths), 4), "errors": summary["cli"]["failed"]}


def main():
    args = parse_args(__doc__, **{"--full": {"action": "store_true", "help": "--workers 1 beside 2"}})
    plan = QUICK if args.quick else FULL if args.full else DEFAULT
    header("folder prediction", args.quick)
    from job.data.datasets import load_dataset
    from job.data.scoring import score_predictions
    from mnist_predict import Predictor

    dataset, data = bench_models(args.quick)
    folder = png_folder(dataset, data)
    paths = sorted(folder.glob("*.png"))
    runs = {name: exported_model(name, dataset, data) for name in MODELS}
    x = load_dataset(dataset, data).x_test.astype(np.float32)
    # The CLI prepares files as each export says (stretch for Fashion-MNIST): the bound must count that cost
    resize = {Predictor(run_dir / "export" / "model.onnx").resize for run_dir in runs.values()}
    if len(resize) != 1:
        raise SystemExit(f"the models of one dataset prepare files differently: {resize}")
    resize = resize.pop()
    cores, decode = cpu_count(), decode_seconds(paths[:plan["decode_images"]], resize)
    print(f"decode per file ({resize}): {1e6 * decode['predictor']:.0f} µs (Pillow alone "
          f"{1e6 * decode['pillow']:.0f} µs)", flush=True)

    tmp = Path(tempfile.mkdtemp(prefix="folder-predict-"))
    cli_runs, summaries = {}, {}
    for name, run_dir in runs.items():
        for workers in plan["workers"]:
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
        for workers in plan["workers"]:
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
    phone = photos(plan, tmp)
    targets.append(target("12 MP phone JPEGs: share of the decode floor", 100 * phone["of_floor"], 85, unit="%"))
    shutil.rmtree(tmp)

    print(f"\n{len(paths):,} PNG files of {dataset}; {cores} cores; bound = cores / (decode + infer at batch "
          f"{BATCH}, 1 thread); median of {plan['repeats']} run(s); loop on {plan['loop_images']} files")
    print_table(["model", "workers", "images/s", "(CLI's own)", "decode µs", "infer µs", "bound", "of bound",
                 "loop images/s", "vs loop", "CSV acc", "Keras acc"],
                [[r["model"], r["workers"], num(r["images_per_second"]), num(r["cli_reported_images_per_second"]),
                  num(r["decode_us"]), num(r["infer_us"]), num(r["bound"]), f"{r['of_bound']:.0%}",
                  num(r["loop_images_per_second"]), f"{r['vs_loop']:,.0f}x", f"{r['csv_accuracy']:.4f}",
                  f"{r['keras_test_accuracy']:.4f}"] for r in rows])
    print(f"\n{phone['files']} phone JPEGs of 4000x3000 ({phone['mean_mb']} MB each), the best sample model; "
          f"decode floor: Pillow's 1/8-scale greyscale decode alone on {phone['cores']} running processes; "
          f"median of {plan['repeats']} run(s), in turns")
    print_table(["decode floor images/s", "mnist-predict images/s", "(CLI's own)", "of floor", "CSV acc", "errors"],
                [[num(phone["floor_images_per_second"]), num(phone["cli_images_per_second"]),
                  num(phone["cli_reported_images_per_second"]), f"{phone['of_floor']:.0%}",
                  f"{phone['csv_accuracy']:.1%}", phone["errors"]]])
    print()
    print_targets(targets)
    write_results("folder_predict" + ("-quick" if args.quick else ""),
                  {"quick": args.quick, "dataset": dataset, "files": len(paths), "cores": cores,
                   "pillow_decode_us": round(1e6 * decode["pillow"], 1), **plan, "rows": rows, "phone": phone,
                   "targets": targets})


if __name__ == "__main__":
    main()
