"""Labelled image folders as a dataset: one subfolder per class, as keras.utils.image_dataset_from_directory
reads them, optionally under train/ and test/.

    photos/0/a.jpg, photos/1/b.png, ...               -> a seeded stratified test split (--test-split)
    photos/train/0/a.jpg, photos/test/0/c.jpg, ...    -> the split as given

Every image is decoded by the edge predictor's own `mnist_predict.images.load` (cleaning, framing and all),
so training sees exactly what prediction will. Decoding runs in parallel and is cached: an npz under
$MNIST_JOB_CACHE (default ~/.cache/mnist-job), keyed by every file's path, size and modification time and by
the preprocessing code itself, so a second run, or an export, does not decode again.

    from job.data.labelled import load_folder
    arrays, classes, source = load_folder("photos/", test_split=0.2, seed=42)
"""

import hashlib
import json
import logging
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from job.data.datasets import SEED, TEST_SPLIT
from job.errors import JobError
from mnist_predict.files import atomic_path, usable_cpus
from mnist_predict.wording import count

log = logging.getLogger(__name__)
SPLITS = ("train", "test")
MAX_CLASSES = 255  # labels are stored as uint8, as MNIST's are


def is_labelled_folder(path):
    """A folder with subfolders and no IDX files: the layout checks (and their errors) come in `layout`."""
    path = Path(path)
    return path.is_dir() and any(p.is_dir() for p in visible(path)) and not any(
        p.name.startswith(("train-images-idx", "train-labels-idx", "t10k-")) for p in visible(path))


def visible(folder):
    return sorted(p for p in Path(folder).iterdir() if not p.name.startswith("."))


def image_files(folder):
    from mnist_predict.batch import IMAGE_SUFFIXES

    return sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def layout(path):
    """{split: {class name: [files]}} with split "all" when the folder has no train/ and test/."""
    path = Path(path)
    entries = visible(path)
    folders = [p for p in entries if p.is_dir()]
    loose = [p.name for p in entries if p.is_file()]
    names = {p.name for p in folders}
    if not folders:
        raise JobError(f"{path}: no class subfolders; a labelled folder holds one subfolder per class "
                       "(0/, 1/, ... or any names), optionally under train/ and test/")
    if loose:
        raise JobError(f"{path}: mixed layouts: files ({loose[0]}, ...) beside class subfolders; put every "
                       "image in its class's subfolder")
    if names & set(SPLITS):
        if names != set(SPLITS):
            extra = sorted(names - set(SPLITS)) or sorted(set(SPLITS) - names)
            raise JobError(f"{path}: mixed layouts: train/ and test/ must both be there and alone, found "
                           f"{', '.join(sorted(names))} ({', '.join(extra)} does not fit)")
        splits = {split: classes_of(path / split) for split in SPLITS}
        unknown = sorted(set(splits["test"]) - set(splits["train"]))
        if unknown:
            raise JobError(f"{path}/test: classes {', '.join(unknown)} are not in {path}/train")
        return splits
    return {"all": classes_of(path)}


def classes_of(folder):
    classes = {}
    for sub in visible(folder):
        if not sub.is_dir():
            raise JobError(f"{folder}: mixed layouts: file {sub.name} beside class subfolders")
        classes[sub.name] = image_files(sub)
    if len(classes) < 2:
        raise JobError(f"{folder}: {len(classes)} class subfolder; a classifier needs at least 2")
    if len(classes) > MAX_CLASSES:
        raise JobError(f"{folder}: {len(classes)} classes; at most {MAX_CLASSES} are supported")
    return classes


def load_folder(path, test_split=TEST_SPLIT, seed=SEED, workers=None, labels=None):
    """(arrays with x_train, y_train, x_test, y_test; class names; a source description). The class names
    are the subfolders', sorted, or `labels` when every subfolder names one of them (by folder_name)."""
    from job.data.image_sets import folder_name

    path = Path(path).resolve()
    splits = layout(path)
    present = sorted(splits.get("train", splits.get("all")))
    by_folder = {folder_name(label): label for label in labels or []}
    classes = present
    if labels and set(present) <= set(by_folder):
        splits = {split: {by_folder[name]: paths for name, paths in by_class.items()} for split, by_class in splits.items()}
        classes = list(labels)
    files, labels, parts = [], [], []
    for split, by_class in splits.items():
        for name, paths in by_class.items():
            files += paths
            labels += [classes.index(name)] * len(paths)
            parts += [split] * len(paths)
    # File name first, then class: a folder that `mnist-job images --layout classes` wrote comes back in
    # the order of the dataset it was written from, so both give identical runs.
    order = sorted(range(len(files)), key=lambda i: (parts[i], files[i].name, labels[i]))
    files, labels, parts = [files[i] for i in order], np.array(labels, np.uint8)[order], np.array(parts)[order]
    pixels, keep = decode_cached(path, files, workers)
    for k, name in enumerate(classes):
        if name in splits.get("train", splits.get("all")) and not (keep & (labels == k) & (parts != "test")).any():
            raise JobError(f"{path}: class {name!r} has no readable image")
    x, y, parts = pixels[keep], labels[keep], parts[keep]
    if "all" in splits:
        test = stratified_test(y, test_split, seed)
    else:
        test = parts == "test"
    arrays = {"x_train": x[~test], "y_train": y[~test], "x_test": x[test], "y_test": y[test]}
    how = f"{test_split:.0%} held out by seed {seed}" if "all" in splits else "its own train/ and test/"
    untested = [f"{name!r} ({count(int((y == k).sum()), 'image')})"
                for k, name in enumerate(classes) if (y == k).any() and not (test & (y == k)).any()]
    if untested:
        log.warning("%s: no test image of class %s: too few to hold one out, so its test accuracy will be n/a; "
                    "add images of it%s", path, ", ".join(untested), "" if "all" in splits else " to test/")
    source = f"labelled folder {path} ({len(classes)} classes, {len(x)} images, {how})"
    return arrays, classes, source


def stratified_test(y, share, seed):
    """A seeded test mask holding `share` of every class (at least one image of a class with two)."""
    if not 0 < share < 1:
        raise JobError(f"--test-split must be in (0, 1), got {share}")
    rng = np.random.default_rng(seed)
    test = np.zeros(len(y), bool)
    for label in np.unique(y):
        rows = rng.permutation(np.flatnonzero(y == label))
        test[rows[: max(1 if len(rows) > 1 else 0, round(share * len(rows)))]] = True
    return test


def decode_cached(root, files, workers=None):
    """(pixels (N, 28, 28) uint8, readable mask), decoded in parallel or read from the cache."""
    key = cache_key(root, files)
    cache = cache_dir() / f"{key}.npz"
    if cache.is_file():
        with np.load(cache) as saved:
            log.info("%s: %d images from the cache (%s)", root, len(files), cache)
            return saved["pixels"], saved["keep"]
    from mnist_predict import images

    start = time.perf_counter()
    workers = workers or usable_cpus()
    # spawn, not fork: by now TensorFlow's threads run in this process, and a forked child inherits the locks
    # they hold; CI once hung for good with both decode workers stuck in their first task
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        decoded = list(pool.map(images.decode, files, chunksize=64))
    seconds = time.perf_counter() - start
    keep = np.array([pixels is not None for pixels, _ in decoded])
    pixels = np.stack([p if p is not None else np.zeros((28, 28), np.uint8) for p, _ in decoded]) if decoded \
        else np.zeros((0, 28, 28), np.uint8)
    log.info("%s: decoded %d images in %.1f s (%.0f images/s, %d processes)", root, len(files), seconds,
             len(files) / max(seconds, 1e-9), workers)
    bad = [(files[i], reason) for i, (_, reason) in enumerate(decoded) if reason]
    if bad:
        first = "; ".join(f"{file.relative_to(root)}: {reason}" for file, reason in bad[:3])
        log.warning("%s: skipped %d unreadable image(s): %s%s", root, len(bad), first, "; ..." if len(bad) > 3 else "")
    save_cache(cache, pixels, keep)
    return pixels, keep


def cache_dir():
    return Path(os.environ.get("MNIST_JOB_CACHE") or Path.home() / ".cache" / "mnist-job") / "folders"


def cache_key(root, files):
    """Every file's path, size and mtime, and the preprocessing code: any change decodes again."""
    import mnist_predict.images as images

    digest = hashlib.sha256(Path(images.__file__).read_bytes())
    for file in files:
        stat = file.stat()
        digest.update(json.dumps([str(file.relative_to(root)), stat.st_size, stat.st_mtime_ns]).encode())
    return digest.hexdigest()[:32]


def save_cache(path, pixels, keep):
    try:
        with atomic_path(path) as tmp:
            np.savez(tmp, pixels=pixels, keep=keep)
    except OSError as e:  # a read-only home is no reason to fail the run; the next one decodes again
        log.warning("cannot write the decode cache %s (%s)", path, e.strerror or e)


def evaluation_set(path, labels, workers=None):
    """The images of a labelled folder that a finished run is evaluated on: its test/ when it has one, else
    all of them, with their classes mapped by name onto the run's `labels`. Returns (x, y, source)."""
    path = Path(path).resolve()
    splits = layout(path)
    by_class = splits.get("test", splits.get("all"))
    unknown = sorted(set(by_class) - set(labels))
    if unknown:
        raise JobError(f"{path}: classes {', '.join(unknown)} are not among the run's ({', '.join(labels)})")
    files, y = [], []
    for name, paths in sorted(by_class.items()):
        files += paths
        y += [labels.index(name)] * len(paths)
    pixels, keep = decode_cached(path, files, workers)
    if not keep.any():
        raise JobError(f"{path}: no readable image")
    what = "test/" if "test" in splits else "all images"
    return pixels[keep], np.array(y, np.uint8)[keep], f"labelled folder {path} ({what}, {int(keep.sum())} images)"
