"""Scale-out on one machine: multi-worker training and sharded prediction, as real processes over loopback.

    .venv/bin/python bench/scale_out.py           # ~7 min on 2 cores
    .venv/bin/python bench/scale_out.py --quick   # ~2 min

Training: cnn-bn-aug on the bundled sample for 2 epochs, run three ways, in turns: one process with the
default strategy, and `--local-workers 1` and `--local-workers 2` (MultiWorkerMirroredStrategy; each local
worker gets its share of the cores). samples/s is the run's own (training epochs only); wall time includes
start-up, joining the cluster, evaluation and plots. On 2 cores, 2 workers of 1 core each are expected to be
slower than 1 process of 2: they split the same cores and add an all-reduce per step. The figures show what
the synchronisation costs, not a speed-up.

Prediction: the same folder of photo-like digits predicted by one `mnist-predict` run and by 4 shard
processes started together (as 4 pods would be), then `mnist-predict merge`. The merged file must equal the
single run's byte for byte. On 2 cores this measures the overhead of sharding, not a speed-up.

Listing: every shard lists the whole folder and keeps its share, so listing is paid once per pod; it is
timed here on a folder of 20,000 files. Writes bench/results/scale_out.json.
"""

import json
import shutil
import subprocess
import time

from common import BIN, RESULTS, cpu_count, header, parse_args, print_table, write_results
from finetune import mnist_job

FULL = {"epochs": 2, "repeats": 3, "photos": 2000, "listing": 20000}
QUICK = {"epochs": 1, "repeats": 1, "photos": 400, "listing": 5000}
SHARDS = 4


def train(out, *args):
    shutil.rmtree(out, ignore_errors=True)
    _, wall = mnist_job("train", "--dataset", "mnist-sample", "--out", out, *args)
    metrics = json.loads((out / "metrics.json").read_text())
    return {"samples_per_second": metrics["samples_per_second"], "train_seconds": metrics["train_seconds"],
            "wall_seconds": round(wall, 1), "test_accuracy": metrics["test_accuracy"]}


def training(plan):
    runs = RESULTS / "scale-out-runs"
    variants = {"1 process": [], "1 local worker": ["--local-workers", 1], "2 local workers": ["--local-workers", 2]}
    results = {name: [] for name in variants}
    for repeat in range(plan["repeats"]):  # in turns, so that a change in the machine's load hits all alike
        for name, args in variants.items():
            results[name].append(train(runs / name.replace(" ", "-"), "--epochs", plan["epochs"], *args))
    shutil.rmtree(runs, ignore_errors=True)
    # The run of median speed, whole: its figures belong together.
    return {name: {**sorted(rows, key=lambda r: r["samples_per_second"])[len(rows) // 2],
                   "samples_per_second_all": [r["samples_per_second"] for r in rows]}
            for name, rows in results.items()}


def predict(*args):
    return subprocess.Popen([str(BIN / "mnist-predict"), *map(str, args)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def finish(process):
    _, err = process.communicate()
    if process.returncode not in (0, 3):
        raise SystemExit(f"mnist-predict failed: {err.strip()[-800:]}")


def sharded_prediction(plan, model):
    from finetune import photo_folder

    folder = photo_folder(RESULTS / "data" / f"scale-out-photos-{plan['photos']}", "test", plan["photos"], seed=5)
    out = RESULTS / "scale-out-predictions"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    finish(predict(folder, "--recursive", "--model", model, "--out", out / "warm.csv"))  # page cache, both alike
    start = time.perf_counter()
    finish(predict(folder, "--recursive", "--model", model, "--out", out / "single.csv"))
    single = time.perf_counter() - start
    start = time.perf_counter()
    shards = [predict(folder, "--recursive", "--model", model, "--shard", f"{i}/{SHARDS}", "--workers", 1,
                      "--threads", 1, "--out", out / f"p-{i}.csv") for i in range(SHARDS)]
    for process in shards:
        finish(process)
    sharded = time.perf_counter() - start
    start = time.perf_counter()
    finish(predict("merge", *(out / f"p-{i}.csv" for i in range(SHARDS)), "--out", out / "merged.csv"))
    merge = time.perf_counter() - start
    identical = (out / "merged.csv").read_bytes() == (out / "single.csv").read_bytes()
    files = len((out / "single.csv").read_text().splitlines()) - 1
    shutil.rmtree(out)
    return {"files": files, "single_seconds": round(single, 2), "sharded_seconds": round(sharded, 2),
            "merge_seconds": round(merge, 3), "identical": identical}


def listing(plan):
    import sys

    sys.path.insert(0, str(RESULTS.parent.parent / "deploy"))
    from mnist_predict.batch import find_images
    from mnist_predict.shards import take_shard

    folder = RESULTS / "data" / f"listing-{plan['listing']}"
    if not (folder / ".complete").exists():
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        for i in range(plan["listing"]):
            (folder / f"{i:06d}.png").write_bytes(b"")
        (folder / ".complete").write_text("")
    start = time.perf_counter()
    paths = find_images(folder)
    take_shard(paths, 0, SHARDS)
    return {"files": len(paths), "seconds": round(time.perf_counter() - start, 4)}


def main():
    args = parse_args(__doc__)
    plan = QUICK if args.quick else FULL
    header("scale-out: multi-worker training and sharded prediction on one machine", args.quick)
    from robustness import trained_model

    model = trained_model() / "export" / "model.onnx"
    train_results = training(plan)
    base = train_results["1 process"]
    print(f"\ntraining: cnn-bn-aug, mnist-sample, {plan['epochs']} epoch(s), {cpu_count()} cores; the run of median "
          f"speed of {plan['repeats']}")
    print_table(["run", "samples/s", "x 1 process", "train s", "wall s", "test accuracy"],
                [[name, f"{r['samples_per_second']:.0f}", f"{r['samples_per_second'] / base['samples_per_second']:.2f}",
                  f"{r['train_seconds']:.1f}", f"{r['wall_seconds']:.1f}", f"{r['test_accuracy']:.2%}"]
                 for name, r in train_results.items()])
    shard = sharded_prediction(plan, model)
    per_core = shard["files"] / shard["single_seconds"] / cpu_count()
    print(f"\nprediction: {shard['files']} photo-like digits, one run against {SHARDS} shard processes + merge")
    print_table(["run", "seconds", "images/s", "x one run"],
                [["one run", f"{shard['single_seconds']:.2f}", f"{shard['files'] / shard['single_seconds']:.0f}",
                  "1.00"],
                 [f"{SHARDS} shards in parallel", f"{shard['sharded_seconds']:.2f}",
                  f"{shard['files'] / shard['sharded_seconds']:.0f}",
                  f"{shard['single_seconds'] / shard['sharded_seconds']:.2f}"],
                 ["merge", f"{shard['merge_seconds']:.3f}", "", ""]])
    print(f"merged file identical to the single run: {shard['identical']}")
    listed = listing(plan)
    print(f"\nlisting one folder of {listed['files']:,} files and taking a shard: {listed['seconds'] * 1000:.0f} ms "
          f"({listed['seconds'] / listed['files'] * 1e6:.1f} µs per file, paid by every pod)")
    print(f"throughput model: {per_core:.0f} images/s per core here x cores per pod x pods, less each pod's "
          "listing of the whole folder")
    write_results("scale_out" + ("-quick" if args.quick else ""),
                  {"quick": args.quick, **plan, "training": train_results, "prediction": shard, "listing": listed,
                   "images_per_second_per_core": round(per_core, 1)})


if __name__ == "__main__":
    main()
