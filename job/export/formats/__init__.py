"""How each exported format is written: one writer per row of mnist_predict.formats.FORMATS (the table of
names, files, runtimes and gates that the predictor reads too, which cannot hold TensorFlow code).

    onnx         model.onnx, model.int8.onnx          tf2onnx; onnxruntime static QDQ int8
    savedmodel   savedmodel/1/                        Keras ExportArchive; TF Serving's signature
    litert       model.tflite, model.int8.tflite      TFLiteConverter from the SavedModel; full-integer int8

A writer takes the export under way (job.export.Build: the model, the temp dir, the options) and the path
its file goes to; an int8 writer returns its quantization settings for the manifest. Adding a format: a row
in mnist_predict/formats.py, a module here and its writer below (tests check that each row has one).
"""

from mnist_predict import formats

from job.export.formats import litert, onnx, savedmodel


def _onnx(build, path):
    onnx.write(build.model, path, build.opset, build.props)


def _savedmodel(build, path):
    savedmodel.write(build.model, path)
    build.saved = path  # LiteRT converts from it


def _litert(build, path):
    litert.write(build.savedmodel(), path)


def _onnx_int8(build, path):
    return onnx.write_int8(build.tmp / formats.by_key("onnx").file, path, build.images, build.props)


def _litert_int8(build, path):
    return litert.write_int8(build.savedmodel(), path, build.images)


WRITERS = {"onnx": _onnx, "savedmodel": _savedmodel, "litert": _litert, "onnx-int8": _onnx_int8,
           "litert-int8": _litert_int8}
