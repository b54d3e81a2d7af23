"""`mnist-predict check`: does onnxruntime here reproduce the Keras outputs recorded at export? For the digit
model (parity.npz) and, where the export holds one, for the line reader (lines.onnx, against
lines-parity.npz: the lines its export gate read)."""

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from . import formats, lines
from .predictor import UsageError

LINES_REFERENCE = "lines-parity.npz"  # beside lines.onnx: line images and the Keras line reader's outputs


@dataclass
class ParityResult:
    reference: str
    rows: int
    max_abs_diff: float
    argmax_agreement: float
    accuracy: float | None  # on the `test` rows, against their true labels
    quantized: bool  # int8 models are judged by agreement, fp32 ones by atol
    atol: float
    min_agreement: float
    passed: bool

    def as_dict(self):
        return asdict(self)


@dataclass
class LineParityResult:
    reference: str
    lines: int
    max_abs_diff: float
    texts_differ: int  # lines whose best path reads another text than Keras's
    atol: float
    passed: bool

    def as_dict(self):
        return asdict(self)


def is_quantized(model_path):
    """An int8 file of the export (by its name there: mnist_predict.formats), judged by agreement."""
    fmt = formats.of_file(model_path)
    return bool(fmt and fmt.quantized)


def check(predictor, reference=None, atol=1e-5, min_agreement=0.99):
    """Run the reference inputs as one batch, and each edge case again as a batch of one."""
    path = Path(reference) if reference else predictor.path.with_name("parity.npz")
    inputs, expected, kinds, labels = _load_reference(path)
    actual = predictor.run(inputs)
    if actual.shape != expected.shape:
        raise UsageError(f"model outputs {actual.shape} but {path.name} holds {expected.shape}")
    diff = float(np.abs(actual - expected).max(initial=0))
    # A batch of one takes other kernels in some runtimes; the edge cases must match there too.
    for row in np.flatnonzero(kinds != "test"):
        single = predictor.run(inputs[row : row + 1])
        diff = max(diff, float(np.abs(single - expected[row : row + 1]).max()))
    # Agreement is judged on the real images: the zeros/full255 edge cases are near-ties whose argmax
    # flips with any rounding, which says nothing about the model.
    real = kinds == "test" if (kinds == "test").any() else np.ones(len(inputs), bool)
    agrees = actual[real].argmax(axis=1) == expected[real].argmax(axis=1)
    agreement = float(agrees.mean()) if agrees.size else 1.0
    tested = real & (labels >= 0)
    accuracy = float((actual[tested].argmax(axis=1) == labels[tested]).mean()) if tested.any() else None
    quantized = is_quantized(predictor.path)
    passed = agreement >= min_agreement if quantized else diff <= atol
    return ParityResult(
        str(path), len(inputs), diff, agreement, accuracy, quantized, atol, min_agreement, passed
    )


def _load_reference(path):
    if not path.is_file():
        raise UsageError(f"reference not found: {path} (pass --reference)")
    try:
        with np.load(path, allow_pickle=False) as data:
            inputs = data["inputs"].astype(np.float32)
            expected = data["probabilities"].astype(np.float32)
            kinds = data["kinds"].astype(str) if "kinds" in data else np.full(len(inputs), "test")
            labels = data["labels"].astype(np.int64) if "labels" in data else np.full(len(inputs), -1)
    except (OSError, ValueError, KeyError) as error:
        raise UsageError(f"{path} is not a parity reference: {error}") from None
    if inputs.ndim != 3 or not len(inputs) == len(expected) == len(kinds) == len(labels):
        raise UsageError(f"{path}: inputs {inputs.shape} and probabilities {expected.shape} do not pair")
    return inputs, expected, kinds, labels


def write_line_reference(path, images, probabilities):
    """lines-parity.npz: line images (HEIGHT, W) uint8, of any widths, with the Keras line reader's (columns,
    classes) outputs for each, both padded to the widest (`widths` gives each image's own)."""
    widths = np.array([image.shape[1] for image in images], np.int64)
    padded = np.zeros((len(images), lines.HEIGHT, int(widths.max(initial=0))), np.uint8)
    outputs = np.zeros((len(images), max((len(p) for p in probabilities), default=0),
                        probabilities[0].shape[1] if len(probabilities) else 0), np.float32)
    for k, (image, output) in enumerate(zip(images, probabilities)):
        padded[k, :, :image.shape[1]] = image
        outputs[k, :len(output)] = output
    np.savez(path, images=padded, widths=widths, probabilities=outputs)


def check_line_reader(reader, path, atol=1e-5):
    """Each line of the reference through `reader` (lines.LineReader: each line alone, as `read` runs it)
    against the recorded Keras outputs: every probability within `atol`, every line read as the same text."""
    images, expected = _load_line_reference(path)
    worst, differ = 0.0, 0
    for want, got in zip(expected, reader.run(images)):
        if got.shape != want.shape:
            raise UsageError(f"{lines.FILE} outputs {got.shape} for a line for which {path.name} holds {want.shape}")
        worst = max(worst, float(np.abs(got - want).max(initial=0)))
        differ += lines.decode(got)[0] != lines.decode(want)[0]
    return LineParityResult(str(path), len(images), worst, differ, atol, worst <= atol and differ == 0)


def check_line_reader_beside(predictor, atol=1e-5):
    """The export's line reader (lines.onnx beside the model) against lines-parity.npz beside it: a
    LineParityResult, None where the export has no line reader, or the reason it was not checked (an export
    from before lines-parity.npz)."""
    reader = predictor.line_reader()
    if reader is None:
        return None
    path = predictor.path.with_name(LINES_REFERENCE)
    if not path.is_file():
        return f"{lines.FILE} not checked: no {LINES_REFERENCE} beside it (export it again to record one)"
    return check_line_reader(reader, path, atol)


def _load_line_reference(path):
    try:
        with np.load(path, allow_pickle=False) as data:
            images, widths, outputs = data["images"], data["widths"], data["probabilities"].astype(np.float32)
    except (OSError, ValueError, KeyError) as error:
        raise UsageError(f"{path} is not a line reader's parity reference: {error}") from None
    if images.ndim != 3 or images.shape[1] != lines.HEIGHT or not len(images) == len(widths) == len(outputs):
        raise UsageError(f"{path}: images {images.shape}, widths {widths.shape} and outputs {outputs.shape} do not pair")
    images = [images[k, :, :int(width)] for k, width in enumerate(widths)]
    return images, [output[:lines.columns(image)] for image, output in zip(images, outputs)]
