"""TF-free edge predictor for mnist-job ONNX exports: `Predictor(model_path).predict(images)`.

Attributes load lazily, so `import mnist_predict.cli` (and `mnist-job --help`) does not pay for
onnxruntime until a command actually runs.
"""

__all__ = ["Predictor", "Predictions", "Readings", "UsageError", "ImageError"]


def __getattr__(name):
    if name in __all__:
        from . import predictor

        return getattr(predictor, name)
    raise AttributeError(f"module 'mnist_predict' has no attribute {name!r}")
