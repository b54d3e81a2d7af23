"""Shared fixtures for the predictor tests: a tiny real ONNX model that recognises rendered digits.

The model is a fixed linear classifier (Flatten -> MatMul -> Add -> Softmax) whose weights are ten glyph
templates, so its predictions are checkable without TensorFlow or any training. Import the fixtures by
name into a test module: `from predict_fixtures import export_dir, ...`.
"""

import hashlib
import json
import math
import shutil
from dataclasses import dataclass

import numpy as np
import onnx
import pytest
from mnist_predict import cli, images, lines, numbers
from onnx import TensorProto, helper, numpy_helper
from PIL import Image, ImageDraw, ImageFilter, ImageFont

LABELS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def render(digit, size=(96, 128), offset=(0, 0), font_size=100):
    """A white digit on black, drawn large with Pillow's bundled font, as a (height, width) uint8 array."""
    canvas = Image.new("L", size, 0)
    draw = ImageDraw.Draw(canvas)
    centre = (size[0] / 2 + offset[0], size[1] / 2 + offset[1])
    draw.text(centre, str(digit), fill=255, font=ImageFont.load_default(font_size), anchor="mm")
    return np.asarray(canvas)


def templates():
    """The ten digits as the predictor sees them after --resize mnist: what the classifier matches."""
    return np.stack([images.mnist_normalize(render(digit)) for digit in range(10)])


def build_model(path, weights, bias, labels=LABELS, input_shape=("N", 28, 28)):
    """Write a Flatten -> MatMul -> Add -> Softmax model following docs/artifacts.md."""
    nodes = [
        helper.make_node("Reshape", ["image", "flat_shape"], ["flat"]),
        helper.make_node("MatMul", ["flat", "weights"], ["logits_raw"]),
        helper.make_node("Add", ["logits_raw", "bias"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1),
    ]
    initializers = [
        numpy_helper.from_array(np.array([-1, 784], np.int64), "flat_shape"),
        numpy_helper.from_array(weights.astype(np.float32), "weights"),
        numpy_helper.from_array(bias.astype(np.float32), "bias"),
    ]
    graph = helper.make_graph(
        nodes,
        "glyphs",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, list(input_shape))],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 10])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    if labels is not None:
        helper.set_model_props(model, {"labels": json.dumps(labels), "model": "glyph-templates"})
    onnx.save(model, path)
    return path


def template_weights(glyphs):
    # Matched filters: zero-mean, unit-norm templates. By Cauchy-Schwarz a template scores highest
    # against itself; the scale turns score gaps of a few hundred into confident softmax outputs.
    flat = glyphs.reshape(10, -1).astype(np.float64)
    centred = flat - flat.mean(axis=1, keepdims=True)
    return (centred / np.linalg.norm(centred, axis=1, keepdims=True)).T / 20, np.zeros(10)


def fake_line_reader(directory, sharp=4.0, char="1", classes=12):
    """A lines.onnx (mnist_predict.lines' contract) that reads every run of inked columns as `char`, and lists
    it in the export's manifest: each output column's ink (the brightest pixel of its 4 px) raises `char`'s
    logit and lowers blank's by up to `sharp`, so a soft one (small `sharp`) is unsure of what it reads. Its
    numbers are not a digit reader's; what it tests is that the line images, padding, cropping and weighing
    are the same wherever they run."""
    scale, bias = np.zeros(classes, np.float32), np.full(classes, -10.0, np.float32)
    scale[lines.BLANK], bias[lines.BLANK] = -2 * sharp / 255, sharp
    scale[lines.label(char)], bias[lines.label(char)] = 2 * sharp / 255, -sharp
    nodes = [
        helper.make_node("ReduceMax", ["line"], ["columns"], axes=[1], keepdims=0),
        helper.make_node("Reshape", ["columns", "groups"], ["grouped"]),
        helper.make_node("ReduceMax", ["grouped"], ["ink"], axes=[2], keepdims=1),
        helper.make_node("Mul", ["ink", "scale"], ["scaled"]),
        helper.make_node("Add", ["scaled", "bias"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1),
    ]
    initializers = [numpy_helper.from_array(np.array([0, -1, lines.STRIDE], np.int64), "groups"),
                    numpy_helper.from_array(scale, "scale"), numpy_helper.from_array(bias, "bias")]
    graph = helper.make_graph(
        nodes, "fake_line_reader",
        [helper.make_tensor_value_info("line", TensorProto.FLOAT, ["N", lines.HEIGHT, "W"])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", "C", classes])], initializers)
    path = directory / lines.FILE
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), path)
    manifest_path = directory / "manifest.json"
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text())
        manifest["files"][lines.FILE] = {"sha256": sha256(path), "size": path.stat().st_size}
        manifest_path.write_text(json.dumps(manifest))
    return path


def outputs_reading(text, columns_per_digit=3, sure=0.98, classes=12):
    """(columns, classes) probabilities whose best path reads `text`: each character over a few columns, a
    blank column between, the rest of each column's probability spread over the other classes."""
    rows = [lines.BLANK]
    for char in text:
        rows += [lines.label(char)] * columns_per_digit + [lines.BLANK]
    out = np.full((len(rows), classes), (1 - sure) / (classes - 1))
    out[np.arange(len(rows)), rows] = sure
    return out


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_export(directory, glyphs, weights=None, bias=None, name="model.onnx", labels=LABELS):
    """model.onnx, parity.npz (this model's own outputs standing in for Keras) and manifest.json."""
    import onnxruntime as ort

    directory.mkdir(parents=True, exist_ok=True)
    default_weights, default_bias = template_weights(glyphs)
    model = build_model(
        directory / name,
        default_weights if weights is None else weights,
        default_bias if bias is None else bias,
        labels=labels,
    )
    rng = np.random.default_rng(0)
    tests = np.clip(glyphs.astype(np.float32) + rng.normal(0, 20, glyphs.shape), 0, 255)
    edge = np.stack([np.zeros((28, 28)), np.full((28, 28), 255.0), rng.uniform(0, 255, (28, 28))])
    inputs = np.concatenate([tests, edge]).astype(np.float32)
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    np.savez(
        directory / "parity.npz",
        inputs=inputs,
        probabilities=session.run(None, {"image": inputs})[0],
        kinds=np.array(["test"] * 10 + ["zeros", "full255", "noise"]),
        labels=np.array(list(range(10)) + [-1] * 3, np.int64),
    )
    manifest = {
        "files": {name: {"sha256": sha256(model), "size": model.stat().st_size}},
        "input": {"name": "image", "dtype": "float32", "shape": [None, 28, 28]},
        "output": {"name": "probabilities", "dtype": "float32", "shape": [None, 10]},
        "labels": labels,
        "opset": 17,
        "model": "glyph-templates",
    }
    (directory / "manifest.json").write_text(json.dumps(manifest))
    return model


@pytest.fixture(scope="session")
def glyphs():
    return templates()


@pytest.fixture(scope="session")
def export_dir(tmp_path_factory, glyphs):
    """A read-only-by-convention export directory; copy it (`fresh_export`) before changing it."""
    directory = tmp_path_factory.mktemp("export")
    write_export(directory, glyphs)
    return directory


@pytest.fixture
def fresh_export(tmp_path, export_dir):
    return shutil.copytree(export_dir, tmp_path / "export")


@pytest.fixture
def model_path(export_dir):
    return export_dir / "model.onnx"


@pytest.fixture
def digit_folder(tmp_path, glyphs):
    """digits/NN-D.png: thirty 28x28 digits, D being the true label."""
    folder = tmp_path / "digits"
    folder.mkdir()
    for index in range(30):
        Image.fromarray(glyphs[index % 10]).save(folder / f"{index:02d}-{index % 10}.png")
    return folder


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def predict_cli(capsys, monkeypatch):
    """Run `mnist-predict ARGS...` in this process; returns (code, stdout, stderr)."""
    monkeypatch.setenv("COLUMNS", "200")  # keep Rich from wrapping paths in the summary

    def run(*args):
        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_info:
            cli.main([str(arg) for arg in args])
        captured = capsys.readouterr()
        return Result(exit_info.value.code, captured.out, captured.err)

    return run


def read_rows(path):
    """The rows of a predictions CSV as dicts."""
    import csv

    with open(path, newline="") as file:
        return list(csv.DictReader(file))


@pytest.fixture(scope="session")
def tflite_export(tmp_path_factory, glyphs):
    """The glyph-template model as LiteRT: model.tflite beside a manifest and parity.npz, as export writes them.
    Built with TensorFlow here; the tests then run it without."""
    import keras

    from job.export.formats import litert, savedmodel
    from mnist_predict.runtimes import LiteRt

    directory = tmp_path_factory.mktemp("tflite")
    weights, bias = template_weights(glyphs)
    inputs = keras.Input((28, 28), name="image")
    flat = keras.layers.Reshape((784,))(inputs)
    outputs = keras.layers.Dense(10, activation="softmax", name="probabilities")(flat)
    model = keras.Model(inputs, outputs)
    model.get_layer("probabilities").set_weights([weights.astype(np.float32), bias.astype(np.float32)])
    savedmodel.write(model, directory / "saved")
    litert.write(directory / "saved", directory / "model.tflite")
    shutil.rmtree(directory / "saved")
    write_export(directory / "onnx", glyphs)  # the same model as ONNX: its parity inputs, LiteRT's outputs
    with np.load(directory / "onnx" / "parity.npz") as onnx_reference:
        reference = dict(onnx_reference)
    reference["probabilities"] = LiteRt(directory / "model.tflite", 1).run(reference["inputs"])
    np.savez(directory / "parity.npz", **reference)
    manifest = {"files": {"model.tflite": {"sha256": sha256(directory / "model.tflite"),
                                           "size": (directory / "model.tflite").stat().st_size}},
                "labels": LABELS, "model": "glyph-templates"}
    (directory / "manifest.json").write_text(json.dumps(manifest))
    return directory


# ---- numbers: a digit model of templates, and numbers drawn with their font (test_predict_read, test_web) ----

DIGIT_LABELS = [str(d) for d in range(10)]
FONT_SIZE = 90


def draw_number(text, gap=20, size=FONT_SIZE, margin=60):
    """Dark digits on white paper, left to right, `gap` px apart (negative: overlapping boxes). Returns the
    image (L) and each character's ink box (x, y, w, h)."""
    font = ImageFont.load_default(size)
    inks = []
    for char in text:
        canvas = Image.new("L", (size * 2, size * 2), 0)
        ImageDraw.Draw(canvas).text((size // 2, size // 2), char, fill=255, font=font)
        ink = np.asarray(canvas)
        rows, cols = np.flatnonzero(ink.max(axis=1) > 0), np.flatnonzero(ink.max(axis=0) > 0)
        inks.append((ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1], rows[0]))
    top = min(offset for _, offset in inks)
    height = max(ink.shape[0] + offset - top for ink, offset in inks)
    width = sum(ink.shape[1] for ink, _ in inks) + gap * (len(inks) - 1)
    page = np.zeros((height + 2 * margin, width + 2 * margin), np.uint8)
    x, boxes = margin, []
    for ink, offset in inks:
        y = margin + offset - top
        region = page[y:y + ink.shape[0], x:x + ink.shape[1]]
        np.maximum(region, ink, out=region)
        boxes.append((x, y, ink.shape[1], ink.shape[0]))
        x += ink.shape[1] + gap
    return Image.fromarray(255 - page), boxes


def touching(text):
    """The number with each glyph pushed into its neighbour until their ink meets (and a little more)."""
    for gap in range(0, -40, -1):
        image, boxes = draw_number(text, gap)
        ink = np.asarray(image) < 128
        pieces = numbers.image_io.components(ink, ink.astype(np.float32))[1]
        if len(pieces) == 1:
            return image, boxes
    raise AssertionError(f"{text}: the glyphs never touched")


def two_pens(text, felt=6, fine=3, size=FONT_SIZE, margin=60):
    """`text` on white paper, its first digit written with a felt pen and the others with a fine one (each
    fine digit has about a fifth of the felt one's ink): what a form filled in twice looks like."""
    font = ImageFont.load_default(size)
    felt_ink = Image.new("L", (2 * margin + size * len(text), 2 * margin + size), 0)
    fine_ink = felt_ink.copy()
    ImageDraw.Draw(felt_ink).text((margin, margin), text[0], fill=255, font=font, stroke_width=felt, stroke_fill=255)
    ImageDraw.Draw(fine_ink).text((margin + size, margin), text[1:], fill=255, font=font)
    fine_ink = fine_ink.filter(ImageFilter.MinFilter(fine))
    return Image.fromarray(255 - np.maximum(np.asarray(felt_ink), np.asarray(fine_ink)))


def framed_digits(text, gap, margin=60):
    """How `read` frames each digit of `text` drawn with this gap: the candidates of one atom each, in order."""
    image, boxes = draw_number(text, gap, margin=margin)
    layout = numbers.layout_of(np.asarray(image))
    found = []
    for x, y, w, h in boxes:
        found.append(next(layout.inputs[c.index] for c in layout.candidates
                          if abs(c.box[0] - x) <= 3 and abs(c.box[0] + c.box[2] - x - w) <= 3))
    return found


# Digits as a mouse draws them on the page's pad (560x280): polylines in a glyph box 80 wide, 160 tall,
# centred on (0, 0). tests/web/read.mjs draws them with the mouse; draw_pen renders them the same way here.
PEN_DIGITS = {
    "0": [[(40 * math.sin(i / 20 * math.pi), -80 * math.cos(i / 20 * math.pi)) for i in range(41)]],
    "1": [[(8, -80), (4, 0), (0, 80)]],
    "4": [[(15, -80), (-40, 20), (40, 20)], [(20, -40), (20, 82)]],
    "7": [[(-40, -78), (40, -78), (-10, 80)]],
}
PEN_WIDTH = 18  # deploy/web/app.js draws a mouse's strokes this wide, with round caps and joins


def pen_number(text, width=560, height=280):
    """The strokes of `text` in PEN_DIGITS, spread across a pad, as pad coordinates."""
    xs = np.linspace(width / 7, width * 6 / 7, len(text)) if len(text) > 1 else [width / 2]
    return [[(x + px, height / 2 + py) for px, py in line] for char, x in zip(text, xs) for line in PEN_DIGITS[char]]


def draw_pen(strokes, width=560, height=280):
    """The strokes as the pad shows them: black, PEN_WIDTH wide, round, on white."""
    image = Image.new("L", (width, height), 255)
    pen = ImageDraw.Draw(image)
    for line in strokes:
        pen.line(line, fill=0, width=PEN_WIDTH, joint="curve")
        for x, y in (line[0], line[-1]):
            pen.ellipse([x - PEN_WIDTH / 2, y - PEN_WIDTH / 2, x + PEN_WIDTH / 2, y + PEN_WIDTH / 2], fill=0)
    return image


@pytest.fixture(scope="session")
def digit_templates():
    """(10, K, 28, 28): each digit as read frames it alone (on a page smaller and larger than the working
    copy), in numbers, and drawn with the pad's pen where PEN_DIGITS has it: the templates of a nearest-
    template classifier, robust to how the page was cut."""
    variants = [framed_digits(str(d), 25, margin) for margin in (40, 130) for d in range(10)]
    alone = [[variants[m * 10 + d][0] for m in range(2)] for d in range(10)]
    forwards, backwards = framed_digits("0123456789", 25), framed_digits("9876543210", 12)[::-1]
    drawn = [numbers.layout_of(np.asarray(draw_pen(pen_number(str(d))))).inputs[0] if str(d) in PEN_DIGITS
             else alone[d][0] for d in range(10)]
    framed = [alone[d] + [forwards[d], backwards[d], drawn[d]] for d in range(10)]
    # each a pixel up, down, left and right too: centring by the centre of mass moves a digit by one
    shifts = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    return np.stack([np.stack([np.roll(t, shift, axis=(0, 1)) for t in framed[d] for shift in shifts])
                     for d in range(10)])


SHARPNESS = 80.0  # softmax over correlations: how sure the best match is over the next
SURE, STEEP = 0.82, 60.0  # a best correlation below SURE leaves the model unsure: its output tends to uniform


def unit_templates(templates):
    """(784, 10K): zero-mean, unit-norm templates, class by class."""
    flat = templates.reshape(-1, 784).astype(np.float64)
    centred = flat - flat.mean(axis=1, keepdims=True)
    return (centred / np.linalg.norm(centred, axis=1, keepdims=True)).T.astype(np.float32)


def template_onnx(path, templates):
    """A nearest-template classifier as ONNX: the input's normalised correlation with every template, the
    best per class; softmax over those, mixed towards uniform as the best match weakens, so that a
    fragment or a mark no template matches comes out unsure, as a trained model's would."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    classes, k = templates.shape[:2]
    constants = {"flat_shape": np.array([-1, 784], np.int64), "class_shape": np.array([-1, classes, k], np.int64),
                 "axis1": np.array([1], np.int64), "axis2": np.array([2], np.int64),
                 "weights": unit_templates(templates), "eps": np.float32(1e-6), "sharp": np.float32(SHARPNESS),
                 "sure": np.float32(SURE), "steep": np.float32(STEEP), "one": np.float32(1.0),
                 "uniform": np.float32(1.0 / classes)}
    node = helper.make_node
    nodes = [node("Reshape", ["image", "flat_shape"], ["flat"]),
             node("ReduceMean", ["flat", "axis1"], ["mean"], keepdims=1),
             node("Sub", ["flat", "mean"], ["centred"]),
             node("ReduceL2", ["centred", "axis1"], ["norm"], keepdims=1),
             node("Add", ["norm", "eps"], ["norm_eps"]),
             node("Div", ["centred", "norm_eps"], ["unit"]),
             node("MatMul", ["unit", "weights"], ["correlations"]),
             node("Reshape", ["correlations", "class_shape"], ["per_class"]),
             node("ReduceMax", ["per_class", "axis2"], ["best"], keepdims=0),
             node("ReduceMax", ["best", "axis1"], ["top"], keepdims=1),
             node("Sub", ["top", "sure"], ["margin"]),
             node("Mul", ["margin", "steep"], ["gate_logit"]),
             node("Sigmoid", ["gate_logit"], ["gate"]),
             node("Mul", ["best", "sharp"], ["logits"]),
             node("Softmax", ["logits"], ["soft"], axis=-1),
             node("Mul", ["soft", "gate"], ["confident"]),
             node("Sub", ["one", "gate"], ["doubt"]),
             node("Mul", ["doubt", "uniform"], ["spread"]),
             node("Add", ["confident", "spread"], ["probabilities"])]
    graph = helper.make_graph(nodes, "digit-templates",
                              [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 28, 28])],
                              [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", classes])],
                              [numpy_helper.from_array(np.asarray(v), name) for name, v in constants.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)
    helper.set_model_props(model, {"labels": json.dumps(DIGIT_LABELS), "model": "digit-templates"})
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def template_keras(templates):
    """The same classifier in Keras, for the LiteRT file."""
    import keras
    from keras import ops

    classes, k = templates.shape[:2]
    image = keras.Input((28, 28), name="image")
    flat = keras.layers.Reshape((784,))(image)
    centred = flat - ops.mean(flat, axis=1, keepdims=True)
    unit = centred / (ops.sqrt(ops.sum(centred * centred, axis=1, keepdims=True)) + 1e-6)
    best = ops.max(ops.reshape(ops.matmul(unit, unit_templates(templates)), (-1, classes, k)), axis=-1)
    gate = ops.sigmoid((ops.max(best, axis=1, keepdims=True) - SURE) * STEEP)
    probabilities = ops.softmax(best * SHARPNESS, axis=-1) * gate + (1 - gate) / classes
    return keras.Model(image, probabilities)


@pytest.fixture(scope="session")
def digit_export(tmp_path_factory, digit_templates):
    """An export of the digit-template model: model.onnx, parity.npz (its own outputs standing in for Keras'),
    and manifest.json with the classes 0-9."""
    import onnxruntime as ort

    directory = tmp_path_factory.mktemp("digits")
    model = template_onnx(directory / "model.onnx", digit_templates)
    inputs = digit_templates[:, 0].astype(np.float32)
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    np.savez(directory / "parity.npz", inputs=inputs, probabilities=session.run(None, {"image": inputs})[0],
             kinds=np.array(["test"] * 10), labels=np.arange(10, dtype=np.int64))
    (directory / "manifest.json").write_text(json.dumps({
        "files": {"model.onnx": {"sha256": sha256(model), "size": model.stat().st_size}},
        "labels": DIGIT_LABELS, "model": "digit-templates"}))
    return directory
