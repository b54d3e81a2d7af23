"""The review loop's training half: a fine-tune on corrections of a few digits keeps the base's ten classes,
replays its training digits and is compared with its base on the held-out corrections; export refuses one
that is worse unless --force; export --review-data writes a threshold that mnist-predict then uses, or says
the folder is too small and keeps the default."""

import csv
import json
import shutil

import numpy as np
import onnx
import pytest
from conftest import error_line, run_cli

from job.data.datasets import DIGITS, load_dataset
from job.data.image_sets import write_images
from job.data.labelled import load_folder
from job.review.threshold import guaranteed_threshold
from job.train import rundir
from job.train.training import TrainConfig, train
from mnist_predict import Predictor

pytestmark = pytest.mark.slow  # trains and exports


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MNIST_JOB_CACHE", str(tmp_path / "cache"))


def digit_folder(out, digits, limit, condition=None, offset=0):
    """Class folders of the sample's test digits (never trained on): only `digits`, rendered as `condition`."""
    data = load_dataset("mnist-sample")
    keep = np.isin(data.y_test, digits)
    x, y = data.x_test[keep][offset:], data.y_test[keep][offset:]
    write_images(x, y, DIGITS, out, "classes", condition, limit, seed=offset)
    return out


@pytest.fixture(scope="module")
def tuned(run_dir, tmp_path_factory):
    corrections = digit_folder(tmp_path_factory.mktemp("corrections") / "corrections", [3, 5, 8], 90, "phone")
    run, metrics = train(TrainConfig(init_from=str(run_dir), data=str(corrections),
                                     out=str(tmp_path_factory.mktemp("runs") / "tuned"), epochs=2, verbose=0))
    return run, metrics, corrections


def test_a_fine_tune_on_a_few_digits_keeps_the_ten_classes_and_replays_the_base(tuned, run_dir):
    run, metrics, corrections = tuned
    config = rundir.read_json(run / rundir.CONFIG)
    assert config["labels"] == DIGITS  # not a three-class head: the folder holds corrections of three digits
    assert config["replay"] == 5.0
    assert config["distill"] == 0.5  # and where the base is right, half of each target is the base's probabilities
    arrays, _, _ = load_folder(corrections, labels=DIGITS)
    new_train = len(arrays["x_train"]) - round(0.1 * len(arrays["x_train"]))  # less the validation split
    assert config["train_samples"] >= new_train * 6  # the new images and five times as many of the base's, at least
    assert set(np.unique(arrays["y_test"])) == {3, 5, 8}


def test_the_fine_tune_is_compared_with_its_base_on_the_held_out_corrections(tuned, run_dir):
    run, metrics, corrections = tuned
    versus = metrics["versus_base"]
    arrays, _, _ = load_folder(corrections, labels=DIGITS)
    assert versus["images"] == len(arrays["y_test"]) and versus["threshold"] == 0.8
    for who, model in (("base", run_dir / rundir.MODEL), ("new", run / rundir.MODEL)):
        probabilities = rundir.load_keras_model(model).predict(arrays["x_test"].astype(np.float32), verbose=0)
        right, sure = probabilities.argmax(axis=1) == arrays["y_test"], probabilities.max(axis=1) >= 0.8
        assert versus[who]["accuracy"] == pytest.approx(right.mean(), abs=1e-6)
        assert versus[who]["flagged"] == pytest.approx(1 - sure.mean(), abs=1e-6)
        if sure.any():
            assert versus[who]["unflagged_accuracy"] == pytest.approx(right[sure].mean(), abs=1e-6)
    assert (run / rundir.CONFIG).is_file() and json.loads((run / rundir.CONFIG).read_text())["base_run"] == str(run_dir)


def test_export_refuses_a_fine_tune_worse_than_its_base_unless_forced(tuned, tmp_path):
    run = shutil.copytree(tuned[0], tmp_path / "worse", ignore=shutil.ignore_patterns("export"))
    metrics = rundir.read_json(run / rundir.METRICS)
    versus = metrics["versus_base"]
    versus["new"]["accuracy"] = versus["base"]["accuracy"] - 0.1
    rundir.write_json(run / rundir.METRICS, metrics)
    result = run_cli("export", run, "--format", "onnx")
    assert result.returncode == 1 and "worse than its base" in error_line(result) and "--force" in error_line(result)
    assert not (run / "export").exists()
    forced = run_cli("export", run, "--format", "onnx", "--force")
    assert forced.returncode == 0, forced.stderr[-2000:]


def test_export_with_review_data_writes_a_threshold_that_mnist_predict_uses(run_dir, tmp_path):
    folder = digit_folder(tmp_path / "review", list(range(10)), 400, offset=1000)
    out = tmp_path / "export"
    result = run_cli("export", run_dir, "--format", "onnx", "--out", out, "--review-data", folder, "--max-error", 0.05,
                     "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    chosen = json.loads(result.stdout)["review_threshold"]
    assert chosen["threshold"] is not None and chosen["n"] == 400 and chosen["max_error"] == 0.05
    assert chosen["delta"] == 0.05 and "learn-then-test" in chosen["method"] and "exchangeable" in chosen["assumption"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["review_threshold"] == chosen
    props = {p.key: p.value for p in onnx.load(str(out / "model.onnx")).metadata_props}
    assert float(props["review_threshold"]) == chosen["threshold"]
    predictor = Predictor(out / "model.onnx")
    assert predictor.min_confidence == chosen["threshold"]
    # the choice, made again from what the exported model says of the folder's images through mnist-predict
    files = sorted(folder.glob("*/*.png"))
    result_rows = predictor.predict(files)
    truth = np.array([int(f.parent.name) for f in files])
    again = guaranteed_threshold(result_rows.probabilities.max(axis=1), result_rows.labels == truth, 0.05, 0.05)
    assert again["threshold"] == chosen["threshold"]
    assert list(result_rows.review) == list(result_rows.probabilities.max(axis=1) < chosen["threshold"])
    predictions = tmp_path / "p.csv"
    assert run_cli(folder, "--model", out / "model.onnx", "--out", predictions, "--recursive",
                   tool="mnist-predict").returncode == 0
    with open(predictions, newline="") as file:
        flagged = sum(row["review"] == "yes" for row in csv.DictReader(file))
    assert flagged == int(result_rows.review.sum())


def test_a_review_folder_too_small_is_reported_and_the_default_kept(run_dir, tmp_path):
    folder = digit_folder(tmp_path / "few", list(range(10)), 30, offset=500)
    out = tmp_path / "export"
    result = run_cli("export", run_dir, "--format", "onnx", "--out", out, "--review-data", folder, "--max-error", 0.01)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "no threshold meets max-error 0.01" in result.stderr and "fixed default 0.8 is kept" in result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["review_threshold"]["threshold"] is None and manifest["review_threshold"]["n"] == 30
    assert "review_threshold" not in {p.key for p in onnx.load(str(out / "model.onnx")).metadata_props}
    assert Predictor(out / "model.onnx").min_confidence == 0.8
