"""`mnist-predict check`: does onnxruntime here reproduce the Keras outputs recorded at export?"""

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from . import formats
from .predictor import UsageError


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
