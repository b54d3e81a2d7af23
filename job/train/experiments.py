"""What the tutorials ask for by hand: k-fold cross-validation, sweeps, and a report on the findings.

    mnist-job cv --model cnn-mit --folds 5 --dataset mnist-sample
    mnist-job sweep --models dense-128,cnn-mit --learning-rate 1e-3,1e-2 --dataset mnist-sample --epochs 2
    mnist-job compare runs/a runs/b runs/sweep-20250101T000000Z --out report.md

The best run in a comparison is chosen by validation accuracy: the test set never selects a model.
"""

import itertools
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from job.data.datasets import load_dataset
from job.errors import JobError
from job.train import rundir
from job.train.models import get_spec
from job.train.plots import pyplot, save
from job.train.run_config import resolve
from job.train.rundir import write_json
from job.train.stats import tied, wilson
from job.train.training import train


def stamp():
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def cross_validate(cfg, folds=5):
    """k-fold CV on the training set: each fold is a whole `train` run (job.train.training.train, the recipe `train`
    ships: its validation split and best epoch, augmentation, outlier exposure, default epochs) on the other
    folds, tested on the fold held out, into OUT/fold-<k>/. Returns (out, summary)."""
    if folds < 2:
        raise JobError(f"--folds must be at least 2, got {folds}")
    settings = resolve(cfg)  # the model, seed and data every fold shares; each fold resolves the rest for itself
    out = Path(cfg.out or Path("runs") / f"cv-{settings.model}-{stamp()}")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise JobError(f"{out}: already exists and is not empty; cv writes a new folder: choose another --out")
    seed = settings.seed
    data = load_dataset(settings.dataset, settings.data, settings.test_split, seed)
    order = np.random.default_rng(seed).permutation(len(data.x_train))
    if cfg.max_train_samples:
        order = order[:cfg.max_train_samples]
    # each fold trains on the others, less their validation split: it needs a few images of its own
    if folds > len(order) // 2:
        raise JobError(f"--folds {folds}: {len(order)} training images make at most {len(order) // 2} folds (every "
                       "fold trains on the others and holds out at least 2)")
    accuracies, runs = [], []
    for k, held in enumerate(np.array_split(order, folds), 1):
        fit = np.setdiff1d(order, held)
        fold = replace(data, source=f"{data.source}, cv fold {k} of {folds}", x_train=data.x_train[fit],
                       y_train=data.y_train[fit], x_test=data.x_train[held], y_test=data.y_train[held])
        run_dir, metrics = train(replace(cfg, out=str(out / f"fold-{k}"), max_train_samples=None), fold,
                                 record={"cv_fold": k, "cv_folds": folds})
        accuracies.append(round(float(metrics["test_accuracy"]), 6))
        runs.append(str(run_dir))
        print(f"fold {k}/{folds}: accuracy {accuracies[-1]:.4f} ({len(fit)} train, {len(held)} held out) -> "
              f"{run_dir}", flush=True)
    config = rundir.read_json(Path(runs[0]) / rundir.CONFIG)
    summary = {"model": config["model"], "dataset": data.name, "folds": folds, "epochs": config["epochs"],
               "accuracies": accuracies, "mean": round(float(np.mean(accuracies)), 6),
               "std": round(float(np.std(accuracies)), 6), "runs": runs}
    write_json(out / "cv.json", summary)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4, 5))
    ax.boxplot(accuracies)
    ax.scatter(np.ones(folds), accuracies, alpha=0.6)
    ax.set_xticks([1], [summary["model"]])
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


def sweep(base, models, epochs=None, learning_rates=None, batch_sizes=None, out=None, say=print):
    """Train every combination into its own run directory, then write report.md comparing them. An existing
    --out is extended: the new runs go beside those there, and the report compares them all."""
    names = parse_list(models, str, "--models")
    for name in names:
        get_spec(name)  # fail on a bad name before hours of work, not after
    grid = list(itertools.product(names, parse_list(epochs, int, "--epochs"),
                                  parse_list(learning_rates, float, "--learning-rate"),
                                  parse_list(batch_sizes, int, "--batch-size")))
    out = Path(out or Path("runs") / f"sweep-{stamp()}")
    named = ["-".join([model] + [f"{k}{v:g}" for k, v in (("e", ep), ("lr", lr), ("bs", bs)) if v])
             for model, ep, lr, bs in grid]
    taken = [name for name in named if (out / name).exists()]
    if taken:
        raise JobError(f"{out} already holds {', '.join(taken[:3])}{', ...' if len(taken) > 3 else ''}: a sweep "
                       "adds runs beside those there, never over them; choose another --out, or other settings")
    before = find_runs([out]) if out.is_dir() else []
    if before:
        say(f"extending {out}: it holds {len(before)} run(s); report.md will compare them with the "
            f"{len(grid)} new ones")
    for i, (name, (model, ep, lr, bs)) in enumerate(zip(named, grid), 1):
        say(f"[{i}/{len(grid)}] {name}")
        train(replace(base, model=model, epochs=ep, learning_rate=lr, batch_size=bs, out=str(out / name)))
    return compare([out], out / "report.md")


def find_runs(paths):
    """Run directories among `paths`: a run itself, or a folder of runs (a sweep's output)."""
    found = []
    for path in map(Path, paths):
        if (path / rundir.CONFIG).is_file() or not path.is_dir():
            found.append(path)
        else:
            found += sorted(p for p in path.iterdir() if (p / rundir.CONFIG).is_file())
    return found


def compare(run_dirs, out, warn=print):
    """A Markdown report: per dataset, a table of runs ranked by validation accuracy with its 95% interval,
    the runs tied with the best marked as such, and overlaid validation-accuracy curves. Unfinished folders
    are skipped with a warning. Returns (report path, {dataset: best run})."""
    runs = []
    for run_dir in find_runs(run_dirs):
        try:
            runs.append(rundir.load_run(run_dir))
        except JobError as e:
            warn(f"skipped: {e}")
    if not runs:
        raise JobError("no finished run directory to compare (each needs config.json, metrics.json and model.keras)")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    groups = {}
    for run in runs:
        run["val"] = (run["metrics"].get("val_accuracy") or 0.0, run["config"].get("val_samples") or 0)
        groups.setdefault(trained_on(run["config"]), []).append(run)
    bests = {name: max(group, key=lambda r: r["val"][0]) for name, group in groups.items()}
    curves = out.with_name(out.stem + "_curves.png")
    plot_validation_curves(groups, bests, curves)

    lines = ["# Report on the runs", "",
             f"{len(runs)} runs compared, grouped by what they were trained on (a named dataset, or a folder's or "
             "file's class set and content): a run is only ranked against runs on the same data. "
             "The best run of each group, chosen by **validation** accuracy so that the test set stays an unbiased "
             "final check, is in bold. A run whose validation accuracy is within the 95% uncertainty of the best "
             "one (two-proportion z-test on the validation images) is marked *tie*: the data cannot tell them "
             "apart.", "", f"![validation accuracy]({curves.name})", ""]
    for name, group in groups.items():
        best = bests[name]
        lines += [f"## {name}", "",
                  "| run | model | params | epochs | batch | lr | train s | samples/s | val acc (95% CI) | vs best | "
                  "test acc | test loss |", "|" + " --- |" * 12]
        for run in sorted(group, key=lambda r: -r["val"][0]):
            c, m = run["config"], run["metrics"]
            low, high = wilson(*run["val"])
            verdict = "best" if run is best else "tie" if tied(run["val"], best["val"]) else "worse"
            cells = [run["dir"].name, c["model"], f"{m.get('params', 0):,}", str(m.get("epochs_run")),
                     str(c["batch_size"]), f"{c['learning_rate']:g}", f"{m['train_seconds']:.1f}",
                     f"{m['samples_per_second']:.0f}", f"{run['val'][0]:.4f} ({low:.3f}-{high:.3f})", verdict,
                     f"{m['test_accuracy']:.4f}", f"{m['test_loss']:.4f}"]
            if run is best:
                cells = [f"**{cell}**" for cell in cells]
            lines.append("| " + " | ".join(cells) + " |")
        bm = best["metrics"]
        per_class = [np.inf if acc is None else acc for acc in bm["per_class_accuracy"]]  # n/a is nobody's worst
        worst_class = int(np.argmin(per_class))
        ties = [r["dir"].name for r in group if r is not best and tied(r["val"], best["val"])]
        lines += ["", f"- Best by validation: `{best['dir'].name}` ({best['config']['model']}), validation "
                  f"accuracy {best['val'][0]:.4f} on {best['val'][1]} images, test accuracy {bm['test_accuracy']:.4f}."
                  + (f" Tied with it: {', '.join(f'`{t}`' for t in ties)}." if ties else ""),
                  f"- Its weakest class is {best['config']['labels'][worst_class]!r} at "
                  f"{bm['per_class_accuracy'][worst_class]:.4f}; see `{best['dir'] / 'plots' / 'confusion.png'}`.",
                  f"- Fastest training: `{max(group, key=lambda r: r['metrics']['samples_per_second'])['dir'].name}`.",
                  "- Test loss is each run's own loss (label-smoothed for cnn-bn-aug), so compare accuracies, "
                  "not losses, across models.", ""]
    out.write_text("\n".join(lines))
    return out, bests


NAMED = ("mnist", "fashion_mnist", "mnist-sample")  # datasets that are the same data wherever they are read


def trained_on(config):
    """What a run's figures are comparable by: a named dataset, or for a labelled folder or custom files, the
    class set and the data's own fingerprint (config.json's data_sha256; the path for older runs)."""
    dataset = config["dataset"]
    if dataset in NAMED:
        return dataset
    labels, name = config.get("labels") or [], Path(config.get("data") or "").name
    shown = ", ".join(labels[:6]) + (", ..." if len(labels) > 6 else "")
    content = (config.get("data_sha256") or "")[:12] or name
    return f"{dataset} {name}: {len(labels)} classes ({shown}), data {content}"


def plot_validation_curves(groups, bests, path):
    """Validation accuracy per epoch, one panel per dataset, a distinct colour and line style per run."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(groups), figsize=(6 * len(groups), 4.5), squeeze=False)
    for ax, (name, group) in zip(axes[0], groups.items()):
        colours = plt.get_cmap("turbo")(np.linspace(0.05, 0.95, len(group)))
        for k, run in enumerate(group):
            epochs = [int(row["epoch"]) + 1 for row in run["history"]]
            ax.plot(epochs, [float(row["val_accuracy"]) for row in run["history"]], color=colours[k],
                    linestyle=("-", "--", ":", "-.")[k % 4], marker="o", markersize=3, label=run["dir"].name,
                    linewidth=3 if run is bests[name] else 1.2)
        ax.set_xlabel("epoch")
        ax.set_title(f"validation accuracy: {name}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    save(fig, path)
