"""LiteRT (the runtime formerly called TensorFlow Lite): model.tflite and, with --quantize int8,
model.int8.tflite.

Converted with tf.lite.TFLiteConverter.from_saved_model from the export's own SavedModel signature, which
keeps the contract's names (`image` in, `probabilities` out) and a dynamic batch (shape signature
[-1, 28, 28]). Keras's `model.export(path, format="litert")` goes the same way (a SavedModel, then
from_saved_model) but allows SELECT_TF_OPS, which the slim runtime and microcontrollers lack; here both files
use builtin ops only.

The int8 file is full-integer post-training quantization (weights and activations int8, builtin int8
kernels only), calibrated on the run's own training images. Its input and output stay float32: a QUANTIZE op
takes the raw 0-255 pixels in and a DEQUANTIZE gives probabilities out, so it is fed exactly like the fp32
file. The gate runs both with the TF-free interpreter, ai-edge-litert, as the edge does.
"""


def converter(savedmodel_dir):
    import tensorflow as tf

    convert = tf.lite.TFLiteConverter.from_saved_model(str(savedmodel_dir), signature_keys=["serving_default"])
    convert.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return convert


def write(savedmodel_dir, path):
    path.write_bytes(converter(savedmodel_dir).convert())


def write_int8(savedmodel_dir, path, images):
    import numpy as np
    import tensorflow as tf

    convert = converter(savedmodel_dir)
    convert.optimizations = [tf.lite.Optimize.DEFAULT]
    convert.representative_dataset = lambda: ([images[i:i + 1].astype(np.float32)] for i in range(len(images)))
    convert.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    path.write_bytes(convert.convert())
    return {"method": "full-integer post-training quantization", "ops": "TFLITE_BUILTINS_INT8",
            "io": "float32 (QUANTIZE in, DEQUANTIZE out)", "representative_images": len(images)}


def versions():
    try:
        import ai_edge_litert

        return {"ai_edge_litert": getattr(ai_edge_litert, "__version__", "")}
    except ImportError:
        return {}
