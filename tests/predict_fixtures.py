"""Shared fixtures for the predictor tests: a tiny real ONNX model that recognises rendered digits.

The model is a fixed linear classifier (Flatten -> MatMul -> Add -> Softmax) whose weights are ten glyph
templates, so its predictions are checkable without TensorFlow or any training. Import the fixtures by
name into a test module: `from predict_fixtures import export_dir, ...`.
"""

import hashlib
import json
import shutil
from dataclasses import dataclass

import numpy as np
import onnx
import pytest
from mnist_predict import cli, images
from onnx import TensorProto, helper, numpy_helper
from PIL import Image, ImageDraw, ImageFont

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


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_export(directory, glyphs, weights=None, bias=None, name="model.onnx"):
    """model.onnx, parity.npz (this model's own outputs standing in for Keras) and manifest.json."""
    import onnxruntime as ort

    directory.mkdir(parents=True, exist_ok=True)
    default_weights, default_bias = template_weights(glyphs)
    model = build_model(
        directory / name,
        default_weights if weights is None else weights,
        default_bias if bias is None else bias,
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
        "labels": LABELS,
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
def run_cli(capsys, monkeypatch):
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
