"""Sparse categorical cross-entropy with label smoothing and outlier exposure, and accuracy that skips
outliers.

Keras smooths only one-hot labels, and every pipeline, cross-validation fold and benchmark feeds the models
integer labels; this keeps them so. Label -1 marks an outlier (job.data.outliers): its target is the uniform
distribution, so the model learns to be unsure of what is no class (Hendrycks et al., 2019).

    from job.train.losses import DigitAccuracy, SparseSmoothedCrossentropy
    model.compile(loss=SparseSmoothedCrossentropy(0.1), metrics=[DigitAccuracy()], ...)
"""

import keras
from keras import ops

OUTLIER = -1


@keras.saving.register_keras_serializable(package="mnist_job")
class SparseSmoothedCrossentropy(keras.losses.Loss):
    def __init__(self, label_smoothing=0.1, name="sparse_smoothed_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = label_smoothing

    def call(self, y_true, y_pred):
        labels = ops.cast(ops.reshape(y_true, (-1,)), "int32")
        classes = ops.shape(y_pred)[-1]
        one_hot = ops.one_hot(ops.maximum(labels, 0), classes)
        smoothed = one_hot * (1 - self.label_smoothing) + self.label_smoothing / ops.cast(classes, one_hot.dtype)
        target = ops.where(ops.expand_dims(labels == OUTLIER, -1), ops.ones_like(smoothed) / ops.cast(
            classes, smoothed.dtype), smoothed)
        return keras.losses.categorical_crossentropy(target, y_pred)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


@keras.saving.register_keras_serializable(package="mnist_job")
class DigitAccuracy(keras.metrics.Metric):
    """Accuracy over the rows that have a class; outliers (label -1) have no right answer to count."""

    def __init__(self, name="accuracy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.correct = self.add_variable(shape=(), initializer="zeros", name="correct")
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")

    def update_state(self, y_true, y_pred, sample_weight=None):
        labels = ops.cast(ops.reshape(y_true, (-1,)), "int32")
        scored = ops.cast(labels != OUTLIER, "float32")
        hits = ops.cast(ops.argmax(y_pred, axis=-1) == labels, "float32") * scored
        self.correct.assign_add(ops.sum(hits))
        self.total.assign_add(ops.sum(scored))

    def result(self):
        return self.correct / ops.maximum(self.total, 1.0)

    def reset_state(self):
        self.correct.assign(0.0)
        self.total.assign(0.0)
