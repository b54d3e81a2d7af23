"""What the tutorials ask for by hand: k-fold cross-validation, sweeps, and a report on the findings.

    mnist-job cv --model cnn-mit --folds 5 --dataset mnist-sample
    mnist-job sweep --models dense-128,cnn-mit --learning-rate 1e-3,1e-2 --dataset mnist-sample --epochs 2
    mnist-job compare runs/a runs/b --out report.md

The best run in a comparison is chosen by validation accuracy: the test set never selects a model.
"""

import itertools
import json
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from job.data import load_dataset
from job.errors import JobError
from job.models import default_epochs, get_spec
from job.plots import pyplot, save
from job.training import (compiled_model, make_dataset, read_history, resolve, seed_everything, train,
                          write_json)


def stamp():
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def cross_validate(cfg, folds=5):
    """k-fold CV on the training set; each fold's held-out part is its validation set. Returns the summary."""
    if folds < 2:
        raise JobError(f"--folds must be at least 2, got {folds}")
    cfg.out = cfg.out or str(Path("runs") / f"cv-{cfg.model}-{stamp()}")
    spec = resolve(cfg)
    data = load_dataset(cfg.dataset, cfg.data)
    seed_everything(cfg.seed, cfg.deterministic)
    order = np.random.default_rng(cfg.seed).permutation(len(data.x_train))
    if cfg.max_train_samples:
        order = order[:cfg.max_train_samples]
    cfg.epochs = cfg.epochs or default_epochs(spec, len(order) * (folds - 1) // folds)
    accuracies = []
    for k, held in enumerate(np.array_split(order, folds)):
        fit_idx = np.setdiff1d(order, held)
        x_fit, y_fit = data.x_train[fit_idx], data.y_train[fit_idx]
        steps = -(-len(x_fit) // cfg.batch_size)
        model = compiled_model(cfg, spec, x_fit, steps)
        model.fit(make_dataset(x_fit, y_fit, cfg.batch_size, cfg.seed + k, True, cfg.augment,
                               data.mirror_symmetric),
                  epochs=cfg.epochs, verbose=0, shuffle=False)
        _, accuracy = model.evaluate(make_dataset(data.x_train[held], data.y_train[held], 1024, 0, False),
                                     verbose=0)
        accuracies.append(round(float(accuracy), 6))
        print(f"fold {k + 1}/{folds}: accuracy {accuracy:.4f} ({len(fit_idx)} train, {len(held)} held out)",
              flush=True)
    summary = {"model": cfg.model, "dataset": cfg.dataset, "folds": folds, "epochs": cfg.epochs,
               "accuracies": accuracies, "mean": round(float(np.mean(accuracies)), 6),
               "std": round(float(np.std(accuracies)), 6)}
    out = Path(cfg.out)
    write_json(out / "cv.json", summary)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4, 5))
    ax.boxplot(accuracies)
    ax.scatter(np.ones(folds), accuracies, alpha=0.6)
    ax.set_xticks([1], [cfg.model])
    ax.set_ylabel("held-out fold accuracy")
    ax.set_title(f"{folds}-fold CV: {summary['mean']:.4f} ± {summary['std']:.4f}")
    save(fig, out / "cv_boxplot.png")
    return out, summary


def parse_list(text, kind=str, option=""):
    """'1e-3,1e-2' -> [0.001, 0.01]; empty -> [None] (the zoo default). Numbers must be positive."""
    if not text:
        return [None]
    try:
        values = [kind(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise JobError(f"{option}: cannot parse {text!r} as a comma-separated list of {kind.__name__}") from None
    if kind is not str and any(v <= 0 for v in values):
        raise JobError(f"{option}: values must be positive, got {text!r}")
    return values


def sweep(base, models, epochs=None, learning_rates=None, batch_sizes=None, out=None):
    """Train every combination into its own run directory, then write report.md comparing them."""
    names = parse_list(models, str, "--models")
    for name in names:
        get_spec(name)  # fail on a bad name before hours of work, not after
    grid = list(itertools.product(names, parse_list(epochs, int, "--epochs"),
                                  parse_list(learning_rates, float, "--learning-rate"),
                                  parse_list(batch_sizes, int, "--batch-size")))
    out = Path(out or Path("runs") / f"sweep-{stamp()}")
    run_dirs = []
    for i, (model, ep, lr, bs) in enumerate(grid, 1):
        name = "-".join([model] + [f"{k}{v:g}" for k, v in (("e", ep), ("lr", lr), ("bs", bs)) if v])
        print(f"[{i}/{len(grid)}] {name}", flush=True)
        cfg = replace(base, model=model, epochs=ep, learning_rate=lr, batch_size=bs, out=str(out / name))
        run_dirs.append(train(cfg)[0])
    return compare(run_dirs, out / "report.md")


def load_run(run_dir):
    run_dir = Path(run_dir)
    try:
        config = json.loads((run_dir / "config.json").read_text())
        metrics = json.loads((run_dir / "metrics.json").read_text())
    except (OSError, ValueError):
        raise JobError(f"{run_dir}: not a finished run directory (needs config.json and metrics.json)") from None
    return {"dir": run_dir, "config": config, "metrics": metrics, "history": read_history(run_dir / "history.csv")}


def compare(run_dirs, out):
    """A Markdown report: a table of runs, overlaid validation curves, the best run (by validation) in bold."""
    if not run_dirs:
        raise JobError("compare needs at least one run directory")
    runs = [load_run(d) for d in run_dirs]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    best = max(runs, key=lambda r: r["metrics"].get("val_accuracy") or 0)
    curves = out.with_name(out.stem + "_curves.png")
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for run in runs:
        epochs = [int(row["epoch"]) + 1 for row in run["history"]]
        for ax, key in zip(axes, ("val_accuracy", "val_loss")):
            ax.plot(epochs, [float(row[key]) for row in run["history"]], "o-", label=run["dir"].name,
                    linewidth=3 if run is best else 1.2)
    for ax, key in zip(axes, ("validation accuracy", "validation loss")):
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    save(fig, curves)

    lines = ["# Report on the runs", "",
             f"{len(runs)} runs compared. The best run, chosen by **validation** accuracy so that the test set "
             "stays an unbiased final check, is in bold.", "",
             "| run | model | dataset | params | epochs | batch | lr | train s | samples/s | val acc | test acc | "
             "test loss |", "|" + " --- |" * 12]
    for run in sorted(runs, key=lambda r: -(r["metrics"].get("val_accuracy") or 0)):
        c, m = run["config"], run["metrics"]
        cells = [run["dir"].name, c["model"], c["dataset"], f"{m.get('params', 0):,}", str(m.get("epochs_run")),
                 str(c["batch_size"]), f"{c['learning_rate']:g}", f"{m['train_seconds']:.1f}",
                 f"{m['samples_per_second']:.0f}", f"{m.get('val_accuracy') or 0:.4f}",
                 f"{m['test_accuracy']:.4f}", f"{m['test_loss']:.4f}"]
        if run is best:
            cells = [f"**{cell}**" for cell in cells]
        lines.append("| " + " | ".join(cells) + " |")
    bm = best["metrics"]
    worst_class = int(np.argmin(bm["per_class_accuracy"]))
    lines += ["", f"![validation curves]({curves.name})", "", "## Findings", "",
              f"- Best by validation: `{best['dir'].name}` ({best['config']['model']}), validation accuracy "
              f"{bm.get('val_accuracy') or 0:.4f}, test accuracy {bm['test_accuracy']:.4f}.",
              f"- Its weakest class is {best['config']['labels'][worst_class]!r} at "
              f"{bm['per_class_accuracy'][worst_class]:.4f}; see `{best['dir'] / 'plots' / 'confusion.png'}`.",
              f"- Fastest training: `{max(runs, key=lambda r: r['metrics']['samples_per_second'])['dir'].name}`.",
              ""]
    out.write_text("\n".join(lines))
    return out, best
