"""The Predictor behind both the CLI and the Python API: a model file, its runtime, its labels."""

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import formats
from . import images as image_io
from .files import MAX_MODEL_MB, first_sentence, sha256, usable_cpus
from .review import DEFAULT_MIN_CONFIDENCE
from .runtimes import ModelError, open_runtime

SHAPE = (image_io.SIZE, image_io.SIZE)
ImageError = image_io.ImageError


class UsageError(ValueError):
    """A problem with the model, the options or the inputs as a whole (exit code 2), not with one file."""


@dataclass
class Predictions:
    labels: np.ndarray  # (N,) int64 class index; -1 for a file that failed (on_error="row")
    probabilities: np.ndarray  # (N, classes) float32; NaN for a file that failed
    names: list  # class name of each predicted label; None for a file that failed
    review: np.ndarray  # (N,) bool: the top probability is below min_confidence
    errors: list = None  # (N,) the one-line reason a file failed, or None; all None unless on_error="row"

    def __post_init__(self):
        if self.errors is None:
            self.errors = [None] * len(self.labels)

    @property
    def ok(self):
        """(N,) bool: the rows that were predicted (every row, unless on_error="row" let a file fail)."""
        return np.array([error is None for error in self.errors], dtype=bool)


@dataclass
class Readings:
    texts: list  # the number read in each image ("?" for ink that is not a digit); None for a file that failed
    confidences: np.ndarray  # (N,) probability that the whole reading is right; NaN for a file that failed
    digits: list  # per image, (label, probability) per digit
    boxes: list  # per image, (x, y, w, h) per digit, in the original image's pixels after EXIF rotation
    review: np.ndarray  # (N,) bool: flagged for a person to look at
    reasons: list  # per image, why it is flagged ("" when not)
    errors: list  # per image, the one-line reason it failed, or None

    @property
    def ok(self):
        return np.array([error is None for error in self.errors], dtype=bool)


def _gray(image):
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"an image to read must be a 2-D grayscale array, got shape {image.shape}")
    if image.dtype != np.uint8:
        if image.dtype.kind == "f" and 0 < image.max(initial=0) <= 1:
            raise ValueError("the image looks scaled to 0-1; pass raw 0-255 pixels (images * 255)")
        image = np.clip(image, 0, 255).round().astype(np.uint8)
    return image


class Predictor:
    """An exported model (.onnx, or .tflite with the `litert` extra), checked against its manifest and the
    model contract in docs/artifacts.md.

    >>> predictor = Predictor("export/model.onnx")
    >>> predictor.predict(["a.png", "b.jpg"]).labels
    """

    def __init__(self, model_path, threads=None, max_model_mb=MAX_MODEL_MB, manifest_sha256=None):
        self.path = model_file(model_path)
        megabytes = self.path.stat().st_size / 1e6
        if megabytes > max_model_mb:  # refused before a byte of it is parsed
            raise UsageError(f"{self.path} is {megabytes:,.0f} MB, over the {max_model_mb:g} MB limit for a model "
                             "(--max-model-mb); an MNIST-sized model is a few MB")
        verify_manifest(self.path, manifest_sha256)
        self.threads = threads or usable_cpus()
        try:
            self.runtime = open_runtime(self.path, self.threads)
        except ModelError as error:
            raise UsageError(str(error)) from None
        self.session = getattr(self.runtime, "session", None)  # onnxruntime's, for callers that tune it
        self.labels = self._read_labels(self.runtime.classes)
        self.min_confidence = self._read_threshold()
        self.resize = self._read_preprocess()
        self._outputs_checked = False
        self._line_reader = None

    def line_reader(self):
        """The export's line reader (lines.onnx beside the model, checked against its manifest), which `read`
        weighs against the digit-by-digit search (numbers.with_line_reading); None where there is none."""
        from . import lines, reading_confidence

        path = self.path.with_name(lines.FILE)
        if self._line_reader is None and path.is_file():
            verify_manifest(path)
            try:
                self._line_reader = lines.LineReader(path, self.threads)
                self._line_reader.calibration = reading_confidence.checked(
                    manifest_entry(self.path, "reading_calibration"))
            except (ModelError, ValueError) as error:
                raise UsageError(f"{path.parent / 'manifest.json'}: {error}" if isinstance(error, ValueError)
                                 else str(error)) from None
        return self._line_reader

    def _read_preprocess(self):
        """How files are prepared for this model: its metadata's or manifest's `preprocess` (mnist-job export
        writes it), else "stretch" for an export whose manifest names Fashion-MNIST, else "mnist"."""
        value = getattr(self.runtime, "metadata", {}).get("preprocess") or manifest_entry(self.path, "preprocess")
        if value is None:
            value = "stretch" if manifest_entry(self.path, "dataset") == "fashion_mnist" else "mnist"
        if value not in image_io.RESIZE_MODES:
            raise UsageError(f"{self.path.name}: its preprocess {value!r} is not one of "
                             f"{', '.join(image_io.RESIZE_MODES)}")
        return value

    def _read_threshold(self):
        """The review threshold `mnist-job export --review-data` chose for this model (its metadata, or the
        manifest beside a .tflite), else the fixed default: what predict flags below unless told otherwise."""
        value = getattr(self.runtime, "metadata", {}).get("review_threshold")
        if value is None:
            value = (manifest_entry(self.path, "review_threshold") or {}).get("threshold")
        try:
            value = float(value) if value is not None else DEFAULT_MIN_CONFIDENCE
        except (TypeError, ValueError):
            raise UsageError(f"{self.path.name}: its review_threshold {value!r} is not a number") from None
        if not 0 <= value <= 1:
            raise UsageError(f"{self.path.name}: its review_threshold {value} is not in [0, 1]")
        return value

    def _read_labels(self, classes):
        labels = self.runtime.labels
        if labels is None:  # a .tflite file, or an ONNX model without metadata: the manifest's, or indices
            labels = manifest_labels(self.path)
        if labels is None:
            return [str(index) for index in range(classes or 10)]
        if not isinstance(labels, list) or (classes and len(labels) != classes):
            raise UsageError(f"{self.path.name}: its labels do not list {classes} names")
        return [str(label) for label in labels]

    def run(self, batch):
        """Probabilities for a (N, 28, 28) batch of white-on-black 0-255 pixels."""
        batch = np.asarray(batch, dtype=np.float32)
        probabilities = self.runtime.run(batch)
        if not self._outputs_checked and len(probabilities):
            self._check_probabilities(probabilities)
        return probabilities

    def _check_probabilities(self, probabilities):
        # A model that outputs logits or scores would give confident-looking nonsense in every row. An int8
        # model's probabilities come in steps of 1/256, so their rows sum to 1 only within a few percent.
        sums = probabilities.sum(axis=1)
        if probabilities.min() < -1e-6 or not np.allclose(sums, 1, atol=0.05):
            raise UsageError(
                f"{self.path.name} does not output probabilities (rows sum to {sums.min():.4g}..{sums.max():.4g}, "
                f"smallest value {probabilities.min():.4g}); mnist-job exports end in a softmax"
            )
        self._outputs_checked = True

    def predict(self, images, invert="auto", resize=None, batch_size=256,
                min_confidence=None, on_error="raise"):
        """Labels and probabilities for an array (N, 28, 28) or (28, 28), or a list of image paths.

        Arrays go to the model as they are (white digit on black, 0-255). Paths are decoded exactly
        as the CLI decodes them, with the same `invert` and `resize` choices (None: the model's own,
        Predictor.resize: "stretch" for a Fashion-MNIST export, else "mnist"). A bad file raises
        ImageError (a ValueError) naming the file and the reason, or with on_error="row" becomes a row of
        its own, as in the CLI: `errors[i]` holds the reason, `labels[i]` is -1, `probabilities[i]` NaN,
        `names[i]` None, and `ok` marks the rows that were predicted. `review` marks the rows whose top
        probability is below `min_confidence`; None takes the model's own threshold (`min_confidence`, which
        `mnist-job export --review-data` chose with a guarantee), else 0.8.

        >>> result = Predictor("export/model.onnx").predict(paths, on_error="row")
        >>> [(path, error) for path, error in zip(paths, result.errors) if error]
        """
        if on_error not in ("raise", "row"):
            raise ValueError(f"on_error must be 'raise' or 'row', got {on_error!r}")
        batch, errors = self._as_batch(images, invert, resize or self.resize, on_error)
        chunks = [self.run(batch[start : start + batch_size]) for start in range(0, len(batch), batch_size)]
        good = np.concatenate(chunks) if chunks else np.zeros((0, len(self.labels)), np.float32)
        result = Predictions(np.full(len(errors), -1), np.full((len(errors), good.shape[1]), np.nan, np.float32),
                             [None] * len(errors), np.zeros(len(errors), bool), errors)
        ok = result.ok
        result.probabilities[ok] = good
        result.labels[ok] = good.argmax(axis=1)
        threshold = self.min_confidence if min_confidence is None else min_confidence
        result.review[ok] = good.max(axis=1, initial=0) < threshold
        result.names = [self.labels[label] if label >= 0 else None for label in result.labels]
        return result

    def read_min_confidence(self):
        """The --min-confidence `read` flags below by default: the one export chose with read's fitted confidence
        (manifest.json's reading_calibration), else the fixed default (mnist_predict.reading_confidence)."""
        from . import reading_confidence

        reader = self.line_reader()
        return reading_confidence.min_confidence(reader.calibration if reader else None)

    def read(self, images, invert="auto", min_confidence=None, length=None, on_error="raise"):
        """Read the whole number in each image (mnist_predict.numbers): a list of image paths, or of 2-D
        uint8 arrays (grayscale, any size, either polarity), or one of either.

        `length` (N, or (MIN, MAX)) makes the search prefer readings of that many digits and flags the others.
        `min_confidence` defaults to read_min_confidence().
        A bad file raises ImageError naming it, or with on_error="row" becomes a row whose `errors[i]` holds
        the reason, as in predict. A digit model only: the labels must be 0-9.

        >>> readings = Predictor("export/model.onnx").read(["meter.jpg"], length=6)
        >>> readings.texts[0], readings.confidences[0], readings.boxes[0]
        """
        from . import numbers
        from .batch import read_batch

        if on_error not in ("raise", "row"):
            raise ValueError(f"on_error must be 'raise' or 'row', got {on_error!r}")
        self.check_digits()
        if isinstance(length, int):
            length = (length, length)
        if isinstance(images, (str, os.PathLike)) or (isinstance(images, np.ndarray) and images.ndim == 2):
            images = [images]
        decoded = []  # (layout, None) or (None, reason), as the batch pipeline's decode workers give them
        lines = self.line_reader() is not None
        for image in images:
            try:
                decoded.append((numbers.load(image, invert, lines) if isinstance(image, (str, os.PathLike)) else
                                numbers.layout_of(_gray(image), invert, for_line_reader=lines), None))
            except ImageError as error:
                if on_error == "raise":
                    raise ImageError(f"{image}: {error}" if isinstance(image, (str, os.PathLike)) else str(error)) from error
                decoded.append((None, str(error)))
        names = [str(image) if isinstance(image, (str, os.PathLike)) else None for image in images]
        if min_confidence is None:
            min_confidence = self.read_min_confidence()
        rows = list(read_batch(self, names, lambda: decoded, min_confidence, length))  # one model call for all
        ok = [row["status"] == "ok" for row in rows]
        return Readings([row["text"] if good else None for row, good in zip(rows, ok)],
                        np.array([row["confidence"] if good else np.nan for row, good in zip(rows, ok)], np.float64),
                        [row["digits"] for row in rows], [row["boxes"] for row in rows],
                        np.array([row["review"] == "yes" for row in rows], bool),
                        [row.get("review_reason", "") for row in rows],
                        [None if good else row["error"] for row, good in zip(rows, ok)])

    def check_digits(self):
        """Refuse a model whose classes are not the digits 0-9: a number cannot be read with it."""
        if self.labels != [str(d) for d in range(10)]:
            shown = ", ".join(self.labels[:6]) + (", ..." if len(self.labels) > 6 else "")
            raise UsageError(f"{self.path.name} is not a digit model (its classes are {shown}): reading numbers needs "
                             "the classes 0-9")

    def _as_batch(self, images, invert, resize, on_error="raise"):
        """(the (N', 28, 28) batch of the images that decoded, each image's error or None)."""
        if isinstance(images, (str, os.PathLike)):
            images = [images]
        errors = None
        if not isinstance(images, np.ndarray):
            decoded = [_load(image, invert, resize, on_error) for image in images]
            errors = [error for _, error in decoded]
            decoded = [pixels for pixels, error in decoded if error is None]
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
        return images, errors if errors is not None else [None] * len(images)


def _load(image, invert, resize, on_error="raise"):
    """(pixels, None), or (None, the reason) for a bad file when on_error="row"."""
    if not isinstance(image, (str, os.PathLike)):
        return image, None
    try:
        return image_io.load(image, invert, resize), None
    except ImageError as error:
        if on_error == "row":
            return None, str(error)
        raise ImageError(f"{image}: {error}") from error


def manifest_labels(model_path):
    """The class names that manifest.json beside the model lists, or None."""
    labels = manifest_entry(model_path, "labels")
    return labels if isinstance(labels, list) else None


def manifest_entry(model_path, key):
    """manifest.json's `key` beside the model, or None."""
    try:
        return json.loads(model_path.with_name("manifest.json").read_text()).get(key)
    except (OSError, ValueError, AttributeError):
        return None


MODEL_FILES = formats.edge_files()  # what an export folder is searched for, in this order


def model_file(path):
    """The model file: `path` itself, or the model.onnx (else model.tflite) of an export folder."""
    path = Path(path)
    if path.is_dir():
        for name in MODEL_FILES:
            if (path / name).is_file():
                return path / name
        export = path / "export"
        hint = (f"; it looks like a run directory: pass its export, {export}" if any(
            (export / name).is_file() for name in MODEL_FILES) else "; pass the model file")
        raise UsageError(f"{path} is a folder without a {' or '.join(MODEL_FILES)}{hint}")
    if not path.is_file():
        raise UsageError(f"model not found: {path}")
    return path


def verify_manifest(model_path, manifest_sha256=None):
    """Refuse a model whose sha256 differs from the manifest.json exported beside it, and, with
    `manifest_sha256`, a manifest other than the one pinned (integrity of a known export; see the trust
    model in docs/artifacts.md)."""
    manifest_path = model_path.with_name("manifest.json")
    if manifest_sha256:
        if not manifest_path.is_file():
            raise UsageError(f"{manifest_path}: missing, so the export cannot be matched to the pinned sha256")
        actual = sha256(manifest_path)
        if actual != manifest_sha256.lower():
            raise UsageError(f"{manifest_path} is not the pinned export: its sha256 is {actual[:16]}..., "
                             f"expected {manifest_sha256[:16]}...")
    if not manifest_path.is_file():
        return
    try:
        entry = json.loads(manifest_path.read_text())["files"].get(model_path.name)
        expected = entry and entry["sha256"]
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise UsageError(f"{manifest_path} is not a valid manifest: {first_sentence(error)}") from None
    if not expected:
        return  # the manifest does not list this file, so there is nothing to check it against
    actual = sha256(model_path)
    if actual != expected:
        raise UsageError(
            f"{model_path} does not match {manifest_path.name}: sha256 is {actual[:16]}..., "
            f"expected {expected[:16]}...; copy the whole export directory again"
        )

