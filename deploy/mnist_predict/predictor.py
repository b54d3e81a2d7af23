"""The onnxruntime session behind both the CLI and the Python API."""

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from . import images as image_io
from .review import DEFAULT_MIN_CONFIDENCE

SHAPE = (image_io.SIZE, image_io.SIZE)
ImageError = image_io.ImageError


class UsageError(ValueError):
    """A problem with the model, the options or the inputs as a whole (exit code 2), not with one file."""


def available_cpus():
    # In a container os.cpu_count() is the host's count; the affinity mask is what this process may use.
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@dataclass
class Predictions:
    labels: np.ndarray  # (N,) int64 class index
    probabilities: np.ndarray  # (N, classes) float32
    names: list  # class name of each predicted label
    review: np.ndarray  # (N,) bool: the top probability is below min_confidence


class Predictor:
    """An exported model, checked against its manifest and the model contract in docs/artifacts.md.

    >>> predictor = Predictor("export/model.onnx")
    >>> predictor.predict(["a.png", "b.jpg"]).labels
    """

    def __init__(self, model_path, threads=None):
        self.path = model_file(model_path)
        verify_manifest(self.path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or available_cpus()
        options.inter_op_num_threads = 1
        # Idle onnxruntime threads spin by default, burning the CPUs the decode workers need.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3  # errors only: the predictor reports its own problems
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises several types for a file that is not ONNX
            raise UsageError(f"{self.path} is not a loadable ONNX model: {_first_line(error)}") from None
        self.input_name, self.output_name, classes = self._check_signature()
        self.labels = self._read_labels(classes)
        self._outputs_checked = False

    def _check_signature(self):
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        shape = inputs[0].shape if len(inputs) == 1 else []
        if len(shape) != 3 or tuple(shape[1:]) != SHAPE:
            raise UsageError(f"model input must be (N, 28, 28), got {_shapes(inputs)}")
        if inputs[0].type != "tensor(float)":
            raise UsageError(f"model input must be float32, got {inputs[0].type}")
        names = [output.name for output in outputs]
        output = outputs[names.index("probabilities")] if "probabilities" in names else outputs[0]
        if len(output.shape) != 2:
            raise UsageError(f"model output must be (N, classes), got {_shapes([output])}")
        classes = output.shape[1] if isinstance(output.shape[1], int) else None
        return inputs[0].name, output.name, classes

    def _read_labels(self, classes):
        meta = self.session.get_modelmeta().custom_metadata_map
        try:
            labels = json.loads(meta["labels"]) if "labels" in meta else None
        except ValueError:
            raise UsageError(f"{self.path.name}: the 'labels' metadata is not JSON") from None
        if labels is None:
            return [str(index) for index in range(classes or 10)]
        if not isinstance(labels, list) or (classes and len(labels) != classes):
            raise UsageError(f"{self.path.name}: 'labels' metadata does not list {classes} names")
        return [str(label) for label in labels]

    def run(self, batch):
        """Probabilities for a (N, 28, 28) batch of white-on-black 0-255 pixels."""
        batch = np.asarray(batch, dtype=np.float32)
        probabilities = self.session.run([self.output_name], {self.input_name: batch})[0]
        if not self._outputs_checked and len(probabilities):
            self._check_probabilities(probabilities)
        return probabilities

    def _check_probabilities(self, probabilities):
        # A model that outputs logits or scores would give confident-looking nonsense in every row.
        sums = probabilities.sum(axis=1)
        if probabilities.min() < -1e-6 or not np.allclose(sums, 1, atol=1e-3):
            raise UsageError(
                f"{self.path.name} does not output probabilities (rows sum to {sums.min():.4g}..{sums.max():.4g}, "
                f"smallest value {probabilities.min():.4g}); mnist-job exports end in a softmax"
            )
        self._outputs_checked = True

    def predict(self, images, invert="auto", resize="mnist", batch_size=256,
                min_confidence=DEFAULT_MIN_CONFIDENCE):
        """Labels and probabilities for an array (N, 28, 28) or (28, 28), or a list of image paths.

        Arrays go to the model as they are (white digit on black, 0-255). Paths are decoded exactly
        as the CLI decodes them, with the same `invert` and `resize` choices; a bad file raises
        ImageError (a ValueError) naming the file and the reason.
        """
        batch = self._as_batch(images, invert, resize)
        chunks = [self.run(batch[start : start + batch_size]) for start in range(0, len(batch), batch_size)]
        probabilities = np.concatenate(chunks) if chunks else np.zeros((0, len(self.labels)), np.float32)
        labels = probabilities.argmax(axis=1)
        review = probabilities.max(axis=1, initial=0) < min_confidence
        return Predictions(labels, probabilities, [self.labels[label] for label in labels], review)

    def _as_batch(self, images, invert, resize):
        if isinstance(images, (str, os.PathLike)):
            images = [images]
        if not isinstance(images, np.ndarray):
            decoded = [_load(image, invert, resize) for image in images]
            images = np.stack(decoded) if decoded else np.zeros((0, *SHAPE), np.uint8)
        if images.ndim == 2:
            images = images[np.newaxis]
        if images.ndim != 3 or images.shape[1:] != SHAPE:
            raise ValueError(f"images must be (N, 28, 28) or (28, 28), got {images.shape}")
        if images.dtype.kind == "f" and 0 < images.max(initial=0) <= 1:
            # x / 255 is the usual preprocessing elsewhere; here it would leave ~11% accuracy and no warning.
            raise ValueError(
                f"images look scaled to 0-1 (largest value {images.max():.3g}); the model takes raw 0-255 "
                "pixels (its scaling is inside it): pass images * 255"
            )
        return images


def _load(image, invert, resize):
    if not isinstance(image, (str, os.PathLike)):
        return image
    try:
        return image_io.load(image, invert, resize)
    except ImageError as error:
        raise ImageError(f"{image}: {error}") from error


def model_file(path):
    """The model file: `path` itself, or the model.onnx in an export folder."""
    path = Path(path)
    if path.is_dir():
        if not (path / "model.onnx").is_file():
            raise UsageError(f"{path} is a folder without a model.onnx; pass the model file")
        return path / "model.onnx"
    if not path.is_file():
        raise UsageError(f"model not found: {path}")
    return path


def verify_manifest(model_path):
    """Refuse a model whose sha256 differs from the manifest.json exported beside it."""
    manifest_path = model_path.with_name("manifest.json")
    if not manifest_path.is_file():
        return
    try:
        entry = json.loads(manifest_path.read_text())["files"].get(model_path.name)
        expected = entry and entry["sha256"]
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise UsageError(f"{manifest_path} is not a valid manifest: {_first_line(error)}") from None
    if not expected:
        return  # the manifest does not list this file, so there is nothing to check it against
    actual = sha256(model_path)
    if actual != expected:
        raise UsageError(
            f"{model_path} does not match {manifest_path.name}: sha256 is {actual[:16]}..., "
            f"expected {expected[:16]}...; copy the whole export directory again"
        )


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _shapes(args):
    return ", ".join(f"{arg.name} {list(arg.shape)}" for arg in args)


def _first_line(error):
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
