"""ONNX: tf2onnx on the frozen serving function; int8 by onnxruntime's static QDQ quantization.

The gate runs both files through the edge predictor's own onnxruntime session (gate.edge_runner).
"""

import numpy as np

from job.errors import GateError

# tf2onnx 1.17 converts opsets 7-18 here; per-channel QuantizeLinear (int8) needs 13, and 13-18 are tested.
OPSETS = range(13, 19)
DEFAULT_OPSET = 17
# Augmentation and dropout are training-time randomness: none of them may reach a served graph.
RANDOM_OPS = ("RandomUniform", "RandomNormal", "RandomUniformLike", "RandomNormalLike", "Multinomial",
              "Bernoulli", "Dropout")
# Chosen by measurement on Fashion-MNIST models (numbers in issue 3's closing note). reduce_range (7-bit
# weights): on CPUs without VNNI, onnxruntime's u8s8 kernels sum pairs of products in int16, which
# saturates with full 8-bit weights; that cost cnn-bn-aug 3.9 pp and mnist-convnet 3.2 pp of accuracy,
# 7-bit weights cost under 0.1 pp. The input scaling (Sub/Mul) and the Softmax stay float: int8 there costs
# accuracy and saves no time. Keeping the single-channel first conv float (slow as int8) does not pay:
# onnxruntime moves its QuantizeLinear above the MaxPool, which then runs as a slower uint8 pool.
QUANTIZATION = {"format": "QDQ", "per_channel": True, "activation_type": "QUInt8", "weight_type": "QInt8",
                "reduce_range": True, "calibration_method": "MinMax",
                # MaxPool stays float: onnxruntime's uint8 MaxPool took over half the int8 CNN's time here,
                # and leaving it out measured 1.64x fp32 instead of 1.38x (one thread, same accuracy).
                "op_types_to_quantize": ["Conv", "MatMul", "Gemm", "Relu", "Add", "GlobalAveragePool", "Reshape"]}


def serving_function(model):
    import tensorflow as tf

    spec = tf.TensorSpec((None, 28, 28), tf.float32, name="image")
    # training=False: Dropout is an identity and BatchNormalization uses its moving statistics.
    return tf.function(lambda image: {"probabilities": model(image, training=False)}, input_signature=[spec])


def write(model, path, opset, props):
    """tf2onnx on a frozen graph, with the I/O names of the contract and a dynamic batch dimension."""
    import onnx

    proto = converted(serving_function(model), model.name, "image", "probabilities", opset)
    for value in (*proto.graph.input, *proto.graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    onnx.helper.set_model_props(proto, props)
    onnx.save(proto, str(path))
    check_file(path)


def converted(function, name, input_name, output_name, opset):
    """The ONNX proto of a tf.function of one input and one output, frozen first, its I/O renamed. Freezing
    matters: from_function would turn the constants captured by Normalization (mean, variance) into extra
    graph inputs. from_keras fails on Keras 3 (KeyError keras_tensor_N)."""
    import tf2onnx
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    frozen = convert_variables_to_constants_v2(function.get_concrete_function())
    source, sink = frozen.inputs[0].name, frozen.outputs[0].name
    proto, _ = tf2onnx.convert.from_graph_def(
        frozen.graph.as_graph_def(), name=name, input_names=[source], output_names=[sink], opset=opset,
        tensors_to_rename={source: input_name, sink: output_name})
    return proto


def check_file(path):
    """onnx.checker, and no training-time op."""
    import onnx

    model = onnx.load(str(path))
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as e:
        raise GateError(f"{path.name} fails onnx.checker: {str(e).splitlines()[0]}") from None
    random_ops = sorted({n.op_type for n in model.graph.node if n.op_type in RANDOM_OPS})
    if random_ops:
        raise GateError(f"{path.name} contains training-time ops {random_ops}; augmentation must stay out")


def write_int8(fp32_path, int8_path, images, props, **overrides):
    """Static QDQ quantization, per-channel int8 weights, activations calibrated on the given images.
    Returns the settings used."""
    import onnx
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self, batches):
            self.batches = iter(batches)

        def get_next(self):
            return next(self.batches, None)

    q = {**QUANTIZATION, **overrides}
    prepared = int8_path.with_name(int8_path.stem + ".prepared.onnx")
    # Shape inference and graph clean-up first, as onnxruntime advises; symbolic shapes (sympy) are not
    # needed with a fixed 28x28 input.
    quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
    batches = [{"image": images[i:i + 32]} for i in range(0, len(images), 32)]
    try:
        quantize_static(str(prepared), str(int8_path), Reader(batches), quant_format=QuantFormat[q["format"]],
                        per_channel=q["per_channel"], activation_type=QuantType[q["activation_type"]],
                        weight_type=QuantType[q["weight_type"]], reduce_range=q["reduce_range"],
                        calibrate_method=CalibrationMethod[q["calibration_method"]],
                        op_types_to_quantize=q["op_types_to_quantize"])
    finally:
        prepared.unlink(missing_ok=True)
    model = onnx.load(str(int8_path))
    onnx.helper.set_model_props(model, props)
    onnx.save(model, str(int8_path))
    check_file(int8_path)
    return q


def versions():
    import onnx
    import onnxruntime
    import tf2onnx

    return {"tf2onnx": tf2onnx.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__,
            "numpy": np.__version__}
