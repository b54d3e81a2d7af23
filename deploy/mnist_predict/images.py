"""Turn any image file into what the model expects: a 28x28 white-on-black digit, uint8 0-255.

The last steps are those MNIST was made with: the ink's bounding box fitted into 20x20 and centred by centre
of mass in 28x28. Before them, photos and scans are cleaned the way document scanners do it, with Pillow
and numpy only (OpenCV would add 153 MB to a 130 MB install for the same few operations):

1. Decode small: JPEGs at a reduced DCT scale (`draft`), then everything down to `WORK` px.
2. Background: a grey-level closing (or opening, for light ink) at low resolution removes the strokes and
   leaves the paper with its light, shadows and tint; ink is measured against it, relative to the paper's
   brightness, so a digit in shadow is as strong as one in full light.
3. Thin rules: long lines one or two pixels thick (ruled paper, margins) are taken out, and the upright edges
   of boxes between two of them (score boxes).
4. Ink: Otsu's threshold on the denoised ink map, then connected components: the digit is the heaviest
   component and whatever ink lies close to it; specks and page edges are dropped.
5. Contrast: the ink is stretched so its strokes reach 255 like MNIST's, and the paper set to 0.

A true MNIST digit (28x28, already framed) passes through bit for bit. An image with no ink is refused with
"no digit found".

This module has a twin: deploy/web/preprocess.js runs the same steps in the browser page, pixel for pixel
(as numbers.js does numbers.py's). A change to one is a change to both: tests/test_web.py holds their outputs
equal and their tuning constants the same.
"""

import os
import warnings

import numpy as np
from PIL import Image, ImageFilter, ImageOps

from . import resampling

SIZE = 28
FIT = 20  # MNIST fits the digit into 20x20 and leaves a 4-pixel margin
RESIZE_MODES = ("mnist", "stretch", "none")  # prepare()'s `resize`: clean and frame, resize as is, 28x28 only
CENTRE = 14.0  # where MNIST's centres of mass sit, in pixel indices (measured on the sample: 14.0 +- 0.5)
# Digits are small, so anything near Pillow's default cap (89M pixels) is a mistake or a decompression
# bomb. Checked per file from the header, before any pixel is decoded; Pillow's global stays untouched.
MAX_PIXELS = 4096 * 4096
WIDE_MODES = ("I", "F")  # plus "I;16", "I;16B", ...: more than 8 bits per pixel
WORK = 256  # longest side the cleaning works at: a digit a third of the frame tall still has 80 px
POLARITY = 64  # longest side of the image that polarity is judged on ...
PAPER_SIDE = 16  # ... and of the coarse copy whose medians stand for the paper there, over windows of
LOCAL_PAPER, BROAD_PAPER = 0.2, 0.8  # these shares of its side (a sheet on a desk, a thick stroke: _dark_ink)
TAIL = 0.1  # percent of pixels at each end that polarity compares: few enough for a thin 1 small in a photo
MIN_SIDE = 96  # smaller images (thumbnails, 28x28 crops) are upscaled to this first
MIN_CONTRAST = 0.2  # ink must be at least 20% darker (or brighter) than its paper
MIN_SEPARATION = 9.0  # ... and stand out of the paper's noise by this many standard deviations
BOX_EDGE = 0.9  # thin ink over this share of the rows between two rules, in one column, is a box's edge
# A piece with this share of the digit's ink is kept when it lies near the digit (a 5's flag) or beside it
# in its line, at least BESIDE_HEIGHT as tall (another digit of a number). One share for both: a fine pen's
# 0 beside a felt pen's 6 has a fifth of its ink, and at a quarter `predict` gave "6 0 2" back as a 6 at 0.99
KEEP_MASS, BESIDE_HEIGHT = 0.08, 0.6


class ImageError(ValueError):
    """A file that cannot be turned into a digit; the message is the one-line reason, without the path."""


class NoDigit(ImageError):
    """The image holds no ink that could be a digit (blank paper, a flat colour)."""


def load(path, invert="auto", resize="mnist"):
    """Decode one file into a (28, 28) uint8 array; raises ImageError with a one-line reason."""
    return load_file(path, lambda gray: prepare(gray, invert=invert, resize=resize),
                     WORK if resize == "mnist" else None)


def load_file(path, process, draft=WORK):
    """process(the file as a grayscale array, see open_gray); any failure raises ImageError with a one-line
    reason. What `load` and mnist_predict.numbers.load share."""
    heic_support()
    try:
        gray, _ = open_gray(path, draft)
        return process(gray)
    except ImageError:
        raise
    except Exception as error:  # Pillow and the OS raise a dozen types for bad files
        raise ImageError(describe(error)) from error


def open_gray(path, draft=WORK):
    """The file as a 2-D uint8 array, EXIF-turned; a JPEG decoded at a reduced scale no smaller than
    `draft` px (None: full size). Raises ImageError for an empty file or one over MAX_PIXELS."""
    if os.path.getsize(path) == 0:
        raise ImageError("empty file")
    with Image.open(path) as image:  # reads the header only; GIF and TIFF open on their first frame
        width, height = image.size
        if width * height > MAX_PIXELS:
            raise ImageError(f"{width}x{height} exceeds the {MAX_PIXELS:,}-pixel cap (a decompression bomb?)")
        if draft:
            # JPEG only: decode at 1/2, 1/4 or 1/8 scale, still no smaller than the size the cleaning uses.
            image.draft("L", (draft, draft))
        return to_grayscale(image), (width, height)


_HEIC = []  # [True] or [False] once looked up


def heic_support():
    """Whether HEIC/HEIF photos can be read: pillow-heif (the `heic` extra) adds them to Pillow's openers."""
    if not _HEIC:
        try:
            from pillow_heif import register_heif_opener
        except ImportError:
            _HEIC.append(False)
        else:
            register_heif_opener()
            _HEIC.append(True)
    return _HEIC[0]


def decode(path, invert="auto", resize="mnist"):
    """`load` for the batch pipeline: returns (array, None) or (None, reason) and never raises."""
    return quietly(load, path, invert=invert, resize=resize)


def quietly(load_function, *args, **kwargs):
    """(load_function(*args, **kwargs), None), or (None, the one-line reason); never raises.

    Pillow's warnings about a damaged file ("Corrupt EXIF data", "Tag data larger than file") do not reach
    stderr: a file that still decodes is fine, and one that does not gets its reason in the row."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return load_function(*args, **kwargs), None
        except Exception as error:  # every failure becomes an error row; the batch goes on
            return None, describe(error)


def limit_decompression():
    """Tighter caps on what Pillow inflates besides pixels, for a process that only decodes (the CLI's
    workers): PNG text chunks to 256 kB each and 1 MB in all (Pillow allows 1 MB and 64 MB). Pixels are
    capped per file by MAX_PIXELS, and only the first frame of a GIF, TIFF or WebP is ever decoded."""
    from PIL import PngImagePlugin

    PngImagePlugin.MAX_TEXT_CHUNK = 256 * 1024
    PngImagePlugin.MAX_TEXT_MEMORY = 1024 * 1024


def describe(error):
    """A one-line reason for a failed file, without the path (the row already has it)."""
    if isinstance(error, ImageError):
        return " ".join(str(error).split())
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
    if is_wide(image.mode):
        return _from_wide(image)
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("LA", "PA", "RGBA"):
        return _composite(np.asarray(image.convert("LA"), dtype=np.float32))
    return np.asarray(image if image.mode == "L" else image.convert("L"))  # L, 1, RGB, CMYK, ...


def is_wide(mode):
    """A Pillow mode of more than 8 bits per pixel, which to_grayscale scales rather than clips."""
    return mode in WIDE_MODES or mode.startswith("I;16")


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
    background = ink_background(gray_alpha)
    return (gray * alpha + background * (1 - alpha)).round().astype(np.uint8)


def ink_background(gray_alpha):
    """The grey level a transparent image is composited onto (float32 (H, W, 2), gray and alpha 0-255).

    The opaque pixels are the ink. Dark ink goes onto white and light ink onto black, so a digit drawn on a
    transparent canvas survives either way (--invert auto then sorts out the polarity)."""
    alpha = gray_alpha[..., 1] / 255
    ink = np.average(gray_alpha[..., 0], weights=alpha) if alpha.any() else 0
    return 0 if ink > 127 else 255


def prepare(gray, invert="auto", resize="mnist"):
    """Polarity, cleaning and framing of a 2-D uint8 array, as the model wants them."""
    height, width = gray.shape
    if resize != "mnist":
        if invert == "always" or (invert == "auto" and has_light_background(gray)):
            gray = 255 - gray
        if gray.shape == (SIZE, SIZE):
            return gray
        if resize == "none":
            raise ImageError(f"image is {width}x{height}, not 28x28 (--resize none)")
        return resampling.lanczos(gray, (SIZE, SIZE))
    if gray.shape == (SIZE, SIZE):
        framed = _framed_digit(gray, invert)
        if framed is not None:
            return framed
    return mnist_normalize(gray, invert)


def has_light_background(gray):
    """True for a dark digit on a light background, judged by the border, where the ink rarely is."""
    border = np.concatenate([gray[0], gray[-1], gray[1:-1, 0], gray[1:-1, -1]])
    return np.count_nonzero(border > 127) > border.size / 2  # the median, without sorting


def _framed_digit(gray, invert):
    """A 28x28 image that is already an MNIST digit (either polarity), as MNIST has it; else None.

    MNIST's digits sit on pure black (every other pixel is 0), fit 20x20 and have their centre of mass at
    the centre (all 8,000 of the sample do). A scan, a crop that fills its frame or a noisy image fails
    these checks and is cleaned and re-framed instead.
    """
    candidates = {"auto": (gray, 255 - gray), "never": (gray,), "always": (255 - gray,)}[invert]
    for digit in candidates:
        rows, cols = np.flatnonzero(digit.any(axis=1)), np.flatnonzero(digit.any(axis=0))
        if not len(rows) or rows[-1] - rows[0] >= FIT + 1 or cols[-1] - cols[0] >= FIT + 1:
            continue
        total = digit.sum(dtype=np.float64)
        centre_y = digit.sum(axis=1, dtype=np.float64) @ np.arange(SIZE) / total
        centre_x = digit.sum(axis=0, dtype=np.float64) @ np.arange(SIZE) / total
        if abs(centre_y - CENTRE) <= 1 and abs(centre_x - CENTRE) <= 1:
            return digit
    return None


def mnist_normalize(gray, invert="auto"):
    """Clean a photo or scan of one digit and frame it the MNIST way; raises NoDigit when there is none."""
    work, crop, _ = working_copy(gray)
    ink = ink_map(work, invert, crop)
    mask = digit_mask(ink)
    if mask is None:
        raise NoDigit("no digit found")
    return frame(stretch(ink, mask))


def working_copy(gray, longest=WORK):
    """(float32 0-1 image, whether it is a crop, (x scale, y scale, margin)): the longest side at most
    `longest` and the shortest at least MIN_SIDE (or as close as the aspect ratio allows), so that every
    later step works in pixels of a known scale. A working pixel (x, y) is original pixel
    ((x - margin) / x scale, (y - margin) / y scale).

    A small image is a crop, often cut tight to the ink: it gets a margin of its median (its paper), so
    that strokes touching its edge are still told from the paper beyond them."""
    height, width = gray.shape
    scale = min(longest / max(height, width), max(1.0, MIN_SIDE / min(height, width)))
    image = Image.fromarray(gray)
    if scale < 1:
        image = resize(image, (max(1, round(width * scale)), max(1, round(height * scale))),
                       Image.Resampling.BOX, reducing_gap=2.0)
    elif scale > 1:
        image = resize(image, (round(width * scale), round(height * scale)), Image.Resampling.BICUBIC)
    work = np.asarray(image, np.float32) / 255
    crop = scale > 1
    margin = 0
    if crop:
        border = np.concatenate([work[0], work[-1], work[:, 0], work[:, -1]])
        margin = max(work.shape) // 4
        work = np.pad(work, margin, constant_values=float(np.median(border)))
    return work, crop, (image.width / width, image.height / height, margin)


def ink_map(work, invert="auto", crop=False):
    """How much ink each pixel holds, 0 (paper) to 1, whatever the paper's tint, light and shadows.

    Polarity: "always" means dark ink on light paper, "never" light ink on dark, "auto" judges it: against
    a local median (paper, shadows and all), ink is the longer tail. A small crop has no shadows but may
    be mostly ink, so there the paper is its border (the margin it was given): it sets the polarity, and
    it is the background everywhere, however thick the strokes.
    """
    dark = {"always": True, "never": False}.get(invert)
    paper = float(np.median(np.concatenate([work[0], work[-1], work[:, 0], work[:, -1]]))) if crop else None
    if dark is None:
        dark = paper > 0.5 if crop else _dark_ink(work)
    image = work if dark else 1 - work
    if crop:
        background = np.maximum(paper if dark else 1 - paper, image)
    else:
        background = _background(image)
    # Light falls on paper and ink alike, so ink is measured as a share of the local paper brightness.
    return np.clip((background - image) / np.maximum(background, 0.05), 0, 1)


def _dark_ink(work):
    """True for dark ink on light paper: against the paper, the darkest few pixels lie further below it than
    the brightest lie above. Only the few pixels at each end (TAIL): a sheet of paper on a darker desk fills
    far more of a photo than the digit on it, and would pass for light ink if the comparison went deeper.
    The paper is a median over a local and a broad window of a coarse copy (a shadow or a light ramp is
    paper too), and the two comparisons add up: the local one takes a small sheet on a desk for paper, the
    broad one a thick stroke across the frame for ink."""
    low = _shrunk(work, POLARITY)
    coarse = _shrunk(work, PAPER_SIDE)
    # each pixel of `low` against the paper of the coarse pixel it lies in
    rows = np.arange(low.height) * coarse.height // low.height
    cols = np.arange(low.width) * coarse.width // low.width
    pixels = np.asarray(low, np.float32)
    below = above = 0.0
    for share in (LOCAL_PAPER, BROAD_PAPER):
        paper = np.asarray(coarse.filter(ImageFilter.MedianFilter(max(3, round(max(coarse.size) * share) | 1))))
        residual = pixels - paper[rows[:, None], cols[None, :]]
        darkest, brightest = np.percentile(residual, (TAIL, 100 - TAIL))
        below, above = below - darkest, above + brightest
    return below > above


def _shrunk(work, side):
    """The 0-1 working copy as 8-bit, box-filtered down to `side` px on its longest side."""
    height, width = work.shape
    scale = side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return resize(Image.fromarray((work * 255).astype(np.uint8)), size, Image.Resampling.BOX)


def _background(paper_bright):
    """The paper without the ink: a grey-level closing (max then min filter) at half resolution removes
    dark strokes narrower than a quarter of the image, and keeps light falloff and shadow edges where
    they are."""
    height, width = paper_bright.shape
    low = resize(Image.fromarray(paper_bright), (max(1, width // 2), max(1, height // 2)), Image.Resampling.BOX)
    low = np.asarray(low, np.float32)
    k = max(3, round(max(low.shape) / 4) | 1)
    closed = rank_filter(rank_filter(low, k, np.maximum), k, np.minimum)
    background = np.asarray(resize(Image.fromarray(closed), (width, height), Image.Resampling.BILINEAR), np.float32)
    return np.maximum(background, paper_bright)


def smooth(a):
    """A light Gaussian blur (sigma about 1 px): the binomial [1, 4, 6, 4, 1] / 16 along each axis.
    Pillow's blurs take 8-bit images only."""
    for axis in (0, 1):
        p = _edge_padded(a, axis, 2)
        a = sum(w * p[_shifted(axis, i, a.shape[axis])] for i, w in enumerate((1, 4, 6, 4, 1))) / 16
    return a.astype(np.float32)


def _shifted(axis, start, length):
    return (slice(start, start + length), slice(None)) if axis == 0 else (slice(None), slice(start, start + length))


def _edge_padded(a, axis, pad):
    """np.pad(a, pad along axis, mode="edge"), by indexing: the same array, without np.pad's per-call cost
    (it ran once per atom when reading numbers)."""
    return a.take(np.clip(np.arange(-pad, a.shape[axis] + pad), 0, a.shape[axis] - 1), axis=axis)


def rank_filter(a, k, op, axes=(0, 1)):
    """A k-wide max (op=np.maximum) or min (np.minimum) filter along the given axes, edges repeated.

    By doubling: the op over windows of 1, 2, 4, ... w pixels (w the largest power of two up to k), then over
    two windows of w that together cover k, which the op allows because it does not mind overlap. About
    log2(k) + 1 passes instead of k, and exactly the same values."""
    for axis in axes:
        length = a.shape[axis]
        p = _edge_padded(a, axis, k // 2)
        width = 1
        while 2 * width <= k:
            p = op(p[_shifted(axis, 0, p.shape[axis] - width)], p[_shifted(axis, width, p.shape[axis] - width)])
            width *= 2
        a = op(p[_shifted(axis, 0, length)], p[_shifted(axis, k - width, length)])
    return a


def digit_mask(ink):
    """The pixels of the digit: Otsu on the denoised ink map, minus thin rules, specks and page edges.
    None when nothing stands out of the paper's noise."""
    found = ink_mask(ink)
    if found is None:
        return None
    mask, denoised = found
    labels, stats = components(mask, denoised)
    keep = choose_components(stats, mask.shape)
    if not keep:
        return None
    return np.isin(labels, keep)


def ink_mask(ink):
    """(mask, denoised ink): Otsu on the denoised ink map without thin rules, or None when nothing stands
    out of the paper's noise (blank paper, a flat colour)."""
    denoised = _remove_rules(smooth(ink))
    mask = denoised > otsu(denoised)
    if not mask.any():
        return None
    paper = denoised[~mask]
    strong = float(np.percentile(denoised[mask], 90))
    noise = float(paper.std()) if paper.size else 0.0
    if strong < MIN_CONTRAST or strong - float(paper.mean()) < MIN_SEPARATION * noise:
        return None
    return mask, denoised


def _remove_rules(ink, k=5):
    """Take out ruled lines and margins: ink thinner than `k` px that runs across most of the image.

    An opening along one axis (a min then a max filter) keeps strokes thicker than `k` and drops thinner
    ones; where what it drops fills over 60% of a row (or column), that row is a rule, and only there is
    the opened image taken."""
    if min(ink.shape) < 4 * MIN_SIDE // 3:
        return ink  # a thumbnail's strokes are as thin as rules
    for axis in (0, 1):  # axis 0 opens vertically, which finds horizontal rules
        if not ((ink > 0.1).mean(axis=1 - axis) > 0.6).any():
            continue  # the opening takes away at most the ink itself: no line has enough ink to be a rule
        opened = rank_filter(rank_filter(ink, k, np.minimum, (axis,)), k, np.maximum, (axis,))
        rules = ((ink - opened) > 0.1).mean(axis=1 - axis) > 0.6
        if rules.any():
            # a pixel either side too: rules are tilted and anti-aliased
            rules = rank_filter(rules[:, None] if axis == 0 else rules[None, :], 3, np.maximum, (axis,))
            ink = np.where(rules, opened, ink)
            if axis == 0:
                ink = _remove_box_edges(ink, rules[:, 0], k)
    return ink


def _remove_box_edges(ink, rules, k):
    """Take out the upright edges of boxes (score boxes, a form's cells): thin ink that runs down one column,
    give or take a pixel, over BOX_EDGE of the rows between two horizontal rules (`rules`, one flag a row).
    They are no taller than the digits, so they are no rules, and each would be read as a 1: in scanned score
    boxes "134" read as "1134". Changes `ink` in place."""
    rows = np.flatnonzero(rules)
    breaks = np.flatnonzero(np.diff(rows) > 1)
    if not len(breaks):
        return ink  # one rule: no box
    opened = rank_filter(rank_filter(ink, k, np.minimum, (1,)), k, np.maximum, (1,))
    thin = rank_filter((ink - opened) > 0.1, 3, np.maximum, (1,))  # a column either side: anti-aliased edges
    for b in breaks:
        top, bottom = rows[b] + 1, rows[b + 1]
        edges = thin[top:bottom].sum(axis=0) > BOX_EDGE * (bottom - top)
        if edges.any():
            edges = rank_filter(edges[None, :], 3, np.maximum, (1,))[0]
            ink[top:bottom] = np.where(edges, opened[top:bottom], ink[top:bottom])
    return ink


def otsu(values, bins=256):
    """Otsu's threshold of values in 0-1: the split that maximises the between-class variance."""
    # np.histogram(values, bins, range=(0, 1)), by hand: bins of 1/256 are exact in binary, so the bin of a
    # value is floor(value * bins), 1.0 in the last; 6x faster than np.histogram's general path.
    inside = values[(values >= 0) & (values <= 1)].astype(np.float64)
    counts = np.bincount(np.minimum((inside * bins).astype(np.intp), bins - 1), minlength=bins)
    edges = np.linspace(0.0, 1.0, bins + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    weight = np.cumsum(counts)
    mass = np.cumsum(counts * centres)
    total, total_mass = weight[-1], mass[-1]
    background, foreground = weight, total - weight
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (total_mass * background - mass * total) ** 2 / (background * foreground)
    between[~np.isfinite(between)] = 0
    return float(edges[int(np.argmax(between)) + 1])


def components(mask, weight):
    """8-connected components: (label image, {label: stats}). Each row's runs of ink join the runs they touch
    in the row above; a component's label is 1 + the index of its first run in row-major order, and its mass
    the exact sum of its float32 weights (float64 sums of them are exact in any order)."""
    height, width = mask.shape
    padded = np.zeros((height, width + 2), np.int8)
    padded[:, 1:-1] = mask
    changes = np.diff(padded, axis=1)
    rows, starts = np.divmod(np.flatnonzero(changes == 1), width + 1)
    stops = np.flatnonzero(changes == -1) % (width + 1)  # row-major order: each run's stop pairs with its start
    # The runs of the row above that a run touches (8-connected: overlapping [start - 1, stop + 1)) are
    # consecutive: from the first whose stop is at least its start to the last whose start is at most its stop.
    key = rows * (width + 4)
    first = np.searchsorted(key + stops, key - (width + 4) + starts)
    count = np.maximum(np.searchsorted(key + starts, key - (width + 4) + stops, side="right") - first, 0)
    run = np.repeat(np.arange(len(rows)), count)
    touched = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count - first, count)
    root = _first_connected(len(rows), run, touched)
    lengths = stops - starts
    labels = np.zeros(height * width, np.int32)
    labels[mask.ravel()] = np.repeat(root + 1, lengths)  # the mask's pixels in row-major order are the runs'
    mass = np.add.reduceat(weight[mask].astype(np.float64), np.cumsum(lengths) - lengths) if len(rows) else []
    names, member = np.unique(root, return_inverse=True)  # each component's first run; each run's component
    n = len(names)
    bottom, left, right = np.zeros(n, np.int64), np.full(n, width), np.zeros(n, np.int64)
    np.maximum.at(bottom, member, rows)
    np.minimum.at(left, member, starts)
    np.maximum.at(right, member, stops)
    columns = {"area": np.bincount(member, lengths, n).astype(np.int64), "mass": np.bincount(member, mass, n),
               "top": rows[names], "bottom": bottom + 1, "left": left, "right": right}
    rows_of_stats = zip(*(column.tolist() for column in columns.values()))
    stats = {label: dict(zip(columns, row)) for label, row in zip((names + 1).tolist(), rows_of_stats)}
    return labels.reshape(height, width), stats


def _first_connected(n, a, b):
    """For each of n nodes, the smallest node connected to it by the edges (a[i], b[i]): minimum-label
    propagation, with pointer jumping so that a long chain of runs (a tall stroke) takes few rounds."""
    label = np.arange(n)
    while True:
        low = np.minimum(label[a], label[b])
        new = label.copy()
        np.minimum.at(new, a, low)
        np.minimum.at(new, b, low)
        jumped = new[new]
        while (jumped != new).any():
            new, jumped = jumped, jumped[jumped]
        if (new == label).all():
            return label
        label = new


def choose_components(stats, shape):
    """The digit: the heaviest component that is not a line, plus the ink near it (a 5's flag, a broken
    pencil stroke); specks and far-away marks are dropped. So are other digits, unless one stands beside it:
    a number's digits are all kept, so that the model sees several and is unsure, instead of reading the
    heaviest alone with confidence (a photo of "42" is no confident 2: `read` reads numbers)."""
    candidates = {label: s for label, s in stats.items() if not is_line(s, shape)}
    if not candidates:
        return []
    main = max(candidates.values(), key=lambda s: s["mass"])
    size = max(main["bottom"] - main["top"], main["right"] - main["left"])
    near = (main["top"] - size / 2, main["bottom"] + size / 2, main["left"] - size / 2, main["right"] + size / 2)
    return [label for label, s in candidates.items() if s["mass"] >= KEEP_MASS * main["mass"] and (
        s["bottom"] > near[0] and s["top"] < near[1] and s["right"] > near[2] and s["left"] < near[3]
        or _beside(main, s))]


def _beside(main, s):
    """Whether s stands in main's line as another digit would: at least BESIDE_HEIGHT of its height, and
    sharing half the height of the shorter of the two."""
    tall, other = main["bottom"] - main["top"], s["bottom"] - s["top"]
    shared = min(main["bottom"], s["bottom"]) - max(main["top"], s["top"])
    return other >= BESIDE_HEIGHT * tall and shared >= 0.5 * min(tall, other)


def is_line(s, shape):
    """A shadow's or a page's edge, a fold, a rule: long across the image and a few pixels thick."""
    height, width = shape
    tall, wide = s["bottom"] - s["top"], s["right"] - s["left"]
    long = max(tall / height, wide / width) > 0.6
    return long and s["area"] / max(tall, wide) < 0.03 * max(tall, wide)


def stretch(ink, mask):
    """The digit's ink at full contrast on black: strokes reach 255 as MNIST's do, the paper is 0."""
    grown = rank_filter(mask, 5, np.maximum)  # keep the strokes' soft edges
    values = ink[mask]
    low = float(np.percentile(ink[~grown], 90)) if (~grown).any() else 0.0
    high = float(np.percentile(values, 75))
    scaled = np.clip((ink - low) / max(high - low, 1e-3), 0, 1)
    return np.where(grown, scaled * 255, 0).astype(np.float32)


def frame(digit):
    """Crop to the ink, fit it into 20x20 keeping the aspect ratio, centre by centre of mass in 28x28."""
    canvas = np.zeros((SIZE, SIZE), np.uint8)
    rows, cols = np.flatnonzero(digit.any(axis=1)), np.flatnonzero(digit.any(axis=0))
    if not len(rows):
        raise NoDigit("no digit found")
    crop = digit[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    scale = FIT / max(crop.shape)
    height, width = (max(1, round(side * scale)) for side in crop.shape)
    fitted = resampling.lanczos(np.clip(crop, 0, 255).round().astype(np.uint8), (width, height))
    # integer sums: exact, as float64 sums of these values are, and cheaper (frame runs per candidate digit)
    by_row = fitted.sum(axis=1, dtype=np.int64)
    total = int(by_row.sum())
    if total == 0:
        raise NoDigit("no digit found")
    centre_y = int(by_row @ np.arange(height)) / total
    centre_x = int(fitted.sum(axis=0, dtype=np.int64) @ np.arange(width)) / total
    top = min(max(round(CENTRE - centre_y), 0), SIZE - height)
    left = min(max(round(CENTRE - centre_x), 0), SIZE - width)
    canvas[top:top + height, left:left + width] = fitted
    return canvas


def resize(image, size, resample, reducing_gap=None):
    """Image.resize, one axis at a time. Pillow chooses the order of its two passes itself (13.0 and 12.x
    differ), and the order moves a few pixels by a few levels; one-axis calls make the result independent
    of Pillow's version, and let deploy/web/preprocess.js reproduce it exactly."""
    width, height = size
    if image.width != width:
        image = image.resize((width, image.height), resample, reducing_gap=reducing_gap)
    if image.height != height:
        image = image.resize((width, height), resample, reducing_gap=reducing_gap)
    return image
