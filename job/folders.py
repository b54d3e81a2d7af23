"""Image folders: write a dataset as image files, and score a predictions file against the labels they carry.

Two layouts, both read by `mnist-job score`:
- flat: <index>_<label>.png, the label in the name (what `mnist-predict` rows are scored by);
- classes: <class name>/<index>.png, one subfolder per class, as keras.utils.image_dataset_from_directory
  and `mnist-job train --data FOLDER` read it.

    mnist-job images --dataset mnist-sample --out digits/
    mnist-job images --dataset mnist-sample --split train --layout classes --condition phone --out photos/
    mnist-job score predictions.csv
"""

import csv
import json
import os
import shutil
from pathlib import Path

from job.errors import Interrupted, JobError

LAYOUTS = ("flat", "classes")


def folder_name(label):
    """A class name as a folder name: Fashion-MNIST's 'T-shirt/top' cannot hold a slash."""
    return label.replace("/", "-").replace(os.sep, "-")


def write_images(images, labels, class_names, out, layout="flat", condition=None, limit=None, seed=0,
                 overwrite=False):
    """Write up to `limit` images into `out`, built beside it and renamed into place when complete.

    With `condition` (see job.photos.CONDITIONS) each digit is rendered as a photo or scan first. Returns
    the number of files written."""
    from PIL import Image

    if layout not in LAYOUTS:
        raise JobError(f"unknown --layout {layout!r}: choose flat or classes")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise JobError(f"{out} is not empty: pass --overwrite to replace what it holds")
    n = len(images) if limit is None else min(limit, len(images))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        for i in range(n):
            if condition:
                from job.photos import render

                image, suffix = render(images[i], condition, seed + i)
            else:
                image, suffix = Image.fromarray(images[i]), ".png"
            label = int(labels[i])
            path = (tmp / f"{i:05d}_{label}{suffix}" if layout == "flat"
                    else tmp / folder_name(class_names[label]) / f"{i:05d}{suffix}")
            path.parent.mkdir(parents=True, exist_ok=True)
            image.save(path)
        tmp.mkdir(exist_ok=True)  # an empty set is still a folder
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.rename(out, old)
            os.rename(tmp, out)
            shutil.rmtree(old)
        else:
            os.rename(tmp, out)
    except KeyboardInterrupt:
        shutil.rmtree(tmp, ignore_errors=True)
        raise Interrupted(f"interrupted; nothing was written to {out}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return n


def score_predictions(path):
    """Accuracy of a predictions CSV or JSONL against the labels in its file paths: the `_<label>` ending of
    a flat folder's names, or the class folder of a labelled folder (a folder named as a class that the
    model predicted somewhere in the file).

    Returns a dict: files, labelled, unlabelled, predicted (ok rows with a label), errors (labelled error
    rows), review, correct, accuracy_predicted (over the predicted rows), accuracy_labelled (over every
    labelled file, an error counting as wrong) and accuracy_unflagged (over the predicted rows not flagged
    for review)."""
    path = Path(path)
    if not path.is_file():
        raise JobError(f"{path}: no such predictions file")
    try:
        with open(path, newline="") as f:
            rows = [json.loads(line) for line in f if line.strip()] if path.suffix == ".jsonl" else list(csv.DictReader(f))
    except (ValueError, csv.Error, UnicodeDecodeError) as e:
        raise JobError(f"{path}: not a predictions file ({e})") from None
    if rows and "path" not in rows[0]:
        raise JobError(f"{path}: not a predictions file (no 'path' column)")
    counts = dict(files=len(rows), labelled=0, predicted=0, errors=0, review=0, correct=0, unflagged=0,
                  unflagged_correct=0)
    classes = {folder_name(row["class_name"]): row["class_name"] for row in rows if row.get("class_name")}
    for row in rows:
        right = truth(row, classes)
        if right is None:
            continue
        counts["labelled"] += 1
        if row.get("status") != "ok":
            counts["errors"] += 1
            continue
        counts["predicted"] += 1
        kind, value = right
        hit = value == (str(row["label"]) if kind == "label" else row["class_name"])
        counts["correct"] += hit
        if row.get("review") == "yes":
            counts["review"] += 1
        else:
            counts["unflagged"] += 1
            counts["unflagged_correct"] += hit
    if not counts["labelled"]:
        raise JobError(f"{path}: no row whose file name ends in _<label> or lies in a class folder")
    ratio = lambda a, b: round(a / b, 6) if b else None  # noqa: E731
    return {**{k: v for k, v in counts.items() if k != "unflagged_correct"},
            "unlabelled": counts["files"] - counts["labelled"],
            "accuracy_predicted": ratio(counts["correct"], counts["predicted"]),
            "accuracy_labelled": ratio(counts["correct"], counts["labelled"]),
            "accuracy_unflagged": ratio(counts["unflagged_correct"], counts["unflagged"])}


def truth(row, classes):
    """The true class of a row as (kind, value): ("label", "7") from a name ending in _7, ("class", name)
    from a class folder (a folder named as one of the `classes` the model predicted), or None."""
    file = Path(row["path"])
    ending = file.stem.rsplit("_", 1)
    if len(ending) == 2 and ending[1].isdigit():
        return "label", ending[1]
    if file.parent.name in classes:
        return "class", classes[file.parent.name]
    return None
