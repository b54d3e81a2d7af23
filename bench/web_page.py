"""The browser page's photo path: images/s of dropped photo-like files in headless Chromium, and its download.

    .venv/bin/python bench/web_page.py                 # ~1 min on 2 cores (and the best sample model once)
    .venv/bin/python bench/web_page.py --quick         # ~1 min: fewer files and runs
    .venv/bin/python bench/web_page.py --before 2c4e0d2   # the page as it was at a git ref, side by side

The sample's test digits are rendered under every condition of `job.data.photos.CONDITIONS` (scans, phone
photos, shadows, ruled paper, pencil, thumbnails; PNG and JPEG), once, into bench/results/data/. The page
(`mnist-predict web` with the best sample model, the one `make demo` trains) gets them through its file
input, as a person's dropped files, several times in one browser session: its own clock (window.mnist.lastRun) times
decoding, deploy/web/preprocess.js, onnxruntime-web and the results table. The first run is reported apart:
it includes the page's workers starting and the JavaScript engine compiling the code (the later runs are
what a folder of hundreds of files gets). `mnist-predict` on the same folder, as a user runs it, gives the
Python figure beside it, and the labels the page gives are compared with the CLI's. With --before REF, the
page of that commit is served the same way (its server and deploy/web from `git worktree`,
this checkout's node_modules) and timed in turns with today's. The page's download is every response's body,
summed, the export's files apart; "sent" is what went over the wire (the server gzips the wasm).
Writes bench/results/web_page.json.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import (BIN, RESULTS, ROOT, best_sample_model, header, num, parse_args, print_table, print_targets,
                    target, write_results)

FULL = {"per_condition": 20, "runs": 5, "rounds": 2}
QUICK = {"per_condition": 4, "runs": 2, "rounds": 1}
DATA_VERSION = 1  # bump when job.data.photos changes, so cached renders are made again
DRIVER = ROOT / "bench" / "web_page.mjs"


def photo_folder(per_condition):
    """bench/results/data/web-photos-v<N>-<per condition>/<index>_<label>.<ext>, made once."""
    from job.data.datasets import load_dataset
    from job.data.photos import CONDITIONS, render

    folder = RESULTS / "data" / f"web-photos-v{DATA_VERSION}-{per_condition}"
    if (folder / ".complete").is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    test = load_dataset("mnist-sample")
    for i in range(per_condition * len(CONDITIONS)):
        image, suffix = render(test.x_test[i], list(CONDITIONS)[i % len(CONDITIONS)], seed=i)
        image.save(folder / f"{i:04d}_{test.y_test[i]}{suffix}")
    (folder / ".complete").write_text("")
    return folder


def checkout_of(ref, tmp):
    """The predictor and its page as they were at git ref (a worktree, with this checkout's node_modules for
    onnxruntime-web): the worktree's folder."""
    tree = tmp / f"page-{ref}"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), ref], check=True,
                   capture_output=True)
    (tree / "deploy" / "web" / "node_modules").symlink_to(ROOT / "deploy" / "web" / "node_modules")
    return tree


def serve(export, tree=None):
    """`mnist-predict web EXPORT --port 0`, this checkout's or that of the worktree `tree` (its own server and
    page): (process, URL)."""
    env = {**os.environ, "PYTHONPATH": str(tree / "deploy")} if tree else None
    process = subprocess.Popen([sys.executable, "-m", "mnist_predict", "web", str(export), "--port", "0"],
                               text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    line = process.stdout.readline()
    if " at http" not in line:
        process.kill()
        raise SystemExit(f"mnist-predict web did not start: {line}{process.stderr.read()}")
    return process, line.split(" at ", 1)[1].split()[0]


def drive(url, files, runs):
    """bench/web_page.mjs's JSON: the page's runs over the files, and its downloads."""
    done = subprocess.run(["node", str(DRIVER), url, str(runs), *map(str, files)], capture_output=True, text=True,
                          timeout=1200)
    if done.returncode != 0:
        raise SystemExit(f"the page's driver failed: {done.stderr[-2000:]}")
    result = json.loads(done.stdout)
    if result["console_errors"]:
        raise SystemExit(f"the page logged errors: {result['console_errors'][:3]}")
    return result


def cli_labels(folder, model, out):
    """(images/s of the whole command, {file name: label}) of mnist-predict on the folder."""
    import csv
    import time

    start = time.perf_counter()
    done = subprocess.run([str(BIN / "mnist-predict"), str(folder), "--model", str(model), "--out", str(out)],
                          capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode not in (0, 3):
        raise SystemExit(f"mnist-predict failed: {done.stderr[-1000:]}")
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    return len(rows) / seconds, {Path(row["path"]).name: row["label"] for row in rows}


def megabytes(sizes, keep=lambda path: not path.startswith("/export/")):
    """MB of the responses {path: bytes} whose path `keep` takes: by default the page's own, the export's apart."""
    return round(sum(size for path, size in sizes.items() if keep(path)) / 1e6, 2)


def main():
    args = parse_args(__doc__, **{"--before": {"help": "also time the page as it was at this git ref"}})
    plan = QUICK if args.quick else FULL
    header("the browser page's photo path", args.quick)
    folder = photo_folder(plan["per_condition"])
    files = sorted(p for p in folder.iterdir() if p.suffix in (".png", ".jpg"))
    export = best_sample_model(args.quick) / "export"
    tmp = Path(tempfile.mkdtemp(prefix="web-page-"))
    pages, trees = {"now": None}, []
    if args.before:
        trees.append(checkout_of(args.before, tmp))
        pages = {f"before ({args.before})": trees[0], "now": None}

    results = {name: [] for name in pages}
    try:
        for _ in range(plan["rounds"]):  # in turns, so that the machine's load hits every page alike
            for name, page in pages.items():
                process, url = serve(export, page)
                try:
                    results[name].append(drive(url, files, plan["runs"]))
                finally:
                    process.terminate()
                    process.wait(10)
        cli_rate, cli = cli_labels(folder, export / "model.onnx", tmp / "cli.csv")
    finally:
        for tree in trees:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], capture_output=True)

    rows = []
    for name, sessions in results.items():
        first = [s["runs"][0]["rows"] / s["runs"][0]["seconds"] for s in sessions]
        later = [r["rows"] / r["seconds"] for s in sessions for r in s["runs"][1:]]
        labels = sessions[-1]["runs"][-1]["labels"]
        agree = sum(labels.get(path.name) == cli.get(path.name) for path in files)
        session = sessions[-1]
        rows.append({"page": name, "files": len(files),
                     "first_run_images_per_second": round(statistics.median(first), 1),
                     "images_per_second": round(statistics.median(later or first), 1),
                     "labels_equal_to_cli": round(agree / len(files), 4),
                     "download_mb": megabytes(session["downloads"]),
                     "transferred_mb": megabytes(session["transferred"]),
                     "wasm_mb": megabytes(session["downloads"], lambda path: path.endswith(".wasm")),
                     "model_mb": round(session["downloads"].get("/export/model.onnx", 0) / 1e6, 3),
                     "status": session["status"]})
    print(f"\n{len(files)} photo-like files ({plan['per_condition']} per condition), {plan['rounds']} browser "
          f"session(s) per page of {plan['runs']} runs each; images/s: median of the runs after the first")
    print_table(["page", "images/s", "first run", "labels = CLI's", "page MB", "of it wasm", "sent MB", "model MB"],
                [[r["page"], num(r["images_per_second"]), num(r["first_run_images_per_second"]),
                  f"{r['labels_equal_to_cli']:.1%}", r["download_mb"], r["wasm_mb"], r["transferred_mb"],
                  r["model_mb"]] for r in rows])
    print(f"mnist-predict on the same folder (whole command): {num(cli_rate)} images/s")
    now = rows[-1]
    targets = [target("page, photo-like files", now["images_per_second"], 100, unit=" images/s"),
               target("page labels equal to mnist-predict's", 100 * now["labels_equal_to_cli"], 100, unit="%")]
    if args.before:
        targets.append(target("page now / before", now["images_per_second"] / rows[0]["images_per_second"], 1,
                              unit="x"))
    print()
    print_targets(targets)
    write_results("web_page" + ("-quick" if args.quick else ""),
                  {"quick": args.quick, "before": args.before, **plan, "rows": rows,
                   "cli_images_per_second": round(cli_rate, 1), "targets": targets})


if __name__ == "__main__":
    main()
