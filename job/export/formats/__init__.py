"""One module per exported format: how to write it, and how the gate runs it (job/export/gate.py).

    onnx        model.onnx, model.int8.onnx           tf2onnx; onnxruntime static QDQ int8
    savedmodel  savedmodel/1/                          Keras ExportArchive; TF Serving's signature
    litert      model.tflite, model.int8.tflite       TFLiteConverter from the SavedModel; full-integer int8
"""
