"""Augmentation: in the tf.data pipeline, never in the model, so no exported graph carries randomness.

    from job.data.augment import augmenter, stretched
    ds = ds.map(augmenter(seed, mirror=False, robust=True))     # shifts, rotations, stroke, focus, contrast
    x_more, y_more = stretched(x_train, y_train, 0.1, seed)     # extra samples, once, before the pipeline
"""

import numpy as np
from PIL import Image

from mnist_predict.images import SIZE, frame


def augmenter(seed, mirror=False, robust=False):
    """Random shifts, plus rotations for digits, as their writers vary, or mirror flips for a dataset whose
    classes are mirror-symmetric (a mirrored shirt is a shirt; a mirrored 2 is not a 2). With `robust`, also
    what cleaning a photo leaves (StrokeAndFocus). In the pipeline, never in the model."""
    import tensorflow as tf
    from keras import layers

    if mirror:
        # Whole-pixel shifts of up to 2 px: Fashion-MNIST items fill the frame, and rotating or blurring them
        # cost more accuracy in a short schedule than it bought.
        steps = [layers.RandomFlip("horizontal", seed=seed),
                 layers.RandomTranslation(2 / 28, 2 / 28, fill_mode="constant", interpolation="nearest",
                                          seed=seed + 1)]
    else:
        steps = [layers.RandomTranslation(0.08, 0.08, fill_mode="constant", seed=seed),
                 layers.RandomRotation(8 / 360, fill_mode="constant", seed=seed + 1)]
    if robust:
        # Narrow and wide hands, and crops stretched to fill their frame, before the strokes are changed.
        steps += [layers.RandomZoom((-0.15, 0.15), (-0.3, 0.15), fill_mode="constant", seed=seed + 2),
                  stroke_and_focus(seed + 3)]

    def apply(images, labels):
        x = images[..., tf.newaxis]
        for step in steps:
            x = step(x, training=True)
        return x[..., 0], labels

    apply.layers = steps  # for job.train.epoch_seeds, which reseeds them every epoch
    return apply


def stroke_and_focus(seed):
    """Augmentation for what `mnist_predict.images` leaves of a photo: a pen's width (a 3x3 dilation or
    erosion, blended in), focus (a 3x3 mean, blended in) and faint or grainy ink (contrast and grain)."""
    import keras
    from keras import ops

    class StrokeAndFocus(keras.layers.Layer):
        def __init__(self):
            super().__init__()
            self.seed_generator = keras.random.SeedGenerator(seed)

        def call(self, x, training=True):
            shape = (ops.shape(x)[0], 1, 1, 1)
            uniform = lambda low, high, size=shape: keras.random.uniform(  # noqa: E731
                size, low, high, seed=self.seed_generator)
            width = uniform(-0.7, 0.7)
            thick = ops.max_pool(x, 3, 1, "same")
            thin = -ops.max_pool(-x, 3, 1, "same")
            x = x + ops.maximum(width, 0) * (thick - x) + ops.maximum(-width, 0) * (thin - x)
            x = x + uniform(0.0, 0.6) * (ops.average_pool(x, 3, 1, "same") - x)
            grain = 1 - uniform(0.0, 0.4) * uniform(0.0, 1.0, ops.shape(x))
            return ops.clip(x * uniform(0.55, 1.0) * grain, 0, 255)

    return StrokeAndFocus()


def stretched(x, y, share, seed):
    """A `share` of the digits cropped to their ink, stretched to fill a square and framed again by the
    predictor's own `frame`: what a 28x28 crop that filled its frame becomes after `mnist_predict.images`
    re-frames it (a '1' turns into a bar). Returns (images, labels) to add to the training set."""
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(x), size=round(share * len(x)), replace=False)
    out = np.empty((len(chosen), SIZE, SIZE), np.uint8)
    for i, k in enumerate(chosen):
        rows, cols = np.flatnonzero(x[k].any(axis=1)), np.flatnonzero(x[k].any(axis=0))
        crop = Image.fromarray(x[k][rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1])
        out[i] = frame(np.asarray(crop.resize((SIZE, SIZE), Image.Resampling.BILINEAR), np.float32))
    return out, y[chosen].astype(np.int32)
