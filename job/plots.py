"""The pictures a person looks at after a run: curves, confusion matrix, prediction grids."""

from pathlib import Path

import numpy as np


def pyplot():
    import matplotlib

    matplotlib.use("Agg")  # batch job: never needs a display
    import matplotlib.pyplot as plt

    return plt


def plot_run(run_dir, x_test, y_test, predictions, probabilities, labels):
    from job.training import read_history

    out = Path(run_dir) / "plots"
    out.mkdir(exist_ok=True)
    plot_curves(read_history(Path(run_dir) / "history.csv"), out / "curves.png")
    plot_confusion(y_test, predictions, labels, out / "confusion.png")
    plot_grid(x_test[:25], y_test[:25], predictions[:25], probabilities[:25], labels,
              "First 25 test images: true → predicted (wrong in red)", out / "predictions.png")
    wrong = np.flatnonzero(predictions != y_test)
    worst = wrong[np.argsort(-probabilities[wrong].max(axis=1))][:25]
    plot_grid(x_test[worst], y_test[worst], predictions[worst], probabilities[worst], labels,
              f"Most confidently wrong, true → predicted ({len(wrong)} errors in {len(y_test)})",
              out / "confident_errors.png")


def plot_curves(rows, path):
    plt = pyplot()
    epochs = [int(r["epoch"]) + 1 for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key in zip(axes, ("loss", "accuracy")):
        ax.plot(epochs, [float(r[key]) for r in rows], "o-", label=f"training {key}")
        ax.plot(epochs, [float(r[f"val_{key}"]) for r in rows], "o-", label=f"validation {key}")
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.grid(alpha=0.3)
        ax.legend()
    save(fig, path)


def plot_confusion(y_true, y_pred, labels, path):
    plt = pyplot()
    confusion = np.zeros((10, 10), dtype=np.int64)
    np.add.at(confusion, (y_true.astype(int), y_pred.astype(int)), 1)
    fig, ax = plt.subplots(figsize=(7, 6))
    image = ax.imshow(confusion, cmap="Blues")
    fig.colorbar(image, ax=ax)
    for (i, j), n in np.ndenumerate(confusion):
        if n:
            ax.text(j, i, n, ha="center", va="center", fontsize=7,
                    color="white" if n > confusion.max() / 2 else "black")
    ax.set_xticks(range(10), labels, rotation=45, ha="right")
    ax.set_yticks(range(10), labels)
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
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    pyplot().close(fig)
