import json
import re
import shutil

import numpy as np
import pytest
from conftest import ROOT, run_cli

from job.errors import JobError
from job.train.experiments import compare, cross_validate, parse_list, sweep
from job.train.stats import kept_epoch, tied, wilson
from job.train.training import TrainConfig, train

pytestmark = pytest.mark.slow  # trains, exports or drives a browser (-m 'not slow' leaves it out)


def test_cross_validation_writes_folds_summary_and_boxplot(tmp_path, npz_path):
    cfg = TrainConfig(model="dense-128", dataset="mnist", data=str(npz_path), epochs=1, max_train_samples=300,
                      out=str(tmp_path / "cv"))
    out, summary = cross_validate(cfg, folds=3)
    assert len(summary["accuracies"]) == 3 and all(0 <= a <= 1 for a in summary["accuracies"])
    assert summary["mean"] == pytest.approx(sum(summary["accuracies"]) / 3, abs=1e-6)
    assert json.loads((out / "cv.json").read_text()) == summary
    assert (out / "cv_boxplot.png").stat().st_size > 1000


def test_cv_folds_are_train_runs_of_the_recipe_train_ships(tmp_path, npz_path):
    """Each fold is `train` itself on the other folds: cnn-bn-aug with its outlier exposure, stretched crops and
    best epoch, so fold 1 gives exactly what `train` gives on the same images."""
    from dataclasses import replace

    from job.data.datasets import load_dataset

    cfg = TrainConfig(model="cnn-bn-aug", dataset="mnist", data=str(npz_path), epochs=1, max_train_samples=200,
                      out=str(tmp_path / "cv"), verbose=0)
    out, summary = cross_validate(cfg, folds=2)
    config = json.loads((out / "fold-1" / "config.json").read_text())
    assert config["outliers"] is True and config["augment"] is True and config["cv_fold"] == 1
    n = len(np.array_split(np.arange(200), 2)[1])  # fold 1 trains on the other fold
    n_fit = n - round(n * 0.1)
    from job.train import training

    # + stretched crops, cut digits, outliers, letters, cut fragments and font digits, as train has
    shares = (training.STRETCHED_SHARE, training.SEGMENT_SHARE, training.OUTLIER_SHARE, training.LETTER_SHARE,
              training.FRAGMENT_SHARE, training.FONT_DIGIT_SHARE)
    assert config["train_samples"] == n_fit + sum(round(share * n_fit) for share in shares)
    data = load_dataset("mnist", str(npz_path))
    order = np.random.default_rng(42).permutation(len(data.x_train))[:200]
    held = np.array_split(order, 2)[0]
    fit = np.setdiff1d(order, held)
    fold = replace(data, x_train=data.x_train[fit], y_train=data.y_train[fit], x_test=data.x_train[held],
                   y_test=data.y_train[held])
    _, metrics = train(replace(cfg, out=str(tmp_path / "by-hand"), max_train_samples=None), fold)
    assert summary["accuracies"][0] == metrics["test_accuracy"]
    assert summary["runs"] == [str(out / "fold-1"), str(out / "fold-2")]


def test_cv_refuses_more_folds_than_images_and_a_used_folder_before_any_work(tmp_path, npz_path):
    cfg = TrainConfig(model="dense-128", dataset="mnist", data=str(npz_path), epochs=1, max_train_samples=20,
                      out=str(tmp_path / "cv"))
    with pytest.raises(JobError, match="--folds 289: 20 training images make at most 10 folds"):
        cross_validate(cfg, folds=289)
    assert not (tmp_path / "cv").exists()
    (tmp_path / "cv").mkdir()
    (tmp_path / "cv" / "cv.json").write_text("{}")
    with pytest.raises(JobError, match="already exists and is not empty"):
        cross_validate(cfg, folds=2)
    assert (tmp_path / "cv" / "cv.json").read_text() == "{}"


def test_a_second_sweep_into_the_same_folder_extends_it(tmp_path, npz_path):
    base = TrainConfig(dataset="mnist", data=str(npz_path), max_train_samples=200, verbose=0)
    said = []
    sweep(base, "dense-128", epochs="1", out=str(tmp_path / "sweep"), say=said.append)
    report, _ = sweep(base, "dense-512", epochs="1", out=str(tmp_path / "sweep"), say=said.append)
    assert any("extending" in line and "holds 1 run" in line for line in said)
    text = report.read_text()
    assert "dense-128-e1" in text and "dense-512-e1" in text  # the first sweep's run is still in the report
    with pytest.raises(JobError, match="already holds dense-128-e1"):
        sweep(base, "dense-128", epochs="1", out=str(tmp_path / "sweep"))


def test_sweep_trains_every_combination_and_reports(tmp_path, npz_path):
    base = TrainConfig(dataset="mnist", data=str(npz_path), max_train_samples=200, verbose=0)
    report, bests = sweep(base, "dense-128,dense-512", epochs="1", learning_rates="1e-3,1e-2",
                          out=str(tmp_path / "sweep"))
    runs = sorted(p.name for p in (tmp_path / "sweep").iterdir() if p.is_dir())
    assert runs == ["dense-128-e1-lr0.001", "dense-128-e1-lr0.01", "dense-512-e1-lr0.001", "dense-512-e1-lr0.01"]
    text = report.read_text()
    assert sum(line.startswith("| ") and "-e1-lr" in line for line in text.splitlines()) == 4
    best = bests["mnist"]
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


def test_ties_follow_the_binomial_uncertainty():
    assert tied((0.9933, 600), (0.9900, 600))  # 2 images out of 600: no real difference
    assert not tied((0.99, 10_000), (0.95, 10_000))
    low, high = wilson(0.99, 600)
    assert low < 0.99 < high and high - low < 0.03
    # the best checkpoint: the latest epoch as good as the best so far, not an early lucky one
    scores = [0.90, 0.966, 0.9783, 0.97, 0.9950, 0.9917, 0.9933, 0.9933]
    assert kept_epoch(scores, 600) == 8
    assert kept_epoch([0.5, 0.9, 0.95, 0.7], 600) == 3  # a collapse at the end is not kept
    assert kept_epoch([0.5, 0.9, 0.95, 0.7], 10) == 4  # ... unless 10 images cannot tell it apart


@pytest.fixture(scope="module")
def two_datasets(tmp_path_factory, npz_path):
    """Three finished runs on one dataset and one on another, plus an unfinished folder."""
    from synthetic import write_npz

    root = tmp_path_factory.mktemp("compare")
    other = write_npz(root / "other.npz", seed=9)
    for name, data, dataset in (("a", npz_path, "mnist"), ("b", npz_path, "mnist"), ("c", npz_path, "mnist"),
                                ("d", other, "custom")):
        train(TrainConfig(model="dense-128", dataset=dataset, data=str(data), epochs=1, max_train_samples=200,
                          seed=ord(name), out=str(root / "runs" / name), verbose=0))
    shutil.copytree(root / "runs" / "a", root / "runs" / "broken")
    (root / "runs" / "broken" / "model.keras").unlink()
    return root / "runs"


def test_compare_groups_by_dataset_skips_unfinished_and_marks_ties(tmp_path, two_datasets):
    warnings = []
    report, bests = compare([two_datasets], tmp_path / "r.md", warn=warnings.append)
    text = report.read_text()
    custom = next(name for name in bests if name.startswith("custom"))
    assert set(bests) == {"mnist", custom} and bests[custom]["dir"].name == "d"
    assert "10 classes" in custom and "data " in custom  # its class set and content, not just "custom"
    assert "## mnist" in text and "## custom" in text
    mnist = text[text.index("## mnist"):text.index("## custom")]
    assert sum(line.startswith("| ") and line[2] in "abc*" for line in mnist.splitlines()) == 3
    assert "| d |" not in mnist  # never ranked against runs on other data
    assert re.search(r"\| (best|\*\*best\*\*|tie|worse) \|", mnist)
    assert len(warnings) == 1 and "broken" in warnings[0] and "not a finished run" in warnings[0]


def test_compare_curves_give_every_run_its_own_colour(tmp_path, two_datasets, monkeypatch):
    import job.train.experiments as experiments

    drawn = []
    monkeypatch.setattr(experiments, "save", lambda fig, path: drawn.append(fig))
    runs = [two_datasets / "a"] * 12  # twelve runs in one group
    experiments.compare(runs, tmp_path / "r.md")
    lines = drawn[0].axes[0].get_lines()
    assert len(lines) == 12
    assert len({(tuple(line.get_color()), line.get_linestyle()) for line in lines}) == 12
    assert "validation accuracy" in drawn[0].axes[0].get_title()


def test_compare_cli_and_tensorboard(tmp_path, npz_path):
    result = run_cli("train", "--model", "dense-128", "--data", npz_path, "--epochs", 1, "--max-train-samples",
                     200, "--out", tmp_path / "tb", "--tensorboard")
    assert result.returncode == 0, result.stderr[-1500:]
    assert list((tmp_path / "tb" / "tensorboard").rglob("events.out.tfevents.*"))
    result = run_cli("compare", tmp_path / "tb", "--out", tmp_path / "r.md")
    assert result.returncode == 0 and (tmp_path / "r.md").is_file()
    (tmp_path / "empty").mkdir()
    bad = run_cli("compare", tmp_path / "empty", "--out", tmp_path / "r2.md")
    assert bad.returncode == 2 and "no finished run directory" in bad.stderr
    with pytest.raises(JobError):
        compare([], tmp_path / "x.md")


def test_readme_experiment_commands_work_pasted_in_order(tmp_path):
    """The README's Experiments block, run as written in a fresh folder, with tiny settings added."""
    readme = (ROOT / "README.md").read_text()
    block = readme[readme.index("### Experiments"):]
    commands = re.search(r"```bash\n(.*?)```", block, re.S).group(1).strip().splitlines()
    assert len(commands) >= 3 and commands[-1].split()[1] == "compare"
    for line in commands:
        args = line.replace(".venv/bin/mnist-job", "").split()
        args = [{"--epochs": "1", "--folds": "2"}.get(previous, a) for previous, a in zip([None] + args, args)]
        if args[0] in ("cv", "sweep", "train"):
            args += ["--max-train-samples", "300"]
        result = run_cli(*args, cwd=tmp_path)
        assert result.returncode == 0, (line, result.stderr[-1500:])
    assert (tmp_path / "report.md").is_file() and "## mnist-sample" in (tmp_path / "report.md").read_text()
    assert all(line.startswith(".venv/bin/mnist-job ") for line in commands)  # what run_cli runs: the console script
