"""Time to accuracy: seconds for cnn-bn-aug to reach 91% on the Fashion-MNIST test set, against mnist-convnet.

    .venv/bin/python bench/time_to_accuracy.py            # ~2 min on 2 cores, and the best sample model once
    .venv/bin/python bench/time_to_accuracy.py --full     # ~30 min: the long schedules too
    .venv/bin/python bench/time_to_accuracy.py --quick    # ~1 min: 1 epoch on a subset, not comparable

Each model trains exactly as `train()` does (same split, tf.data pipeline, compiled model, validation pass
each epoch). A benchmark-only callback measures test accuracy every quarter epoch for cnn-bn-aug and every
epoch for mnist-convnet until 91% is reached, then once more at the end. The clock starts before the
pipeline and model are built (graph tracing counts) and leaves out the callback's own evaluation time.
Runs, in turn:
- cnn-bn-aug with a schedule sized for 91%, as time-to-accuracy benchmarks (DAWNBench) let each entry
  choose: `mnist-job train --model cnn-bn-aug --epochs 2 --no-augment`. The time target is judged on it;
- with --full, cnn-bn-aug with its zoo defaults (30 epochs): its accuracy after the full schedule, and when
  it passes 91%; and mnist-convnet with its zoo defaults (15 epochs), the reference (about 10 and 6 minutes
  here; cnn-bn-aug's 30 epochs took 584 s in `mnist-job train` on 2026-12-07);
- cnn-bn-aug with its zoo defaults on the bundled sample: the model `make demo` trains, trained once and
  cached for every benchmark that needs it (common.best_sample_model); its test accuracy and training time
  come from its metrics.json.
Writes bench/results/time_to_accuracy.json.
"""

import json
import time

import numpy as np

from common import (FASHION, best_sample_model, header, num, parse_args, print_table, print_targets, target,
                    write_results)

GOAL, GOAL_SECONDS, GOAL_FASHION, GOAL_SAMPLE = 0.91, 90, 0.935, 0.985
SHORT = {"epochs": 2, "augment": False}  # the cosine schedule ends at 2 epochs; augmentation pays off later
QUICK = {"train": 3000, "test": 1000, "epochs": 1}


def probe(x_test, y_test, steps, goal, clock_start, quarters=True):
    """Callback: test accuracy every quarter epoch (or epoch end) until `goal`, then only after the last
    epoch; the seconds it spends evaluating are left out of the clock."""
    import keras

    class Probe(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.points, self.excluded, self.epoch = [], 0.0, 0

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            if quarters and (batch + 1) % max(1, steps // 4) == 0 and batch + 1 < steps and not self.reached:
                self.measure(self.epoch + (batch + 1) / steps)

        def on_epoch_end(self, epoch, logs=None):  # after the validation pass, as a run experiences it
            if not self.reached or epoch + 1 == self.params["epochs"]:
                self.measure(epoch + 1.0)

        @property
        def reached(self):
            return goal is not None and any(acc >= goal for _, _, acc in self.points)

        def measure(self, epochs):
            now = time.perf_counter()
            probs = self.model.predict(x_test, batch_size=1024, verbose=0)
            acc = float(np.mean(probs.argmax(axis=1) == y_test))
            self.points.append((round(epochs, 3), round(now - clock_start - self.excluded, 2), round(acc, 4)))
            self.excluded += time.perf_counter() - now

    return Probe()


def timed_training(name, data, goal=None, quarters=False, epochs=None, max_train=None, augment=None):
    """Train `name` as train() does; returns its accuracy points [(epochs, seconds, test accuracy)]."""
    from job.train.run_config import for_data, resolve
    from job.train.training import TrainConfig, model_and_pipelines, seed_everything

    cfg = for_data(resolve(TrainConfig(model=name, dataset=data.name, epochs=epochs, max_train_samples=max_train,
                                       augment=augment)), data)
    seed_everything(cfg.seed, cfg.deterministic)
    start = time.perf_counter()
    model, train_ds, val_ds, n_train, _, seeds = model_and_pipelines(cfg, data, cfg.batch_size)
    steps = -(-n_train // cfg.batch_size)
    callback = probe(data.x_test.astype(np.float32), data.y_test, steps, goal, start, quarters)
    model.fit(train_ds, validation_data=val_ds, epochs=cfg.epochs, callbacks=[seeds.callback(), callback], verbose=0,
              shuffle=False)
    print(f"{name} on {data.name}: {cfg.epochs} epochs, {n_train:,} samples, "
          f"{callback.points[-1][2]:.4f} in {callback.points[-1][1]:.0f} s", flush=True)
    return {"model": name, "dataset": data.name, "epochs": cfg.epochs, "train_samples": n_train,
            "points": callback.points, "seconds": callback.points[-1][1], "final_accuracy": callback.points[-1][2],
            "seconds_to_goal": next((s for _, s, acc in callback.points if goal and acc >= goal), None),
            "epochs_to_goal": next((e for e, _, acc in callback.points if goal and acc >= goal), None)}


def sample_run(quick):
    """The best sample model's figures, in timed_training's shape (its one point: the end of its schedule)."""
    run_dir = best_sample_model(quick)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    seconds, accuracy = round(metrics["train_seconds"], 2), metrics["test_accuracy"]
    return {"model": "cnn-bn-aug", "dataset": "mnist-sample", "epochs": metrics["epochs_run"],
            "train_samples": None, "points": [(metrics["epochs_run"], seconds, accuracy)], "seconds": seconds,
            "final_accuracy": accuracy, "seconds_to_goal": None, "epochs_to_goal": None, "run_dir": str(run_dir)}


def main():
    args = parse_args(__doc__, **{"--full": {"action": "store_true",
                                             "help": "also the 30-epoch and the mnist-convnet schedules"}})
    header("time to accuracy", args.quick)
    from job.data.datasets import load_dataset

    fashion = load_dataset("fashion_mnist", FASHION)
    limit = dict(epochs=QUICK["epochs"], max_train=QUICK["train"]) if args.quick else {}
    if args.quick:
        fashion.x_test, fashion.y_test = fashion.x_test[:QUICK["test"]], fashion.y_test[:QUICK["test"]]
    short = {**SHORT, **limit}
    fastest = timed_training("cnn-bn-aug", fashion, GOAL, quarters=True, **short)
    fastest_name = f"cnn-bn-aug --epochs {short['epochs']} --no-augment"
    fastest["model"] = fastest_name
    best = timed_training("cnn-bn-aug", fashion, GOAL, quarters=True, **limit) if args.full else None
    convnet = timed_training("mnist-convnet", fashion, GOAL, **limit) if args.full else None
    on_sample = sample_run(args.quick)
    runs = [run for run in (best, fastest, convnet, on_sample) if run]
    print(f"\nTest accuracy over time (goal {GOAL:.0%}, checked every quarter epoch for cnn-bn-aug, every epoch "
          f"for mnist-convnet)")
    print_table(["model", "dataset", "epochs", "train s", "test acc", f"s to {GOAL:.0%}", f"epochs to {GOAL:.0%}"],
                [[r["model"], r["dataset"], r["epochs"], num(r["seconds"]), f"{r['final_accuracy']:.4f}",
                  num(r["seconds_to_goal"]) if r["seconds_to_goal"] else "-",
                  r["epochs_to_goal"] or "-"] for r in runs])
    targets = [target(f"{fastest_name}: seconds to {GOAL:.0%} on Fashion-MNIST test",
                      fastest["seconds_to_goal"], GOAL_SECONDS, higher=False, unit=" s"),
               target("cnn-bn-aug: mnist-sample test accuracy", 100 * on_sample["final_accuracy"],
                      100 * GOAL_SAMPLE, unit="%")]
    if best:
        targets.insert(1, target("cnn-bn-aug: Fashion-MNIST test accuracy, full schedule",
                                 100 * best["final_accuracy"], 100 * GOAL_FASHION, unit="%"))
    if best and best["seconds_to_goal"]:
        convnet_at = f"after {num(convnet['seconds_to_goal'])} s" if convnet["seconds_to_goal"] else "never"
        print(f"Within its full schedule cnn-bn-aug passes {GOAL:.0%} after {best['seconds_to_goal']:.0f} s; "
              f"mnist-convnet {convnet_at} (it ends at {convnet['final_accuracy']:.2%} after {convnet['seconds']:.0f} s)")
    print()
    print_targets(targets)
    write_results("time_to_accuracy" + ("-quick" if args.quick else ""),
                  {"quick": args.quick, "full": args.full, "goal": GOAL, "runs": runs, "targets": targets})


if __name__ == "__main__":
    main()
