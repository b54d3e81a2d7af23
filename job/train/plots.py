"""The pictures a person looks at after a run: curves, confusion matrix, prediction grids."""

from pathlib import Path

import numpy as np

from job.train import rundir
from mnist_predict.wording import count


def pyplot():
    import matplotlib

    matplotlib.use("Agg")  # batch job: never needs a display
    import matplotlib.pyplot as plt

    return plt


def plot_run(run_dir, x_test, y_test, probabilities, labels, kept_epoch=None):
    """The four plots of a run, into RUN_DIR/plots/."""
    out = Path(run_dir) / rundir.PLOTS
    out.mkdir(exist_ok=True)
    plot_curves(rundir.read_history(Path(run_dir) / rundir.HISTORY), out / "curves.png", kept_epoch)
    plot_evaluation(out, x_test, y_test, probabilities, labels)


def plot_evaluation(out, x_test, y_test, probabilities, labels):
    """confusion.png, predictions.png and confident_errors.png of a model's predictions on a test set."""
    predictions = probabilities.argmax(axis=1)
    plot_confusion(y_test, predictions, labels, out / "confusion.png")
    plot_grid(x_test[:25], y_test[:25], predictions[:25], probabilities[:25], labels,
              "First 25 test images: true → predicted (wrong in red)", out / "predictions.png")
    wrong = np.flatnonzero(predictions != y_test)
    worst = wrong[np.argsort(-probabilities[wrong].max(axis=1))][:25]
    plot_grid(x_test[worst], y_test[worst], predictions[worst], probabilities[worst], labels,
              f"Most confidently wrong, true → predicted ({count(len(wrong), 'error')} in {len(y_test)})",
              out / "confident_errors.png")


def plot_curves(rows, path, kept_epoch=None):
    """Loss, accuracy and learning rate per epoch, the kept (best) epoch marked."""
    plt = pyplot()
    epochs = [int(r["epoch"]) + 1 for r in rows]
    keys = ["loss", "accuracy"] + (["learning_rate"] if rows and rows[0].get("learning_rate") else [])
    fig, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 4))
    for ax, key in zip(axes, keys):
        ax.plot(epochs, [float(r[key]) for r in rows], "o-", label="training" if key != "learning_rate" else key)
        if f"val_{key}" in (rows[0] if rows else {}):
            ax.plot(epochs, [float(r[f"val_{key}"]) for r in rows], "o-", label="validation")
        if kept_epoch:
            ax.axvline(kept_epoch, color="grey", linestyle="--", label=f"kept: epoch {kept_epoch}")
        ax.set_xlabel("epoch")
        ax.set_title(key.replace("_", " "))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    save(fig, path)


def plot_confusion(y_true, y_pred, labels, path):
    plt = pyplot()
    confusion = np.zeros((len(labels), len(labels)), dtype=np.int64)
    np.add.at(confusion, (y_true.astype(int), y_pred.astype(int)), 1)
    fig, ax = plt.subplots(figsize=(7, 6))
    image = ax.imshow(confusion, cmap="Blues")
    fig.colorbar(image, ax=ax)
    for (i, j), n in np.ndenumerate(confusion):
        if n:
            ax.text(j, i, n, ha="center", va="center", fontsize=7,
                    color="white" if n > confusion.max() / 2 else "black")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    # each true class with its accuracy, n/a where the test set holds none of it
    right, images = confusion.diagonal(), confusion.sum(axis=1)
    ax.set_yticks(range(len(labels)), [f"{name}  {right[k] / images[k]:.0%}" if images[k] else f"{name}  n/a"
                                       for k, name in enumerate(labels)])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Confusion matrix (test set)")
    save(fig, path)


def plot_grid(images, y_true, y_pred, probabilities, labels, title, path):
    plt = pyplot()
    fig, axes = plt.subplots(5, 5, figsize=(8, 9))
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k >= len(images):
            continue
        ax.imshow(images[k], cmap="gray", vmin=0, vmax=255)
        ok = y_true[k] == y_pred[k]
        ax.set_title(f"{labels[y_true[k]]} → {labels[y_pred[k]]} ({probabilities[k].max():.0%})",
                     fontsize=8, color="black" if ok else "red")
    fig.suptitle(title)
    save(fig, path)


def save(fig, path):
    """Save by renaming a complete file into place, so a killed run never leaves half a PNG."""
    from mnist_predict.files import atomic_path

    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90)
    pyplot().close(fig)
