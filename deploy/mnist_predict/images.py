"""Turn any image file into what the model expects: a 28x28 white-on-black digit, uint8 0-255.

The steps are those MNIST itself was made with (grayscale, ink bright on black, the ink's bounding box
fitted into 20x20 and centred by centre of mass in 28x28), so photos and scans of single digits work.
"""

import os

import numpy as np
from PIL import Image, ImageOps

SIZE = 28
FIT = 20  # MNIST fits the digit into 20x20 and leaves a 4-pixel margin
# Digits are small, so anything near Pillow's default cap (89M pixels) is a mistake or a decompression
# bomb. Checked per file from the header, before any pixel is decoded; Pillow's global stays untouched.
MAX_PIXELS = 4096 * 4096
WIDE_MODES = ("I", "F")  # plus "I;16", "I;16B", ...: more than 8 bits per pixel


def load(path, invert="auto", resize="mnist"):
    """Decode one file into a (28, 28) uint8 array; raises on a bad file, with a one-line reason."""
    if os.path.getsize(path) == 0:
        raise ValueError("empty file")
    with Image.open(path) as image:  # reads the header only; GIF and TIFF open on their first frame
        width, height = image.size
        if width * height > MAX_PIXELS:
            raise ValueError(f"{width}x{height} exceeds the {MAX_PIXELS:,}-pixel cap (a decompression bomb?)")
        gray = to_grayscale(image)
    return prepare(gray, invert=invert, resize=resize)


def decode(path, invert="auto", resize="mnist"):
    """`load` for the batch pipeline: returns (array, None) or (None, reason) and never raises."""
    try:
        return load(path, invert=invert, resize=resize), None
    except Exception as error:  # every failure becomes an error row; the batch goes on
        return None, describe(error)


def describe(error):
    """A one-line reason for a failed file, without the path (the row already has it)."""
    if isinstance(error, Image.UnidentifiedImageError):
        return "not an image Pillow can read"
    if isinstance(error, Image.DecompressionBombError):
        return f"too large (a decompression bomb?): {error}"
    if isinstance(error, OSError) and error.strerror:  # from the OS: not found, permission denied, ...
        return error.strerror
    if isinstance(error, (SyntaxError, OSError)):  # Pillow reports broken files as either
        return " ".join(f"truncated or corrupt: {error}".split())
    return " ".join(f"{error}".split()) or type(error).__name__


def to_grayscale(image):
    """Any Pillow mode to a 2-D uint8 array; alpha is composited onto a background that keeps the ink."""
    image.load()
    ImageOps.exif_transpose(image, in_place=True)  # phone photos store their rotation in EXIF
    if image.mode in WIDE_MODES or image.mode.startswith("I;16"):
        return _from_wide(image)
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("LA", "PA", "RGBA"):
        return _composite(np.asarray(image.convert("LA"), dtype=np.float32))
    return np.asarray(image if image.mode == "L" else image.convert("L"))  # L, 1, RGB, CMYK, ...


def _from_wide(image):
    # Pillow's own conversion to L clips at 255 instead of scaling, which turns 16-bit digits white.
    values = np.asarray(image, dtype=np.float64)
    if image.mode.startswith("I;16"):
        scale = 65535
    else:  # "I" and "F" carry no fixed range: take 0-255 as is, else assume 16 bits, else the maximum
        top = values.max(initial=0)
        scale = 255 if top <= 255 else 65535 if top <= 65535 else top
    return np.clip(values * (255 / scale), 0, 255).round().astype(np.uint8)


def _composite(gray_alpha):
    gray, alpha = gray_alpha[..., 0], gray_alpha[..., 1] / 255
    # The opaque pixels are the ink. Dark ink goes onto white and light ink onto black, so a digit drawn
    # on a transparent canvas survives either way (--invert auto then sorts out the polarity).
    ink = np.average(gray, weights=alpha) if alpha.any() else 0
    background = 0 if ink > 127 else 255
    return (gray * alpha + background * (1 - alpha)).round().astype(np.uint8)


def prepare(gray, invert="auto", resize="mnist"):
    """Polarity and size of a 2-D uint8 array, as the model wants them."""
    if invert == "always" or (invert == "auto" and has_light_background(gray)):
        gray = 255 - gray
    if gray.shape == (SIZE, SIZE):
        return gray
    height, width = gray.shape
    if resize == "none":
        raise ValueError(f"image is {width}x{height}, not 28x28 (--resize none)")
    if resize == "stretch":
        return _resize(gray, (SIZE, SIZE))
    return mnist_normalize(gray)


def has_light_background(gray):
    """True for a dark digit on a light background, judged by the border, where the ink rarely is."""
    border = np.concatenate([gray[0], gray[-1], gray[1:-1, 0], gray[1:-1, -1]])
    return np.count_nonzero(border > 127) > border.size / 2  # the median, without sorting


def mnist_normalize(gray):
    """Crop to the ink, fit it into 20x20 keeping the aspect ratio, centre by centre of mass in 28x28."""
    canvas = np.zeros((SIZE, SIZE), np.uint8)
    if gray.max() == 0:
        return canvas  # blank image: nothing to centre
    # A quarter of the brightest value separates ink from a background that is dark but not black.
    ink = gray > gray.max() / 4
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    crop = gray[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    scale = FIT / max(crop.shape)
    height, width = (max(1, round(side * scale)) for side in crop.shape)
    digit = _resize(crop, (width, height)).astype(np.float64)
    total = digit.sum()
    if total == 0:
        return canvas
    # Pixel i covers [i, i+1), so a centre of mass c sits at c + 0.5 and the field's centre is 14.
    centre_y = digit.sum(axis=1) @ np.arange(height) / total
    centre_x = digit.sum(axis=0) @ np.arange(width) / total
    top = int(np.clip(round(SIZE / 2 - 0.5 - centre_y), 0, SIZE - height))
    left = int(np.clip(round(SIZE / 2 - 0.5 - centre_x), 0, SIZE - width))
    canvas[top : top + height, left : left + width] = digit.round().astype(np.uint8)
    return canvas


def _resize(gray, size):
    # reducing_gap makes big downscales (photos) fast at no visible cost for a 28x28 result.
    resized = Image.fromarray(gray).resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    return np.asarray(resized)
