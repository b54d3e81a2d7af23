"""Train a zoo model into a run directory, and re-evaluate a saved run.

    mnist-job train --model cnn-bn-aug --dataset mnist-sample
    mnist-job train --model mnist-convnet --dataset fashion_mnist --data /usr/share/datasets/fashion-mnist
    mnist-job train --model dense-512 --out runs/d512 --epochs 3      # kill it, then add --resume
    mnist-job evaluate runs/d512

A run directory holds model.keras, config.json, history.csv, metrics.json and plots/ (docs/artifacts.md).
"""

import contextlib
import csv
import json
import logging
import os
import platform
import shlex
import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from job.data import load_dataset, split_validation
from job.errors import Interrupted, JobError
from job.models import build_model, default_epochs, get_spec, make_optimizer

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    model: str = "cnn-bn-aug"
    dataset: str = "mnist"
    data: str | None = None
    epochs: int | None = None  # None: the zoo entry's default
    batch_size: int | None = None
    optimizer: str | None = None
    learning_rate: float | None = None
    val_split: float = 0.1
    seed: int = 42
    out: str | None = None
    resume: bool = False
    augment: bool | None = None
    mixed_precision: bool = False
    jit: bool = False  # XLA measured 2-6x slower than the default on CPU (bench/train_speed.py)
    strategy: str = "auto"
    tensorboard: bool = False
    deterministic: bool = True
    max_train_samples: int | None = None  # for quick runs and tests
    verbose: int | str = "auto"


def resolve(cfg):
    """Fill zoo defaults and check every argument before any heavy work starts."""
    spec = get_spec(cfg.model)
    cfg.batch_size = spec.batch_size if cfg.batch_size is None else cfg.batch_size
    cfg.optimizer = spec.optimizer if cfg.optimizer is None else cfg.optimizer
    cfg.learning_rate = spec.learning_rate if cfg.learning_rate is None else cfg.learning_rate
    cfg.augment = spec.augment if cfg.augment is None else cfg.augment
    if cfg.epochs is not None and cfg.epochs <= 0:
        raise JobError(f"--epochs must be a positive integer, got {cfg.epochs}")
    if cfg.batch_size <= 0:
        raise JobError(f"--batch-size must be a positive integer, got {cfg.batch_size}")
    if cfg.learning_rate <= 0:
        raise JobError(f"--learning-rate must be positive, got {cfg.learning_rate}")
    if not 0.0 < cfg.val_split < 1.0:
        raise JobError(f"--val-split must be in (0, 1), got {cfg.val_split}")
    cfg.out = str(run_dir_for(cfg))
    return spec


def run_dir_for(cfg):
    if cfg.out:
        out = Path(cfg.out)
    elif cfg.resume:
        out = latest_unfinished(cfg.model)
    else:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        out = Path("runs") / f"{cfg.model}-{stamp}"
    if (out / "model.keras").exists() and not cfg.resume:
        raise JobError(f"{out}: already holds a finished run; choose another --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise JobError(f"--out {out}: not writable ({e.strerror or e})") from None
    return out


def latest_unfinished(model):
    candidates = sorted(Path("runs").glob(f"{model}-*/backup"))
    if not candidates:
        raise JobError(f"--resume: no unfinished run of {model} under runs/; pass --out RUN_DIR")
    return candidates[-1].parent


def seed_everything(seed, deterministic):
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def make_dataset(x, y, batch_size, seed, training, augment=False, mirror=False):
    """tf.data: uint8 arrays cached in memory, cast per batch, augmented on the fly, prefetched."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((x, y)).cache()
    if training:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size).map(lambda a, b: (tf.cast(a, tf.float32), b),
                                  num_parallel_calls=tf.data.AUTOTUNE)
    if augment:
        ds = ds.map(augmenter(seed, mirror), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def augmenter(seed, mirror=False):
    """Random shifts, plus rotations for digits, as their writers vary, or mirror flips for a dataset whose
    classes are mirror-symmetric (a mirrored shirt is a shirt; a mirrored 2 is not a 2). In the pipeline,
    never in the model."""
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

    def apply(images, labels):
        x = images[..., tf.newaxis]
        for step in steps:
            x = step(x, training=True)
        return x[..., 0], labels

    return apply


def throughput_callback(n_samples):
    """Time the epochs this process runs (a resumed run counts only its own epochs)."""
    import keras

    class Throughput(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.start, self.epochs = time.perf_counter(), 0

        def on_epoch_end(self, epoch, logs=None):
            self.epochs += 1

        def on_train_end(self, logs=None):
            self.seconds = time.perf_counter() - self.start
            self.samples_per_second = n_samples * self.epochs / max(self.seconds, 1e-9)

    return Throughput()


def versions():
    import keras
    import tensorflow as tf

    return {"python": platform.python_version(), "tensorflow": tf.__version__, "keras": keras.__version__,
            "numpy": np.__version__, "platform": platform.platform()}


def compiled_model(cfg, spec, x_train, steps_per_epoch):
    """The zoo model with its preprocessing learnt from x_train, compiled with its own optimizer."""
    import keras

    from job.losses import SparseSmoothedCrossentropy

    model = build_model(cfg.model, x_train)
    model.compile(
        optimizer=make_optimizer(cfg.optimizer, cfg.learning_rate, spec.schedule, spec.decay,
                                 total_steps=steps_per_epoch * cfg.epochs),
        loss=(SparseSmoothedCrossentropy(spec.label_smoothing) if spec.label_smoothing
              else keras.losses.SparseCategoricalCrossentropy()),
        metrics=["accuracy"], jit_compile=cfg.jit)
    return model


def prepare(cfg, spec, data, batch_size, scope=None):
    """The set-up every training run shares: validation split, tf.data pipelines, compiled model.

    Returns (model, train_ds, val_ds, n_train, n_val); fills cfg.epochs when it was left to the zoo."""
    x_train, y_train, x_val, y_val = split_validation(data.x_train, data.y_train, cfg.val_split, cfg.seed)
    if cfg.max_train_samples:
        x_train, y_train = x_train[:cfg.max_train_samples], y_train[:cfg.max_train_samples]
    cfg.epochs = cfg.epochs or default_epochs(spec, len(x_train))
    train_ds = make_dataset(x_train, y_train, batch_size, cfg.seed, training=True, augment=cfg.augment,
                            mirror=data.mirror_symmetric)
    val_ds = make_dataset(x_val, y_val, batch_size, cfg.seed, training=False)
    with scope or contextlib.nullcontext():
        model = compiled_model(cfg, spec, x_train, steps_per_epoch=-(-len(x_train) // batch_size))
    return model, train_ds, val_ds, len(x_train), len(x_val)


def train(cfg):
    """Train one zoo model and write a complete run directory. Returns (run_dir, metrics)."""
    spec = resolve(cfg)
    run_dir = Path(cfg.out)
    try:
        data = load_dataset(cfg.dataset, cfg.data)
    except JobError:
        if not any(run_dir.iterdir()):
            run_dir.rmdir()  # leave no empty run behind a bad --data
        raise

    import keras

    from job import devices

    device = devices.detect_devices()  # logs the GPUs, or the CPU and its threads
    if cfg.mixed_precision:
        devices.set_mixed_precision(True)
    if cfg.jit and cfg.deterministic:
        # Keras silently drops jit_compile under op determinism (XLA has no deterministic MaxPool gradient).
        log.warning("--jit: op determinism is off for this run, so the same seed may not repeat exactly")
        cfg.deterministic = False
    seed_everything(cfg.seed, cfg.deterministic)
    strategy = devices.make_strategy(cfg.strategy)
    replicas = devices.replica_count(strategy)
    global_batch = devices.scale_batch(cfg.batch_size, strategy)

    model, train_ds, val_ds, n_train, n_val = prepare(cfg, spec, data, global_batch, strategy.scope())

    config = {**asdict(cfg), "labels": data.labels, "data_source": data.source, "source": spec.source,
              "train_samples": n_train, "val_samples": n_val, "test_samples": len(data.x_test),
              "replicas": replicas, "global_batch_size": global_batch, "versions": versions(),
              "device": device, "command": shlex.join(["mnist-job", *sys.argv[1:]])}
    write_json(run_dir / "config.json", config)

    throughput = throughput_callback(n_train)
    callbacks = [
        keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=True),
        keras.callbacks.ModelCheckpoint(str(run_dir / "checkpoint.keras")),
        # Keras writes the backup in place; a kill mid-write truncates it. The double checkpoint keeps the
        # previous epoch's copy, which Keras falls back to when the latest one cannot be read.
        keras.callbacks.BackupAndRestore(str(run_dir / "backup"), double_checkpoint=True),
        throughput,
    ]
    if cfg.tensorboard:
        try:
            import tensorboard  # noqa: F401  (tensorflow-cpu does not depend on it)
        except ImportError:
            raise JobError("--tensorboard needs the tensorboard package: pip install tensorboard") from None
        callbacks.append(keras.callbacks.TensorBoard(str(run_dir / "tensorboard")))
    if not cfg.resume and (run_dir / "history.csv").exists():
        (run_dir / "history.csv").unlink()  # a stale log from an abandoned run must not mix in
    verbose = cfg.verbose if cfg.verbose != "auto" else (1 if sys.stdout.isatty() else 2)
    try:
        model.fit(train_ds, validation_data=val_ds, epochs=cfg.epochs, callbacks=callbacks, verbose=verbose,
                  shuffle=False)  # tf.data already shuffles; this only silences Keras's warning
    except OSError as e:
        if not cfg.resume:
            raise
        raise JobError(f"{run_dir}/backup: unreadable ({str(e)[:120]}); it was killed while writing its first "
                       "epoch: train again without --resume") from None
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted; the last finished epoch is kept in {run_dir}/backup. Resume with: "
                       f"{resume_command(cfg)}") from None
    dedupe_history(run_dir / "history.csv")

    metrics = evaluate_model(model, data.x_test, data.y_test)
    metrics.update(train_seconds=round(throughput.seconds, 3),
                   samples_per_second=round(throughput.samples_per_second, 1),
                   epochs_run=throughput.epochs, device=device["description"], params=model.count_params(),
                   val_accuracy=last_val_accuracy(run_dir / "history.csv"))
    save_model(model, run_dir / "model.keras")
    write_json(run_dir / "metrics.json", metrics)
    from job.plots import plot_run

    plot_run(run_dir, data.x_test, data.y_test, metrics["predictions"], metrics["probabilities"], data.labels)
    metrics.pop("predictions"), metrics.pop("probabilities")
    return run_dir, metrics


def resume_command(cfg):
    args = [a for a in sys.argv[1:] if a != "--resume"]
    if "--out" not in args:
        args += ["--out", cfg.out]
    return shlex.join(["mnist-job", *args, "--resume"])


def evaluate_model(model, x_test, y_test):
    """Test figures computed in NumPy from the probabilities, so every reader gets the same numbers."""
    probs = model.predict(x_test.astype(np.float32), batch_size=1024, verbose=0)
    return metrics_from_probabilities(probs, y_test)


def metrics_from_probabilities(probs, y):
    y = y.astype(np.int64)
    pred = probs.argmax(axis=1)
    loss = float(-np.mean(np.log(np.clip(probs[np.arange(len(y)), y], 1e-7, 1.0))))
    confusion = np.zeros((10, 10), dtype=np.int64)
    np.add.at(confusion, (y, pred), 1)
    per_class = confusion.diagonal() / np.maximum(confusion.sum(axis=1), 1)
    metrics = {"test_loss": round(loss, 6), "test_accuracy": round(float(np.mean(pred == y)), 6),
               "per_class_accuracy": [round(float(a), 6) for a in per_class],
               "confusion_matrix": confusion.tolist()}
    # Not written to metrics.json: plots and callers use them.
    return {**metrics, "predictions": pred, "probabilities": probs}


def evaluate(run_dir, dataset=None, data=None):
    """Reload a saved run and recompute its test figures; returns (fresh, recorded) metrics."""
    run_dir = Path(run_dir)
    if not (run_dir / "model.keras").is_file():
        raise JobError(f"{run_dir}: no model.keras (not a finished run directory)")
    config = json.loads((run_dir / "config.json").read_text())
    recorded = json.loads((run_dir / "metrics.json").read_text())
    ds = load_dataset(dataset or config["dataset"], data if data is not None else config.get("data"))
    model = load_keras_model(run_dir / "model.keras")
    fresh = evaluate_model(model, ds.x_test, ds.y_test)
    fresh.pop("predictions"), fresh.pop("probabilities")
    return fresh, recorded


def load_keras_model(path):
    import keras

    try:
        return keras.models.load_model(path, compile=False)
    except Exception as e:
        reason = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
        raise JobError(f"{path}: cannot load Keras model ({reason})") from None


def save_model(model, path):
    tmp = path.with_name(path.stem + ".tmp" + path.suffix)
    model.save(tmp)
    os.replace(tmp, path)


def write_json(path, obj):
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def read_history(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def dedupe_history(path):
    """A kill between the CSV row and the backup repeats an epoch on resume; keep its last row."""
    rows = read_history(path)
    by_epoch = {row["epoch"]: row for row in rows}
    if len(by_epoch) == len(rows):
        return
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(sorted(by_epoch.values(), key=lambda r: int(r["epoch"])))
    os.replace(tmp, path)


def last_val_accuracy(path):
    rows = read_history(path)
    return round(float(rows[-1]["val_accuracy"]), 6) if rows else None
