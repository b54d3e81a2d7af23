"""Robustness: accuracy on photo-like digits per condition, calibration, non-digits, review rate, photo speed.

    .venv/bin/python bench/robustness.py                   # ~6 min on 2 cores (trains and exports once)
    .venv/bin/python bench/robustness.py --quick           # ~2 min: 30 images a condition
    .venv/bin/python bench/robustness.py --model runs/demo/export/model.onnx
    .venv/bin/python bench/robustness.py --before a6b0b08 --before-model old/export/model.onnx   # before/after

The sample's 2,000 test digits (never trained on) are rendered by `job.data.photos` under every condition in
`job.data.photos.CONDITIONS`, and five kinds of non-digit (`job.data.photos.JUNK`, garments from Fashion-MNIST when it
is installed). Each folder goes through `mnist-predict` as a user runs it (a subprocess, `--top-k 10`).

Per condition: accuracy over all files (an error row counts as wrong), ECE (15 bins) of the ok rows, and
the share flagged for review at the default threshold. Non-digits: the share that comes back `ok` without
the review flag. A risk-coverage curve (accuracy of the rows kept against the share kept, for each
threshold) for clean and for photo-like digits is drawn to bench/results/robustness_risk_coverage.png.

Speed: images/s of `mnist-predict` on a folder of 12-megapixel phone JPEGs and on the 2,000 clean 28x28 PNGs,
every variant in turns (medians).

`--before REF` adds the predictor as it was at git REF (its `deploy/mnist_predict`, run as its own
package) with `--before-model`, side by side with the current one. Writes bench/results/robustness.json.
"""

import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from common import (RESULTS, ROOT, best_sample_model, header, interleaved_medians, num, parse_args, print_table,
                    print_targets, target, write_results)

FULL = {"per_condition": 300, "per_junk": 200, "photos_12mp": 96, "repeats": 3}
QUICK = {"per_condition": 30, "per_junk": 20, "photos_12mp": 4, "repeats": 1}
DATA_VERSION = 1  # bump when job.data.photos changes, so cached renders are made again


def render_file(job):
    """Write one rendered file: job = (kind, condition or junk kind, seed, pixels, label, path stem)."""
    from job.data.photos import render, render_junk

    kind, key, seed, pixels, label, stem = job
    image, suffix = render(pixels, key, seed) if kind == "digit" else render_junk(key, seed, garments=pixels)
    image.save(f"{stem}_{label}{suffix}")


def photo_folders(per_condition, per_junk, photos_12mp):
    """bench/results/data/photos-v<N>/<condition>/<index>_<label>.<ext> and junk-<kind>/, made once."""
    from job.data.datasets import load_dataset
    from job.data.photos import CONDITIONS, JUNK, phone_photo

    root = RESULTS / "data" / f"photos-v{DATA_VERSION}-{per_condition}-{per_junk}-{photos_12mp}"
    if (root / ".complete").is_file():
        return root
    shutil.rmtree(root, ignore_errors=True)
    test = load_dataset("mnist-sample")
    garments = fashion_garments()
    print(f"rendering {per_condition} digits x {len(CONDITIONS)} conditions and {per_junk} x {len(JUNK)} "
          f"non-digits into {root} ...", flush=True)
    jobs = []
    for c, condition in enumerate(CONDITIONS):
        (root / condition).mkdir(parents=True)
        for i in range(per_condition):
            jobs.append(("digit", condition, c * 100_000 + i, test.x_test[i], test.y_test[i],
                         root / condition / f"{i:05d}"))
    for k, kind in enumerate(JUNK):
        if kind == "garment" and garments is None:
            continue
        (root / f"junk-{kind}").mkdir(parents=True)
        for i in range(per_junk):
            seed = 900_000 + k * 10_000 + i
            item = garments[seed % len(garments)][None] if kind == "garment" else None
            jobs.append(("junk", kind, seed, item, "junk", root / f"junk-{kind}" / f"{i:05d}"))

    with ProcessPoolExecutor(os.cpu_count()) as pool:
        list(pool.map(render_file, jobs, chunksize=32))
    big = root / "phone-12mp"
    big.mkdir()
    for i in range(photos_12mp):
        (big / f"{i:05d}_{test.y_test[i]}.jpg").write_bytes(phone_photo(test.x_test[i], seed=i))
    (root / ".complete").write_text("")
    return root


def fashion_garments():
    """Fashion-MNIST test items (from Debian's dataset-fashion-mnist), or None when it is not installed."""
    from job.data.datasets import load_dataset

    try:
        return load_dataset("fashion_mnist", "/usr/share/datasets/fashion-mnist").x_test
    except Exception:
        return None


def baseline_package(ref):
    """The predictor package as it was at git `ref`, copied as `mnist_predict_before` into a temp dir."""
    folder = Path(tempfile.mkdtemp(prefix="robustness-before-"))
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "deploy/mnist_predict"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    package = folder / "mnist_predict_before"
    shutil.move(folder / "deploy" / "mnist_predict", package)
    for module in package.glob("*.py"):  # its absolute imports must reach the old code, not today's
        text = module.read_text()
        module.write_text(text.replace("from mnist_predict", "from mnist_predict_before")
                          .replace("import mnist_predict", "import mnist_predict_before"))
    return folder, "mnist_predict_before"


def predict(variant, folder, out, *options):
    """Run a variant's CLI on a folder; returns (wall seconds, summary)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [variant["path"], os.environ.get("PYTHONPATH")]))}
    cmd = [sys.executable, "-m", variant["package"], str(folder), "--model", str(variant["model"]), "--out",
           str(out), "--json", *options]
    start = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if result.returncode not in (0, 3):
        raise SystemExit(f"{' '.join(cmd)} failed ({result.returncode}): {result.stderr.strip()[-800:]}")
    return wall, json.loads(result.stdout.strip().splitlines()[-1])


def read_predictions(path, classes=10):
    """Rows of a --top-k 10 CSV: true labels (-1 for junk), probabilities, ok and review flags."""
    labels, probabilities, ok, review = [], [], [], []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            stem = Path(row["path"]).stem.rsplit("_", 1)[-1]
            labels.append(int(stem) if stem.isdigit() else -1)
            p = np.zeros(classes, np.float32)
            for pair in row["top_k"].split():
                label, value = pair.split(":")
                p[int(label)] = float(value)
            probabilities.append(p)
            ok.append(row["status"] == "ok")
            review.append(row.get("review") == "yes")
    return np.array(labels), np.array(probabilities).reshape(-1, classes), np.array(ok), np.array(review)


def evaluate(variant, root, threshold, tmp):
    """Per-folder figures for one variant; the review flag is recomputed from the top probability at
    `threshold`, so that variants without the flag (before) are judged alike."""
    from job.train.calibration import expected_calibration_error as ece

    results = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and p.name != "phone-12mp"):
        out = tmp / f"{variant['name']}-{folder.name}.csv"
        predict(variant, folder, out, "--top-k", "10")
        labels, probabilities, ok, _ = read_predictions(out)
        top = probabilities.max(axis=1)
        kept = ok & (top >= threshold)
        correct = ok & (probabilities.argmax(axis=1) == labels)
        results[folder.name] = {
            "files": len(labels), "accuracy": float(correct.mean()), "errors": int((~ok).sum()),
            "ece": ece(probabilities[ok], labels[ok]) if (labels >= 0).all() else None,
            "review_rate": float((ok & ~kept).mean()), "accepted": float(kept.mean()),
            "top": top[ok].tolist(), "correct": correct[ok].tolist()}
    return results


def risk_coverage(results, folders):
    """(thresholds, coverage, accuracy of kept rows) pooled over the folders."""
    top = np.concatenate([results[f]["top"] for f in folders])
    correct = np.concatenate([results[f]["correct"] for f in folders]).astype(bool)
    files = sum(results[f]["files"] for f in folders)
    thresholds = np.linspace(0, 0.99, 100)
    coverage = np.array([(top >= t).sum() / files for t in thresholds])
    accuracy = np.array([correct[top >= t].mean() if (top >= t).any() else 1.0 for t in thresholds])
    return thresholds, coverage, accuracy


def plot_risk_coverage(curves, threshold, path):
    sys.path.insert(0, str(ROOT))
    from job.train.plots import pyplot, save

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for label, (thresholds, coverage, accuracy) in curves.items():
        ax.plot(coverage, accuracy, label=label)
        at = np.argmin(np.abs(thresholds - threshold))
        ax.plot(coverage[at], accuracy[at], "ko")
        ax.annotate(f"{threshold:g}", (coverage[at], accuracy[at]), textcoords="offset points", xytext=(4, -12))
    ax.set_xlabel("coverage: share of files kept (ok, not flagged for review)")
    ax.set_ylabel("accuracy of the kept files")
    ax.set_title("Risk-coverage, one point per --min-confidence")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save(fig, path)


def speed(variants, root, tmp, repeats):
    """images/s of each variant's CLI on the 12 MP JPEGs and on the clean 28x28 PNGs, in turns."""
    from common import png_folder

    folders = {"12 MP phone JPEGs": root / "phone-12mp", "28x28 PNGs": png_folder("mnist-sample")}
    runs = {}
    for name, folder in folders.items():
        files = len([p for p in folder.iterdir() if not p.name.startswith(".")])
        for variant in variants:
            runs[name, variant["name"]] = (
                lambda v=variant, f=folder: predict(v, f, tmp / f"speed-{v['name']}.csv")[0], files)
    wall = interleaved_medians({key: fn for key, (fn, _) in runs.items()}, repeats=repeats, warmup=1,
                               self_timed=True)
    return {key: runs[key][1] / seconds for key, seconds in wall.items()}


def main():
    args = parse_args(__doc__, **{
        "--model": {"help": "the model.onnx to test [default: cnn-bn-aug trained on the sample, cached]"},
        "--before": {"help": "a git ref: also run the predictor as it was there"},
        "--before-model": {"help": "the model.onnx for --before [default: --model]"},
        "--min-confidence": {"type": float, "help": "review threshold [default: the predictor's]"}})
    plan = QUICK if args.quick else FULL
    header("robustness: photo-like digits and non-digits", args.quick)
    sys.path.insert(0, str(ROOT / "deploy"))
    from mnist_predict.review import DEFAULT_MIN_CONFIDENCE

    threshold = args.min_confidence if args.min_confidence is not None else DEFAULT_MIN_CONFIDENCE
    model = Path(args.model) if args.model else best_sample_model() / "export" / "model.onnx"
    variants = [{"name": "now", "package": "mnist_predict", "path": str(ROOT / "deploy"), "model": model}]
    if args.before:
        path, package = baseline_package(args.before)
        variants.insert(0, {"name": f"before ({args.before})", "package": package, "path": str(path),
                            "model": Path(args.before_model or model)})
    root = photo_folders(plan["per_condition"], plan["per_junk"], plan["photos_12mp"])
    tmp = Path(tempfile.mkdtemp(prefix="robustness-"))
    results = {v["name"]: evaluate(v, root, threshold, tmp) for v in variants}
    rates = speed(variants, root, tmp, plan["repeats"])
    shutil.rmtree(tmp)

    from job.data.photos import CONDITIONS

    now = results["now"]
    names = [v["name"] for v in variants]
    digits = [c for c in CONDITIONS if c in now]
    junk = sorted(f for f in now if f.startswith("junk-"))
    print(f"\n{plan['per_condition']} digits per condition (the sample's test digits), {plan['per_junk']} per "
          f"non-digit kind; review threshold {threshold:g}; model {model}")
    print_table(["condition"] + [f"accuracy {n}" for n in names] + ["errors", "ECE", "review rate"],
                [[c] + [f"{results[n][c]['accuracy']:.1%}" for n in names] +
                 [now[c]["errors"], f"{now[c]['ece']:.1%}", f"{now[c]['review_rate']:.1%}"] for c in digits])
    photo = [c for c in digits if c != "clean"]
    for n in names:
        mean = np.mean([results[n][c]["accuracy"] for c in photo])
        print(f"{n}: mean over the {len(photo)} photo-like conditions {mean:.1%}; "
              f"worst {min(photo, key=lambda c: results[n][c]['accuracy'])}")
    print()
    print_table(["non-digit"] + [f"accepted {n}" for n in names] + ["error rows now"],
                [[j[5:]] + [f"{results[n][j]['accepted']:.1%}" for n in names] + [now[j]["errors"]] for j in junk])
    print()
    print_table(["speed"] + [f"images/s {n}" for n in names] + (["now / before"] if len(names) > 1 else []),
                [[what] + [num(rates[what, n]) for n in names] +
                 ([f"{rates[what, 'now'] / rates[what, names[0]]:.2f}x"] if len(names) > 1 else [])
                 for what in ("12 MP phone JPEGs", "28x28 PNGs")])

    curves = {"clean digits": risk_coverage(now, ["clean"]), "photo-like digits": risk_coverage(now, photo)}
    plot_risk_coverage(curves, threshold, RESULTS / "robustness_risk_coverage.png")
    print("\nrisk-coverage (photo-like digits): " + ", ".join(
        f"t={t:.2f}: kept {c:.1%} at {a:.2%}" for t, c, a in zip(*curves["photo-like digits"])
        if round(t * 100) % 10 == 0 or round(t * 100) == 95))

    clean_ece = np.mean([now[c]["ece"] for c in ["clean"]])
    all_digits_top = np.concatenate([now[c]["top"] for c in digits])
    targets = [target(f"{c}: accuracy drop against clean", 100 * (now["clean"]["accuracy"] - now[c]["accuracy"]),
                      2, higher=False, unit=" pp") for c in photo]
    targets += [
        target("mean accuracy over photo-like conditions", 100 * np.mean([now[c]["accuracy"] for c in photo]), 97,
               unit="%"),
        target("ECE on clean digits", 100 * clean_ece, 1.5, higher=False, unit="%"),
        target("non-digits accepted (ok, not flagged)", 100 * np.mean([now[j]["accepted"] for j in junk]), 10,
               higher=False, unit="%"),
        target("clean digits accepted (ok, not flagged)", 100 * now["clean"]["accepted"], 95, unit="%")]
    if len(names) > 1:
        targets += [target("12 MP JPEGs: now / before", rates["12 MP phone JPEGs", "now"] /
                           rates["12 MP phone JPEGs", names[0]], 5, unit="x"),
                    target("28x28 PNGs: now / before", rates["28x28 PNGs", "now"] / rates["28x28 PNGs", names[0]],
                           0.9, unit="x")]
    print()
    print_targets(targets)
    for results_ in results.values():
        for figures in results_.values():
            figures.pop("top"), figures.pop("correct")
    write_results("robustness" + ("-quick" if args.quick else ""),
                  {"quick": args.quick, **plan, "threshold": threshold, "model": str(model), "variants": names,
                   "results": results, "speed": {f"{w} | {n}": r for (w, n), r in rates.items()},
                   "digits_top_median": float(np.median(all_digits_top)), "targets": targets})


if __name__ == "__main__":
    main()
