import json

import pytest
from conftest import error_line, run_cli

from job.errors import JobError
from job.experiments import compare, cross_validate, parse_list, sweep
from job.training import TrainConfig


def test_cross_validation_writes_folds_summary_and_boxplot(tmp_path, npz_path):
    cfg = TrainConfig(model="dense-128", dataset="mnist", data=str(npz_path), epochs=1, max_train_samples=300,
                      out=str(tmp_path / "cv"))
    out, summary = cross_validate(cfg, folds=3)
    assert len(summary["accuracies"]) == 3 and all(0 <= a <= 1 for a in summary["accuracies"])
    assert summary["mean"] == pytest.approx(sum(summary["accuracies"]) / 3, abs=1e-6)
    assert json.loads((out / "cv.json").read_text()) == summary
    assert (out / "cv_boxplot.png").stat().st_size > 1000


def test_sweep_trains_every_combination_and_reports(tmp_path, npz_path):
    base = TrainConfig(dataset="mnist", data=str(npz_path), max_train_samples=200, verbose=0)
    report, best = sweep(base, "dense-128,dense-512", epochs="1", learning_rates="1e-3,1e-2",
                         out=str(tmp_path / "sweep"))
    runs = sorted(p.name for p in (tmp_path / "sweep").iterdir() if p.is_dir())
    assert runs == ["dense-128-e1-lr0.001", "dense-128-e1-lr0.01", "dense-512-e1-lr0.001", "dense-512-e1-lr0.01"]
    text = report.read_text()
    assert sum(line.startswith("| ") and "-e1-lr" in line for line in text.splitlines()) == 4
    assert f"**{best['dir'].name}**" in text and "report_curves.png" in text
    assert (tmp_path / "sweep" / "report_curves.png").is_file()
    # The best is picked by validation accuracy, never by test accuracy.
    assert best["metrics"]["val_accuracy"] == max(
        json.loads((tmp_path / "sweep" / r / "metrics.json").read_text())["val_accuracy"] for r in runs)


def test_sweep_rejects_bad_lists_before_training(tmp_path):
    with pytest.raises(JobError, match="unknown model 'nope'"):
        sweep(TrainConfig(), "dense-128,nope", out=str(tmp_path / "s"))
    with pytest.raises(JobError, match="--learning-rate"):
        parse_list("1e-3,abc", float, "--learning-rate")
    assert not (tmp_path / "s").exists()


def test_compare_cli_and_tensorboard(tmp_path, npz_path):
    result = run_cli("train", "--model", "dense-128", "--data", npz_path, "--epochs", 1, "--max-train-samples",
                     200, "--out", tmp_path / "tb", "--tensorboard")
    assert result.returncode == 0, result.stderr[-1500:]
    assert list((tmp_path / "tb" / "tensorboard").rglob("events.out.tfevents.*"))
    result = run_cli("compare", tmp_path / "tb", "--out", tmp_path / "r.md")
    assert result.returncode == 0 and (tmp_path / "r.md").is_file()
    bad = run_cli("compare", tmp_path, "--out", tmp_path / "r2.md")
    assert bad.returncode == 2 and "not a finished run directory" in error_line(bad)
    with pytest.raises(JobError):
        compare([], tmp_path / "x.md")
