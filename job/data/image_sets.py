"""Image folders: write a dataset as image files, labelled by name or by class folder.

Two layouts, both read by `mnist-job score` (job/data/scoring.py):
- flat: <index>_<label>.png, the label in the name (what `mnist-predict` rows are scored by);
- classes: <class name>/<index>.png, one subfolder per class, as keras.utils.image_dataset_from_directory
  and `mnist-job train --data FOLDER` read it.

    mnist-job images --dataset mnist-sample --out digits/
    mnist-job images --dataset mnist-sample --split train --layout classes --condition phone --out photos/
    mnist-job score predictions.csv
"""

import os
import shutil
from pathlib import Path

from mnist_predict.files import publish_directory, temp_dir_beside

from job.errors import Interrupted, JobError

LAYOUTS = ("flat", "classes")


def folder_name(label):
    """A class name as a folder name: Fashion-MNIST's 'T-shirt/top' cannot hold a slash."""
    return label.replace("/", "-").replace(os.sep, "-")


def write_images(images, labels, class_names, out, layout="flat", condition=None, limit=None, seed=0,
                 overwrite=False):
    """Write up to `limit` images into `out`, built beside it and renamed into place when complete.

    With `condition` (see job.data.photos.CONDITIONS) each digit is rendered as a photo or scan first. Returns
    the number of files written."""
    from PIL import Image

    if layout not in LAYOUTS:
        raise JobError(f"unknown --layout {layout!r}: choose flat or classes")
    n = len(images) if limit is None else min(limit, len(images))

    def fill(tmp):
        for i in range(n):
            if condition:
                from job.data.photos import render

                image, suffix = render(images[i], condition, seed + i)
            else:
                image, suffix = Image.fromarray(images[i]), ".png"
            label = int(labels[i])
            path = (tmp / f"{i:05d}_{label}{suffix}" if layout == "flat"
                    else tmp / folder_name(class_names[label]) / f"{i:05d}{suffix}")
            path.parent.mkdir(parents=True, exist_ok=True)
            image.save(path)

    publish_folder(out, fill, overwrite)
    return n


def publish_folder(out, fill, overwrite=False):
    """Run fill(tmp) on a new folder beside `out`, then rename it into place: `out` is never half written.
    Refuses an `out` that holds anything, unless `overwrite`."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise JobError(f"{out} is not empty: pass --overwrite to replace what it holds")
    try:
        tmp = temp_dir_beside(out)
    except OSError as e:
        raise JobError(f"{out}: not writable ({e.strerror or e})") from None
    try:
        fill(tmp)
        publish_directory(tmp, out)
    except KeyboardInterrupt:
        shutil.rmtree(tmp, ignore_errors=True)
        raise Interrupted(f"interrupted; nothing was written to {out}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
