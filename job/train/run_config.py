"""The settings of a training run: declared once, resolved once, recorded as they were used.

`TrainConfig` is frozen. Each field is one setting with its help, and with its fill: what it takes when it
is not given (a value, or the zoo entry's; DEFAULTS and ZOO_DEFAULTS collect them). None means "not given".
`resolve(cfg)` fills in every setting before any work starts, and `for_data(cfg, data)` the few that the data
decides. Each setting comes from the first of these that has it: the command line; a resumed run's
config.json (the command line must agree with it); the base run of a fine-tune (job.train.finetune); the
field's fill (a value, or the zoo entry's: job.train.models); and the data itself (its name, default epochs
for its size, outlier exposure for digits). `train`, `cv` and the benchmarks read the object that results
and never fill it in. config.json records it field by field, and `recorded()` reads it back, for export and
evaluate.

    cfg = resolve(TrainConfig(model="cnn-mit", dataset="mnist-sample"))
    cfg = for_data(cfg, load_dataset(cfg.dataset, cfg.data, cfg.test_split, cfg.seed))
    cfg.epochs, cfg.batch_size, cfg.outliers                # all filled in
"""

import logging
from dataclasses import dataclass, field, fields, replace
from enum import Enum
from pathlib import Path

from job.data.datasets import DIGITS, SEED, TEST_SPLIT, training_size
from job.errors import JobError

log = logging.getLogger(__name__)
CLI_NAMES = {"outliers": "outlier_exposure"}  # the fields whose option has another name
ZOO = "the zoo entry's"  # a setting's fill: the zoo model's own value (job.train.models.ZooSpec)


def setting(help, default=None, fill=None):
    """A field: `help` is what --help says of it, `default` what it holds when not given (None: not given),
    and `fill` what resolve() puts in its place: a value, ZOO for the zoo entry's, or None where the data or
    another setting decides."""
    return field(default=default, metadata={"help": help, "fill": fill})


@dataclass(frozen=True)
class TrainConfig:
    model: str | None = setting("Zoo model name (see `mnist-job models`).", fill="cnn-bn-aug")
    dataset: str | None = setting("mnist, fashion_mnist, mnist-sample (bundled, offline; takes no --data), or "
                                  "custom (your own MNIST-format files; skips the check that the data looks like "
                                  "the dataset named).", fill="mnist")
    data: str | None = setting("A Keras mnist.npz, a folder with the four IDX files (.gz or raw), or a labelled "
                               "image folder (one subfolder per class, optionally under train/ and test/). "
                               "Default: $MNIST_DATA, then Keras's cache/download.")
    epochs: int | None = setting("Default: the zoo entry's (more on small data, see `mnist-job models`).")
    batch_size: int | None = setting("Per-replica batch size.", fill=ZOO)
    optimizer: str | None = setting("adam, rmsprop, sgd, adamw...", fill=ZOO)
    learning_rate: float | None = setting("", fill=ZOO)
    val_split: float | None = setting("Fraction of the training data held out for validation.", fill=0.1)
    # the data layer holds test_split's and seed's fills: labelled folders are split by them
    test_split: float | None = setting("Share of a labelled folder held out for testing (by class, with the "
                                       "seed) when it has no test/.", fill=TEST_SPLIT)
    seed: int | None = setting("Same seed on the CPU gives identical metrics.", fill=SEED)
    out: str | None = setting("Run directory. Default: runs/<model>-<UTC timestamp>.")
    resume: bool = setting("Continue an unfinished run in --out (default: the newest) with its recorded "
                           "settings, from its last finished epoch.", False)
    resume_or_start: bool = setting("Resume the run in --out if it has started, else start it: for pods that a "
                                    "Kubernetes Job retries.", False)
    augment: bool | None = setting("Augmentation in the input pipeline: shifts, plus rotations, stroke width, "
                                   "blur and contrast for digits, or mirror flips for Fashion-MNIST.", fill=ZOO)
    outliers: bool | None = setting("Train on synthetic non-digits too, pushed towards a uniform output, so junk "
                                    "is not called a digit. Default: on for cnn-bn-aug on digits.")
    early_stopping: int | None = setting("Stop after this many epochs without a better validation accuracy (and "
                                         "keep the best weights).")
    mixed_precision: bool | None = setting("mixed_float16 (GPU); the output layer stays float32.", fill=False)
    jit: bool | None = setting("XLA-compile the train step: helps on GPUs, 2x slower on this CPU; turns off op "
                               "determinism.", fill=False)  # measured 2-6x slower on CPU (bench/train_speed.py)
    strategy: str | None = setting("auto picks MirroredStrategy on >1 GPU.", fill="auto")
    init_from: str | None = setting("Fine-tune the model of this finished run: its weights, a new output layer "
                                    "when the classes differ, a tenth of the zoo's learning rate and a third of its "
                                    "epochs unless given.")
    freeze_base: bool | None = setting("With --init-from: train the output layer alone.", fill=False)
    restandardize: bool | None = setting("With --init-from: re-estimate the input standardization on the new data "
                                         "(default: keep the base's).", fill=False)
    replay: float | None = setting("With --init-from: train on this many of the base run's own training images per "
                                   "image of --data too, so that the model does not forget them (0: none). Default: "
                                   "5 when the classes are the base's, else 0.")
    tensorboard: bool = setting("Write TensorBoard logs into the run directory.", False)
    deterministic: bool = setting("Op determinism (off under --jit).", True)
    max_train_samples: int | None = setting("Train on at most this many samples.")
    verbose: int | str = setting("Keras's fit verbosity; auto: a progress bar on a terminal, a line an epoch "
                                 "elsewhere.", "auto")
    connect_timeout: float | None = setting("multiworker: seconds to wait for every worker to join before failing "
                                            "with the addresses that did not answer.")

    @classmethod
    def of(cls, options):
        """The config of a command's options (its parameters by name, the options under CLI_NAMES' names);
        names that are not settings are left out, an Enum gives its value."""
        given = {}
        for f in fields(cls):
            value = options.get(CLI_NAMES.get(f.name, f.name), f.default)
            given[f.name] = value.value if isinstance(value, Enum) else value
        return cls(**given)


DEFAULTS = {f.name: f.metadata["fill"] for f in fields(TrainConfig) if f.metadata["fill"] not in (None, ZOO)}
ZOO_DEFAULTS = tuple(f.name for f in fields(TrainConfig) if f.metadata["fill"] is ZOO)
# What a run computes depends on these; a resume takes them from config.json and refuses to change them.
RUN_SETTINGS = ("model", "dataset", "data", "epochs", "batch_size", "optimizer", "learning_rate", "val_split",
                "test_split", "seed", "augment", "outliers", "max_train_samples", "early_stopping", "mixed_precision",
                "jit", "strategy", "init_from", "freeze_base", "restandardize", "replay")


def help_text(name):
    return next(f.metadata["help"] for f in fields(TrainConfig) if f.name == name)


def help_for(name):
    """--help for a setting: its help, and what it is when not given (a flag's default Typer shows itself)."""
    text, fill = help_text(name), next(f.metadata["fill"] for f in fields(TrainConfig) if f.name == name)
    if fill is None or isinstance(fill, bool) or name == "strategy":
        return text
    return f"{text} Default: {fill}.".strip()


def resolve(cfg):
    """The settings of the run `cfg` asks for, all filled in but those the data decides (for_data); every
    argument is checked, and nothing is loaded or created."""
    from job.train.models import get_spec
    from job.train.rundir import default_out

    cfg = resumed(cfg)
    if cfg.init_from and not cfg.resume:
        from job.train import finetune

        base = finetune.base_config(cfg.init_from)
        cfg = replace(cfg, **finetune.defaults(cfg, get_spec(base["model"]), base))
    elif not cfg.init_from and (cfg.freeze_base or cfg.restandardize or cfg.replay is not None):
        raise JobError("--freeze-base, --restandardize and --replay fine-tune: add --init-from RUN_DIR")
    cfg = replace(cfg, **{name: value for name, value in DEFAULTS.items() if getattr(cfg, name) is None})
    spec = get_spec(cfg.model)
    cfg = replace(cfg, **{name: getattr(spec, name) for name in ZOO_DEFAULTS if getattr(cfg, name) is None})
    check(cfg)
    worker = worker_of(cfg)
    if worker and worker.count > 1 and not cfg.out:
        raise JobError("--strategy multiworker with several workers needs --out: every worker must name the same run "
                       "directory")
    if cfg.jit and cfg.deterministic:
        # Keras silently drops jit_compile under op determinism (XLA has no deterministic MaxPool gradient).
        log.warning("--jit: op determinism is off for this run, so the same seed may not repeat exactly")
        cfg = replace(cfg, deterministic=False)
    return replace(cfg, out=cfg.out or str(default_out(cfg.model)))


def for_data(cfg, data):
    """The resolved config completed by what the data decides: its name (a labelled folder is the dataset
    "folder", whatever --dataset said), the default epochs for its size, outlier exposure for digits."""
    from job.train.models import default_epochs, get_spec, why_epochs

    spec = get_spec(cfg.model)
    cfg = replace(cfg, dataset=data.name)
    if cfg.epochs is None:
        n = training_size(cfg, data)
        log.info(why_epochs(spec, n))
        cfg = replace(cfg, epochs=default_epochs(spec, n))
    if cfg.outliers is None:
        cfg = replace(cfg, outliers=spec.outliers and data.labels == DIGITS)
    if cfg.init_from:
        from job.train.finetune import replay_share

        cfg = replace(cfg, replay=replay_share(cfg, data))
    return cfg


def worker_of(cfg):
    """This process's place in a multi-worker run (job.distributed.multiworker.Worker), or None for other strategies."""
    if cfg.strategy != "multiworker":
        return None
    from job.distributed.multiworker import this_worker

    return this_worker()


def check(cfg):
    if cfg.epochs is not None and cfg.epochs <= 0:
        raise JobError(f"--epochs must be a positive integer, got {cfg.epochs}")
    if cfg.batch_size <= 0:
        raise JobError(f"--batch-size must be a positive integer, got {cfg.batch_size}")
    if cfg.learning_rate <= 0:
        raise JobError(f"--learning-rate must be positive, got {cfg.learning_rate}")
    if not 0.0 < cfg.val_split < 1.0:
        raise JobError(f"--val-split must be in (0, 1), got {cfg.val_split}")
    if not 0.0 < cfg.test_split < 1.0:
        raise JobError(f"--test-split must be in (0, 1), got {cfg.test_split}")
    from job.train.models import OPTIMIZERS

    if cfg.optimizer.lower() not in OPTIMIZERS:
        raise JobError(f"unknown optimizer {cfg.optimizer!r}: choose one of {', '.join(OPTIMIZERS)}")
    if cfg.replay is not None and cfg.replay < 0:
        raise JobError(f"--replay must be 0 or more, got {cfg.replay}")
    if cfg.early_stopping is not None and cfg.early_stopping < 1:
        raise JobError(f"--early-stopping must be at least 1 epoch, got {cfg.early_stopping}")


def resumed(cfg):
    """--resume (or --resume-or-start on a run that has started) continues the run in --out, or the newest
    unfinished one, with its recorded settings; a setting given on the command line must match it."""
    from job.train import rundir

    if cfg.resume_or_start:
        if not cfg.out or cfg.resume:
            raise JobError("--resume-or-start needs --out RUN_DIR, and replaces --resume")
        cfg = replace(cfg, resume=(Path(cfg.out) / rundir.CONFIG).is_file())
    if not cfg.resume:
        return cfg
    run = Path(cfg.out) if cfg.out else rundir.latest_unfinished(cfg.model)
    if rundir.is_finished(run):
        raise JobError(f"{run}: already finished; nothing to resume (train into a new --out, or export it)")
    if not (run / rundir.CONFIG).is_file():
        raise JobError(f"{run}: no {rundir.CONFIG}, so no run to resume there; train without --resume")
    recorded = rundir.read_json(run / rundir.CONFIG)
    if recorded.get("cv_fold"):
        raise JobError(f"{run}: a fold of a cross-validation, trained on part of its data; run the `mnist-job cv` "
                       "again into a new --out")
    differ = [f"--{name.replace('_', '-')} {getattr(cfg, name)} (the run has {recorded.get(name)})"
              for name in RUN_SETTINGS if getattr(cfg, name) is not None and getattr(cfg, name) != recorded.get(name)]
    if differ:
        raise JobError(f"{run}: cannot resume with other settings: {'; '.join(differ)}. Leave them out to "
                       "resume as the run was started, or train a new run")
    return replace(cfg, out=str(run), **{name: recorded.get(name) for name in RUN_SETTINGS})


def recorded(config):
    """A finished run's settings, from its config.json; DEFAULTS stand in for keys that older runs lack."""
    names = {f.name for f in fields(TrainConfig)}
    return TrainConfig(**{**DEFAULTS, **{k: v for k, v in config.items() if k in names and v is not None}})
