"""Every random draw of an epoch is a function of (seed, epoch): the shuffle, the augmentation, dropout.

A resumed run restores weights and optimizer from BackupAndRestore, but Keras saves neither the state of its
seed generators (dropout's, the augmentation layers') nor where tf.data's reshuffling has got to: after a
resume, epoch 18 drew the shuffle and the masks of epoch 1, and a 40-epoch run ended 0.2 points from the
uninterrupted one. Here, before each epoch, the shuffle takes the epoch number and every seed generator is
set to (its own seed, the epoch), so a run resumed after any epoch repeats, bit for bit, the epochs of the
run that was never stopped.

    seeds = EpochSeeds(42)
    ds = seeds.shuffled(x, y)              # a new order each epoch, keyed by the epoch, not by iteration count
    seeds.track(model, *augment_layers)    # dropout, RandomTranslation, ...
    model.fit(ds, callbacks=[seeds.callback()], ...)
"""

import logging

import numpy as np

log = logging.getLogger(__name__)
STATE = "seed_generator_state"  # what keras.random.SeedGenerator names its state variable
EPOCH_SHIFT = 20  # counter = epoch << 20: an epoch draws at most a million times from each generator


class EpochSeeds:
    def __init__(self, seed):
        import tensorflow as tf

        self.seed = int(seed)
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self.generators = []  # (state variable, its own seed)

    def shuffled(self, x, y):
        """(x, y) as a tf.data.Dataset in an order drawn from (seed, epoch) each time it is iterated."""
        import tensorflow as tf

        images, labels, n = tf.constant(x), tf.constant(y), len(x)

        def order(_):
            keys = tf.stack([tf.constant(self.seed, tf.int64), self.epoch.read_value()])
            return tf.data.Dataset.from_tensor_slices(tf.random.experimental.stateless_shuffle(tf.range(n), keys))

        ds = tf.data.Dataset.from_tensors(0).flat_map(order).map(lambda i: (tf.gather(images, i), tf.gather(labels, i)))
        return ds.apply(tf.data.experimental.assert_cardinality(n))  # flat_map hides it; Keras needs the steps

    def track(self, *layers):
        """Reseed these layers' (and their sublayers') seed generators each epoch."""
        seen = {id(v) for v, _ in self.generators}
        for layer in layers:
            found = [v for v in layer.variables if v.name == STATE]
            # Keras names the state so in 3.15; a random layer without it means that name changed
            if not found and getattr(layer, "seed", None) is not None:
                log.warning("%s: no %s variable to reseed: a resumed run may not repeat the uninterrupted one "
                            "(has Keras renamed it?)", layer.name, STATE)
            for variable in found:
                if id(variable) not in seen:
                    seen.add(id(variable))
                    self.generators.append((variable, int(np.asarray(variable.numpy())[0])))

    def set(self, epoch):
        self.epoch.assign(epoch)
        for variable, own in self.generators:
            variable.assign(np.array([own, epoch << EPOCH_SHIFT], dtype=variable.dtype))

    def callback(self):
        import keras

        seeds = self

        class ReseedEachEpoch(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                seeds.set(epoch)

        return ReseedEachEpoch()
