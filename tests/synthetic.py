"""Generated MNIST-format data for tests: real rendered digits, shifted and noised, in every file format."""

import gzip
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont


def glyphs():
    """Ten 28x28 white-on-black digits drawn with Pillow's bundled font."""
    font = ImageFont.load_default(size=22)
    out = np.zeros((10, 28, 28), dtype=np.uint8)
    for d in range(10):
        img = Image.new("L", (28, 28), 0)
        ImageDraw.Draw(img).text((14, 14), str(d), fill=255, font=font, anchor="mm")
        out[d] = np.asarray(img)
    return out


def make_digits(n, seed=0):
    """n labelled images: a glyph shifted by up to 2 px, with noise in its ink; black around it, as in
    MNIST (whose check on pixel statistics these pass). Learnable in a few steps."""
    rng = np.random.default_rng(seed)
    base = glyphs().astype(np.int16)
    y = rng.integers(0, 10, size=n).astype(np.uint8)
    x = np.empty((n, 28, 28), dtype=np.uint8)
    for i, label in enumerate(y):
        shifted = np.roll(base[label], tuple(rng.integers(-2, 3, size=2)), axis=(0, 1))
        x[i] = np.clip(shifted + rng.integers(-60, 61, size=(28, 28)) * (shifted > 0), 0, 255)
    return x, y


def write_idx(path, array, gz=True):
    array = np.asarray(array, dtype=np.uint8)
    magic = 2051 if array.ndim == 3 else 2049
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    payload = header + array.tobytes()
    path = Path(str(path) + (".gz" if gz else ""))
    path.write_bytes(gzip.compress(payload) if gz else payload)
    return path


def write_dataset(folder, n_train=600, n_test=200, seed=0, gz=True):
    """The four standard IDX files in folder; returns the arrays too."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    x_train, y_train = make_digits(n_train, seed)
    x_test, y_test = make_digits(n_test, seed + 1)
    for stem, arr in (("train-images-idx3-ubyte", x_train), ("train-labels-idx1-ubyte", y_train),
                      ("t10k-images-idx3-ubyte", x_test), ("t10k-labels-idx1-ubyte", y_test)):
        write_idx(folder / stem, arr, gz)
    return x_train, y_train, x_test, y_test


def write_npz(path, n_train=600, n_test=200, seed=0):
    x_train, y_train = make_digits(n_train, seed)
    x_test, y_test = make_digits(n_test, seed + 1)
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return path
