"""The line reader (mnist_predict.lines, job.train.line_reader): CTC decoding, the line images, how `read`
weighs its reading against the digit-by-digit search, and a line reader trained, exported, gated and used.

The weighing is tested with the template model of predict_fixtures and line-reader outputs made by hand, so
that each case (the readers agree, the search is surer, the line reader is surer, the line reader reads more
digits than the cuts hold) is set exactly. bench/numbers.py measures a trained line reader on handwriting.
"""

import itertools
import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
from conftest import run_cli
from mnist_predict import Predictor, lines, numbers
from predict_fixtures import (digit_export, digit_templates, draw_number, fake_line_reader,  # noqa: F401
                              outputs_reading, template_keras)


def test_decode_merges_repeats_drops_blanks_and_gives_each_digit_its_columns():
    path = [0, 5, 5, 0, 5, 3, 3, 0, 0]  # "4", "4" again after a blank, then "2"
    probabilities = np.full((len(path), 11), 0.01)
    probabilities[np.arange(len(path)), path] = 0.9
    text, confidence, spans = lines.decode(probabilities)
    assert text == "442"
    assert spans == [(1, 2), (4, 4), (5, 6)]
    assert confidence == pytest.approx(0.9 ** len(path))


def test_decode_reads_the_unknown_class_as_a_question_mark_and_an_older_model_without_it():
    assert lines.decode(outputs_reading("4?2"))[0] == "4?2"
    assert lines.decode(outputs_reading("4?2"))[2] == [(1, 3), (5, 7), (9, 11)]
    assert lines.decode(outputs_reading("402", classes=11))[0] == "402"  # an export from before the "?"


def test_text_probability_is_the_sum_over_every_path_that_reads_the_text():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4, 12))
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    for text in ("3", "33", "37", "", "371", "?", "3?", "??"):
        brute = 0.0
        for path in itertools.product(range(12), repeat=4):
            collapsed = [k for k, previous in zip(path, (None,) + path) if k != previous and k != lines.BLANK]
            if "".join(lines.CLASSES[k - 1] for k in collapsed) == text:
                brute += float(np.prod(probabilities[np.arange(4), path]))
        assert lines.text_probability(probabilities, text) == pytest.approx(brute, rel=1e-9), text


def test_a_line_model_from_before_the_question_mark_is_read_and_one_of_another_shape_refused(tmp_path):
    """11 classes (blank and the digits, as exports before the "?" have) read digits; 13 classes are refused."""
    image = np.zeros((lines.HEIGHT, 40), np.uint8)
    image[4:28, 6:12] = image[4:28, 26:32] = 255
    old = lines.LineReader(fake_line_reader(tmp_path, 6.0, "7", classes=11))
    assert lines.decode(old.run([image])[0])[0] == "77"
    with pytest.raises(ValueError, match=r"must be \(N, W / 4, 12\)"):
        lines.LineReader(fake_line_reader(tmp_path, classes=13))


def test_check_holds_the_line_reader_to_its_recorded_outputs(tmp_path, digit_export):
    """`mnist-predict check` runs lines.onnx on lines-parity.npz's lines, each alone as `read` runs it, and fails
    (exit 1) where a probability moves more than --atol or a line reads another text; an export without the
    reference says its line reader was not checked, and still passes on the digit model."""
    from mnist_predict import parity

    export = tmp_path / "export"
    shutil.copytree(digit_export, export)
    images = [np.zeros((lines.HEIGHT, width), np.uint8) for width in (40, 57, 92)]
    for k, image in enumerate(images):  # one, two and three strokes: "7", "77", "777"
        for stroke in range(k + 1):
            image[4:28, 6 + 28 * stroke:12 + 28 * stroke] = 255
    reader = lines.LineReader(fake_line_reader(export, 6.0, "7"))
    no_reference = json.loads(run_cli("check", "--model", export / "model.onnx", "--json", tool="mnist-predict").stdout)
    assert no_reference["passed"] and no_reference["line_reader"] == {
        "checked": False, "reason": "lines.onnx not checked: no lines-parity.npz beside it (export it again to "
                                    "record one)"}
    outputs = reader.run(images)
    assert [lines.decode(output)[0] for output in outputs] == ["7", "77", "777"]
    parity.write_line_reference(export / parity.LINES_REFERENCE, images, outputs)
    result = run_cli("check", "--model", export / "model.onnx", "--json", tool="mnist-predict")
    assert result.returncode == 0, result.stderr
    checked = json.loads(result.stdout)
    assert checked["passed"] and checked["line_reader"]["lines"] == 3 and checked["line_reader"]["max_abs_diff"] < 1e-6
    assert "read otherwise" in run_cli("check", "--model", export / "model.onnx", tool="mnist-predict").stdout
    # a line reader that has drifted: probabilities a little off, then a text that changes
    moved = [output.copy() for output in outputs]
    moved[1][0] += 0.01
    parity.write_line_reference(export / parity.LINES_REFERENCE, images, moved)
    result = run_cli("check", "--model", export / "model.onnx", "--json", tool="mnist-predict")
    drifted = json.loads(result.stdout)
    assert result.returncode == 1 and not drifted["passed"] and drifted["argmax_agreement"] == 1.0
    assert drifted["line_reader"]["max_abs_diff"] == pytest.approx(0.01, abs=1e-6)
    assert drifted["line_reader"]["texts_differ"] == 0
    assert run_cli("check", "--model", export / "model.onnx", "--atol", "0.02", tool="mnist-predict").returncode == 0
    last = moved[2][15:]  # the third stroke's columns, now read as a 1
    last[:, [lines.label("7"), lines.label("1")]] = last[:, [lines.label("1"), lines.label("7")]]
    assert lines.decode(moved[2])[0] == "771"
    parity.write_line_reference(export / parity.LINES_REFERENCE, images, moved)
    result = run_cli("check", "--model", export / "model.onnx", "--atol", "2", "--json", tool="mnist-predict")
    assert result.returncode == 1 and json.loads(result.stdout)["line_reader"]["texts_differ"] == 1


@pytest.fixture(scope="module")
def predictor(digit_export):
    return Predictor(digit_export / "model.onnx")


@pytest.fixture(scope="module")
def forty_two(predictor):
    """'42' drawn with a gap: its layout, the template model's probabilities, the search's reading, the ink
    boxes."""
    image, boxes = draw_number("42", gap=25)
    layout = numbers.layout_of(np.asarray(image), for_line_reader=True)
    probabilities = predictor.run(layout.inputs)
    return layout, probabilities, numbers.choose(layout, probabilities), boxes


def test_each_line_gets_an_image_of_the_reader_height_with_its_ink(forty_two):
    layout, _, _, _ = forty_two
    (image, (x0, y0, scale)), = layout.lines
    assert image.shape[0] == lines.HEIGHT and image.dtype == np.uint8
    rows = np.flatnonzero(image.max(axis=1) > 128)
    assert lines.DIGIT_HEIGHT - 3 <= rows[-1] - rows[0] + 1 <= lines.DIGIT_HEIGHT + 1  # a digit is DIGIT_HEIGHT tall
    columns = np.flatnonzero(image.max(axis=0) > 0)
    assert columns[0] == lines.PAD and columns[-1] == image.shape[1] - lines.PAD - 1


def test_a_reading_the_line_reader_agrees_with_stands_as_sure_as_the_less_sure_reader(forty_two):
    layout, probabilities, reading, _ = forty_two
    assert reading.text == "42" and not reading.review
    for sure in (0.9999, 0.6):
        line = outputs_reading("42", sure=sure)
        weighed = numbers.with_line_reading(reading, layout, probabilities, [line])
        assert weighed == replace(reading, confidence=min(reading.confidence, lines.text_probability(line, "42")))
    assert lines.text_probability(outputs_reading("42", sure=0.9999), "42") > reading.confidence  # the search's
    assert weighed.confidence < reading.confidence / 2  # the line reader's, less sure


def test_where_the_readers_differ_the_row_is_flagged_and_neither_claims_more_than_the_other_leaves(forty_two):
    layout, probabilities, reading, _ = forty_two
    # the search is sure of 42, the line reader of 47: the search's text, at most 1 - P(47), flagged
    line = outputs_reading("47")
    kept = numbers.with_line_reading(reading, layout, probabilities, [line])
    assert kept.text == "42" and kept.boxes == reading.boxes
    assert kept.review == ["the line reader reads 47"]
    assert kept.confidence == pytest.approx(min(reading.confidence, 1 - lines.text_probability(line, "47")))
    # a search unsure of its 42: the line reader's 47, its digits and boxes from the cuts that read 47 best
    unsure = replace(reading, confidence=0.2)
    taken = numbers.with_line_reading(unsure, layout, probabilities, [line])
    assert taken.text == "47" and [label for label, _ in taken.digits] == ["4", "7"]
    assert taken.boxes == reading.boxes  # the same two cuts, read as 4 and 7
    assert taken.digits[1][1] == pytest.approx(float(probabilities[:, 7].max()), abs=0.5)  # P(7) of that cut
    assert taken.confidence == pytest.approx(min(lines.text_probability(line, "47"), 0.8))
    assert taken.review == ["the digit search reads 42"]
    # with --length 3, the line reader's 2 digits are flagged for their count too
    counted = numbers.with_line_reading(unsure, layout, probabilities, [line], length=(3, 3))
    assert counted.review == ["2 digits, not 3", "the digit search reads 42"]


def test_digits_the_cuts_cannot_give_get_boxes_from_the_columns_they_were_read_in(forty_two):
    """The line reader reads four digits where the search has two pieces: the boxes come from the columns of
    each digit, in the original image's pixels, left to right across the number's ink."""
    layout, probabilities, reading, drawn = forty_two
    taken = numbers.with_line_reading(replace(reading, confidence=0.1), layout, probabilities,
                                      [outputs_reading("4217")])
    assert taken.text == "4217" and len(taken.boxes) == 4
    left, right = drawn[0][0], drawn[-1][0] + drawn[-1][2]
    top, bottom = min(y for _, y, _, _ in drawn), max(y + h for _, y, _, h in drawn)
    for x, y, w, h in taken.boxes:
        assert left - 3 <= x and x + w <= right + 3 and top - 3 <= y and y + h <= bottom + 3
    assert [x for x, _, _, _ in taken.boxes] == sorted(x for x, _, _, _ in taken.boxes)
    assert taken.boxes[0][0] <= left + 3 and taken.boxes[-1][0] + taken.boxes[-1][2] >= right - 3


def test_a_letter_the_line_reader_sees_flags_the_row_and_gives_a_question_mark_where_it_is_surer(forty_two):
    """The search reads a digit where the line reader reads "?" (a letter standing in): flagged, and the line
    reader's "4?" where it is the surer, its "?" with the box of the cut it stands for."""
    layout, probabilities, reading, _ = forty_two
    line = outputs_reading("4?")
    kept = numbers.with_line_reading(reading, layout, probabilities, [line])
    assert kept.text == "42" and kept.review == ["the line reader reads 4?"]
    taken = numbers.with_line_reading(replace(reading, confidence=0.2), layout, probabilities, [line])
    assert taken.text == "4?" and [label for label, _ in taken.digits] == ["4", "?"]
    assert taken.boxes == reading.boxes
    assert taken.digits[1][1] == pytest.approx(reading.digits[1][1])  # the digit model's top probability there
    assert taken.review == ["not a digit", "the digit search reads 42"]


def test_a_question_mark_of_the_search_is_weighed_as_any_text(forty_two):
    """Where the search reads "?" (a run the digit model reads as no digit: a letter, or touching digits cut
    badly), its text stands if it is the surer, flagged; else the line reader's digits are given, flagged,
    and the reason says what the search read."""
    layout, probabilities, reading, _ = forty_two
    line = outputs_reading("42")
    sure = replace(reading, text="4?", confidence=0.99, review=["not a digit"])
    kept = numbers.with_line_reading(sure, layout, probabilities, [line])
    assert kept.text == "4?" and kept.review == ["not a digit", "the line reader reads 42"]
    assert kept.confidence == pytest.approx(1 - lines.text_probability(line, "42"))
    unsure = replace(sure, confidence=0.1)
    taken = numbers.with_line_reading(unsure, layout, probabilities, [line])
    assert taken.text == "42" and [label for label, _ in taken.digits] == ["4", "2"]
    assert taken.boxes == reading.boxes and taken.review == ["the digit search reads 4?"]
    assert taken.confidence == pytest.approx(min(lines.text_probability(line, "42"), 0.9))


def test_training_lines_have_a_question_mark_where_a_letter_stands_in_and_none_without_letter_fonts(monkeypatch):
    from job.data import number_lines
    from job.data.datasets import load_dataset
    from job.data.letters import fonts

    sample = load_dataset("mnist-sample")
    monkeypatch.setattr(number_lines, "LETTER_SHARE", 1.0)
    x, y = sample.x_train[:300], sample.y_train[:300]
    images, texts = number_lines.number_lines(x, y, 12, seed=3, fonts=fonts("train"), workers=1)
    assert len(images) >= 10 and all(image.shape[0] == lines.HEIGHT for image in images)
    assert all(text.count("?") == 1 and set(text) <= set(lines.CLASSES) for text in texts), texts
    _, plain = number_lines.number_lines(x, y, 12, seed=3, fonts=(), workers=1)
    assert plain and all(text.isdigit() for text in plain), plain


@pytest.mark.slow
def test_a_line_reader_is_trained_exported_gated_and_read_with(run_dir, tmp_path):
    """train-lines writes lines.keras and its figure; export writes lines.onnx, gated against Keras and listed
    in the manifest; read then uses it (a row's reason names what each reader read where they differ)."""
    from job.train.line_reader import train_line_reader

    run = tmp_path / "run"
    shutil.copytree(run_dir, run, ignore=shutil.ignore_patterns("export*"))
    metrics = train_line_reader(run, lines=160, epochs=1, validation=60, log=lambda _: None)
    assert metrics["held_out_lines"] == 60 and 0 <= metrics["lines_read_exactly"] <= 1
    assert metrics["letter_lines"] > 0 and 0 <= metrics["letters_read_as_unknown"] <= 1  # letters, read as "?"
    assert json.loads((run / "lines.json").read_text()) == metrics
    result = run_cli("export", run, "--format", "onnx", "--no-calibrate", "--json")
    assert result.returncode == 0, result.stderr
    manifest = json.loads(result.stdout)
    assert manifest["line_reader"]["passed"] and manifest["line_reader"]["texts_differ"] == 0
    assert manifest["line_reader"]["training"] == metrics
    assert "reading_calibration" not in manifest  # --no-calibrate: read's confidence is not fitted either
    from mnist_predict.files import sha256

    assert manifest["files"][lines.FILE]["sha256"] == sha256(run / "export" / lines.FILE)
    # the gate's lines and Keras's outputs stay in the export, for `mnist-predict check` on the edge
    assert "lines-parity.npz" in manifest["files"]
    checked = run_cli("check", "--model", run / "export" / "model.onnx", "--json", tool="mnist-predict")
    assert checked.returncode == 0, checked.stderr
    assert json.loads(checked.stdout)["line_reader"]["lines"] == manifest["line_reader"]["lines"]
    predictor = Predictor(run / "export" / "model.onnx")
    assert predictor.line_reader().session.get_outputs()[0].shape[2] == len(lines.CLASSES) + 1
    image, _ = draw_number("2026", gap=25)
    readings = predictor.read(np.asarray(image))
    assert readings.ok.all() and len(readings.texts[0]) >= 1
    # read's confidence fitted on numbers of the validation digits, and what read does with it
    from job.data.datasets import load_dataset
    from job.export.reading_calibration import calibrate

    sample = load_dataset("mnist-sample")
    report = calibrate(run / "export", sample.x_train[:300], sample.y_train[:300], count=120, log=lambda _: None)
    assert report["numbers"] >= 110 and report["fitted_on"] == report["numbers"] // 2
    held = report["held_out"]
    assert held["readings"] == report["numbers"] - report["fitted_on"] and 0 <= held["right"] <= 1
    for kind in ("agree", "differ"):  # a line reader of 160 lines: fitted, or skipped with the reason
        assert (len(report[kind]) == {"agree": 3, "differ": 4}[kind]) if kind in report else \
            "a fit needs" in report[f"{kind}_skipped"]
    manifest_path = run / "export" / "manifest.json"
    # 0.88 and 0.12 whatever is read, and flagged below 0.9 unless told otherwise
    calibration = {"agree": [2.0, 0.0, 0.0], "differ": [-2.0, 0.0, 0.0, 0.0], "min_confidence": 0.9}
    manifest_path.write_text(json.dumps({**manifest, "reading_calibration": calibration}))
    predictor = Predictor(run / "export" / "model.onnx")
    assert predictor.read_min_confidence() == 0.9
    calibrated = predictor.read(np.asarray(image))
    assert calibrated.texts == readings.texts
    assert calibrated.confidences[0] == pytest.approx(0.880797 if "line reader reads" not in readings.reasons[0]
                                                      else 0.119203, abs=1e-6)
    assert calibrated.review[0] and calibrated.reasons[0].startswith("confidence below 0.9")
    assert not predictor.read(np.asarray(image), min_confidence=0.05).reasons[0].startswith("confidence below")
    image_file = tmp_path / "2026.png"
    image.save(image_file)
    shown = run_cli("read", image_file, "--model", run / "export" / "model.onnx", "--out", tmp_path / "n.csv",
                    tool="mnist-predict")
    assert shown.returncode == 0 and "confidence below 0.9" in (tmp_path / "n.csv").read_text()
    manifest_path.write_text(json.dumps({**manifest, "reading_calibration": {"agree": [1.0, "x"]}}))
    with pytest.raises(ValueError, match="reading_calibration.agree must be 3 finite numbers"):
        Predictor(run / "export" / "model.onnx").read(np.asarray(image))
    manifest_path.write_text(json.dumps({**manifest, "reading_calibration": {**calibration, "min_confidence": 2}}))
    with pytest.raises(ValueError, match="min_confidence must be a number in"):
        Predictor(run / "export" / "model.onnx").read(np.asarray(image))
    manifest_path.write_text(json.dumps(manifest))
    # a line reader that does not match its manifest is refused, as a model would be
    with open(run / "export" / lines.FILE, "ab") as file:
        file.write(b"\0")
    with pytest.raises(ValueError, match="does not match manifest.json"):
        Predictor(run / "export" / "model.onnx").line_reader()


def test_a_reading_is_as_sure_as_the_fit_says_or_without_one_as_the_bounds_allow():
    from mnist_predict import reading_confidence as rc

    assert rc.agreed(0.9, 0.7) == 0.7 and rc.differing(0.9, 0.3, False) == pytest.approx(0.7)
    assert rc.min_confidence(None) == 0.8 and rc.min_confidence({"agree": [0, 0, 0]}) == 0.8
    fit = {"agree": [0.5, 1.0, 0.25], "differ": [-1.0, 0.5, -0.5, 2.0], "min_confidence": 0.97}
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731
    assert rc.agreed(0.9, 0.7, fit) == pytest.approx(1 / (1 + np.exp(-(0.5 + logit(0.9) + 0.25 * logit(0.7)))))
    assert rc.differing(0.6, 0.3, True, fit) == pytest.approx(
        1 / (1 + np.exp(-(-1.0 + 0.5 * logit(0.6) - 0.5 * logit(0.3) + 2.0))))
    assert rc.agreed(1.0, 1.0, fit) < 1 and rc.agreed(0.0, 0.0, fit) > 0  # clipped: a 1.0 product is still finite
    assert rc.min_confidence(fit) == 0.97 and rc.checked(fit) is fit
    with pytest.raises(ValueError, match="differ must be 4 finite numbers"):
        rc.checked({"differ": [1.0, 2.0, float("nan"), 0.0]})


def test_the_reading_calibration_fit_recovers_the_weights_that_made_the_answers():
    from job.export.reading_calibration import calibration_error, fit_logistic

    rng = np.random.default_rng(0)
    features = np.column_stack([np.ones(20000), rng.normal(0, 3, 20000), rng.normal(0, 3, 20000)])
    truth = np.array([0.5, 1.2, -0.4])
    right = rng.random(20000) < 1 / (1 + np.exp(-features @ truth))
    assert fit_logistic(features, right) == pytest.approx(truth, abs=0.08)
    # readings that separate cleanly still get finite weights (the ridge)
    assert np.isfinite(fit_logistic(features[:200], features[:200, 1] > 0)).all()
    # the calibration error: 0.9 said, 60% right, in one bin; 0.3 said, 30% right, in another
    said = np.array([0.9] * 10 + [0.3] * 10)
    got = np.array([1] * 6 + [0] * 4 + [1] * 3 + [0] * 7, bool)
    assert calibration_error(said, got) == pytest.approx(0.5 * 0.3 + 0.5 * 0.0)


def test_the_line_reader_never_trains_on_the_runs_validation_digits(run_dir, monkeypatch):
    """export calibrates read's confidence on numbers of the run's validation digits, so the line reader, like
    the digit model, must not have seen them: it renders its lines from the run's training split alone."""
    from job.data import number_lines
    from job.train import line_reader as trainer
    from job.train import rundir

    rendered = {}

    def render(x, y, count, seed=0, fonts=(), workers=None):
        rendered.update(x=x, y=y)
        raise RuntimeError("rendered")  # what was asked is all this test needs

    monkeypatch.setattr(number_lines, "number_lines", render)
    with pytest.raises(RuntimeError, match="rendered"):
        trainer.train_line_reader(run_dir, lines=1100, epochs=1, log=lambda _: None)
    from job.data.datasets import load_dataset, training_split
    from job.train.run_config import recorded

    config = rundir.read_json(run_dir / rundir.CONFIG)
    sample = load_dataset("mnist-sample")
    _, _, x_val, _ = training_split(recorded(config), sample)
    seen = {digit.tobytes() for digit in rendered["x"]}
    assert len(rendered["x"]) == len(sample.x_train) - len(x_val) == len(rendered["y"])
    assert not any(digit.tobytes() in seen for digit in x_val)


def test_train_lines_refuses_a_folder_without_a_finished_run(tmp_path):
    result = run_cli("train-lines", tmp_path)
    assert result.returncode != 0
    assert "no finished run" in result.stderr.strip().splitlines()[-1]
