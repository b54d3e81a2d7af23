"""Load MNIST-format datasets from local files or Keras's download, and validate what is read.

Sources, in order: an explicit path (`--data`), the `MNIST_DATA` environment variable, then Keras's own
cache and download. `mnist-sample` is bundled with the package, so the job runs with no network at all.

    from job.data.datasets import load_dataset
    ds = load_dataset("mnist-sample")
    ds = load_dataset("fashion_mnist", "/usr/share/datasets/fashion-mnist")
"""

import gzip
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from job.errors import JobError

SAMPLE_DIR = Path(__file__).parent / "sample"
TEST_SPLIT, SEED = 0.2, 42  # a labelled folder without test/ holds out this share, drawn with this seed
DIGITS = [str(d) for d in range(10)]
FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
# "custom": MNIST-format files of your own, with ten classes named 0-9 and no check of their content;
# "folder": a labelled image folder (job/data/labelled.py), whose subfolders name the classes.
DATASETS = {"mnist": DIGITS, "fashion_mnist": FASHION, "mnist-sample": DIGITS, "custom": DIGITS, "folder": None}
# Pixel statistics that tell the two families apart: MNIST digits leave 81% of pixels black (76-85% in any 10
# images of the sample), Fashion-MNIST items 50% (40-63%).
BLACK_SHARE = {"mnist": (0.7, 1.0), "mnist-sample": (0.7, 1.0), "fashion_mnist": (0.3, 0.7)}
MIRROR_SYMMETRIC = {"fashion_mnist"}  # a mirrored shirt is a shirt; a mirrored 2 is not a 2
IDX_STEMS = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049
OFFLINE_HINT = ("pass local files with --data PATH (a mnist.npz, or a folder with the four IDX files) "
                "or set MNIST_DATA, or use --dataset mnist-sample")


@dataclass
class Dataset:
    name: str
    source: str
    labels: list
    x_train: np.ndarray  # uint8 (N, 28, 28), white on black
    y_train: np.ndarray  # uint8 (N,)
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def mirror_symmetric(self):
        """Whether a mirror image keeps its class, so that augmentation may flip it."""
        return self.name in MIRROR_SYMMETRIC


def canonical_name(name):
    name = {"fashion-mnist": "fashion_mnist", "mnist_sample": "mnist-sample"}.get(name, name)
    if name not in DATASETS:
        raise JobError(f"unknown dataset {name!r}: choose one of {', '.join(DATASETS)}")
    return name


def load_dataset(name="mnist", data=None, test_split=TEST_SPLIT, seed=SEED, labels=None):
    """A dataset by name, from `data` (an npz, an IDX folder or a labelled image folder) when given.

    A labelled folder is its own dataset, "folder", whatever the name: its subfolders name the classes (or,
    when they are some of `labels`, those `labels`) and `test_split` and `seed` carve its test set when it
    has no test/ of its own."""
    from job.data.labelled import is_labelled_folder, load_folder

    name = canonical_name(name)
    if name == "mnist-sample" and data:
        raise JobError(f"--data {data}: --dataset mnist-sample is the bundled sample and reads no other data; name "
                       "the dataset of that data (mnist, fashion_mnist, custom), or leave --data out")
    if name == "mnist-sample":
        path, source = SAMPLE_DIR, f"bundled sample ({SAMPLE_DIR})"
    else:
        path = data or os.environ.get("MNIST_DATA")
        source = str(path) if path else None
    if path and is_labelled_folder(path):
        arrays, labels, source = load_folder(path, test_split, seed, labels=labels)
        validate_pairs(arrays, source, len(labels))
        return Dataset(name="folder", source=source, labels=labels, **arrays)
    if name == "folder":
        raise JobError(f"{path}: not a labelled image folder (one subfolder of images per class, optionally under "
                       "train/ and test/)" if path else "a labelled-folder run needs its folder: pass --data FOLDER")
    if path:
        arrays = read_local(Path(path))
    else:
        arrays, source = download(name)
    validate_pairs(arrays, source)
    check_content(name, arrays, source)
    return Dataset(name=name, source=source, labels=DATASETS[name], **arrays)


def check_content(name, arrays, source):
    """Refuse data that is plainly another family than --dataset says: Fashion-MNIST passed as MNIST trains
    and evaluates without an error, and every figure it gives is meaningless."""
    if name not in BLACK_SHARE:
        return
    low, high = BLACK_SHARE[name]
    for split in ("x_train", "x_test"):
        black = float((arrays[split] == 0).mean())
        if not low <= black <= high:
            looks = "Fashion-MNIST" if black < 0.7 else "MNIST digits"
            raise JobError(f"{source}: its {split[2:]} images look like {looks} ({black:.0%} black pixels), not "
                           f"--dataset {name}; pass the right --dataset, or --dataset custom to skip this check")


def download(name):
    import keras

    try:
        (x_train, y_train), (x_test, y_test) = getattr(keras.datasets, name).load_data()
    except Exception as e:  # any network or cache failure: one line, not a traceback
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise JobError(f"could not load {name} from Keras ({reason[:240]}); {OFFLINE_HINT}") from None
    arrays = dict(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return arrays, f"keras.datasets.{name} (~/.keras/datasets)"


def read_local(path):
    if not path.exists():
        raise JobError(f"{path}: no such file or folder; {OFFLINE_HINT}")
    if path.is_dir():
        return {key: read_idx(find_idx(path, stem)) for key, stem in IDX_STEMS.items()}
    return read_npz(path)


def find_idx(folder, stem):
    for candidate in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (folder / candidate).is_file():
            return folder / candidate
    raise JobError(f"{folder}: missing {stem}[.gz]; a data folder holds either the four standard IDX files, "
                   "or one subfolder of images per class")


def read_npz(path):
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in IDX_STEMS if k not in npz.files]
            if missing:
                raise JobError(f"{path}: not a Keras mnist.npz, missing {', '.join(missing)}")
            return {k: np.asarray(npz[k]) for k in IDX_STEMS}
    except JobError:
        raise
    except Exception as e:
        raise JobError(f"{path}: cannot read as .npz ({type(e).__name__}: {e})") from None


def read_idx(path):
    """Read one IDX file (raw or gzip) into a uint8 array, checking magic, dimensions and length."""
    try:
        raw = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as e:
        raise JobError(f"{path}: corrupt or truncated gzip ({type(e).__name__}: {e})") from None
    if len(raw) < 8:
        raise JobError(f"{path}: too short for an IDX header ({len(raw)} bytes)")
    magic, count = int.from_bytes(raw[0:4], "big"), int.from_bytes(raw[4:8], "big")
    if magic == IMAGES_MAGIC:
        if len(raw) < 16:
            raise JobError(f"{path}: truncated IDX image header")
        rows, cols = int.from_bytes(raw[8:12], "big"), int.from_bytes(raw[12:16], "big")
        if (rows, cols) != (28, 28):
            raise JobError(f"{path}: images are {rows}x{cols}, expected 28x28")
        shape, offset = (count, 28, 28), 16
    elif magic == LABELS_MAGIC:
        shape, offset = (count,), 8
    else:
        raise JobError(f"{path}: wrong magic number {magic}, expected {IMAGES_MAGIC} (images) "
                       f"or {LABELS_MAGIC} (labels)")
    expected = int(np.prod(shape))
    if len(raw) - offset != expected:
        raise JobError(f"{path}: length mismatch, header says {count} items ({expected} bytes) "
                       f"but the file holds {len(raw) - offset} bytes")
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(shape)


def validate_pairs(arrays, source, classes=10):
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim != 3 or x.shape[1:] != (28, 28):
            raise JobError(f"{source}: x_{split} has shape {x.shape}, expected (N, 28, 28)")
        if len(x) != len(y):
            raise JobError(f"{source}: {len(x)} {split} images but {len(y)} labels")
        if len(y) and (y.min() < 0 or y.max() > classes - 1):
            raise JobError(f"{source}: {split} labels outside 0-{classes - 1} (found {y.min()}..{y.max()})")
        if len(x) == 0:
            raise JobError(f"{source}: no {split} images")
        if x.dtype != np.uint8:
            if x.min() < 0 or x.max() > 255:
                raise JobError(f"{source}: x_{split} values outside 0-255")
            arrays[f"x_{split}"] = x.astype(np.uint8)
        arrays[f"y_{split}"] = y.astype(np.uint8)


def training_size(cfg, data):
    """How many images training_split gives a run to train on, without splitting."""
    n = len(data.x_train) - validation_size(len(data.x_train), cfg.val_split)
    return min(n, cfg.max_train_samples) if cfg.max_train_samples else n


def validation_size(n, val_split):
    return max(1, int(round(n * val_split)))


def training_split(cfg, data):
    """(x_train, y_train, x_val, y_val) of a run (job.train.run_config): its validation split, and at most
    cfg.max_train_samples of the rest to train on."""
    x_train, y_train, x_val, y_val = split_validation(data.x_train, data.y_train, cfg.val_split, cfg.seed)
    if cfg.max_train_samples:
        x_train, y_train = x_train[:cfg.max_train_samples], y_train[:cfg.max_train_samples]
    return x_train, y_train, x_val, y_val


def split_validation(x, y, val_split, seed):
    """Carve a validation set from the training data with a fixed seed; the test set stays untouched."""
    if not 0.0 < val_split < 1.0:
        raise JobError(f"--val-split must be in (0, 1), got {val_split}")
    order = np.random.default_rng(seed).permutation(len(x))
    n_val = validation_size(len(x), val_split)
    val, train = order[:n_val], order[n_val:]
    return x[train], y[train], x[val], y[val]
