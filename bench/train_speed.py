"""Training samples/s: the mnist-job pipeline against a tutorial's plain `model.fit(x, y)`, side by side.

    .venv/bin/python bench/train_speed.py            # ~2.5 min on 2 quiet cores
    .venv/bin/python bench/train_speed.py --quick    # ~1 min, checks that it runs

Same model, seed, data and batch for every variant of a model. "plain fit" is `model.fit(x_float32, y,
batch_size=...)` on NumPy arrays; "mnist-job" is what `train()` runs: `make_dataset` (tf.data, uint8 cached,
cast per batch, augmentation when the model asks for it) + `compiled_model` + fit. Also, on our pipeline:
XLA (jit_compile), a 2x larger batch, and for cnn-bn-aug op determinism off. Every variant first runs one
untimed epoch (tracing, XLA compile, cache fill); then one epoch per variant in turns, repeated, timed by a
callback; medians. Op determinism is on, as `train()` sets it, except where the variant says otherwise:
XLA cannot run under it, and Keras silently drops jit_compile while it is on (so `mnist-job train --jit`
is not XLA today). Writes bench/results/train_speed.json.
"""

import time
from contextlib import contextmanager

from common import (FASHION, header, interleaved_medians, num, parse_args, print_table, print_targets, target,
                    write_results)

BEST = "cnn-bn-aug"
MODELS = ["cnn-2conv-dropout", "mnist-convnet", BEST]
FULL = {"models": MODELS, "samples": 3072, "repeats": 3}
QUICK = {"models": [BEST], "samples": 512, "repeats": 1}  # the best model has every kind of variant
SEED = 42


def epoch_seconds(model, *fit_args, **fit_kwargs):
    """fit() for one epoch; returns the seconds of the epoch alone (not fit's setup)."""
    import keras

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds = time.perf_counter() - self.start

    timer = Timer()
    model.fit(*fit_args, epochs=1, verbose=0, callbacks=[timer], **fit_kwargs)
    return timer.seconds


@contextmanager
def determinism(on):
    """Op determinism (train() turns it on) off for a while. Keras drops jit_compile while it is on, and
    XLA cannot compile MaxPool's gradient under it, so the XLA variant is compiled and run without it."""
    from tensorflow.python.framework import config

    if not on:
        config.disable_op_determinism()
    try:
        yield
    finally:
        config.enable_op_determinism()


def variants(name, x, y, epochs, mirror):
    """{label: (batch, fn running one timed epoch)} for one model; `mirror` as the dataset's, like train()."""
    import keras

    from job.train.models import get_spec
    from job.train.training import TrainConfig, compiled_model, make_dataset

    spec = get_spec(name)

    def build(batch, jit=False, deterministic=True):
        keras.utils.set_random_seed(SEED)  # the same initial weights for every variant
        cfg = TrainConfig(model=name, epochs=epochs, batch_size=batch, optimizer=spec.optimizer,
                          learning_rate=spec.learning_rate, jit=jit)
        with determinism(deterministic):
            model = compiled_model(cfg, spec, x, steps_per_epoch=-(-len(x) // batch))
        assert bool(model.jit_compile) == jit, "XLA was not applied"
        return model

    def ours(batch, jit=False, augment=spec.augment, deterministic=True):
        deterministic = deterministic and not jit
        model = build(batch, jit, deterministic)
        ds = make_dataset(x, y, batch, SEED, training=True, augment=augment, mirror=mirror)

        def epoch():
            with determinism(deterministic):
                return epoch_seconds(model, ds, shuffle=False)

        return batch, epoch

    plain_model, x_float = build(spec.batch_size), x.astype("float32")
    out = {"plain fit": (spec.batch_size, lambda: epoch_seconds(plain_model, x_float, y,
                                                                 batch_size=spec.batch_size))}
    if spec.augment:
        out["mnist-job, augmentation off"] = ours(spec.batch_size, augment=False)
    out["mnist-job" + (" (augmentation on)" if spec.augment else "")] = ours(spec.batch_size)
    if name == BEST:  # does train()'s default op determinism cost speed?
        out["mnist-job, op determinism off"] = ours(spec.batch_size, deterministic=False)
    out["mnist-job + XLA (determinism off)"] = ours(spec.batch_size, jit=True)
    out["mnist-job, 2x batch"] = ours(2 * spec.batch_size)
    return out


def main():
    args = parse_args(__doc__)
    plan = QUICK if args.quick else FULL
    header("training speed", args.quick)
    from job.data.datasets import load_dataset
    from job.train.training import seed_everything

    seed_everything(SEED, deterministic=True)
    data = load_dataset("fashion_mnist", FASHION)
    x, y = data.x_train[:plan["samples"]], data.y_train[:plan["samples"]]
    runs = {(name, label): v for name in plan["models"]
            for label, v in variants(name, x, y, 1 + plan["repeats"], data.mirror_symmetric).items()}
    start = time.perf_counter()
    seconds = interleaved_medians({key: fn for key, (_, fn) in runs.items()}, repeats=plan["repeats"],
                                  warmup=1, self_timed=True)
    print(f"timed in {time.perf_counter() - start:.0f} s", flush=True)

    rows, targets = [], []
    for (name, label), (batch, _) in runs.items():
        default = "mnist-job" + (" (augmentation on)" if (name, "mnist-job") not in runs else "")
        rows.append({"model": name, "variant": label, "batch": batch,
                     "samples_per_second": round(len(x) / seconds[name, label], 1),
                     "vs_plain_fit": round(seconds[name, "plain fit"] / seconds[name, label], 3),
                     "vs_mnist_job_default": round(seconds[name, default] / seconds[name, label], 3)})
    for name in plan["models"]:
        by = {r["variant"]: r for r in rows if r["model"] == name}
        like_for_like = by.get("mnist-job, augmentation off", by.get("mnist-job"))
        targets.append(target(f"{name}: mnist-job / plain fit (like for like)", like_for_like["vs_plain_fit"],
                              1.0, unit="x"))
    print(f"\n{len(x):,} Fashion-MNIST samples per epoch, median of {plan['repeats']} epoch(s) per variant")
    print_table(["model", "variant", "batch", "samples/s", "vs plain fit", "vs mnist-job default"],
                [[r["model"], r["variant"], r["batch"], num(r["samples_per_second"]), f"{r['vs_plain_fit']:.2f}x",
                  f"{r['vs_mnist_job_default']:.2f}x"] for r in rows])
    print()
    print_targets(targets)
    write_results("train_speed" + ("-quick" if args.quick else ""),
                  {"quick": args.quick, "samples": len(x), "repeats": plan["repeats"], "rows": rows,
                   "targets": targets})


if __name__ == "__main__":
    main()
