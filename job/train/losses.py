"""Sparse categorical cross-entropy with label smoothing and outlier exposure, and accuracy that skips
outliers.

Keras smooths only one-hot labels, and every pipeline, cross-validation fold and benchmark feeds the models
integer labels; this keeps them so. Label -1 marks an outlier (job.data.outliers): its target is the uniform
distribution, so the model learns to be unsure of what is no class (Hendrycks et al., 2019).

A fine-tune that replays its base's images also distills the base (DistilledCrossentropy): its labels come
with the base model's probabilities beside them, one row [label, p_0 ... p_k-1] per image.

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
        return keras.losses.categorical_crossentropy(self.target(y_true, ops.shape(y_pred)[-1]), y_pred)

    def target(self, y_true, classes):
        labels = ops.cast(ops.reshape(y_true, (-1,)), "int32")
        one_hot = ops.one_hot(ops.maximum(labels, 0), classes)
        smoothed = one_hot * (1 - self.label_smoothing) + self.label_smoothing / ops.cast(classes, one_hot.dtype)
        return ops.where(ops.expand_dims(labels == OUTLIER, -1), ops.ones_like(smoothed) / ops.cast(
            classes, smoothed.dtype), smoothed)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


@keras.saving.register_keras_serializable(package="mnist_job")
class DistilledCrossentropy(SparseSmoothedCrossentropy):
    """Learning without forgetting (Li and Hoiem, 2016; Hinton et al., 2015, at temperature 1): where the base
    model's top class is the label, the target is `weight` of the base's probabilities and the rest of the
    smoothed label; elsewhere (a correction the base got wrong, an outlier) the label's target alone. The
    replayed images then keep the base's unsure digits unsure, rather than teaching them as certain.
    y_true rows are [label, base probabilities...] (job.train.training.make_dataset's teacher)."""

    def __init__(self, label_smoothing=0.1, weight=0.5, name="distilled_crossentropy", **kwargs):
        super().__init__(label_smoothing, name=name, **kwargs)
        self.weight = weight

    def call(self, y_true, y_pred):
        labels, base = y_true[:, 0], y_true[:, 1:]
        target = self.target(labels, ops.shape(y_pred)[-1])
        agrees = ops.expand_dims(ops.cast(ops.argmax(base, axis=-1), "int32") == ops.cast(labels, "int32"), -1)
        target = ops.where(agrees, self.weight * base + (1 - self.weight) * target, target)
        return keras.losses.categorical_crossentropy(target, y_pred)

    def get_config(self):
        return {**super().get_config(), "weight": self.weight}


@keras.saving.register_keras_serializable(package="mnist_job")
class DigitAccuracy(keras.metrics.Metric):
    """Accuracy over the rows that have a class; outliers (label -1) have no right answer to count."""

    def __init__(self, name="accuracy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.correct = self.add_variable(shape=(), initializer="zeros", name="correct")
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")

    def update_state(self, y_true, y_pred, sample_weight=None):
        if len(y_true.shape) == 2 and y_true.shape[-1] > 1:  # [label, base probabilities...]: distilled
            y_true = y_true[:, 0]
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
