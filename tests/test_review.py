"""The review loop's TF-free parts: the queue (review.csv, Label Studio tasks, preview), its import into class
folders, the guaranteed review threshold, and the predictor taking that threshold as its default.

The predictions come from real `mnist-predict` runs on predict_fixtures' template models; the threshold is
checked against brute-force binomial sums and, over many random splits, against its promise."""

import csv
import json
import math
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import run_cli
from job.errors import JobError
from job.review import queue, threshold
from mnist_predict import Predictor
from PIL import Image
from predict_fixtures import (DIGIT_LABELS, LABELS, digit_export, digit_templates, draw_number, export_dir,  # noqa: F401
                              glyphs, predict_cli)


@pytest.fixture
def predictions(tmp_path, glyphs, predict_cli, export_dir):
    """predictions.csv of 20 glyph images, 8 of them blurred so that the model is unsure of them, and one
    unreadable file: `mnist-predict` with --min-confidence 0.9."""
    from PIL import ImageFilter

    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(20):
        pixels = glyphs[i % 10].copy()
        pixels[0, 0] = i  # every file its own content: import tells copies apart by it
        image = Image.fromarray(pixels)
        if i >= 12:
            image = image.filter(ImageFilter.GaussianBlur(2 + i % 3))
        image.save(folder / f"{i:02d}_{i % 10}.png")
    (folder / "broken.png").write_bytes(b"not an image")
    out = tmp_path / "predictions.csv"
    result = predict_cli(folder, "--model", export_dir / "model.onnx", "--out", out, "--min-confidence", "0.9",
                         "--workers", "0")
    assert result.code == 3, result.err  # the broken file
    return out


def rows_of(path):
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def fill_labels(review_csv, label_of):
    rows = rows_of(review_csv)
    for row in rows:
        row["label"] = label_of(row)
    with open(review_csv, "w", newline="") as file:
        writer = csv.DictWriter(file, rows[0].keys())
        writer.writeheader()
        writer.writerows(rows)
    return rows


def truth(row):
    return LABELS[int(Path(row["path"]).stem.split("_")[1])]


def test_the_queue_holds_the_flagged_rows_least_sure_first_and_reads_back(tmp_path, predictions, export_dir):
    source = rows_of(predictions)
    flagged = [r for r in source if r["review"] == "yes"]
    assert 0 < len(flagged) < len(source) - 1
    out, counts = queue.export_queue(predictions, tmp_path / "queue", model=export_dir)
    assert counts == {"rows": len(flagged), "flagged": len(flagged), "kind": "predict"}
    rows = rows_of(out / "review.csv")
    assert list(rows[0]) == list(queue.COLUMNS)
    assert [r["path"] for r in rows] == [str(Path(r["path"]).resolve()) for r in
                                         sorted(flagged, key=lambda r: float(r["probability"]))]
    assert all(r["label"] == "" and r["review"] == "yes" for r in rows)
    assert [r["predicted"] for r in rows] == [r["class_name"] for r in sorted(flagged, key=lambda r: float(r["probability"]))]
    tasks = json.loads((out / "tasks.json").read_text())
    assert [t["data"]["path"] for t in tasks] == [r["path"] for r in rows]
    first = tasks[0]["predictions"][0]
    assert first["result"][0]["value"]["choices"] == [rows[0]["predicted"]]
    assert first["score"] == pytest.approx(float(rows[0]["probability"]))
    assert tasks[0]["data"]["image"].startswith("/data/local-files/?d=")
    config = (out / "label_config.xml").read_text()
    assert all(f'<Choice value="{name}"/>' in config for name in LABELS)
    assert 'name="label" toName="image"' in config  # what the pre-annotation's from_name/to_name point at
    with Image.open(out / "preview.png") as sheet:
        assert sheet.width > 100 and sheet.height > 100
    assert json.loads((out / "queue.json").read_text())["labels"] == LABELS


def test_all_queues_every_readable_row_flagged_first(tmp_path, predictions, export_dir):
    _, counts = queue.export_queue(predictions, tmp_path / "queue", model=export_dir, every=True)
    rows = rows_of(tmp_path / "queue" / "review.csv")
    assert len(rows) == 20 and counts["flagged"] < 20  # the broken file has no prediction to correct
    reviews = [r["review"] for r in rows]
    assert reviews == sorted(reviews, key=lambda r: r != "yes")
    rest = [float(r["probability"]) for r in rows if r["review"] != "yes"]
    assert rest == sorted(rest)


def test_a_queue_folder_with_labels_in_it_is_not_overwritten(tmp_path, predictions, export_dir):
    queue.export_queue(predictions, tmp_path / "queue", model=export_dir)
    before = (tmp_path / "queue" / "review.csv").read_bytes()
    result = run_cli("review", "export", predictions, "--out", tmp_path / "queue")
    assert result.returncode == 2 and "not empty" in result.stderr
    assert (tmp_path / "queue" / "review.csv").read_bytes() == before


def test_import_files_labelled_rows_by_content_and_skips_the_rest(tmp_path, predictions, export_dir):
    out, _ = queue.export_queue(predictions, tmp_path / "queue", model=export_dir, every=True)
    rows = fill_labels(out / "review.csv", lambda row: truth(row) if int(Path(row["path"]).stem[:2]) % 4 else "")
    labelled = [r for r in rows if r["label"]]
    into = tmp_path / "corrections"
    report = queue.import_queue(out / "review.csv", into)
    assert report.summary()["added"] == len(labelled) and report.unlabelled == len(rows) - len(labelled)
    for row in labelled:  # each under its label, byte for byte, named by its sha256
        content = Path(row["path"]).read_bytes()
        matches = [p for p in (into / row["label"]).iterdir() if p.read_bytes() == content]
        assert len(matches) == 1 and matches[0].suffix == ".png"
    again = queue.import_queue(out / "review.csv", into)
    assert again.summary()["added"] == 0 and again.duplicates == len(labelled)
    assert sum(1 for _ in into.glob("*/*")) == len(labelled)


def test_the_same_image_under_another_label_is_reported_not_copied(tmp_path, predictions, export_dir):
    out, _ = queue.export_queue(predictions, tmp_path / "queue", model=export_dir, every=True)
    fill_labels(out / "review.csv", truth)
    queue.import_queue(out / "review.csv", tmp_path / "into")
    fill_labels(out / "review.csv", lambda row: "zero" if truth(row) != "zero" else "one")
    report = queue.import_queue(out / "review.csv", tmp_path / "into")
    assert report.summary()["added"] == 0 and len(report.conflicts) == 20
    assert sum(1 for _ in (tmp_path / "into").glob("*/*")) == 20


def test_unknown_labels_stop_the_import_before_anything_is_copied(tmp_path, predictions, export_dir):
    out, _ = queue.export_queue(predictions, tmp_path / "queue", model=export_dir, every=True)
    fill_labels(out / "review.csv", lambda row: "eleven" if row["predicted"] == "one" else truth(row))
    result = run_cli("review", "import", out / "review.csv", "--into", tmp_path / "into")
    assert result.returncode == 2 and "eleven" in result.stderr and "--new-classes" in result.stderr
    assert not (tmp_path / "into").exists()
    result = run_cli("review", "import", out / "review.csv", "--into", tmp_path / "into", "--new-classes", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["by_class"].get("eleven", 0) >= 1


def test_a_missing_image_is_counted_and_the_rest_imported(tmp_path, predictions, export_dir):
    out, _ = queue.export_queue(predictions, tmp_path / "queue", model=export_dir, every=True)
    rows = fill_labels(out / "review.csv", truth)
    Path(rows[0]["path"]).unlink()
    report = queue.import_queue(out / "review.csv", tmp_path / "into")
    assert len(report.missing) == 1 and report.summary()["added"] == 19


def test_a_label_studio_export_of_the_tasks_imports(tmp_path, predictions, export_dir):
    """What Label Studio exports (JSON): each task with its data, predictions and the annotations made; a
    cancelled annotation does not count, the last one does."""
    out, _ = queue.export_queue(predictions, tmp_path / "queue", model=export_dir, every=True)
    tasks = json.loads((out / "tasks.json").read_text())
    exported = []
    for i, task in enumerate(tasks):
        label = truth(task["data"])
        annotations = [{"id": 2 * i, "was_cancelled": True, "result": [{"value": {"choices": ["nine"]}}]},
                       {"id": 2 * i + 1, "was_cancelled": False, "result": [
                           {"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": [label]}}]}]
        exported.append({"id": i + 1, **task, "annotations": annotations if i % 5 else []})
    export_file = tmp_path / "project-1-at-2026-12-02.json"  # elsewhere: no queue.json beside it
    export_file.write_text(json.dumps(exported))
    with pytest.raises(JobError, match="--model"):
        queue.import_queue(export_file, tmp_path / "into")
    report = queue.import_queue(export_file, tmp_path / "into", model=export_dir)
    assert report.summary()["added"] == 16 and report.unlabelled == 4
    for path in (tmp_path / "into").glob("*/*"):
        matches = [t for t in exported if Path(t["data"]["path"]).read_bytes() == path.read_bytes()]
        assert truth(matches[0]["data"]) == path.parent.name


def test_a_read_queue_imports_each_digit_cropped_under_its_label(tmp_path, digit_export, predict_cli):
    folder = tmp_path / "numbers"
    folder.mkdir()
    for text in ("42", "307", "1958"):
        image, _ = draw_number(text)
        image.save(folder / f"n_{text}.png")
    out = tmp_path / "numbers.csv"
    assert predict_cli("read", folder, "--model", digit_export / "model.onnx", "--out", out, "--workers", "0").code == 0
    queue_dir, counts = queue.export_queue(out, tmp_path / "queue", every=True)
    assert counts["kind"] == "read"
    assert 'TextArea name="number"' in (queue_dir / "label_config.xml").read_text()
    rows = fill_labels(queue_dir / "review.csv", lambda row: Path(row["path"]).stem.split("_")[1])
    rows[0]["label"] = rows[0]["label"] + "1"  # one digit too many: not cropped, reported
    with open(queue_dir / "review.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, rows[0].keys())
        writer.writeheader()
        writer.writerows(rows)
    report = queue.import_queue(queue_dir / "review.csv", tmp_path / "into")
    assert len(report.mismatched) == 1
    cropped = sorted(rows[1]["label"] + rows[2]["label"])
    assert sorted(p.parent.name for p in (tmp_path / "into").glob("*/*.png")) == cropped
    predictor = Predictor(digit_export / "model.onnx")  # each crop reads as its folder says
    for path in (tmp_path / "into").glob("*/*.png"):
        assert predictor.predict([path]).names[0] == path.parent.name


def brute_force_cdf(k, n, p):
    return sum(math.comb(n, i) * p ** i * (1 - p) ** (n - i) for i in range(k + 1))


@pytest.mark.parametrize("k,n,p", [(0, 10, 0.1), (3, 50, 0.05), (7, 200, 0.02), (20, 400, 0.06), (5, 5, 0.3)])
def test_the_binomial_tail_matches_the_sum(k, n, p):
    assert threshold.binomial_cdf(k, n, p) == pytest.approx(brute_force_cdf(k, n, p), rel=1e-9)


def test_the_threshold_is_the_lowest_the_fixed_sequence_proves():
    confidence = np.array([0.9995] * 400 + [0.97] * 200 + [0.8] * 200)
    right = np.ones(800, bool)
    right[400:410] = False  # 10 errors at 0.97: 10/600 overall for t <= 0.97, none above
    right[600:640] = False  # 40 at 0.8
    chosen = threshold.guaranteed_threshold(confidence, right, max_error=0.05, delta=0.05)
    # at 0.8 and below, 50/800 = 6.25% > 5% cannot be rejected: the sequence stops, the last rejected is 0.805
    assert chosen["threshold"] == 0.805 and chosen["unflagged"] == 600 and chosen["unflagged_errors"] == 10
    assert chosen["flagged_share"] == pytest.approx(0.25)
    strict = threshold.guaranteed_threshold(confidence, right, max_error=0.01, delta=0.05)
    assert strict["threshold"] == 0.975 and strict["unflagged"] == 400  # 10 errors in 600 > 1% cannot be ruled out


def test_too_few_images_keep_the_default_and_say_how_many_it_takes():
    confidence, right = np.full(400, 0.9995), np.ones(400, bool)
    report = threshold.guaranteed_threshold(confidence, right, max_error=0.005, delta=0.05)
    # no error in 400, but (1 - 0.005)^400 = 13% > delta: 598 would be needed
    assert report["threshold"] is None and "598 images" in report["skipped"] and report["n"] == 400
    with pytest.raises(ValueError, match="max-error"):
        threshold.guaranteed_threshold(confidence, right, max_error=0, delta=0.05)


def test_the_guarantee_holds_over_many_calibration_sets_and_a_naive_choice_does_not():
    """A calibrated model on images drawn alike: the error of the rows it passes, on a large fresh test set,
    exceeds max-error in at most about delta of calibration sets; choosing the lowest threshold whose
    calibration error is within max-error does so about half the time."""
    rng = np.random.default_rng(0)

    def draw(n):
        confidence = 1 - rng.beta(0.3, 3, n) * 0.5  # mostly sure, a long tail down to 0.5: 4.5% wrong
        return confidence, rng.random(n) < confidence

    test_confidence, test_right = draw(200_000)
    max_error, delta, trials = 0.02, 0.1, 150
    violations = naive_violations = 0
    for _ in range(trials):
        confidence, right = draw(1000)
        chosen = threshold.guaranteed_threshold(confidence, right, max_error, delta)["threshold"]
        assert chosen is not None
        violations += np.mean(~test_right[test_confidence >= chosen]) > max_error
        naive = min(t for t in threshold.GRID if np.mean(~right[confidence >= t]) <= max_error)
        naive_violations += np.mean(~test_right[test_confidence >= naive]) > max_error
    assert violations / trials <= delta + 0.02
    assert naive_violations / trials > 0.3


def test_the_predictor_takes_the_models_review_threshold_and_an_option_overrides_it(tmp_path, export_dir, glyphs,
                                                                                     predict_cli):
    import shutil

    from mnist_predict.files import sha256
    from PIL import ImageFilter

    folder = tmp_path / "glyphs"
    folder.mkdir()
    for i in range(30):  # blurred, so the model's top probabilities spread out
        Image.fromarray(glyphs[i % 10]).filter(ImageFilter.GaussianBlur(1 + i % 4)).save(folder / f"{i:02d}.png")
    paths = sorted(folder.iterdir())
    plain = Predictor(export_dir / "model.onnx")
    assert plain.min_confidence == 0.8  # no threshold chosen: the fixed default
    top = plain.predict(paths).probabilities.max(axis=1)
    chosen = round(float(np.median(top)), 6)
    assert (top < chosen).sum() >= 5 and (top < 0.8).sum() < (top < chosen).sum()  # the two thresholds differ
    export = shutil.copytree(export_dir, tmp_path / "export")
    model = onnx.load(export / "model.onnx")
    onnx.helper.set_model_props(model, {"labels": json.dumps(LABELS), "review_threshold": str(chosen)})
    onnx.save(model, export / "model.onnx")
    manifest = json.loads((export / "manifest.json").read_text())
    manifest["files"]["model.onnx"]["sha256"] = sha256(export / "model.onnx")
    (export / "manifest.json").write_text(json.dumps(manifest))
    predictor = Predictor(export / "model.onnx")
    assert predictor.min_confidence == chosen
    assert list(predictor.predict(paths).review) == list(top < chosen)
    assert list(predictor.predict(paths, min_confidence=0.8).review) == list(top < 0.8)
    for options, flagged in (((), int((top < chosen).sum())), (("--min-confidence", "0.8"), int((top < 0.8).sum()))):
        out = tmp_path / f"p{len(options)}.csv"
        assert predict_cli(folder, "--model", export / "model.onnx", "--out", out, "--workers", "0", *options).code == 0
        assert sum(r["review"] == "yes" for r in rows_of(out)) == flagged


def test_review_options_without_what_they_apply_to_are_refused(tmp_path):
    result = run_cli("train", "--replay", "1", "--dataset", "mnist-sample", "--out", tmp_path / "run")
    assert result.returncode == 2 and "--init-from" in result.stderr
    result = run_cli("export", tmp_path, "--max-error", "0.01")
    assert result.returncode == 2 and "add --review-data" in result.stderr
    (tmp_path / "folder" / "a").mkdir(parents=True)
    result = run_cli("export", tmp_path, "--review-data", tmp_path / "folder")
    assert result.returncode == 2 and "--max-error" in result.stderr
    result = run_cli("export", tmp_path, "--review-data", tmp_path / "folder", "--max-error", "0.01", "--delta", "0")
    assert result.returncode == 2 and "must be in (0, 1)" in result.stderr  # not taken for the default 0.05
