"""Pillow's Lanczos resize of an 8-bit image, exactly, in numpy: what frames each digit in 20x20.

    fitted = resampling.lanczos(crop, (width, height))  # == images.resize(Image.fromarray(crop), ..., LANCZOS, 3.0)

Reading a number frames about 40 candidate digits an image, and through Pillow each of those small resizes
cost about 70 us, mostly in Image.resize's Python around a few microseconds of C. Here one resize is a
matrix product with the weights Pillow would use, cached per (size, target), about 30 us.

It is Pillow's algorithm (libImaging/Resample.c and Reduce.c, as deploy/web/preprocess.js reproduces it for
the browser): one axis at a time; with reducing_gap 3, a block mean by the integer factor first (Image.reduce)
where the axis shrinks 6 times or more; weights of the Lanczos window (a = 3) normalised to sum to 1 and
rounded to PRECISION_BITS-bit fixed point; each output pixel the integer sum of its taps, rounded, clipped to
0-255. The sums are integers under 2**31, so float64 products give them exactly in any order.
tests/test_predict_images.py holds it equal to Pillow on random images and sizes.
"""

import functools
import math

import numpy as np

PRECISION_BITS = 22  # Pillow's fixed point for 8-bit images: 32 - 8 - 2
REDUCING_GAP = 3.0  # Image.resize's reducing_gap, as framing used it: reduce first where an axis shrinks 6x or more
SUPPORT = 3.0  # Lanczos-3


def lanczos(gray, size):
    """A (height, width) uint8 array resized to size = (width, height), width first, as images.resize does."""
    width, height = size
    if gray.shape[1] != width:
        gray = _along(gray, width, axis=1)
    if gray.shape[0] != height:
        gray = _along(gray, height, axis=0)
    return gray


def _along(gray, size, axis):
    length = gray.shape[axis]
    factor = int(length / size / REDUCING_GAP) or 1
    end = float(length)
    if factor > 1:
        gray = _reduce(gray, factor, axis)
        end = float(np.float32(length / factor))  # Pillow hands the box to C as a float
    weights = _weights(gray.shape[axis], end, size)
    pixels = gray.astype(np.float64)
    sums = pixels @ weights.T if axis == 1 else weights @ pixels
    # (sum + half) >> PRECISION_BITS, clipped to a byte; scaling by a power of two is exact
    rounded = np.floor((sums + (1 << (PRECISION_BITS - 1))) * 2.0 ** -PRECISION_BITS)
    return np.minimum(np.maximum(rounded, 0, out=rounded), 255, out=rounded).astype(np.uint8)


def _reduce(gray, factor, axis):
    """Image.reduce by `factor` along one axis: block means rounded as Pillow rounds them, the last partial
    block included."""
    length = gray.shape[axis]
    starts = np.arange(0, length, factor)
    counts = np.minimum(starts + factor, length) - starts
    sums = np.add.reduceat(gray.astype(np.int64), starts, axis=axis)
    # Pillow divides by multiplying: 2**32 / (256 * count) in float32, truncated, then a shift by 24
    multiplier = (np.float32(2.0 ** 32) / (256 * counts).astype(np.float32)).astype(np.int64)
    shape = (1, -1) if axis == 1 else (-1, 1)
    return ((sums + (counts // 2).reshape(shape)) * multiplier.reshape(shape) >> 24).astype(np.uint8)


@functools.lru_cache(maxsize=4096)
def _weights(length, end, size):
    """(size, length) float64: row i holds output pixel i's fixed-point weights over the input [0, end).

    Pillow's precompute_coeffs, with the same floating-point operations in the same order, for all output
    pixels at once: output pixel i weighs the input pixels from first[i] up to (not including) stop[i]."""
    scale = end / size
    stretch = max(scale, 1.0)  # downscaling widens the window
    support = SUPPORT * stretch
    inverse = 1.0 / stretch  # Pillow multiplies by it: dividing by stretch can differ in the last bit
    centre = (np.arange(size) + 0.5) * scale
    first = np.maximum(0, (centre - support + 0.5).astype(np.int64))
    stop = np.minimum(length, (centre + support + 0.5).astype(np.int64))
    x = first[:, None] + np.arange(int((stop - first).max(initial=0)))[None, :]
    inside = x < stop[:, None]
    taps = _lanczos_window((x - centre[:, None] + 0.5) * inverse) * inside
    # Pillow sums each row's taps in order, then divides by the sum: cumsum adds in that order
    total = np.cumsum(taps, axis=1)[:, -1:] if taps.shape[1] else np.zeros((size, 1))
    taps = np.divide(taps, total, out=taps, where=total != 0.0)
    fixed = np.trunc(taps * (1 << PRECISION_BITS) + np.where(taps < 0, -0.5, 0.5))
    matrix = np.zeros((size, length))
    matrix[np.nonzero(inside)[0], x[inside]] = fixed[inside]
    matrix.flags.writeable = False
    return matrix


def _lanczos_window(x):
    """sinc(x) sinc(x / 3) for -3 <= x < 3, else 0, elementwise. numpy's sin gave libm's (Pillow's) value on
    10 million arguments of this range here; one that differed in the last bit would move a weight by about
    1e-16, which shows only where the weight lies that close to a rounding boundary of its fixed point (the
    browser's Math.sin takes the same chance). math.sin one value at a time cost most of a framing's time."""
    near, far = x * math.pi, (x / SUPPORT) * math.pi
    sines = np.sin(near), np.sin(far)
    zero = x == 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        value = np.where(zero, 1.0, sines[0] / near) * np.where(zero, 1.0, sines[1] / far)
    return np.where((x >= -SUPPORT) & (x < SUPPORT), value, 0.0)
