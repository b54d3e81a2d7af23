"""Train every zoo model with its own defaults through the real CLI and tabulate test accuracy and speed.

    .venv/bin/python bench/zoo_accuracy.py --dataset mnist-sample
    .venv/bin/python bench/zoo_accuracy.py --dataset fashion_mnist --data /usr/share/datasets/fashion-mnist
    .venv/bin/python bench/zoo_accuracy.py --dataset mnist-sample --models dense-512,cnn-bn-aug

Each model runs in its own `mnist-job train --json` process, one after another, so figures are what a
user gets. Writes bench/results/zoo-<dataset>.json. This takes long on full data (about 30 min on 2 cores).
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

from common import RESULTS, device_line, print_table, write_results

BIN = Path(sys.executable).parent


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="mnist-sample")
    parser.add_argument("--data")
    parser.add_argument("--models", help="comma-separated; default: the whole zoo")
    parser.add_argument("--runs", default="runs/zoo", help="parent folder for the run directories")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from job.train.models import ZOO

    names = args.models.split(",") if args.models else list(ZOO)
    rows = []
    for name in names:
        out = Path(args.runs) / f"{args.dataset}-{name}"
        cmd = [str(BIN / "mnist-job"), "train", "--model", name, "--dataset", args.dataset, "--out", str(out),
               "--json"] + (["--data", args.data] if args.data else [])
        subprocess.run(["rm", "-rf", str(out)], check=True)
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            print(f"{name}: failed: {result.stderr.strip().splitlines()[-1:]}", flush=True)
            continue
        summary = json.loads(result.stdout.strip().splitlines()[-1])
        config = json.loads((out / "config.json").read_text())
        rows.append({"model": name, "epochs": config["epochs"], "test_accuracy": summary["test_accuracy"],
                     "train_seconds": summary["train_seconds"], "samples_per_second": summary["samples_per_second"],
                     "command": " ".join(["mnist-job", *cmd[1:]])})
        print(f"{name}: {summary['test_accuracy']:.4f} in {summary['train_seconds']:.1f} s", flush=True)
    previous = RESULTS / f"zoo-{args.dataset}.json"
    if args.models and previous.exists():  # a partial re-run replaces only its own rows
        kept = [r for r in json.loads(previous.read_text())["rows"] if r["model"] not in names]
        rows = sorted(kept + rows, key=lambda r: list(ZOO).index(r["model"]))
    print(f"\nZoo on {args.dataset} ({device_line()})")
    print_table(["model", "epochs", "test acc", "train s", "samples/s"],
                [[r["model"], r["epochs"], f"{r['test_accuracy']:.4f}", f"{r['train_seconds']:.1f}",
                  f"{r['samples_per_second']:.0f}"] for r in rows])
    write_results(f"zoo-{args.dataset}", {"dataset": args.dataset, "device": device_line(), "rows": rows})


if __name__ == "__main__":
    main()
