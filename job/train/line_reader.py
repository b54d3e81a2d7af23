"""Train the line reader: a model that reads a whole line of digits at once (mnist_predict.lines), beside a
digit model in its run directory.

    mnist-job train --model cnn-bn-aug --dataset mnist-sample --out runs/demo
    mnist-job train-lines runs/demo                  # writes runs/demo/lines.keras and lines.json
    mnist-job export runs/demo                       # ... and export/lines.onnx beside model.onnx

The model is a stack of convolutions that turns a line image (HEIGHT px high, any width) into a column of
probabilities every STRIDE px, over blank, the ten digits and "?" (a letter or symbol standing in the
number), trained with the CTC loss on rendered numbers of the run's training digits and the training fonts'
letters (job.data.number_lines). Its figure is the share of held-out lines it reads
exactly (greedy decoding, as the predictor decodes).
"""

import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from mnist_predict import lines as line_format

from job.errors import JobError
from job.train import rundir

MODEL, METRICS = "lines.keras", "lines.json"
# 30,000 lines read 88.8% of the held-out lines exactly where 20,000 read 83.8%, and touching numbers 3 to 7
# points more often whole (bench/README.md), for about half as much time again
LINES, EPOCHS, BATCH = 30000, 12, 64
WIDTH = 256  # training lines are padded with paper to this width (wider ones are squeezed to it: rare)
VALIDATION = 1000  # lines held out for the figure
MAX_LABEL = 8


def build_model():
    """(N, HEIGHT, W) raw 0-255 pixels in, (N, W / STRIDE, 12) probabilities out (blank, then
    lines.CLASSES); W any multiple of STRIDE."""
    import keras
    from keras import layers

    inputs = keras.Input((line_format.HEIGHT, None), name="line")
    x = layers.Reshape((line_format.HEIGHT, -1, 1))(inputs)
    x = layers.Rescaling(1 / 255)(x)
    # two 2x2 pools make STRIDE = 4 px per output column; the (2, 1) pools only shrink the height
    for filters, pool in ((32, (2, 2)), (64, (2, 2)), (96, None), (96, (2, 1)), (128, (2, 1))):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
        if pool:
            x = layers.MaxPooling2D(pool)(x)
    x = layers.Conv2D(128, (2, 1), activation="relu")(x)  # height 2 -> 1
    x = layers.Reshape((-1, 128))(x)
    # a digit spans about 5 columns: two 5-wide convolutions let each column see its neighbours on both sides
    x = layers.Conv1D(128, 5, padding="same", activation="relu")(x)
    x = layers.Dropout(0.2)(x)
    x = layers.Conv1D(128, 5, padding="same", activation="relu")(x)
    outputs = layers.Dense(len(line_format.CLASSES) + 1, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="line_reader")


def ctc_loss(labels, probabilities):
    """keras' CTC loss on the model's probabilities (it takes logits: log-probabilities are logits whose
    softmax is themselves). Labels are lines.label of each character, padded with 0 (blank)."""
    import keras

    return keras.losses.ctc(labels, keras.ops.log(probabilities + 1e-9))


def batch_of(images, texts, rng):
    """Line images placed at a random x in WIDTH px of paper, and their padded labels."""
    from PIL import Image

    x = np.zeros((len(images), line_format.HEIGHT, WIDTH), np.uint8)
    y = np.zeros((len(images), MAX_LABEL), np.int32)
    for k, (image, text) in enumerate(zip(images, texts)):
        if image.shape[1] > WIDTH:
            image = np.asarray(Image.fromarray(image).resize((WIDTH, line_format.HEIGHT), Image.Resampling.BILINEAR))
        left = int(rng.integers(0, WIDTH - image.shape[1] + 1))
        x[k, :, left:left + image.shape[1]] = image
        y[k, :len(text)] = [line_format.label(c) for c in text]
    return x, y


def read_texts(model, images):
    """Each line's text, padded and decoded as the predictor reads it."""
    return [line_format.decode(line_format.cropped(np.asarray(model(line_format.padded(image), training=False))[0],
                                                   image))[0] for image in images]


def held_out_figures(model, images, texts):
    """The share of lines read exactly; of those with a letter standing in, the share read with a "?"; of those
    without, the share read with one (a digit taken for a letter)."""
    read = read_texts(model, images)
    lettered = [("?" in text, "?" in got) for text, got in zip(texts, read)]
    caught = [got for has, got in lettered if has]
    false = [got for has, got in lettered if not has]
    return {"lines_read_exactly": round(float(np.mean([a == b for a, b in zip(read, texts)])), 4),
            "letter_lines": len(caught), "letters_read_as_unknown": round(float(np.mean(caught)), 4) if caught else None,
            "digit_lines_read_with_unknown": round(float(np.mean(false)), 4) if false else None}


def fit(images, texts, epochs=EPOCHS, seed=0, log=print, validation=VALIDATION):
    """A line reader trained on (images, texts) less `validation` lines held out: (model, metrics)."""
    import keras

    if len(images) <= validation:
        raise ValueError(f"{len(images)} lines: need more than the {validation} held out for the figure")
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(images))
    held, kept = order[:validation], order[validation:]
    train_images, train_texts = [images[k] for k in kept], [texts[k] for k in kept]
    model = build_model()
    steps = epochs * (len(kept) // BATCH)
    model.compile(keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(1e-3, steps)), loss=ctc_loss)
    for epoch in range(epochs):
        started = time.time()
        x, y = batch_of(train_images, train_texts, rng)  # a fresh placement each epoch
        history = model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, shuffle=True)
        log(f"line reader epoch {epoch + 1}/{epochs}: loss {history.history['loss'][-1]:.3f} "
            f"({time.time() - started:.0f} s)")
    figures = held_out_figures(model, [images[k] for k in held], [texts[k] for k in held])
    return model, {"held_out_lines": int(len(held)), **figures, "training_lines": int(len(kept)), "epochs": epochs,
                   "seed": seed}


def train_line_reader(run_dir, lines=LINES, epochs=EPOCHS, seed=0, data=None, log=print, validation=VALIDATION):
    """Train a line reader on the run's training digits and write it into the run directory, atomically:
    run_dir/lines.keras and lines.json. Returns the metrics.

    The run's validation split stays out, as it stayed out of the digit model's training: export calibrates
    `read`'s confidence on numbers of those digits (job.export.reading_calibration), which neither model
    may have seen."""
    from job.data.datasets import DIGITS, training_split
    from job.data.letters import fonts
    from job.data.number_lines import number_lines
    from job.train.run_config import recorded
    from job.train.training import run_dataset

    run_dir = Path(run_dir)
    if not rundir.is_finished(run_dir):
        raise JobError(f"{run_dir}: no finished run (model.keras) to train a line reader beside")
    config = rundir.read_json(run_dir / rundir.CONFIG)
    dataset = config.get("dataset")
    loaded = run_dataset(config, data=data)
    if list(loaded.labels) != DIGITS:
        raise JobError(f"{run_dir}: its classes are not the digits 0-9 (dataset {dataset}); a line reader reads "
                       "numbers")
    x, y, x_val, _ = training_split(replace(recorded(config), max_train_samples=None), loaded)
    started = time.time()
    images, texts = number_lines(x, y, lines, seed=seed, fonts=fonts("train"))
    log(f"rendered {len(images):,} lines of the {len(x):,} training digits ({len(x_val):,} of the run's validation "
        f"split left out) in {time.time() - started:.0f} s")
    model, metrics = fit(images, texts, epochs, seed, log, validation)
    metrics.update(dataset=dataset, training_digits=int(len(x)), validation_digits_left_out=int(len(x_val)))
    rundir.save_model(model, run_dir / MODEL)
    rundir.write_json(run_dir / METRICS, metrics)
    return metrics
