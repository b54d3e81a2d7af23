"""Export a run's line reader (job.train.line_reader) as export/lines.onnx, gated against Keras.

`mnist-job export` calls it when the run holds lines.keras and ONNX is exported: tf2onnx on the frozen
serving function, as the digit model's ONNX file is made, with the contract of mnist_predict.lines (input
`line` (N, HEIGHT, W), output `probabilities` (N, W / STRIDE, 12), W dynamic). The gate reads held-out lines
of the run's test digits through the predictor's own LineReader (mnist_predict.parity.check_line_reader, which
`mnist-predict check` runs again on the edge): every probability within atol of Keras's, and every line
decoded to the same text.
"""

import numpy as np
from mnist_predict import lines as line_format

from job.errors import GateError

GATE_LINES = 100  # lines of test digits the gate reads


def write(model, path, opset, props):
    """lines.onnx: tf2onnx as the digit model's ONNX file is made (formats.onnx.converted), W dynamic."""
    import onnx
    import tensorflow as tf

    from job.export.formats import onnx as onnx_format

    spec = tf.TensorSpec((None, line_format.HEIGHT, None), tf.float32, name="line")
    serving = tf.function(lambda line: {"probabilities": model(line, training=False)}, input_signature=[spec])
    proto = onnx_format.converted(serving, "line_reader", "line", "probabilities", opset)
    onnx.helper.set_model_props(proto, props)
    onnx.save(proto, str(path))
    onnx_format.check_file(path)


def gate(model, path, data, atol, seed=0):
    """The ONNX file against Keras on GATE_LINES rendered lines of the test digits, each padded as the
    predictor pads it; the lines and Keras's outputs stay beside it as lines-parity.npz, which `mnist-predict
    check` reads again on the edge. Returns the report; GateError if it fails."""
    from job.data.number_lines import number_lines
    from mnist_predict import parity
    from mnist_predict.runtimes import ModelError

    images, texts = number_lines(data.x_test, data.y_test, GATE_LINES, seed=seed, workers=1)
    try:
        reader = line_format.LineReader(path)
    except ModelError as error:
        raise GateError(f"{path.name} breaks the line reader's contract: {error}") from None
    expected = [line_format.cropped(np.asarray(model(line_format.padded(image), training=False))[0], image)
                for image in images]
    reference = path.with_name(parity.LINES_REFERENCE)
    parity.write_line_reference(reference, images, expected)
    result = parity.check_line_reader(reader, reference, atol)
    right = sum(line_format.decode(output)[0] == text for output, text in zip(expected, texts))
    report = {"lines": result.lines, "max_abs_diff": result.max_abs_diff, "atol": atol,
              "texts_differ": result.texts_differ, "read_exactly": round(right / max(1, len(images)), 4),
              "passed": result.passed}
    if not result.passed:
        raise GateError(f"{path.name}: max abs diff {result.max_abs_diff:.3g} (atol {atol:g}), {result.texts_differ} "
                        f"of {len(images)} lines read differently from Keras")
    return report
