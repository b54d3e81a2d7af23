"""SavedModel in TF Serving's layout (savedmodel/1/), signature serving_default: image -> probabilities.

The gate reloads it as TF Serving would, through its signature, not through Keras.
"""


def write(model, path):
    import keras
    import tensorflow as tf

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", lambda image: {"probabilities": model(image, training=False)},
                         input_signature=[tf.TensorSpec((None, 28, 28), tf.float32, name="image")])
    archive.write_out(str(path), verbose=False)


def runner(path):
    import tensorflow as tf

    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    return lambda x: serve(image=tf.constant(x))["probabilities"].numpy()
