"""Train a zoo model into a run directory, and re-evaluate a saved run.

    mnist-job train --model cnn-bn-aug --dataset mnist-sample
    mnist-job train --model mnist-convnet --dataset fashion_mnist --data /usr/share/datasets/fashion-mnist
    mnist-job train --model dense-512 --out runs/d512 --epochs 3      # kill it, then add --resume
    mnist-job evaluate runs/d512

A run directory holds model.keras (the best epoch, written last), config.json, history.csv, metrics.json,
best.keras, last.keras and plots/ (docs/artifacts.md; reading and writing them is job.train.rundir's).
"""

import contextlib
import logging
import platform
import shlex
import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from mnist_predict.files import first_sentence

from job.data.datasets import DIGITS, load_dataset, training_split
from job.errors import GateError, Interrupted, JobError
from job.interrupts import deferred
from job.train import rundir
from job.train.epoch_seeds import EpochSeeds
from job.train.models import build_model, get_spec, make_optimizer
from job.train.run_config import TrainConfig, for_data, recorded, resolve, worker_of  # noqa: F401  (TrainConfig: the API)

log = logging.getLogger(__name__)
OUTLIER_SHARE = 0.2  # outlier exposure: synthetic non-digits, as a share of the training digits
LETTER_SHARE = 0.5  # ... and letters and symbols (job.data.letters), on digit datasets
FRAGMENT_SHARE = 0.3  # ... and the fragments and merged pairs a wrong cut makes (job.data.segment_crops)
SEGMENT_SHARE = 0.2  # digits as number reading crops them, slivers of neighbours and all (augmentation)
STRETCHED_SHARE = 0.2  # digits cropped to their ink and stretched square, as home-made 28x28 sets hold them
FONT_DIGIT_SHARE = 0.2  # digits from printed fonts in the letters' pen: hands other than MNIST's (job.data.letters)
# evaluate fails (exit 1) when the test accuracy falls this far below the figure recorded by train.
EVALUATE_TOLERANCE = 0.05


def seed_everything(seed, deterministic):
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def make_dataset(x, y, batch_size, seed, training, augment=False, mirror=False, robust=False, seeds=None,
                 teacher=None):
    """tf.data: uint8 arrays cached in memory, cast per batch, augmented on the fly, prefetched.

    With `seeds` (job.train.epoch_seeds.EpochSeeds), a training set's order and augmentation are drawn from the
    epoch's number, so that a resumed run repeats the epochs of one never stopped. With a `teacher` model, each
    label becomes a row [label, the teacher's probabilities of the image as augmented] (distillation)."""
    import tensorflow as tf

    if training and seeds is not None:
        ds = seeds.shuffled(x, y)
    else:
        ds = tf.data.Dataset.from_tensor_slices((x, y)).cache()
        if training:
            ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size).map(lambda a, b: (tf.cast(a, tf.float32), b),
                                  num_parallel_calls=tf.data.AUTOTUNE)
    if augment:
        from job.data.augment import augmenter

        augment_batch = augmenter(seed, mirror, robust)
        if seeds is not None:
            seeds.track(*augment_batch.layers)
        ds = ds.map(augment_batch, num_parallel_calls=tf.data.AUTOTUNE)
    if teacher is not None:
        ds = ds.map(lambda a, b: (a, tf.concat([tf.cast(tf.reshape(b, (-1, 1)), tf.float32),
                                                teacher(a, training=False)], axis=1)))
    return ds.prefetch(tf.data.AUTOTUNE)


def epoch_log_callback():
    """Adds the learning rate and the epoch's seconds to the logs, so history.csv records both (and the run's
    training time survives resumes: it is the sum over history.csv)."""
    import keras

    class EpochLog(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            if logs is not None:
                logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
                logs["seconds"] = round(time.perf_counter() - self.start, 3)

    return EpochLog()


def interrupt_callback(interrupt):
    """Raises a deferred Ctrl-C (job.interrupts) between batches. A KeyboardInterrupt that lands inside
    TensorFlow while it traces the first step comes out wrapped in a TF error, not as KeyboardInterrupt, and the
    run ended with a traceback and exit 1; raised here, in Python, it ends with the run's message and 130."""
    import keras

    class Interrupt(keras.callbacks.Callback):
        # At a batch's begin, not its end: Keras may run batch-end hooks in a thread pool (async dispatch), where
        # a raise waits for the epoch's end; begin hooks run in fit's own thread, and leave async dispatch on.
        def on_train_batch_begin(self, batch, logs=None):
            interrupt.check()

        on_test_batch_begin = on_epoch_end = on_train_batch_begin

    return Interrupt()


def best_checkpoint_callback(path, n_val, history, floor=None):
    """Saves the model whenever an epoch's validation accuracy is as good as the best so far (job.train.stats): a
    checkpoint of the best epoch that noise of a few validation images cannot pull back to an early one.
    With `floor` (a fine-tuned run's base), only epochs that beat it count. On resume, the best so far comes
    from history.csv."""
    import keras

    from job.train.stats import as_good

    def candidate(score):
        return floor is None or score > floor

    class BestCheckpoint(keras.callbacks.Callback):
        best = max((float(row["val_accuracy"]) for row in history if candidate(float(row["val_accuracy"]))),
                   default=None)

        def on_epoch_end(self, epoch, logs=None):
            score = float(logs["val_accuracy"])
            if not candidate(score):
                return
            if as_good(score, self.best, n_val):
                rundir.save_model(self.model, path)
            self.best = score if self.best is None else max(self.best, score)

    return BestCheckpoint()


def versions():
    import keras
    import tensorflow as tf

    return {"python": platform.python_version(), "tensorflow": tf.__version__, "keras": keras.__version__,
            "numpy": np.__version__, "platform": platform.platform()}


def compiled_model(cfg, spec, x_train, steps_per_epoch, classes=10, base=None):
    """The zoo model with its preprocessing learnt from x_train (or a fine-tuned run's model, from `base` or
    the run it names, see job/train/finetune.py), compiled with its own optimizer."""
    import keras

    from job.train.finetune import DISTILL, base_model, distills
    from job.train.losses import DigitAccuracy, DistilledCrossentropy, SparseSmoothedCrossentropy

    if getattr(cfg, "init_from", None):
        from job.train.finetune import initial_model

        model = initial_model(cfg, x_train, classes, base or base_model(cfg))
    else:
        model = build_model(cfg.model, x_train, classes)
    if distills(cfg):
        loss = DistilledCrossentropy(spec.label_smoothing, DISTILL)
    elif spec.label_smoothing or spec.outliers:
        loss = SparseSmoothedCrossentropy(spec.label_smoothing)
    else:
        loss = keras.losses.SparseCategoricalCrossentropy()
    model.compile(
        optimizer=make_optimizer(cfg.optimizer, cfg.learning_rate, spec.schedule, spec.decay,
                                 total_steps=steps_per_epoch * cfg.epochs),
        loss=loss,
        metrics=[DigitAccuracy()], jit_compile=cfg.jit)
    return model


def model_and_pipelines(cfg, data, batch_size, scope=None):
    """The set-up every training run shares: validation split, tf.data pipelines, compiled model. `cfg` is
    resolved (job.train.run_config): its epochs and outlier exposure are decided.

    Returns (model, train_ds, val_ds, n_fit, n_val, seeds): n_fit counts the samples an epoch passes over
    (the digits, plus stretched copies and outliers where they apply); seeds.callback() must run in fit, to
    draw each epoch's shuffle and augmentation from its number."""
    from job.train.finetune import base_model, distills, replay_set

    x_train, y_train, x_val, y_val = training_split(cfg, data)
    if distills(cfg):  # validation stays the new images' alone: what an epoch must do better on
        x_old, y_old = replay_set(cfg, len(x_train))
        x_train, y_train = np.concatenate([x_train, x_old]), np.concatenate([y_train, y_old])
    digits = data.labels == DIGITS
    x_fit, y_fit = x_train, y_train.astype(np.int32)
    if digits and (cfg.augment or cfg.outliers):  # the crops reading a number makes: digits, and not
        from job.data.segment_crops import segment_crops

        (x_cut, y_cut), x_fragments = segment_crops(x_train, y_train, round(SEGMENT_SHARE * len(x_train)) * cfg.augment,
                                                    round(FRAGMENT_SHARE * len(x_train)) * bool(cfg.outliers), cfg.seed)
    if cfg.augment and digits:
        from job.data.augment import stretched
        from job.data.letters import make_font_digits

        x_more, y_more = stretched(x_train, y_train, STRETCHED_SHARE, cfg.seed)
        # seed + 1: a random stream of their own, apart from the letters' (make_letters takes the seed itself)
        x_font, y_font = make_font_digits(round(FONT_DIGIT_SHARE * len(x_train)), cfg.seed + 1)
        x_fit, y_fit = np.concatenate([x_fit, x_more, x_cut, x_font]), np.concatenate([y_fit, y_more, y_cut, y_font])
    if cfg.outliers:
        from job.data.letters import make_letters
        from job.data.outliers import make_outliers
        from job.train.losses import OUTLIER

        extra = make_outliers(round(OUTLIER_SHARE * len(x_train)), cfg.seed)
        if digits:
            extra = np.concatenate([extra, make_letters(round(LETTER_SHARE * len(x_train)), cfg.seed), x_fragments])
        x_fit = np.concatenate([x_fit, extra])
        y_fit = np.concatenate([y_fit, np.full(len(extra), OUTLIER, np.int32)])
    seeds = EpochSeeds(cfg.seed)
    base = base_model(cfg) if cfg.init_from else None
    teacher = base if distills(cfg) else None  # validation is scored with the same loss
    train_ds = make_dataset(x_fit, y_fit, batch_size, cfg.seed, training=True, augment=cfg.augment,
                            mirror=data.mirror_symmetric, robust=digits, seeds=seeds, teacher=teacher)
    val_ds = make_dataset(x_val, y_val, batch_size, cfg.seed, training=False, teacher=teacher)
    with scope or contextlib.nullcontext():
        model = compiled_model(cfg, get_spec(cfg.model), x_train, -(-len(x_fit) // batch_size), len(data.labels),
                               base)
    seeds.track(model)
    return model, train_ds, val_ds, len(x_fit), len(x_val), seeds


@dataclass
class Setup:
    """What a run has ready once its devices, seeds, strategy, data pipelines and model are set up."""
    model: object
    train_ds: object
    val_ds: object
    n_fit: int
    n_val: int
    seeds: EpochSeeds
    device: dict
    replicas: int
    global_batch: int
    base: float | None  # a fine-tuned run's base validation accuracy, which an epoch must beat


def train(cfg, data=None, record=None):
    """Train one zoo model and write a complete run directory. Returns (run_dir, metrics); metrics is None
    on a multi-worker run's other workers, whose chief writes the run.

    `data`: a Dataset to train on instead of loading cfg.dataset (cross-validation's folds); `record`: more
    entries for config.json."""
    cfg = resolve(cfg)
    worker = worker_of(cfg)
    chief = not worker or worker.is_chief
    # Only the chief creates and checks the run directory; the others may find the chief's files there already.
    run_dir = rundir.start(cfg.out, cfg.resume) if chief else Path(cfg.out)
    try:
        data = load_dataset(cfg.dataset, cfg.data, cfg.test_split, cfg.seed, base_labels(cfg)) if data is None else data
    except JobError:
        if chief and not any(run_dir.iterdir()):
            run_dir.rmdir()  # leave no empty run behind a bad --data
        raise
    cfg = for_data(cfg, data)
    setup = set_up(cfg, data, run_dir, chief)
    if not chief:
        from job.distributed.multiworker import train_other_worker

        train_other_worker(cfg, worker, setup, run_dir, fit_worker)
        return run_dir, None
    if cfg.resume:
        record_resume(run_dir, len(rundir.read_history(run_dir / rundir.HISTORY)))
    else:
        write_config(cfg, data, setup, run_dir, record)
    if not (run_dir / rundir.FIT).is_file():
        fit_worker(cfg, worker, setup, run_dir, rundir.read_history(run_dir / rundir.HISTORY))
    return finish(cfg, run_dir, data, setup.n_fit, setup.n_val, setup.device, setup.base)


def base_labels(cfg):
    """A fine-tune's base classes, which a labelled folder of some of them is read as (a folder of corrections
    may hold a few digits only, and must not train a head of its own)."""
    if not cfg.init_from:
        return None
    from job.train.finetune import base_config

    return base_config(cfg.init_from)["labels"]


def set_up(cfg, data, run_dir, chief):
    """Devices, seeds, the distribution strategy, the data pipelines and the compiled model (Setup)."""
    from job.distributed import devices

    device = devices.detect_devices()  # logs the GPUs, or the CPU and its threads
    if cfg.mixed_precision:
        devices.set_mixed_precision(True)
    seed_everything(cfg.seed, cfg.deterministic)
    strategy = devices.make_strategy(cfg.strategy, cfg.connect_timeout)
    replicas = devices.replica_count(strategy)
    global_batch = devices.scale_batch(cfg.batch_size, strategy)
    if cfg.resume:
        recorded_batch = rundir.read_json(run_dir / rundir.CONFIG).get("global_batch_size", global_batch)
        if recorded_batch != global_batch:
            raise JobError(f"{run_dir}: trained with a global batch of {recorded_batch}, now {global_batch} "
                           f"({replicas} replica(s)); resume with as many workers and GPUs as it started with")
    model, train_ds, val_ds, n_fit, n_val, seeds = model_and_pipelines(cfg, data, global_batch, strategy.scope())
    devices.synchronize_batch_norm(model, strategy)
    base = base_candidate(cfg, run_dir, data, model, val_ds, chief)
    return Setup(model, train_ds, val_ds, n_fit, n_val, seeds, device, replicas, global_batch, base)


def write_config(cfg, data, setup, run_dir, record=None):
    """config.json: the resolved settings, field by field, then what the run was made of and on."""
    spec = get_spec(cfg.model)
    config = {**asdict(cfg), "labels": data.labels, "data_source": data.source, "data_sha256": data_sha256(data),
              "source": spec.source, "train_samples": setup.n_fit, "val_samples": setup.n_val,
              "test_samples": len(data.x_test), "replicas": setup.replicas, "global_batch_size": setup.global_batch,
              "versions": versions(), "device": setup.device, "command": shlex.join(["mnist-job", *sys.argv[1:]]),
              "resumes": []}
    if cfg.init_from:
        from job.train.finetune import DISTILL, distills, lineage

        config.update(lineage(cfg.init_from), base_val_accuracy=setup.base, distill=DISTILL if distills(cfg) else 0.0)
    rundir.write_json(run_dir / rundir.CONFIG, {**config, **(record or {})})


def base_candidate(cfg, run_dir, data, model, val_ds, chief):
    """A fine-tuned run's starting model competes for "best": its validation accuracy (before the first
    epoch, recorded in config.json), saved as base.keras by the chief. None when it cannot compete: not a
    fine-tuned run, or one of other classes than its base's."""
    if not cfg.init_from:
        return None
    if cfg.resume:
        return rundir.read_json(run_dir / rundir.CONFIG).get("base_val_accuracy")
    from job.train.finetune import base_config

    if base_config(cfg.init_from)["labels"] != data.labels:
        return None
    accuracy = round(float(model.evaluate(val_ds, verbose=0, return_dict=True)["accuracy"]), 6)
    if chief:
        rundir.save_model(model, run_dir / rundir.BASE)
    log.info("fine-tune: the base model scores %.4f on the validation split; an epoch is kept only if it beats "
             "that", accuracy)
    return accuracy


def data_sha256(data):
    """A fingerprint of what a run trained and was tested on, pixels and labels: `compare` groups by it."""
    import hashlib

    digest = hashlib.sha256()
    for array in (data.x_train, data.y_train, data.x_test, data.y_test):
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def fit_worker(cfg, worker, setup, work, history):
    """fit(), and in a multi-worker run, a lost worker as one line and the figures every worker must share."""
    if not worker or worker.count == 1:
        return fit(cfg, setup, work, history)
    import tensorflow as tf

    from job.distributed.multiworker import lost_peer, weights_fingerprint

    try:
        trained = fit(cfg, setup, work, history)
    except tf.errors.OpError as e:
        raise lost_peer(worker, e) from None
    losses = ", ".join(f"{loss:.6f}" for loss in trained.history.get("loss", []))
    log.info("%s: trained epochs %d-%d, losses [%s], weights sha256 %s", worker, len(history) + 1,
             len(history) + len(trained.epoch), losses, weights_fingerprint(setup.model))
    return trained


def fit(cfg, setup, run_dir, history):
    """model.fit with the run's callbacks, into `run_dir` (a worker's own, on workers 1+); writes fit.json when
    training has ended. Returns Keras' History. An epoch is kept only if it beats setup.base (a fine-tuned
    run's base validation accuracy)."""
    import keras

    model, seeds, n_val, floor = setup.model, setup.seeds, setup.n_val, setup.base
    callbacks = [
        seeds.callback(),  # first: the epoch's shuffle and seeds, whether it runs fresh or resumed
        epoch_log_callback(),  # before CSVLogger, which writes the logs it adds
        keras.callbacks.CSVLogger(str(run_dir / rundir.HISTORY), append=True),
        keras.callbacks.ModelCheckpoint(str(run_dir / rundir.LAST)),
        best_checkpoint_callback(run_dir / rundir.BEST, n_val, history, floor),
        # Keras writes the backup in place; a kill mid-write truncates it. The double checkpoint keeps the
        # previous epoch's copy, which Keras falls back to when the latest one cannot be read. The backup
        # stays until the run's results are written (finish() removes it).
        keras.callbacks.BackupAndRestore(str(run_dir / rundir.BACKUP), double_checkpoint=True,
                                         delete_checkpoint=False),
    ]
    stopper = None
    if cfg.early_stopping:
        stopper = keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max", patience=cfg.early_stopping,
                                                restore_best_weights=True)
        callbacks.append(stopper)
    if cfg.tensorboard:
        try:
            import tensorboard  # noqa: F401  (tensorflow-cpu does not depend on it)
        except ImportError:
            raise JobError("--tensorboard needs the tensorboard package: pip install tensorboard") from None
        callbacks.append(keras.callbacks.TensorBoard(str(run_dir / "tensorboard")))
    if not cfg.resume and (run_dir / rundir.HISTORY).exists():
        (run_dir / rundir.HISTORY).unlink()  # a stale log from an abandoned run must not mix in
    verbose = cfg.verbose if cfg.verbose != "auto" else (1 if sys.stdout.isatty() else 2)
    try:
        with deferred("stopping after the current batch (Ctrl-C again to stop at once)") as interrupt:
            callbacks.append(interrupt_callback(interrupt))  # last: an epoch's checkpoints are written first
            trained = model.fit(setup.train_ds, validation_data=setup.val_ds, epochs=cfg.epochs,
                                callbacks=callbacks, verbose=verbose,
                                shuffle=False)  # tf.data already shuffles; this silences Keras's warning
    except OSError as e:
        if not cfg.resume:
            raise
        raise JobError(f"{run_dir}/{rundir.BACKUP}: unreadable ({first_sentence(e)}); it was killed while "
                       "writing its first epoch: train again without --resume") from None
    except KeyboardInterrupt:
        raise Interrupted(interrupted_in_training(cfg, run_dir)) from None
    rows = rundir.dedupe_history(run_dir / rundir.HISTORY)
    stopped = bool(stopper and stopper.stopped_epoch > 0)
    rundir.write_json(run_dir / rundir.FIT, {"epochs_run": len(rows), "stopped_early": stopped})
    return trained


def interrupted_in_training(cfg, run_dir):
    done = len(rundir.read_history(run_dir / rundir.HISTORY))
    if done == 0 or not (run_dir / rundir.BACKUP).is_dir():
        return (f"interrupted in epoch 1, before any epoch finished; {run_dir} holds no model. Train again "
                f"with the same command (without --resume), or remove {run_dir}")
    return (f"interrupted in epoch {done + 1} of {cfg.epochs}; epochs 1-{done} are kept in {run_dir}/"
            f"{rundir.BACKUP}. Resume with: {resume_command(cfg)}")


def finish(cfg, run_dir, data, n_fit, n_val, device, base=None):
    """Evaluate the best epoch (or a fine-tuned run's base, when no epoch beat it), then write metrics.json,
    the plots and, last, model.keras."""
    from job.train.stats import kept_epoch as best_epoch

    try:
        rows = rundir.read_history(run_dir / rundir.HISTORY)
        fitted = rundir.read_json(run_dir / rundir.FIT)
        scores = [float(row["val_accuracy"]) for row in rows]
        if base is not None and best_epoch(scores, n_val, base) == 0:
            kept = "base"
            log.warning("fine-tune: no epoch beat the base model on the validation split (base %.4f, best epoch "
                        "%.4f): the base model is kept", base, max(scores))
        else:
            kept = "best" if (run_dir / rundir.BEST).is_file() else "last"
        model = rundir.load_keras_model(run_dir / {"base": rundir.BASE, "best": rundir.BEST, "last": rundir.LAST}[kept])
        kept_epoch = {"base": 0, "best": best_epoch(scores, n_val, base), "last": len(rows)}[kept]
        seconds = sum(float(row.get("seconds") or 0) for row in rows)
        probabilities = predict_probabilities(model, data.x_test)
        metrics = {**metrics_from_probabilities(probabilities, data.y_test),
                   "train_seconds": round(seconds, 3),
                   "samples_per_second": round(n_fit * len(rows) / max(seconds, 1e-9), 1),
                   "epochs_run": len(rows), "kept": kept, "kept_epoch": kept_epoch,
                   "val_accuracy": round(base if kept == "base" else scores[kept_epoch - 1], 6),
                   "stopped_early": fitted["stopped_early"],
                   "params": model.count_params(), "device": device["description"]}
        if cfg.init_from:
            from job.train.finetune import versus_base
            from mnist_predict.review import DEFAULT_MIN_CONFIDENCE

            metrics["versus_base"] = versus_base(cfg, probabilities, data, DEFAULT_MIN_CONFIDENCE)
        rundir.write_json(run_dir / rundir.METRICS, metrics)
        from job.train.plots import plot_run

        plot_run(run_dir, data.x_test, data.y_test, probabilities, data.labels, kept_epoch)
        rundir.save_model(model, run_dir / rundir.MODEL)  # last: its presence marks a finished run
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted while writing the results; training is complete (in {run_dir}/"
                          f"{rundir.BEST}), but the run is unfinished until model.keras is written. Finish it "
                          f"with: {resume_command(cfg)}") from None
    import shutil

    shutil.rmtree(run_dir / rundir.BACKUP, ignore_errors=True)
    (run_dir / rundir.FIT).unlink(missing_ok=True)
    return run_dir, metrics


def run_dataset(config, dataset=None, data=None):
    """The data a run was trained on (or `data` instead), split as the run split it. Other data for a run of
    the bundled sample is MNIST digits too: it is checked as `mnist`, unless `dataset` says otherwise."""
    settings = recorded(config)
    name = dataset or settings.dataset
    if data is not None and name == "mnist-sample" and not dataset:
        name = "mnist"
    # the run's own labels: a fine-tune's folder of some of its base's classes is read as those classes again
    return load_dataset(name, data if data is not None else settings.data, settings.test_split, settings.seed,
                        config.get("labels"))


def record_resume(run_dir, epochs_done):
    config = rundir.read_json(run_dir / rundir.CONFIG)
    config.setdefault("resumes", []).append({
        "at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "after_epoch": epochs_done,
        "command": shlex.join(["mnist-job", *sys.argv[1:]])})
    rundir.write_json(run_dir / rundir.CONFIG, config)


def resume_command(cfg):
    return shlex.join(["mnist-job", "train", "--out", cfg.out, "--resume"])


def predict_probabilities(model, x):
    return np.asarray(model.predict(x.astype(np.float32), batch_size=1024, verbose=0))


def metrics_from_probabilities(probs, y):
    """Test figures computed in NumPy from the probabilities, so every reader gets the same numbers."""
    y = y.astype(np.int64)
    classes = probs.shape[1]
    pred = probs.argmax(axis=1)
    loss = float(-np.mean(np.log(np.clip(probs[np.arange(len(y)), y], 1e-7, 1.0))))
    confusion = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(confusion, (y, pred), 1)
    images = confusion.sum(axis=1)
    # a class without test images has no accuracy: None (n/a), never 0.0
    per_class = [round(float(right / n), 6) if n else None for right, n in zip(confusion.diagonal(), images)]
    return {"test_loss": round(loss, 6), "test_accuracy": round(float(np.mean(pred == y)), 6),
            "per_class_accuracy": per_class, "confusion_matrix": confusion.tolist()}


def evaluate(run_dir, dataset=None, data=None):
    """Reload a saved run and recompute its test figures; returns (fresh, recorded) metrics.

    On other data than the run's (`data`), the figures and plots also go to RUN_DIR/eval-<data name>/. A
    labelled folder is matched to the run's classes by name. On IDX or npz data, refuses what is plainly
    another dataset (JobError), and fails (GateError, exit 1) when the accuracy falls far below the recorded
    figure."""
    from job.data.labelled import evaluation_set, is_labelled_folder

    run_dir = rundir.run_dir_of(run_dir)
    if not rundir.is_finished(run_dir):
        raise JobError(f"{run_dir}: no model.keras (not a finished run directory)")
    config = rundir.read_json(run_dir / rundir.CONFIG)
    recorded = rundir.read_json(run_dir / rundir.METRICS)
    foreign = data is not None and str(Path(data).resolve()) != str(Path(config.get("data") or "").resolve())
    folder = data is not None and is_labelled_folder(data)
    if folder and foreign:
        x, y, source = evaluation_set(data, config["labels"])
    else:
        ds = run_dataset(config, dataset, data)
        x, y, source = ds.x_test, ds.y_test, ds.source
    model = rundir.load_keras_model(run_dir / rundir.MODEL)
    probabilities = predict_probabilities(model, x)
    fresh = {**metrics_from_probabilities(probabilities, y), "images": int(len(y)), "data": source}
    if foreign:
        out = run_dir / f"eval-{Path(data).resolve().name}"
        out.mkdir(exist_ok=True)
        rundir.write_json(out / rundir.METRICS, fresh)
        from job.train.plots import plot_evaluation

        plot_evaluation(out, x, y, probabilities, config["labels"])
        fresh["plots"] = str(out)
    if not folder and fresh["test_accuracy"] < recorded["test_accuracy"] - EVALUATE_TOLERANCE:
        raise GateError(f"test accuracy {fresh['test_accuracy']:.4f} is far below the {recorded['test_accuracy']:.4f} "
                        f"recorded for {run_dir} ({source}): is this the data the run was trained for?")
    return fresh, recorded
