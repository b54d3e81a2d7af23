"""Hostile inputs: 20,000 mutated image files through `mnist-predict`, as CI runs it.

Every file gets exactly one row, the process neither crashes nor hangs, memory stays bounded, the good
files' rows are what they are without the bad ones around them, and stderr holds no warning.
"""

import json
import subprocess
import sys
import time

import pytest
from fuzz import MUTATIONS, write
from predict_fixtures import export_dir, glyphs, read_rows  # noqa: F401

pytestmark = pytest.mark.slow  # trains, exports or drives a browser (-m 'not slow' leaves it out)

MUTANTS = 20000
PEAK_MB = 1000  # the largest process of the run: the CLI or one of its decode workers


# RUSAGE_CHILDREN in the test process would also count the training runs of earlier tests, so a
# fresh wrapper process runs the CLI and reports the peak of its own descendants only.
MEASURE = """import resource, subprocess, sys
code = subprocess.run(sys.argv[2:]).returncode
open(sys.argv[1], "w").write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(code)"""


def predict(folder, model, out):
    start = time.perf_counter()
    peak = out.with_suffix(".peak")
    result = subprocess.run([sys.executable, "-c", MEASURE, str(peak),
                             sys.executable, "-m", "mnist_predict", str(folder), "--model", str(model),
                             "--out", str(out), "--json", "--decode-timeout", "5"],
                            capture_output=True, text=True, timeout=600)
    result.peak_mb = int(peak.read_text()) / 1024
    return result, time.perf_counter() - start


def test_mutated_files_each_get_one_row_and_nothing_breaks(tmp_path, export_dir):
    made = write(tmp_path / "fuzz", MUTANTS)
    assert made["mutants"] == MUTANTS and set(made["mutations"]) == set(MUTATIONS)
    assert set(made["formats"]) >= {"png", "jpeg", "bmp", "gif", "tiff", "webp"}
    files = sorted(p.name for p in (tmp_path / "fuzz").iterdir())
    model = export_dir / "model.onnx"

    result, seconds = predict(tmp_path / "fuzz", model, tmp_path / "fuzz.csv")
    peak_mb = result.peak_mb
    assert result.returncode in (0, 3), result.stderr[-2000:]
    assert result.stderr == "", result.stderr[-2000:]  # no Pillow warning, no traceback, no log noise
    rows = read_rows(tmp_path / "fuzz.csv")
    assert sorted(row["path"].rsplit("/", 1)[1] for row in rows) == files  # one row per file, each once
    summary = json.loads(result.stdout)
    assert summary["files"] == len(files) == summary["succeeded"] + summary["failed"]
    assert all((row["status"] == "ok") != bool(row["error"]) for row in rows)
    assert peak_mb < PEAK_MB, peak_mb

    # The good files alone give the same rows as among the mutants.
    (tmp_path / "good").mkdir()
    for name in files:
        if name.startswith("good-"):
            (tmp_path / "good" / name).write_bytes((tmp_path / "fuzz" / name).read_bytes())
    alone, _ = predict(tmp_path / "good", model, tmp_path / "good.csv")
    assert alone.returncode == 0, alone.stderr
    strip = lambda row: {k: v for k, v in row.items() if k != "path"}  # noqa: E731
    among = {row["path"].rsplit("/", 1)[1]: strip(row) for row in rows if "/good-" in row["path"]}
    assert {row["path"].rsplit("/", 1)[1]: strip(row) for row in read_rows(tmp_path / "good.csv")} == among
    print(f"fuzz: {len(files)} files ({made['seeds']} seeds in {len(made['modes'])} format-modes, "
          f"{MUTANTS} mutants: {made['mutations']}), {summary['failed']} error rows, {seconds:.1f} s, "
          f"peak RSS {peak_mb:.0f} MB")
