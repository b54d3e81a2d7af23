"""Synthetic non-digits for outlier exposure (Hendrycks, Mazeika and Dietterich, ICLR 2019).

A softmax must put its probability somewhere, so a digit model calls noise an "8" at 0.999. Outlier
exposure adds images that are no class to training, labelled -1, and the loss pushes their output towards
the uniform distribution; the model learns to be unsure of what is not a digit, and the review threshold
then catches it. The outliers are drawn the way the predictor frames ink (`mnist_predict.images.frame`),
so they look like what a scribble, a blot or a smudge becomes after preprocessing. None of them are
garments or photos: those stay unseen, for the robustness benchmark to test.

    from job.data.outliers import make_outliers
    x_out = make_outliers(1200, seed=42)          # uint8 (1200, 28, 28), white on black
"""

import numpy as np
from PIL import Image, ImageDraw

from mnist_predict.images import frame

KINDS = ("scribble", "blob", "noise", "specks", "texture", "silhouette")
CANVAS = 84


def make_outliers(n, seed=0):
    """n non-digits, the kinds in turn, as uint8 (n, 28, 28) white-on-black images."""
    rng = np.random.default_rng(seed)
    return np.stack([draw(KINDS[i % len(KINDS)], rng) for i in range(n)]) if n else np.zeros((0, 28, 28), np.uint8)


def _smooth_field(rng, cells):
    """Random values on a cells x cells grid, smoothly interpolated to the canvas, 0-1."""
    grid = Image.fromarray(rng.integers(0, 256, (cells, cells), dtype=np.uint8))
    return np.asarray(grid.resize((CANVAS, CANVAS), Image.Resampling.BICUBIC), np.float32) / 255


def draw(kind, rng):
    if kind == "noise":  # what the array API gets when it is handed garbage
        return rng.integers(0, 256, (28, 28), dtype=np.uint8)
    if kind == "specks":
        dots = (rng.random((28, 28)) < rng.uniform(0.02, 0.15)) * rng.uniform(120, 255)
        return dots.astype(np.uint8)
    canvas = Image.new("L", (CANVAS, CANVAS), 0)
    if kind == "scribble":  # four or more random strokes: nothing a digit is drawn with
        pen = ImageDraw.Draw(canvas)
        for _ in range(int(rng.integers(4, 9))):
            start = rng.uniform(10, CANVAS - 10, 2)
            points = start + np.cumsum(rng.normal(0, CANVAS / 6, (int(rng.integers(3, 7)), 2)), axis=0)
            pen.line([tuple(p) for p in points.clip(0, CANVAS - 1)], fill=255, width=int(rng.integers(5, 10)),
                     joint="curve")
    elif kind == "silhouette":  # a thing: a filled polygon, often mirror-symmetric, shaded or patterned
        pen = ImageDraw.Draw(canvas)
        half = rng.uniform(0.03, 0.35, (int(rng.integers(3, 7)), 2)) * CANVAS
        half[:, 1] = np.sort(rng.uniform(0.05, 0.95, len(half))) * CANVAS
        if rng.random() < 0.6:  # left-right symmetric, as most objects seen from the front are
            outline = np.concatenate([half, np.stack([CANVAS - half[::-1, 0], half[::-1, 1]], axis=1)])
        else:
            outline = rng.uniform(0.05, 0.95, (int(rng.integers(5, 10)), 2)) * CANVAS
        pen.polygon([tuple(p) for p in outline], fill=255)
        shade = 0.3 + 0.7 * _smooth_field(rng, int(rng.integers(3, 24)))
        canvas = np.asarray(canvas, np.float32) * shade
    else:  # a blot: a filled, smooth random shape, flat or with a texture inside
        shape = _smooth_field(rng, 5)
        solid = shape > np.percentile(shape, rng.uniform(30, 80))
        shade = 1.0 if kind == "blob" else 0.35 + 0.65 * _smooth_field(rng, int(rng.integers(6, 20)))
        canvas = solid * shade * 255
    ink = np.asarray(canvas, np.float32)
    return frame(ink) if ink.any() else np.zeros((28, 28), np.uint8)
