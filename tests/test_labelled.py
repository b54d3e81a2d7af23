"""Your own data: labelled image folders for train, evaluate and cv, the decode cache, fine-tuning with
--init-from, class names through to the export, and a one-line error for every bad folder."""

import json
import logging

import numpy as np
import pytest
from conftest import error_line, run_cli
from PIL import Image, ImageDraw

from job.data import labelled
from job.data.datasets import load_dataset
from job.data.image_sets import write_images
from job.errors import JobError
from job.train.training import TrainConfig, train

pytestmark = pytest.mark.slow  # trains, exports or drives a browser (-m 'not slow' leaves it out)

SHAPES = ["circle", "cross", "square"]


def shape(kind, rng):
    """A white shape on black, drawn at a random size and place: a 3-class problem that is not digits."""
    canvas = Image.new("L", (64, 64), 0)
    draw = ImageDraw.Draw(canvas)
    size, (x, y) = rng.integers(22, 40), rng.integers(4, 20, 2)
    box = [x, y, x + size, y + size]
    if kind == "circle":
        draw.ellipse(box, outline=255, width=6)
    elif kind == "square":
        draw.rectangle(box, outline=255, width=6)
    else:
        draw.line([box[0], box[1], box[2], box[3]], fill=255, width=6)
        draw.line([box[0], box[3], box[2], box[1]], fill=255, width=6)
    return canvas


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    """shapes/<kind>/<n>.png: 60 dark-on-light drawings of each kind, as a user's scans would be."""
    root = tmp_path_factory.mktemp("shapes") / "shapes"
    rng = np.random.default_rng(0)
    for kind in SHAPES:
        (root / kind).mkdir(parents=True)
        for n in range(60):
            Image.eval(shape(kind, rng), lambda v: 255 - v).save(root / kind / f"{n:03d}.png")
    return root


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MNIST_JOB_CACHE", str(tmp_path / "cache"))


def test_a_class_folder_is_a_dataset_with_a_stratified_test_split(shapes):
    ds = load_dataset("mnist", str(shapes), test_split=0.25, seed=3)
    assert ds.name == "folder" and ds.labels == SHAPES  # sorted, as Keras sorts them
    assert len(ds.x_train) == 135 and len(ds.x_test) == 45
    assert np.bincount(ds.y_test).tolist() == [15, 15, 15]
    assert ds.x_train.dtype == np.uint8 and ds.x_train.shape[1:] == (28, 28)
    # decoded by the predictor itself: dark-on-light scans come out white on black, framed as MNIST
    assert ds.x_train.mean() < 60 and ds.x_train.max() == 255
    again = load_dataset("mnist", str(shapes), test_split=0.25, seed=3)
    np.testing.assert_array_equal(again.x_test, ds.x_test)


def test_train_and_test_folders_are_used_as_given(tmp_path):
    sample = load_dataset("mnist-sample")
    write_images(sample.x_train[:300], sample.y_train[:300], sample.labels, tmp_path / "d" / "train", "classes")
    write_images(sample.x_test[:100], sample.y_test[:100], sample.labels, tmp_path / "d" / "test", "classes")
    ds = load_dataset("mnist", str(tmp_path / "d"))
    np.testing.assert_array_equal(ds.x_train, sample.x_train[:300])  # the images' own order, bit for bit
    np.testing.assert_array_equal(ds.y_test, sample.y_test[:100])


def test_decoding_is_cached_and_redone_when_a_file_changes(shapes, monkeypatch, caplog):
    import mnist_predict.images

    caplog.set_level(logging.INFO, logger="job.data.labelled")
    load_dataset("mnist", str(shapes))
    assert "decoded 180 images" in caplog.text and "images/s" in caplog.text

    def refuse(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(mnist_predict.images, "decode", refuse)
    caplog.clear()
    load_dataset("mnist", str(shapes))  # every file as it was: from the cache
    assert "from the cache" in caplog.text
    monkeypatch.undo()
    touched = shapes / "cross" / "000.png"
    touched.write_bytes(touched.read_bytes())  # a new mtime
    caplog.clear()
    load_dataset("mnist", str(shapes))
    assert "decoded 180 images" in caplog.text


def test_bad_files_are_skipped_with_a_count_and_reasons(tmp_path, shapes, caplog):
    import shutil

    folder = shutil.copytree(shapes, tmp_path / "with-bad")
    (folder / "circle" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    Image.new("L", (50, 50), 255).save(folder / "square" / "blank.png")
    caplog.set_level(logging.WARNING, logger="job.data.labelled")
    ds = load_dataset("mnist", str(folder))
    assert len(ds.x_train) + len(ds.x_test) == 180
    assert "skipped 2 unreadable image(s)" in caplog.text and "no digit found" in caplog.text


@pytest.mark.parametrize("build,message", [
    (lambda root: (root / "a.png").write_bytes(b""), "no class subfolders"),
    (lambda root: [(root / "train" / "x").mkdir(parents=True), (root / "cats").mkdir()], "mixed layouts"),
    (lambda root: [(root / "0").mkdir(), (root / "a.png").write_bytes(b"")], "mixed layouts"),
    (lambda root: [(root / "train" / "x").mkdir(parents=True)], "mixed layouts"),
    (lambda root: [(root / "only").mkdir()], "at least 2"),
])
def test_bad_layouts_are_one_line_errors(tmp_path, build, message):
    root = tmp_path / "data"
    root.mkdir()
    build(root)
    if not any(p.is_dir() for p in root.iterdir()):  # a folder of files only: told apart from IDX by contents
        result = run_cli("train", "--data", root, "--out", tmp_path / "r")
        assert result.returncode == 2 and "one subfolder of images per class" in error_line(result)
        return
    with pytest.raises(JobError, match=message):
        labelled.layout(root)
    result = run_cli("train", "--data", root, "--out", tmp_path / "r")
    assert result.returncode == 2 and message in error_line(result)


def test_a_class_without_a_readable_image_is_an_error(tmp_path, shapes):
    import shutil

    folder = shutil.copytree(shapes, tmp_path / "d")
    (folder / "empty").mkdir()
    (folder / "empty" / "x.png").write_text("not an image")
    result = run_cli("train", "--data", folder, "--out", tmp_path / "r")
    assert result.returncode == 2 and "class 'empty' has no readable image" in error_line(result)


def test_a_run_from_the_sample_as_a_folder_matches_the_run_from_its_idx_files(tmp_path):
    sample = load_dataset("mnist-sample")
    for split in ("train", "test"):
        write_images(getattr(sample, f"x_{split}"), getattr(sample, f"y_{split}"), sample.labels,
                     tmp_path / "sample" / split, layout="classes")
    common = dict(model="cnn-mit", epochs=1, max_train_samples=1000, verbose=0)
    _, from_idx = train(TrainConfig(dataset="mnist-sample", out=str(tmp_path / "idx"), **common))
    _, from_folder = train(TrainConfig(data=str(tmp_path / "sample"), out=str(tmp_path / "folder"), **common))
    for key in ("test_accuracy", "test_loss", "confusion_matrix", "val_accuracy"):
        assert from_folder[key] == from_idx[key], key


@pytest.fixture(scope="module")
def shapes_run(tmp_path_factory, shapes):
    out = tmp_path_factory.mktemp("runs") / "shapes"
    result = run_cli("train", "--model", "cnn-mit", "--data", shapes, "--epochs", 6, "--out", out)
    assert result.returncode == 0, result.stderr[-2000:]
    return out


def test_class_names_flow_into_every_artifact(shapes_run, tmp_path):
    config = json.loads((shapes_run / "config.json").read_text())
    metrics = json.loads((shapes_run / "metrics.json").read_text())
    assert config["labels"] == SHAPES and config["dataset"] == "folder"
    assert len(metrics["per_class_accuracy"]) == 3 and np.array(metrics["confusion_matrix"]).shape == (3, 3)
    assert metrics["test_accuracy"] > 0.8
    exported = run_cli("export", shapes_run, "--format", "onnx", "--json")
    assert exported.returncode == 0, exported.stderr[-2000:]
    manifest = json.loads(exported.stdout)
    assert manifest["labels"] == SHAPES and manifest["output"]["shape"] == [None, 3]
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(shapes_run / "export" / "model.onnx")).metadata_props}
    assert json.loads(meta["labels"]) == SHAPES
    rng = np.random.default_rng(99)
    for kind in SHAPES:
        Image.eval(shape(kind, rng), lambda v: 255 - v).save(tmp_path / f"{kind}.png")
    predicted = run_cli("predict", tmp_path, "--model", shapes_run / "export", "--out", tmp_path / "p.csv")
    assert predicted.returncode == 0
    assert "circle" in predicted.stdout and "square" in predicted.stdout  # the summary names the classes


def test_evaluate_on_a_folder_writes_beside_the_run(shapes_run, tmp_path):
    rng = np.random.default_rng(7)
    for kind in SHAPES[:2]:  # a subset of the classes is fine; they are matched by name
        (tmp_path / "held" / kind).mkdir(parents=True)
        for n in range(10):
            Image.eval(shape(kind, rng), lambda v: 255 - v).save(tmp_path / "held" / kind / f"{n}.png")
    plots_before = sorted(p.name for p in (shapes_run / "plots").iterdir())
    result = run_cli("evaluate", shapes_run, "--data", tmp_path / "held", "--json")
    assert result.returncode == 0, result.stderr[-1500:]
    fresh = json.loads(result.stdout)["fresh"]
    assert fresh["images"] == 20 and len(fresh["per_class_accuracy"]) == 3
    out = shapes_run / "eval-held"
    assert {p.name for p in out.iterdir()} == {"metrics.json", "confusion.png", "predictions.png",
                                               "confident_errors.png"}
    assert sorted(p.name for p in (shapes_run / "plots").iterdir()) == plots_before
    (tmp_path / "other" / "triangle").mkdir(parents=True)
    (tmp_path / "other" / "circle").mkdir(parents=True)
    bad = run_cli("evaluate", shapes_run, "--data", tmp_path / "other")
    assert bad.returncode == 2 and "triangle are not among the run's" in error_line(bad)


def test_fine_tuning_a_digit_model_on_three_shapes(shapes, tmp_path, caplog):
    base, _ = train(TrainConfig(model="cnn-bn-aug", dataset="mnist-sample", epochs=1, max_train_samples=500,
                                out=str(tmp_path / "base"), verbose=0))
    caplog.set_level(logging.INFO, logger="job.train.finetune")
    tuned, metrics = train(TrainConfig(init_from=str(base), data=str(shapes), out=str(tmp_path / "tuned"), verbose=0))
    assert "output layer 'probabilities' replaced: 10 classes -> 3" in caplog.text
    config = json.loads((tuned / "config.json").read_text())
    assert config["model"] == "cnn-bn-aug" and config["base_run"] == str(base)
    assert config["learning_rate"] == pytest.approx(3e-4) and config["epochs"] == 10  # a tenth, a third
    import hashlib

    assert config["base_model_sha256"] == hashlib.sha256((base / "model.keras").read_bytes()).hexdigest()
    from job.train.rundir import load_keras_model

    base_model, tuned_model = load_keras_model(base / "model.keras"), load_keras_model(tuned / "model.keras")
    kept = base_model.get_layer("standardize").get_config()["mean"]
    assert tuned_model.get_layer("standardize").get_config()["mean"] == pytest.approx(kept)  # base's statistics
    assert tuned_model.output.shape[-1] == 3 and metrics["test_accuracy"] > 0.6


def test_freeze_base_trains_the_head_alone(shapes, tmp_path):
    base, _ = train(TrainConfig(model="dense-128", dataset="mnist-sample", epochs=1, max_train_samples=300,
                                out=str(tmp_path / "base"), verbose=0))
    tuned, _ = train(TrainConfig(init_from=str(base), data=str(shapes), epochs=2, freeze_base=True,
                                 restandardize=True, out=str(tmp_path / "frozen"), verbose=0))
    from job.train.rundir import load_keras_model

    before, after = load_keras_model(base / "model.keras"), load_keras_model(tuned / "model.keras")
    pairs = [(old, new) for old, new in zip(before.layers, after.layers)
             if new.get_weights() and new.name != "probabilities"]
    assert pairs
    for old, new in pairs:
        for a, b in zip(old.get_weights(), new.get_weights()):
            np.testing.assert_array_equal(a, b)


def test_fine_tune_errors(tmp_path, shapes, npz_path):
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "config.json").write_text(json.dumps({"model": "dense-128"}))
    result = run_cli("train", "--init-from", unfinished, "--data", shapes, "--out", tmp_path / "r")
    assert result.returncode == 2 and "an unfinished run" in error_line(result)
    base, _ = train(TrainConfig(model="dense-128", dataset="mnist", data=str(npz_path), epochs=1,
                                max_train_samples=100, out=str(tmp_path / "base"), verbose=0))
    result = run_cli("train", "--init-from", base, "--model", "cnn-mit", "--data", shapes, "--out", tmp_path / "r2")
    assert result.returncode == 2 and "cannot fine-tune dense-128 weights as --model cnn-mit" in error_line(result)
    result = run_cli("train", "--freeze-base", "--data", shapes, "--out", tmp_path / "r3")
    assert result.returncode == 2 and "add --init-from" in error_line(result)


def test_fine_tuning_keeps_the_base_when_no_epoch_beats_it(tmp_path, npz_path, caplog):
    """A learning rate that wrecks the weights: every fine-tuned epoch is worse than the base on the
    validation split, so the base model itself is kept, and said to be."""
    from job.train.rundir import load_keras_model

    base, base_metrics = train(TrainConfig(model="dense-128", dataset="mnist", data=str(npz_path), epochs=3,
                                           out=str(tmp_path / "base"), verbose=0))
    caplog.set_level(logging.INFO, logger="job")
    tuned, metrics = train(TrainConfig(init_from=str(base), dataset="mnist", data=str(npz_path), epochs=2,
                                       learning_rate=50.0, out=str(tmp_path / "tuned"), verbose=0))
    config = json.loads((tuned / "config.json").read_text())
    assert metrics["kept"] == "base" and metrics["kept_epoch"] == 0
    assert metrics["val_accuracy"] == config["base_val_accuracy"] == base_metrics["val_accuracy"]
    assert metrics["test_accuracy"] == base_metrics["test_accuracy"]
    x = load_dataset("mnist", str(npz_path)).x_test[:100].astype(np.float32)
    np.testing.assert_allclose(load_keras_model(tuned / "model.keras")(x), load_keras_model(base / "model.keras")(x),
                               atol=1e-6)
    assert "no epoch beat the base model on the validation split" in caplog.text
    result = run_cli("train", "--init-from", base, "--data", npz_path, "--epochs", 1, "--learning-rate", 50,
                     "--out", tmp_path / "cli")
    assert result.returncode == 0 and "kept the base model (none of 1 epochs beat its validation accuracy" in \
        result.stdout


def test_a_class_too_small_to_split_is_warned_about_and_reported_as_n_a(tmp_path, shapes, caplog):
    import shutil

    own = tmp_path / "own"
    shutil.copytree(shapes, own)
    (own / "star").mkdir()
    shutil.copy(own / "circle" / "000.png", own / "star" / "000.png")  # one image: nothing to hold out
    caplog.set_level(logging.WARNING, logger="job.data.labelled")
    run, metrics = train(TrainConfig(model="dense-128", data=str(own), epochs=1, out=str(tmp_path / "run"),
                                     verbose=0))
    assert "no test image of class 'star' (1 image)" in caplog.text and "n/a" in caplog.text
    assert metrics["per_class_accuracy"][3] is None  # n/a, not 0.0
    assert all(isinstance(a, float) for a in metrics["per_class_accuracy"][:3])
    result = run_cli("evaluate", run)
    assert result.returncode == 0 and "star n/a" in result.stdout and "no test image of star" in result.stdout


def test_compare_ranks_only_runs_on_the_same_classes_and_images(tmp_path, shapes):
    import shutil

    from job.train.experiments import compare

    fewer = tmp_path / "fewer"
    shutil.copytree(shapes, fewer, ignore=shutil.ignore_patterns("square"))
    common = dict(model="dense-128", epochs=1, verbose=0)
    for name, data in (("three-a", shapes), ("three-b", shapes), ("two", fewer)):
        train(TrainConfig(data=str(data), out=str(tmp_path / "runs" / name), **common))
    report, bests = compare([tmp_path / "runs"], tmp_path / "r.md")
    assert len(bests) == 2  # 3 classes, and 2 classes: never ranked together
    three = next(name for name in bests if "3 classes" in name)
    two = next(name for name in bests if "2 classes" in name)
    assert "circle, cross, square" in three and "circle, cross" in two and bests[two]["dir"].name == "two"
    text = report.read_text()
    assert text.count("## folder") == 2


def test_default_epochs_on_a_small_folder_follow_a_stated_rule(tmp_path, shapes, caplog):
    from job.train.models import (
        MAX_DEFAULT_EPOCHS,
        default_epochs,
        get_spec,
        why_epochs,
    )

    spec = get_spec("cnn-bn-aug")
    assert default_epochs(spec, 260) == MAX_DEFAULT_EPOCHS == 100  # 160,000 / 260 = 616, capped
    assert default_epochs(spec, 5400) == 30 and default_epochs(spec, 54000) == 30
    line = why_epochs(spec, 260)
    assert line.startswith("epochs: 100 (") and "160,000 / 260 training images = 616 epochs, capped at 100" in line
    caplog.set_level(logging.INFO, logger="job.train.run_config")
    _, metrics = train(TrainConfig(model="dense-128", data=str(shapes), out=str(tmp_path / "run"), verbose=0))
    assert metrics["epochs_run"] == 5 and "epochs: 5, dense-128's default" in caplog.text


def test_evaluating_a_folder_run_on_a_flat_folder_names_the_folder_not_a_flag(shapes_run, tmp_path):
    (tmp_path / "flat").mkdir()
    Image.eval(shape("circle", np.random.default_rng(1)), lambda v: 255 - v).save(tmp_path / "flat" / "a.png")
    result = run_cli("evaluate", shapes_run, "--data", tmp_path / "flat")
    line = error_line(result)
    assert result.returncode == 2 and "--dataset" not in line  # the user never passed one
    assert f"{tmp_path / 'flat'}: not a labelled image folder (one subfolder of images per class" in line
