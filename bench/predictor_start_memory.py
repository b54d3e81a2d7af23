"""Predictor cold start against `import tensorflow`, and peak memory of `mnist-predict` on 100,000 images.

    .venv/bin/python bench/predictor_start_memory.py            # ~1.5 min on 2 quiet cores
    .venv/bin/python bench/predictor_start_memory.py --quick    # ~1 min: 2,000 vs 20,000 files

Cold start: a fresh Python process imports the predictor, creates the onnxruntime session and predicts a
batch of one; it reports its own seconds for that (the target), and the parent times the whole process
(interpreter start included). Against it, a fresh process that imports TensorFlow. In turns, medians;
files are in the page cache (the first, untimed round warms it).

Memory: `mnist-predict --recursive` (default workers) on 10,000 PNGs, then on 100,000: the sample's 2,000
test digits hard-linked into 5 and into 50 subfolders. (True MNIST digits, which pass through the cleaning
untouched, so that the run takes seconds: what is measured is what the pipeline holds, whatever the image.)
Reported: the peak RSS of the largest process (ru_maxrss from wait4: the CLI or one of its decode workers)
and the peak of the whole process tree, summed PSS (shared pages split between the processes that share
them), sampled every 50 ms; the target applies to the tree. Writes bench/results/predictor_start_memory.json.
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import (BIN, RESULTS, bench_models, exported_model, header, interleaved_medians, num, parse_args,
                    png_folder, print_table, print_targets, target, write_results)

FULL = {"repeats": 7}
QUICK = {"repeats": 1}
GOAL_START, GOAL_MB = 0.5, 300
COPIES = {"full": (5, 50), "quick": (1, 10)}  # the sample's 2,000 test PNGs, hard-linked this many times
START = """import time; t = time.perf_counter()
import numpy as np
from mnist_predict import Predictor
Predictor({model!r}).run(np.zeros((1, 28, 28), np.float32))
print(time.perf_counter() - t)"""


def python(code):
    """Wall seconds of a fresh `python -c code`, and what it printed."""
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return time.perf_counter() - start, out.strip()


def cold_starts(models, png, repeats):
    """{label: (own seconds, wall seconds)} medians, every variant in a fresh process, in turns."""
    own = {}

    def variant(label, code):
        def run():
            wall, out = python(code)
            own.setdefault(label, []).append(float(out))
            return wall
        return run

    fns = {f"predictor, {name}": variant(f"predictor, {name}", START.format(model=str(path)))
           for name, path in models.items()}
    fns["import tensorflow"] = variant("import tensorflow", "import time; t = time.perf_counter()\n"
                                       "import tensorflow\nprint(time.perf_counter() - t)")
    fns["mnist-predict CLI, one PNG"] = lambda: cli_wall(png, next(iter(models.values())))
    wall = interleaved_medians(fns, repeats=repeats, warmup=1, self_timed=True)
    return {label: (statistics.median(own[label][1:]) if label in own else None, wall[label]) for label in fns}


def cli_wall(png, model):
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        subprocess.run([str(BIN / "mnist-predict"), str(png), "--model", str(model), "--out",
                        str(Path(tmp) / "p.csv")], capture_output=True, check=True)
        return time.perf_counter() - start


def tree_pss_mb(pid):
    """Summed PSS of pid and all its descendants, in MB (0 for processes that are gone)."""
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                total += next(int(line.split()[1]) for line in f if line.startswith("Pss:"))
            with open(f"/proc/{p}/task/{p}/children") as f:
                stack += [int(c) for c in f.read().split()]
        except (OSError, StopIteration, ValueError):
            pass
    return total / 1024


def peak_memory(folder, model):
    """Run the CLI on folder; returns (files, peak RSS of its largest process, peak tree PSS), in MB."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [str(BIN / "mnist-predict"), str(folder), "--recursive", "--model", str(model),
               "--out", str(Path(tmp) / "p.csv"), "--json"]
        process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        peak, done = [0.0], threading.Event()

        def sample():
            while not done.wait(0.05):
                peak[0] = max(peak[0], tree_pss_mb(process.pid))

        sampler = threading.Thread(target=sample)
        sampler.start()
        out = process.stdout.read()
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        done.set()
        sampler.join()
        if process.returncode not in (0, 3):  # 3: some files are error rows, the rest predicted
            raise SystemExit(f"{' '.join(cmd)} failed with {process.returncode}")
        files = json.loads(out.strip().splitlines()[-1])["files"]
        return files, usage.ru_maxrss / 1024, peak[0]


def copies(folder, n):
    """n hard-linked copies of folder's PNG files in subfolders 0..n-1 (built once)."""
    target_dir = RESULTS / "data" / f"{folder.name}-x{n}"
    if not (target_dir / ".complete").is_file():
        shutil.rmtree(target_dir, ignore_errors=True)
        files = sorted(folder.glob("*.png"))
        print(f"linking {n} x {len(files):,} files into {target_dir} ...", flush=True)
        for i in range(n):
            (target_dir / str(i)).mkdir(parents=True)
            for f in files:
                os.link(f, target_dir / str(i) / f.name)
        (target_dir / ".complete").write_text("")
    return target_dir


def main():
    args = parse_args(__doc__)
    plan = QUICK if args.quick else FULL
    header("predictor cold start and memory", args.quick)
    dataset, data = bench_models(args.quick)
    run_dir = exported_model("cnn-bn-aug", dataset, data)
    models = {"cnn-bn-aug fp32": run_dir / "export" / "model.onnx",
              "cnn-bn-aug int8": run_dir / "export" / "model.int8.onnx"}
    folder = png_folder("mnist-sample")
    starts = cold_starts(models, next(folder.glob("*.png")), plan["repeats"])
    print(f"\nCold start, fresh process each, median of {plan['repeats']}")
    print_table(["what", "import + session + batch of 1", "whole process (wall)"],
                [[label, f"{own:.3f} s" if own is not None else "-", f"{wall:.3f} s"]
                 for label, (own, wall) in starts.items()])

    memory = [peak_memory(copies(folder, n), models["cnn-bn-aug fp32"])
              for n in COPIES["quick" if args.quick else "full"]]
    print(f"\nPeak memory of mnist-predict --recursive (default workers), {models['cnn-bn-aug fp32'].name}")
    print_table(["files", "peak RSS, largest process", "peak PSS, process tree"],
                [[f"{files:,}", f"{num(rss)} MB", f"{num(pss)} MB"] for files, rss, pss in memory])
    (small, small_rss, small_pss), (big, big_rss, big_pss) = memory
    print(f"{big:,} files against {small:,}: tree {big_pss / small_pss:.2f}x, largest process "
          f"{big_rss / small_rss:.2f}x")

    targets = [target(f"cold start, {label}", own, GOAL_START, higher=False, unit=" s")
               for label, (own, _) in starts.items() if label.startswith("predictor")]
    targets.append(target(f"peak PSS of the tree on {big:,} files", big_pss, GOAL_MB, higher=False, unit=" MB"))
    print()
    print_targets(targets)
    write_results("predictor_start_memory" + ("-quick" if args.quick else ""),
                  {"quick": args.quick, "repeats": plan["repeats"],
                   "cold_start": {label: {"own_seconds": own, "wall_seconds": round(wall, 4)}
                                  for label, (own, wall) in starts.items()},
                   "memory": [{"files": f, "peak_rss_mb": round(r, 1), "peak_tree_pss_mb": round(p, 1)}
                              for f, r, p in memory],
                   "targets": targets})


if __name__ == "__main__":
    main()
