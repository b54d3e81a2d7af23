"""Fine-tune a finished run on new data: `mnist-job train --init-from RUN_DIR --data photos/`.

The new model is the base run's zoo model, built again and given the base's weights layer by layer. Its
output layer is replaced when the class count differs; its input standardization keeps the base's
statistics (what the base's weights expect) unless --restandardize; its batch normalization stays in
inference mode. When the new images have the base's classes, the fine-tune also trains on --replay base
training images per new one and distills the base: where the base is right, half of each image's target
is the base's own probabilities (learning without forgetting), so the digits it was unsure of stay so.
Defaults suit fine-tuning: a tenth of the zoo's learning rate and a third of its epochs (at least 5), and
--freeze-base trains the head alone.

    mnist-job train --init-from runs/demo --data photos/ --out runs/demo-photos
    mnist-job train --init-from runs/demo --data letters/ --freeze-base --epochs 20
"""

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
from mnist_predict.files import sha256

from job.errors import JobError
from job.train import rundir
from job.train.models import build_model

log = logging.getLogger(__name__)
LEARNING_RATE_FACTOR = 0.1
EPOCHS_FACTOR = 1 / 3
MIN_EPOCHS = 5
REPLAY = 5.0  # base training images per new image: 2 lost 0.65-0.8 MNIST points in bench/review_loop.py, 5 about 0.3
# The base's share of a distilled target. On 115 meter corrections at 3 seeds (README.md, "Forgetting"),
# replay alone lost 0.35, 0.05 and 0.35 MNIST points; with 0.5, -0.05 (a gain), 0 and 0.2 (1.0: 0.05-0.15,
# but the meters 3-4 points worse)
DISTILL = 0.5


def base_config(run_dir):
    """The base run's config.json; the run must be finished."""
    run_dir = Path(run_dir)
    if not (run_dir / rundir.CONFIG).is_file():
        raise JobError(f"--init-from {run_dir}: not a run directory (no {rundir.CONFIG})")
    if not rundir.is_finished(run_dir):
        raise JobError(f"--init-from {run_dir}: an unfinished run (no {rundir.MODEL}); finish it with "
                       f"`mnist-job train --out {run_dir} --resume` first")
    return rundir.read_json(run_dir / rundir.CONFIG)


def defaults(cfg, spec, base):
    """What a fine-tune of `base` (its config.json) takes unless given: the base's model, a fraction of the
    zoo's learning rate and epochs."""
    if cfg.model is not None and cfg.model != base["model"]:
        raise JobError(f"cannot fine-tune {base['model']} weights as --model {cfg.model}: leave --model out, or "
                       "train that model from scratch")
    settings = {"model": base["model"]}
    if cfg.learning_rate is None:
        settings["learning_rate"] = spec.learning_rate * LEARNING_RATE_FACTOR
    if cfg.epochs is None:
        settings["epochs"] = max(MIN_EPOCHS, round(spec.epochs * EPOCHS_FACTOR))
        log.info("fine-tune: epochs: %d (a third of %s's %d, at least %d; --epochs N chooses)", settings["epochs"],
                 spec.name, spec.epochs, MIN_EPOCHS)
    return settings


def replay_share(cfg, data):
    """--replay as given, or its default: REPLAY when the new data has the base's classes, else 0 (images of
    other classes cannot be replayed under a new head)."""
    same = base_config(cfg.init_from)["labels"] == data.labels
    if cfg.replay and not same:
        raise JobError(f"--replay: {data.source} has other classes than the base run {cfg.init_from}, so its images "
                       "cannot be replayed; leave --replay out")
    return cfg.replay if cfg.replay is not None else REPLAY if same else 0.0


def base_data(run_dir):
    """(the base run's settings, its data as it split it), or JobError saying it is not at hand."""
    from job.data.datasets import load_dataset
    from job.train.run_config import recorded

    config = base_config(run_dir)
    settings = recorded(config)
    try:
        return settings, load_dataset(settings.dataset, settings.data, settings.test_split, settings.seed,
                                      config["labels"])
    except JobError as e:
        raise JobError(f"--replay: the base run's training data is not at hand ({e}); pass --replay 0 to fine-tune "
                       "on the new images alone") from None


def base_validation(run_dir):
    """The base run's own validation split (x, y): images neither it nor a fine-tune of it trained on."""
    from job.data.datasets import training_split

    settings, data = base_data(run_dir)
    _, _, x_val, y_val = training_split(replace(settings, max_train_samples=None), data)
    return x_val, y_val


def replay_set(cfg, n_new):
    """round(cfg.replay * n_new) images of the base run's own training split (its data, val_split and seed),
    drawn with cfg.seed: what the fine-tune trains on beside the new images so the base's skill is kept."""
    from job.data.datasets import training_split

    settings, base = base_data(cfg.init_from)
    x, y, _, _ = training_split(replace(settings, max_train_samples=None), base)
    n = min(len(x), round(cfg.replay * n_new))
    rows = np.random.default_rng(cfg.seed).choice(len(x), n, replace=False)
    log.info("fine-tune: replaying %d of the base run's %d training images (%s) beside the %d new ones", n, len(x),
             base.name, n_new)
    return x[rows], y[rows]


def distills(cfg):
    """Whether a run distills its base (job.train.losses.DistilledCrossentropy): a fine-tune that replays."""
    return bool(getattr(cfg, "init_from", None) and cfg.replay)


def base_model(cfg):
    """The base run's model, frozen (the fine-tune copies its weights into a model of its own): where the
    weights start from, and the teacher whose probabilities a distilled fine-tune's labels carry."""
    model = rundir.load_keras_model(Path(cfg.init_from) / rundir.MODEL)
    if tuple(model.input.shape[1:]) != (28, 28):
        raise JobError(f"--init-from {cfg.init_from}: its model takes {tuple(model.input.shape[1:])} images, not 28x28")
    model.trainable = False
    return model


def versus_base(cfg, probabilities, data, threshold):
    """The fine-tuned model (its `probabilities` on data.x_test) against its base on the held-out new images:
    accuracy, the share flagged for review (top probability below `threshold`, before export's calibration)
    and the accuracy of the rest, or None when the base predicts other classes."""
    if base_config(cfg.init_from)["labels"] != data.labels or not len(data.y_test):
        return None
    from job.train.training import predict_probabilities

    base = predict_probabilities(rundir.load_keras_model(Path(cfg.init_from) / rundir.MODEL), data.x_test)
    y = data.y_test.astype(np.int64)

    def figures(p):
        right, unflagged = p.argmax(axis=1) == y, p.max(axis=1) >= threshold
        return {"accuracy": round(float(right.mean()), 6), "flagged": round(float(1 - unflagged.mean()), 6),
                "unflagged_accuracy": round(float(right[unflagged].mean()), 6) if unflagged.any() else None}

    return {"images": int(len(y)), "threshold": threshold, "probabilities": "uncalibrated softmax",
            "base": figures(base), "new": figures(probabilities)}


def worse_than_base(versus):
    """Why a fine-tuned run is worse than its base on its held-out new images, or None."""
    if not versus:
        return None
    base, new = versus["base"], versus["new"]
    if new["accuracy"] < base["accuracy"]:
        return (f"its accuracy on the {versus['images']} held-out new images is {new['accuracy']:.4f}, below its "
                f"base's {base['accuracy']:.4f}")
    return None


def initial_model(cfg, x_train, classes, base):
    """The zoo model with the weights of `base` (base_model(cfg)), a new head if the class count differs, and
    the base's standardization unless cfg.restandardize."""
    stats = None
    if "standardize" in [layer.name for layer in base.layers] and not cfg.restandardize:
        settings = base.get_layer("standardize").get_config()
        stats = (float(np.squeeze(settings["mean"])), float(np.sqrt(np.squeeze(settings["variance"]))))
    model = build_model(cfg.model, x_train, classes, stats=stats)
    base_classes = base.get_layer("probabilities").units
    for new, old in zip(model.layers, base.layers):
        if new.name == "probabilities" and base_classes != classes:
            log.info("fine-tune: output layer 'probabilities' replaced: %d classes -> %d", base_classes, classes)
            continue
        new.set_weights(old.get_weights())
    if stats is None and "standardize" in [layer.name for layer in model.layers]:
        log.info("fine-tune: input standardization re-estimated on the new training images")
    import keras

    for layer in model.layers:
        if cfg.freeze_base:
            layer.trainable = layer.name == "probabilities"
        elif isinstance(layer, keras.layers.BatchNormalization):
            # Inference mode with the base's statistics, as Keras's transfer-learning guide advises: a few
            # hundred images in a few dozen steps cannot re-estimate them (the moving averages lag behind
            # the changing weights, and the model scores far worse than it trained).
            layer.trainable = False
    log.info("fine-tune: %s", "base frozen, training the output layer alone" if cfg.freeze_base
             else "batch normalization kept in inference mode")
    return model


def lineage(run_dir):
    """What config.json records of the base: its path and the sha256 of its model and export manifest."""
    run_dir = Path(run_dir)
    manifest = run_dir / "export" / "manifest.json"
    return {"base_run": str(run_dir), "base_model_sha256": sha256(run_dir / rundir.MODEL),
            "base_manifest_sha256": sha256(manifest) if manifest.is_file() else None}

