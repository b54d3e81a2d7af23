"""The model zoo: the classic tutorial models, and our best model.

Every model takes raw pixels and returns probabilities: input `image` float32 (N, 28, 28) 0-255, white on
black; output `probabilities` float32 (N, 10). Scaling and standardization are layers inside the model, so
training, SavedModel, ONNX and the edge predictor all read the same input. Augmentation is not a layer
here: `augment=True` asks the training input pipeline for it, and it never reaches an exported graph.

    from job.train.models import ZOO, build_model
    model = build_model("mnist-convnet", x_train)
"""

from dataclasses import dataclass

import numpy as np

from job.errors import JobError

# MNIST's own pixel statistics: used only when a model is built without training data (e.g. `models`).
DEFAULT_MEAN, DEFAULT_STD = 33.3, 78.6
# Keras's optimizer names, checked before a run directory is made.
OPTIMIZERS = ("adadelta", "adafactor", "adagrad", "adam", "adamax", "adamw", "ftrl", "lamb", "lion", "muon",
              "nadam", "rmsprop", "sgd")


@dataclass(frozen=True)
class ModelSpec:
    name: str
    body: object  # () -> list of keras layers between the input preprocessing and the output layer
    optimizer: str
    learning_rate: float
    batch_size: int
    epochs: int
    source: str
    conv: bool = True  # reshape to (28, 28, 1) first
    standardize: bool = False  # mean/std learnt from the training data, instead of x/255
    schedule: str = "constant"  # constant | inverse-time (legacy Keras `decay`) | cosine
    decay: float = 0.0
    augment: bool = False
    min_samples: int = 0  # default epochs rise on small datasets until training sees this many samples
    label_smoothing: float = 0.0
    outliers: bool = False  # outlier exposure on digit datasets (job.data.outliers)
    notes: str = ""


def _dense_512():
    from keras import layers
    return [layers.Flatten(), layers.Dense(512, activation="relu")]


def _dense_128_64(dropout=False):
    from keras import layers
    first = [layers.Flatten(), layers.Dense(128, activation="relu")]
    return first + ([layers.Dropout(0.5)] if dropout else []) + [layers.Dense(64, activation="relu")]


def _dense_128():
    from keras import layers
    return [layers.Flatten(), layers.Dense(128, activation="relu")]


def _cnn_mit():
    from keras import layers
    return [layers.Conv2D(24, 3, activation="relu"), layers.MaxPooling2D(2),
            layers.Conv2D(36, 3, activation="relu"), layers.MaxPooling2D(2),
            layers.Flatten(), layers.Dense(128, activation="relu")]


def _cnn_2conv_dropout():
    from keras import layers
    return [layers.Conv2D(32, 3, padding="same", activation="relu"), layers.MaxPooling2D(),
            layers.Conv2D(64, 3, padding="same", activation="relu"), layers.MaxPooling2D(),
            layers.Flatten(), layers.Dense(128, activation="relu"), layers.Dropout(0.5)]


def _cnn_3conv():
    from keras import layers
    return [layers.Conv2D(32, 3, activation="relu"), layers.MaxPooling2D(),
            layers.Conv2D(64, 3, activation="relu"), layers.MaxPooling2D(),
            layers.Conv2D(64, 3, activation="relu"),
            layers.Flatten(), layers.Dense(64, activation="relu")]


def _mnist_convnet():
    from keras import layers
    return [layers.Conv2D(32, 3, activation="relu"), layers.MaxPooling2D(),
            layers.Conv2D(64, 3, activation="relu"), layers.MaxPooling2D(),
            layers.Flatten(), layers.Dropout(0.5)]


def _bn():
    # Momentum 0.9, not Keras's 0.99: with ~40 steps an epoch on the 6k sample, 0.99 leaves the moving
    # statistics far behind the weights and test accuracy swings by tens of points between epochs.
    from keras import layers
    return layers.BatchNormalization(momentum=0.9)


def _conv_bn(filters):
    from keras import layers
    return [layers.Conv2D(filters, 3, padding="same", use_bias=False), _bn(), layers.ReLU()]


def _stem(filters):
    # A strided 4x4 convolution instead of a 3x3 one at full resolution. With one input channel a
    # convolution runs at ~10 GFLOP/s on this CPU, against ~100 with 32 or more, and batch norm and pooling
    # on 28x28 maps cost more again: the stem makes the whole model ~1.5x faster than the same widths at 28x28
    # for the same accuracy (measured on Fashion-MNIST).
    from keras import layers
    return [layers.Conv2D(filters, 4, strides=2, padding="same", use_bias=False), _bn(), layers.ReLU()]


def _cnn_bn_aug():
    from keras import layers
    return (_stem(32) + _conv_bn(64) + [layers.MaxPooling2D()] + _conv_bn(128) + [layers.MaxPooling2D(),
            layers.Flatten(), layers.Dense(256, use_bias=False), _bn(), layers.ReLU(), layers.Dropout(0.3)])


BEST = "cnn-bn-aug"
ZOO = {spec.name: spec for spec in [
    ModelSpec("dense-512", _dense_512, "rmsprop", 1e-3, 128, 5, "Chollet's book",
              conv=False),
    ModelSpec("dense-128-64", _dense_128_64, "adam", 1e-3, 32, 5, "tutorial 001", conv=False),
    ModelSpec("dense-128-64-dropout", lambda: _dense_128_64(dropout=True), "adam", 1e-3, 32, 5,
              "tutorial 001", conv=False),
    ModelSpec("dense-128", _dense_128, "sgd", 0.1, 64, 5, "MIT 6.S191 lab", conv=False),
    ModelSpec("cnn-mit", _cnn_mit, "adam", 1e-3, 64, 5, "MIT 6.S191 lab"),
    ModelSpec("cnn-2conv-dropout", _cnn_2conv_dropout, "adam", 0.01, 128, 2,
              "tutorial 000", standardize=True,
              schedule="inverse-time", decay=0.005),
    ModelSpec("cnn-3conv", _cnn_3conv, "adam", 1e-3, 64, 5, "tutorial 002"),
    ModelSpec("mnist-convnet", _mnist_convnet, "adam", 1e-3, 128, 15,
              "keras-io"),
    ModelSpec(BEST, _cnn_bn_aug, "adam", 3e-3, 128, 30,
              "ours", notes="strided stem, 2x conv-BN-ReLU-pool, dense-BN, label smoothing; augmentation in the "
                            "input pipeline: shifts, and rotations, stroke width, blur and contrast for digits or "
                            "mirror flips for clothing; digits from printed fonts; outlier exposure on digits",
              standardize=True, schedule="cosine", augment=True, min_samples=160_000, label_smoothing=0.1,
              outliers=True),
]}


# Parameters with 10 classes, as count_params(name) gives them (tests/test_models.py keeps this true).
PARAMS = {"dense-512": 407_050, "dense-128-64": 109_386, "dense-128-64-dropout": 109_386, "dense-128": 101_770,
          "cnn-mit": 124_670, "cnn-2conv-dropout": 421_642, "cnn-3conv": 93_322, "mnist-convnet": 34_826,
          "cnn-bn-aug": 392_074}


def get_spec(name):
    if name not in ZOO:
        raise JobError(f"unknown model {name!r}: choose one of {', '.join(ZOO)} (see `mnist-job models`)")
    return ZOO[name]


def build_model(name, x_train=None, classes=10, stats=None):
    """Build an uncompiled model whose preprocessing is learnt from x_train (uint8 or float, 0-255), or set
    to `stats` = (mean, std) when given (a fine-tuned model keeps its base's)."""
    import keras
    from keras import layers

    spec = get_spec(name)
    inputs = keras.Input(shape=(28, 28), name="image", dtype="float32")
    if spec.standardize:
        mean, std = (stats if stats is not None else (float(np.mean(x_train)), float(np.std(x_train)))
                     if x_train is not None else (DEFAULT_MEAN, DEFAULT_STD))
        x = layers.Normalization(mean=mean, variance=std ** 2, name="standardize")(inputs)
    else:
        x = layers.Rescaling(1.0 / 255, name="scale")(inputs)
    if spec.conv:
        x = layers.Reshape((28, 28, 1))(x)
    for layer in spec.body():
        x = layer(x)
    # float32 even under mixed precision: softmax in float16 loses the small probabilities.
    outputs = layers.Dense(classes, activation="softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=name.replace("-", "_"))


def make_optimizer(name, learning_rate, schedule="constant", decay=0.0, total_steps=1):
    import keras

    if schedule == "inverse-time":
        # Keras 2's `decay=d` meant lr / (1 + d * iterations): exactly InverseTimeDecay with decay_steps=1.
        lr = keras.optimizers.schedules.InverseTimeDecay(learning_rate, decay_steps=1, decay_rate=decay)
    elif schedule == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=max(1, total_steps),
                                                    alpha=0.01)
    else:
        lr = learning_rate
    try:
        return keras.optimizers.get({"class_name": name, "config": {"learning_rate": lr}})
    except ValueError:
        raise JobError(f"unknown optimizer {name!r}: try adam, rmsprop, sgd, adamw, nadam") from None


MAX_DEFAULT_EPOCHS = 100  # the small-data rule's cap: on a few hundred images more epochs only memorise them


def default_epochs(spec, n_train):
    """The entry's epochs, or more on a small dataset, so that training sees at least `min_samples` samples,
    but at most MAX_DEFAULT_EPOCHS (never fewer than the entry's own)."""
    return max(spec.epochs, min(MAX_DEFAULT_EPOCHS, -(-spec.min_samples // max(n_train, 1)))) if spec.min_samples \
        else spec.epochs


def why_epochs(spec, n_train):
    """One line on how default_epochs chose, for the log."""
    epochs = default_epochs(spec, n_train)
    if not spec.min_samples:
        return f"epochs: {epochs}, {spec.name}'s default (--epochs N chooses)"
    wanted = -(-spec.min_samples // max(n_train, 1))
    rule = (f"{spec.name} trains until it has seen {spec.min_samples:,} samples: {spec.min_samples:,} / {n_train:,} "
            f"training images = {wanted:,} epochs")
    if wanted > MAX_DEFAULT_EPOCHS:
        rule += f", capped at {MAX_DEFAULT_EPOCHS}"
    elif wanted < spec.epochs:
        rule += f", and at least its {spec.epochs}"
    return f"epochs: {epochs} ({rule}; --epochs N chooses)"


def count_params(name):
    """Parameters of a zoo model with 10 classes. `mnist-job models` reads PARAMS instead, which costs no
    TensorFlow import; tests/test_models.py checks that PARAMS matches this for every entry."""
    return build_model(name).count_params()
