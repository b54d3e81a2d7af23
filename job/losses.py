"""Sparse categorical cross-entropy with label smoothing, which Keras offers only for one-hot labels.

Every pipeline, cross-validation fold and benchmark feeds the models integer labels; this keeps them so.

    from job.losses import SparseSmoothedCrossentropy
    model.compile(loss=SparseSmoothedCrossentropy(0.1), ...)
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="mnist_job")
class SparseSmoothedCrossentropy(keras.losses.Loss):
    def __init__(self, label_smoothing=0.1, name="sparse_smoothed_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = label_smoothing

    def call(self, y_true, y_pred):
        one_hot = ops.one_hot(ops.cast(ops.reshape(y_true, (-1,)), "int32"), ops.shape(y_pred)[-1])
        return keras.losses.categorical_crossentropy(one_hot, y_pred, label_smoothing=self.label_smoothing)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}
