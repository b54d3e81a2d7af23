"""Run the benchmark suite one script after another, then tabulate every target: `make bench` calls this.

    .venv/bin/python bench/run_all.py              # ~15 min on 2 cores (make bench)
    .venv/bin/python bench/run_all.py --full       # ~45 min: the long schedules too (make bench BENCH_FLAGS=--full)
    .venv/bin/python bench/run_all.py --quick      # < 4 min, checks that it all runs: make bench BENCH_FLAGS=--quick
    .venv/bin/python bench/run_all.py --only inference,folder_predict

Each script runs in its own process (nothing shared but the cached models and PNG folders under
bench/results/), never two at once. Targets that are missed are reported, not failed: the exit code is
non-zero only when a script crashed. Writes bench/results/summary.json and summary.md (the README table)
and, for a whole run that is not --quick, bench/latest.json: the record the READMEs quote, kept in git and
stamped with the commit measured. tests/test_bench.py holds every table row the READMEs mark as quoted
from it (`<!-- quoted from bench/latest.json -->` above the table) to a target row of it.
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from common import RESULTS, device_line, load_average, print_table, write_results

HERE = Path(__file__).resolve().parent
SCRIPTS = ["train_speed", "time_to_accuracy", "inference", "folder_predict", "predictor_start_memory", "numbers",
           "web_page"]
LONG = {"time_to_accuracy", "folder_predict", "numbers"}  # what --full changes: long schedules, larger sets


LATEST = HERE / "latest.json"
QUOTED = "<!-- quoted from bench/latest.json -->"


def commit():
    """The commit measured, with "+changes" when the work tree differs from it."""
    head = subprocess.run(["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(HERE), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True)
    return (head.stdout.strip() or "unknown") + ("+changes" if dirty.stdout.strip() else "")


def markdown(rows, quick, seconds, measured_commit=None):
    at = f" at commit {measured_commit}" if measured_commit else ""
    lines = [f"Measured {time.strftime('%Y-%m-%d', time.gmtime())}{at} on {device_line()} ({load_average()} at "
             f"the end){', QUICK MODE: not comparable' if quick else ''}; whole suite {seconds / 60:.1f} min.", "",
             QUOTED, "| benchmark | target | measured | goal | verdict |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {r['benchmark']} | {r['target']} | {r['measured']} | {r['goal']} | {r['verdict']} |" for r in rows]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny data and repeats: checks the suite runs")
    parser.add_argument("--full", action="store_true", help=f"the long schedules of {' and '.join(sorted(LONG))}")
    parser.add_argument("--only", help=f"comma-separated subset of {','.join(SCRIPTS)}")
    args = parser.parse_args()
    if args.quick and args.full:
        parser.error("--quick and --full contradict each other: choose one")
    scripts = args.only.split(",") if args.only else SCRIPTS
    unknown = set(scripts) - set(SCRIPTS)
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(sorted(unknown))}; choose from {', '.join(SCRIPTS)}")
    print(f"{device_line()}; {load_average()} at the start", flush=True)

    start, crashed, rows, timings = time.perf_counter(), [], [], {}
    suffix = "-quick" if args.quick else ""
    for name in scripts:
        t = time.perf_counter()
        flags = ["--quick"] if args.quick else ["--full"] if args.full and name in LONG else []
        code = subprocess.run([sys.executable, str(HERE / f"{name}.py"), *flags]).returncode
        timings[name] = round(time.perf_counter() - t, 1)
        result = RESULTS / f"{name}{suffix}.json"
        if code != 0 or not result.is_file():
            crashed.append(name)
            continue
        rows += [{"benchmark": name, **r} for r in json.loads(result.read_text())["targets"]]
    seconds = time.perf_counter() - start

    print(f"\n== summary{' (QUICK MODE: not comparable with the targets)' if args.quick else ''} ==")
    print(f"{device_line()}; {load_average()} at the end")
    print_table(["benchmark", "seconds"], [[name, f"{s:.0f}"] for name, s in timings.items()] +
                [["whole suite", f"{seconds:.0f}"]])
    print()
    print_table(["benchmark", "target", "measured", "goal", "verdict"],
                [[r["benchmark"], r["target"], r["measured"], r["goal"], r["verdict"]] for r in rows])
    missed = [r for r in rows if not r["met"]]
    print(f"\n{len(rows) - len(missed)} of {len(rows)} targets met"
          + (f"; crashed: {', '.join(crashed)}" if crashed else ""))
    measured = commit()
    (RESULTS / f"summary{suffix}.md").write_text(markdown(rows, args.quick, seconds, measured))
    record = {"quick": args.quick, "full": args.full, "commit": measured, "device": device_line(),
              "load_at_end": load_average(), "seconds": round(seconds, 1), "script_seconds": timings,
              "targets": rows, "crashed": crashed}
    write_results(f"summary{suffix}", record)
    if not args.quick and not args.only and not crashed:
        LATEST.write_text(json.dumps({"measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **record},
                                     indent=2) + "\n")
        print(f"the record the READMEs quote: {LATEST}")
    sys.exit(1 if crashed else 0)


if __name__ == "__main__":
    main()
