"""Export a run's line reader (job.train.line_reader) as export/lines.onnx, gated against Keras.

`mnist-job export` calls it when the run holds lines.keras and ONNX is exported: tf2onnx on the frozen
serving function, as the digit model's ONNX file is made, with the contract of mnist_predict.lines (input
`line` (N, HEIGHT, W), output `probabilities` (N, W / STRIDE, 12), W dynamic). The gate reads held-out lines
of the run's test digits through the predictor's own LineReader: every probability within atol of Keras's,
and every line decoded to the same text.
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
    predictor pads it. Returns the report; GateError if it fails."""
    from job.data.number_lines import number_lines
    from mnist_predict.runtimes import ModelError

    images, texts = number_lines(data.x_test, data.y_test, GATE_LINES, seed=seed, workers=1)
    try:
        reader = line_format.LineReader(path)
    except ModelError as error:
        raise GateError(f"{path.name} breaks the line reader's contract: {error}") from None
    worst, differ, right = 0.0, 0, 0
    for image, text, got in zip(images, texts, reader.run(images)):
        expected = line_format.cropped(np.asarray(model(line_format.padded(image), training=False))[0], image)
        worst = max(worst, float(np.abs(got - expected).max()))
        read = line_format.decode(got)[0]
        differ += read != line_format.decode(expected)[0]
        right += read == text
    report = {"lines": len(images), "max_abs_diff": worst, "atol": atol, "texts_differ": differ,
              "read_exactly": round(right / max(1, len(images)), 4), "passed": worst <= atol and differ == 0}
    if not report["passed"]:
        raise GateError(f"{path.name}: max abs diff {worst:.3g} (atol {atol:g}), {differ} of {len(images)} lines "
                        "read differently from Keras")
    return report
