"""The runtimes a Predictor drives, picked by the model file's suffix: onnxruntime for .onnx, LiteRT (the
TF-free `ai-edge-litert` interpreter, an optional extra) for .tflite. Each checks the model contract of
docs/artifacts.md: one float32 input (N, 28, 28), one output (N, classes).

    runtime = open_runtime(Path("export/model.tflite"), threads=2)
    runtime.run(batch), runtime.classes, runtime.labels, runtime.name, runtime.version
"""

import json
import os
import sys
from contextlib import contextmanager

import numpy as np

from .files import first_sentence

SHAPE = (28, 28)
LITERT_EXTRA = "pip install './deploy[litert]'   (or: pip install ai-edge-litert)"


class ModelError(ValueError):
    """The model file cannot be run as an mnist-job model (the Predictor turns it into a UsageError)."""


def open_runtime(path, threads):
    if path.suffix == ".tflite":
        return LiteRt(path, threads)
    return Onnx(path, threads)


def onnx_session(path, threads):
    """An onnxruntime CPU session on `threads` threads; ModelError for a file that is not ONNX."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # Idle onnxruntime threads spin by default, burning the CPUs the decode workers need.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only: the predictor reports its own problems
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises several types for a file that is not ONNX
        raise ModelError(f"{path} is not a loadable ONNX model: {first_sentence(error)}") from None


class Onnx:
    name = "onnxruntime"

    def __init__(self, path, threads):
        import onnxruntime as ort

        self.version = ort.__version__
        self.session = onnx_session(path, threads)
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        shape = inputs[0].shape if len(inputs) == 1 else []
        if len(shape) != 3 or tuple(shape[1:]) != SHAPE:
            raise ModelError(f"model input must be (N, 28, 28), got {_shapes(inputs)}")
        if inputs[0].type != "tensor(float)":
            raise ModelError(f"model input must be float32, got {inputs[0].type}")
        names = [output.name for output in outputs]
        output = outputs[names.index("probabilities")] if "probabilities" in names else outputs[0]
        if len(output.shape) != 2:
            raise ModelError(f"model output must be (N, classes), got {_shapes([output])}")
        self.input_name, self.output_name = inputs[0].name, output.name
        self.classes = output.shape[1] if isinstance(output.shape[1], int) else None
        meta = self.metadata = self.session.get_modelmeta().custom_metadata_map
        try:
            self.labels = json.loads(meta["labels"]) if "labels" in meta else None
        except ValueError:
            raise ModelError(f"{path.name}: the 'labels' metadata is not JSON") from None
        self.threads = threads

    def run(self, batch):
        return self.session.run([self.output_name], {self.input_name: batch})[0]


class LiteRt:
    """A .tflite model with one float32 (N, 28, 28) input: the interpreter is resized to each batch size."""

    name = "ai-edge-litert"

    def __init__(self, path, threads):
        try:
            import ai_edge_litert
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise ModelError(f"{path.name} is a LiteRT model and needs the LiteRT runtime: {LITERT_EXTRA}") from None
        self.version = getattr(ai_edge_litert, "__version__", "")
        try:
            with quiet_stderr():  # "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." on every start
                self.interpreter = Interpreter(model_path=str(path), num_threads=threads)
        except Exception as error:
            raise ModelError(f"{path} is not a loadable LiteRT model: {first_sentence(error)}") from None
        inputs, outputs = self.interpreter.get_input_details(), self.interpreter.get_output_details()
        shape = list(inputs[0]["shape_signature"]) if len(inputs) == 1 else []
        if len(shape) != 3 or tuple(shape[1:]) != SHAPE:
            raise ModelError(f"model input must be (N, 28, 28), got {[list(i['shape_signature']) for i in inputs]}")
        if inputs[0]["dtype"] != np.float32:
            raise ModelError(f"model input must be float32, got {np.dtype(inputs[0]['dtype']).name}")
        if len(outputs) != 1 or len(outputs[0]["shape"]) != 2:
            raise ModelError(f"model output must be (N, classes), got {[list(o['shape']) for o in outputs]}")
        self.input_index, self.output_index = inputs[0]["index"], outputs[0]["index"]
        self.classes = int(outputs[0]["shape"][1])
        self.labels = None  # a .tflite file carries none here: the Predictor reads them from manifest.json
        self.metadata = {}
        self.threads = threads
        self.batch = None

    def run(self, batch):
        if len(batch) != self.batch:  # a batch of another size: the interpreter's tensors are re-planned
            # The first allocation creates the XNNPACK delegate, which announces itself on stderr: through
            # a progress bar, in the middle of its line.
            with quiet_stderr():
                self.interpreter.resize_tensor_input(self.input_index, [len(batch), *SHAPE])
                self.interpreter.allocate_tensors()
            self.batch = len(batch)
        self.interpreter.set_tensor(self.input_index, np.ascontiguousarray(batch, np.float32))
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output_index).copy()


@contextmanager
def quiet_stderr():
    """Silence what native code writes to file descriptor 2 (Python exceptions are unaffected)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _shapes(args):
    return ", ".join(f"{arg.name} {list(arg.shape)}" for arg in args)
