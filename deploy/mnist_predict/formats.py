"""Every exported format in one table: its manifest key, its file under export/, its runtime, how its gate
judges it, the name a table shows. Export, the manifest, `mnist-job benchmark`, the predictor, `check` and
the web server all read it; adding a format is a row here and a writer module in job/export/formats/.

    from mnist_predict import formats
    formats.by_key("onnx-int8").file        # 'model.int8.onnx'
    formats.of_file("model.int8.tflite")    # its Format, or None for a file export never writes
"""

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Format:
    key: str  # its name in manifest.json ("parity", "int8") and in the export's report
    family: str  # the --format choice that writes it; int8 files also need --quantize int8
    file: str  # where it lies under export/
    runtime: str  # what runs it: "onnxruntime", "litert" (ai-edge-litert) or "tensorflow"
    gate: str  # "parity": max abs diff <= atol against Keras; "int8": argmax agreement and accuracy drop
    display: str  # its row in `mnist-job benchmark`

    @property
    def quantized(self):
        return self.gate == "int8"

    @property
    def edge(self):
        """Runs in mnist-predict, without TensorFlow."""
        return self.runtime != "tensorflow"


FORMATS = (
    Format("onnx", "onnx", "model.onnx", "onnxruntime", "parity", "ONNX fp32"),
    Format("savedmodel", "savedmodel", "savedmodel/1", "tensorflow", "parity", "SavedModel"),
    Format("litert", "litert", "model.tflite", "litert", "parity", "LiteRT fp32"),
    Format("onnx-int8", "onnx", "model.int8.onnx", "onnxruntime", "int8", "ONNX int8"),
    Format("litert-int8", "litert", "model.int8.tflite", "litert", "int8", "LiteRT int8"),
)
FAMILIES = tuple(dict.fromkeys(f.family for f in FORMATS))  # the --format choices, with "all"
ONNX = "onnx"  # the format the browser page runs


def by_key(key):
    return next(f for f in FORMATS if f.key == key)


def of_file(path):
    """The Format whose file this is (by its name), or None."""
    name = Path(path).name
    return next((f for f in FORMATS if Path(f.file).name == name), None)


def chosen(family, quantize=False):
    """The formats `--format family` (or "all") writes, fp32 first (int8 files are made from them)."""
    return [f for f in FORMATS if family in (f.family, "all") and (quantize or not f.quantized)]


def fp32_of(fmt):
    """The fp32 format an int8 one is quantized from (its own family's)."""
    return next(f for f in FORMATS if f.family == fmt.family and not f.quantized)


def edge_files():
    """The fp32 files an export folder given as --model is searched for, in this order."""
    return tuple(f.file for f in FORMATS if f.edge and not f.quantized)
