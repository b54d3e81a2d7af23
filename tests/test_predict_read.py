"""Reading whole numbers (`mnist-predict read`, `Predictor.read`): segmentation, boxes, options, formats.

The model is predict_fixtures' digit-template classifier (digit_export); the numbers are drawn with the font its
templates come from, digit by digit, so the spacing (a gap, or glyphs pushed into each other until they touch)
and every digit's box are known. A template model reads only what it was made from, so these tests check the
cutting, the search and the boxes, not the recognition of handwriting (bench/numbers.py measures that with a
trained model).
"""

import json

import numpy as np
import pytest
from mnist_predict import Predictor, numbers
from PIL import Image, ImageDraw
from predict_fixtures import (DIGIT_LABELS, digit_export, digit_templates, draw_number, glyphs,  # noqa: F401
                              read_rows, predict_cli, template_keras, touching, write_export)

@pytest.fixture(scope="session")
def predictor(digit_export):
    return Predictor(digit_export / "model.onnx")


@pytest.mark.parametrize("text", ["7", "42", "314", "2026", "90210", "123456", "8675309", "00127834"])
def test_numbers_with_gaps_are_read_exactly(predictor, text):
    image, _ = draw_number(text, gap=25)
    readings = predictor.read(np.asarray(image))
    assert readings.texts == [text]  # leading zeros kept
    assert readings.ok.all() and not readings.review.any(), readings.reasons
    assert [label for label, _ in readings.digits[0]] == list(text)


# the last four are read right since cuts start closer in pieces wider than numbers.FINE_WIDE line heights
@pytest.mark.parametrize("text", ["42", "38", "360", "7777", "186", "0890", "4496", "911179"])
def test_touching_digits_are_split(predictor, text):
    image, _ = touching(text)
    assert predictor.read(np.asarray(image)).texts == [text]



def boxed(text, cells=True, margin=60, line=2):
    """The number drawn with gaps, in a printed box a quarter of the digits' height from them on every side, each
    digit in a cell of its own (score boxes, neighbours sharing an edge) or not. Returns the image,
    the digits' ink boxes and the box's right edge. With the default margin the box's lines run across more
    than 60% of the image's width (rules) and its edges less than 60% of its height (no rules)."""
    image, boxes = draw_number(text, gap=25, margin=margin)
    pen = ImageDraw.Draw(image)
    height = max(h for _, _, _, h in boxes)
    top, bottom = min(y for _, y, _, _ in boxes) - height // 4, max(y + h for _, y, _, h in boxes) + height // 4
    edges = [boxes[0][0] - height // 4] + [(a[0] + a[2] + b[0]) // 2 for a, b in zip(boxes, boxes[1:]) if cells] + \
            [boxes[-1][0] + boxes[-1][2] + height // 4]
    pen.rectangle([edges[0], top, edges[-1], bottom], outline=0, width=line)
    for x in edges[1:-1]:
        pen.line([x, top, x, bottom], fill=0, width=line)
    return image, boxes, edges[-1]


@pytest.mark.parametrize("text", ["2026", "1171", "31415", "90210", "7141"])
def test_numbers_in_score_boxes_are_read_without_the_boxes_edges(predictor, text):
    """The lines over and under the digits go as rules, and the upright edges between them with them
    (images._remove_box_edges), but not a 1 inside a box: before, each edge was one more 1."""
    readings = predictor.read(np.asarray(boxed(text)[0]))
    assert readings.texts == [text], readings.reasons


@pytest.mark.parametrize("text", ["42", "07", "100", "2026"])
def test_a_box_around_the_number_is_no_digit(predictor, text, monkeypatch):
    """A score box drawn around the whole number, too short to be a rule: a piece whose ink runs along its own
    box's edges around other pieces is a box (numbers.is_frame), not a 1 or a 0 beside the number. A 0 holds
    no piece, and a digit that touches the box keeps it (its ink lies inside), so no digit is dropped."""
    image, boxes, right = boxed(text, cells=False, margin=120)
    readings = predictor.read(np.asarray(image))
    assert readings.texts == [text], readings.reasons
    # a stroke from the last digit to the box makes them one piece: kept, so the digit is still read, even
    # where a box is looked for whatever the pieces' density (FRAME_DENSITY, which alone would keep it here)
    x, y, w, h = boxes[-1]
    ImageDraw.Draw(image).line([x + w // 2, y + h // 2, right, y + h // 2], fill=0, width=3)
    monkeypatch.setattr(numbers, "FRAME_DENSITY", 1.0)
    layout = numbers.layout_of(np.asarray(image))
    assert any(cx <= x + w // 2 < cx + cw and cy <= y + h // 2 < cy + ch for cx, cy, cw, ch in
               (c.box for c in layout.candidates))


@pytest.mark.parametrize("text", ["42", "38", "360", "7777"])
def test_runs_left_unframed_are_too_wide_or_too_unlikely_and_change_no_reading(predictor, text):
    """`read` frames only the runs of atoms that could be a digit: against framing every run up to 1.6 line
    heights wide (what training frames), it leaves out runs of several atoms wider than numbers.MAX_WIDTH or
    with a log-prior under MIN_PRIOR, frames the others alike, and reads the same."""
    left_out = 0
    for image, _ in (draw_number(text, gap=4), touching(text)):
        gray = np.asarray(image)
        every, framed = numbers.layout_of(gray, max_width=1.6, min_prior=-np.inf), numbers.layout_of(gray)
        kept = {(c.line, c.start, c.stop): c for c in framed.candidates}
        for c in every.candidates:
            if (c.line, c.start, c.stop) in kept:
                assert np.array_equal(framed.inputs[kept[c.line, c.start, c.stop].index], every.inputs[c.index])
            else:
                assert c.stop - c.start > 1 and (c.width > numbers.MAX_WIDTH or c.prior < numbers.MIN_PRIOR), c
        left_out += len(every.candidates) - len(framed.candidates)
        readings = [numbers.choose(layout, predictor.run(layout.inputs)) for layout in (framed, every)]
        assert [reading.text for reading in readings] == [text, text]
    assert left_out > 0


def test_boxes_land_on_the_digits_in_original_pixels_after_exif_rotation(tmp_path, predictor):
    image, boxes = draw_number("3907", gap=30)
    image.save(tmp_path / "upright.png")
    # The phone's way: pixels stored turned a quarter, and EXIF orientation 8 saying to turn them back.
    stored = image.transpose(Image.Transpose.ROTATE_270)
    exif = Image.Exif()
    exif[0x0112] = 8
    stored.save(tmp_path / "turned.jpg", exif=exif, quality=95)
    readings = predictor.read([tmp_path / "upright.png", tmp_path / "turned.jpg"])
    assert readings.texts == ["3907", "3907"]
    for found in readings.boxes:
        for (x, y, w, h), (bx, by, bw, bh) in zip(found, boxes):
            assert abs(x - bx) <= 4 and abs(y - by) <= 4 and abs(x + w - bx - bw) <= 4 and abs(y + h - by - bh) <= 4


def test_length_prefers_that_many_digits_and_flags_a_wrong_count(predictor):
    image, _ = draw_number("2718", gap=25)
    pixels = np.asarray(image)
    assert not predictor.read(pixels, length=4).review[0]
    assert not predictor.read(pixels, length=(3, 5)).review[0]
    wrong = predictor.read(pixels, length=6)
    assert wrong.review[0] and "4 digits, not 6" in wrong.reasons[0]


def test_a_mark_that_is_no_digit_reads_as_a_question_mark_and_is_flagged(predictor):
    image, boxes = draw_number("18", gap=140)
    (x, y, w, h), (x2, _, _, _) = boxes
    pixels = np.asarray(image).copy()
    middle = (x + w + x2) // 2
    pixels[y:y + h, middle - h // 2:middle + h // 2] = 0  # a solid square: no digit template matches it
    readings = predictor.read(pixels)
    assert readings.texts == ["1?8"]
    assert readings.review[0] and "not a digit" in readings.reasons[0]


def test_lines_are_read_top_to_bottom_joined_by_a_space(predictor):
    top, _ = draw_number("12", gap=25, margin=20)
    bottom, _ = draw_number("345", gap=25, margin=20)
    page = Image.new("L", (max(top.width, bottom.width), top.height + bottom.height + 40), 255)
    page.paste(top, (0, 0))
    page.paste(bottom, (0, top.height + 40))
    assert predictor.read(np.asarray(page)).texts == ["12 345"]


def test_a_blank_page_is_an_error_row_and_the_batch_goes_on(tmp_path, digit_export, predict_cli):
    folder = tmp_path / "forms"
    folder.mkdir()
    Image.new("L", (400, 200), 235).save(folder / "a-blank.png")
    draw_number("604")[0].save(folder / "b-number.png")
    (folder / "c-broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    result = predict_cli("read", folder, "--model", digit_export, "--out", tmp_path / "numbers.csv")
    assert result.code == 3, result.err
    rows = read_rows(tmp_path / "numbers.csv")
    assert [row["status"] for row in rows] == ["error", "ok", "error"]
    assert "no digits found" in rows[0]["error"] and rows[1]["text"] == "604"
    assert rows[2]["error"]
    assert list(rows[0]) == ["path", "text", "confidence", "digits", "boxes", "review", "status", "error",
                             "review_reason"]
    digits = rows[1]["digits"].split()
    assert [d.split(":")[0] for d in digits] == ["6", "0", "4"] and all(0 < float(d.split(":")[1]) <= 1 for d in digits)
    assert len(rows[1]["boxes"].split()) == 3
    with pytest.raises(numbers.image_io.ImageError, match="a-blank.png: no digits found"):
        Predictor(digit_export / "model.onnx").read(folder / "a-blank.png")


def test_read_jsonl_json_summary_and_shards_merge_like_predict(tmp_path, digit_export, predict_cli):
    folder = tmp_path / "numbers"
    folder.mkdir()
    for k, text in enumerate(["12", "345", "6789", "90", "5"]):
        draw_number(text, gap=25)[0].save(folder / f"n{k}.png")
    result = predict_cli("read", folder, "--model", digit_export, "--out", tmp_path / "all.jsonl", "--json")
    assert result.code == 0, result.err
    summary = json.loads(result.out)
    assert summary["files"] == 5 and summary["succeeded"] == 5 and summary["histogram"]["4 digits"] == 1
    records = [json.loads(line) for line in (tmp_path / "all.jsonl").read_text().splitlines()]
    assert [r["text"] for r in records] == ["12", "345", "6789", "90", "5"]
    assert records[2]["digits"][0]["label"] == "6" and len(records[2]["boxes"][0]) == 4
    for shard in ("0/2", "1/2"):
        result = predict_cli("read", folder, "--model", digit_export, "--shard", shard,
                         "--out", tmp_path / f"part-{shard[0]}.csv")
        assert result.code == 0, result.err
    assert predict_cli("merge", tmp_path / "part-*.csv", "--out", tmp_path / "merged.csv").code == 0
    assert predict_cli("read", folder, "--model", digit_export, "--out", tmp_path / "one.csv").code == 0
    assert (tmp_path / "merged.csv").read_bytes() == (tmp_path / "one.csv").read_bytes()
    # a predict shard and a read shard are not one run
    predict_cli(folder, "--model", digit_export, "--shard", "1/2", "--out", tmp_path / "p-1.csv")
    mixed = predict_cli("merge", tmp_path / "part-0.csv", tmp_path / "p-1.csv", "--out", tmp_path / "x.csv")
    assert mixed.code == 2 and "differ" in mixed.err


def test_read_refuses_a_model_that_is_not_a_digit_model(tmp_path, glyphs, predict_cli):  # noqa: F811
    write_export(tmp_path / "named", glyphs)  # classes zero, one, ...: a model of ten named classes
    draw_number("12")[0].save(tmp_path / "n.png")
    result = predict_cli("read", tmp_path / "n.png", "--model", tmp_path / "named")
    assert result.code == 2 and "not a digit model" in result.err
    bad = predict_cli("read", tmp_path / "n.png", "--model", tmp_path / "named", "--length", "6-4")
    assert bad.code == 2 and "--length" in bad.err


def test_preview_draws_readings(tmp_path, digit_export, predict_cli):
    folder = tmp_path / "numbers"
    folder.mkdir()
    draw_number("4711")[0].save(folder / "a.png")
    Image.new("L", (300, 120), 240).save(folder / "b.png")
    result = predict_cli("preview", "--read", folder, "--model", digit_export, "--out", tmp_path / "sheet.png")
    assert result.code == 0, result.err
    assert "2 images drawn" in result.out and "1 error" in result.out
    sheet = np.asarray(Image.open(tmp_path / "sheet.png").convert("RGB")).astype(int)
    box_blue = (np.abs(sheet - (0, 110, 220)).sum(axis=2) < 30).sum()
    assert box_blue > 100  # the digit boxes are drawn
    assert predict_cli("preview", folder, "--model", digit_export, "--length", "4", "--out", tmp_path / "x.png").code == 2


@pytest.fixture(scope="session")
def three_runtimes(tmp_path_factory, digit_templates, digit_export):
    """The digit-template model as fp32 ONNX, int8 ONNX and LiteRT (built with TensorFlow, run without)."""
    from job.export.formats import litert, onnx as onnx_format, savedmodel

    directory = tmp_path_factory.mktemp("runtimes")
    int8 = directory / "model.int8.onnx"
    # calibrated on what reading feeds it (digits, slivers, fragments), as export calibrates on test images;
    # the matrix product in int8, the normalisation and the gate in float
    calibration = np.concatenate([numbers.layout_of(np.asarray(touching(text)[0])).inputs
                                  for text in ("4096", "1357", "2468")]).astype(np.float32)
    onnx_format.write_int8(digit_export / "model.onnx", int8, calibration, {"labels": json.dumps(DIGIT_LABELS)},
                           op_types_to_quantize=["MatMul"])
    model = template_keras(digit_templates)
    savedmodel.write(model, directory / "saved")
    litert.write(directory / "saved", directory / "model.tflite")
    (directory / "manifest.json").write_text(json.dumps({"files": {}, "labels": DIGIT_LABELS}))
    return [digit_export / "model.onnx", int8, directory / "model.tflite"]


def test_read_through_onnx_int8_and_litert_gives_the_same_text(tmp_path, three_runtimes):
    paths = []
    for k, (text, gap) in enumerate([("8142", 25), ("507", 25), ("36", None)]):
        image = draw_number(text, gap)[0] if gap is not None else touching(text)[0]
        image.save(tmp_path / f"{k}.png")
        paths.append(tmp_path / f"{k}.png")
    texts = [Predictor(model).read(paths).texts for model in three_runtimes]
    assert texts[0] == ["8142", "507", "36"]
    assert texts[1] == texts[0] and texts[2] == texts[0]
