"""Render whole numbers from MNIST digits, as scans and phone photos, for the reading benchmark and tests.

Each digit is drawn as pen ink (job.data.photos.stroke), the digits set side by side with a spacing drawn from
one of SPACINGS, and the strip put on paper under a condition of job.data.photos. Touching digits are pushed
together until their ink meets; overlapping ones further still, so that strokes cross. Letters and
symbols come from job.data.letters in the same pen, alone or standing in a number. A number may stand on a
form's printed lines (FORMS: underlined, a comb field, score boxes, a box around it), drawn by draw_form.

    from job.data.number_images import render_number
    image, suffix, boxes = render_number([x[3], x[1], x[4]], "tight", "phone", seed=0)
    mnist-job images --numbers --spacing touching --condition phone --limit 100 --out numbers/
"""

import numpy as np
from PIL import Image

from job.data.photos import render_ink, stroke

SPACINGS = {
    "loose": "a gap of a quarter to half a digit's height",
    "tight": "a gap of a twentieth to a seventh of the height",
    "touching": "pushed together until the ink of neighbours meets",
    "overlapping": "pushed further, until strokes cross by a tenth of the height",
}
CONDITIONS = ("off-white", "phone")  # a scan, a photo
# Printed lines of a form around the digits, in the same ink (a scan keeps no colour): what a number is written
# on when it is not blank paper
FORMS = {
    "underline": "a printed line under the number",
    "comb": "a line under the digits, with a tick between each two and at both ends (a form's comb field)",
    "boxes": "a printed box around each digit (score boxes)",
    "frame": "a printed box around the whole number (a score box)",
}


def _ink_columns(ink):
    cols = np.flatnonzero(ink.max(axis=0) > 0.3)
    rows = np.flatnonzero(ink.max(axis=1) > 0.3)
    return ink[:, cols[0]:cols[-1] + 1], (rows[0], rows[-1] + 1)


def strip(glyphs, spacing, rng, scale):
    """The glyphs (28x28 uint8 white-on-black each) side by side as ink coverage 0-1, and each glyph's
    box (x, y, w, h) in the strip."""
    if spacing not in SPACINGS:
        raise ValueError(f"unknown spacing {spacing!r}: choose one of {', '.join(SPACINGS)}")
    height = 28 * scale
    inks = []
    for glyph in glyphs:
        ink, _ = _ink_columns(stroke(glyph, scale, rng))
        jitter = rng.uniform(0.9, 1.1)  # hands vary the size of each digit a little
        size = (max(1, round(ink.shape[1] * jitter)), max(1, round(ink.shape[0] * jitter)))
        inks.append(np.asarray(Image.fromarray(ink).resize(size, Image.Resampling.BILINEAR), np.float32))
    width = sum(i.shape[1] for i in inks) + int(height * 0.6 * len(inks)) + 2 * height
    canvas = np.zeros((int(height * 1.5), width), np.float32)
    x, boxes = height // 2, []
    for ink in inks:
        y = int((canvas.shape[0] - ink.shape[0]) / 2 + rng.uniform(-0.05, 0.05) * height)
        y = int(np.clip(y, 0, canvas.shape[0] - ink.shape[0]))
        if boxes:
            x = _next_x(canvas, ink, y, x, spacing, rng, height)
        canvas[y:y + ink.shape[0], x:x + ink.shape[1]] = np.maximum(canvas[y:y + ink.shape[0], x:x + ink.shape[1]], ink)
        rows = np.flatnonzero(ink.max(axis=1) > 0.3)
        boxes.append((x, y + int(rows[0]), ink.shape[1], int(rows[-1] - rows[0] + 1)))
        x += ink.shape[1]
    right = max(b[0] + b[2] for b in boxes) + height // 2
    return canvas[:, :right], boxes


def _next_x(canvas, ink, y, x, spacing, rng, height):
    """Where the next glyph's left edge goes, `x` being the right edge of the ink so far."""
    if spacing == "loose":
        return x + int(rng.uniform(0.25, 0.5) * height)
    if spacing == "tight":
        return x + int(rng.uniform(0.05, 0.14) * height)
    # push left until the two inks meet (or 60% of the glyph overlaps: they never do)
    placed = canvas[y:y + ink.shape[0]] > 0.5
    new = ink > 0.5
    for shift in range(0, int(0.6 * ink.shape[1])):
        left = x - shift
        region = placed[:, left:left + ink.shape[1]]
        if region.shape[1] < new.shape[1]:
            break
        grown = np.maximum(region[:, 1:], region[:, :-1])  # meeting within one pixel counts
        if (grown & new[:, :-1]).any():
            if spacing == "touching":
                return left
            return max(0, left - int(rng.uniform(0.06, 0.12) * height))
    return x - int(0.6 * ink.shape[1])


def render_number(glyphs, spacing, condition, seed=0, scale=None, form=None):
    """One number under `condition` (a job.data.photos condition), on the printed lines of `form` (one of FORMS)
    if given: (PIL image, suffix, boxes of each glyph in the image's pixels; under a photo's slight rotation
    they are the unrotated boxes)."""
    rng = np.random.default_rng(seed)
    scale = scale or int(rng.integers(3, 6))
    ink, boxes = strip(glyphs, spacing, rng, scale)
    page_h, page_w = int(ink.shape[0] * rng.uniform(1.7, 2.3)), int(ink.shape[1] * rng.uniform(1.15, 1.4))
    page = np.zeros((page_h, page_w), np.float32)
    top = (page_h - ink.shape[0]) // 2 + int(rng.integers(-page_h // 10, page_h // 10 + 1))
    left = int(rng.integers(0, page_w - ink.shape[1] + 1))
    page[top:top + ink.shape[0], left:left + ink.shape[1]] = ink
    if form is not None:
        draw_form(page, [(x + left, y + top, w, h) for x, y, w, h in boxes], form, scale)
    image, suffix = render_ink(page, condition, rng, scale)
    # A photo is rotated inside its frame; a real one shows more paper there, not the rotation's corners.
    dx, dy = int(0.04 * page_w), int(0.17 * page_h)
    image = image.crop((dx, dy, page_w - dx, page_h - dy))
    return image, suffix, [(x + left - dx, y + top - dy, w, h) for x, y, w, h in boxes]


def draw_form(page, boxes, form, scale):
    """Draw `form`'s printed lines into `page` (ink coverage, changed in place) around the digits' `boxes`: cells
    split halfway between neighbours, lines thinner than the pen (a printed rule), which the pen's strokes may
    cross as a hand's do."""
    if form not in FORMS:
        raise ValueError(f"unknown form {form!r}: choose one of {', '.join(FORMS)}")
    height = 28 * scale
    line = max(1, round(0.4 * scale))
    pad = int(0.15 * height)
    edges = [boxes[0][0] - pad] + [(a[0] + a[2] + b[0]) // 2 for a, b in zip(boxes, boxes[1:])] + \
            [boxes[-1][0] + boxes[-1][2] + pad]
    top = min(y for _, y, _, _ in boxes) - int(0.12 * height)
    base = max(y + h for _, y, _, h in boxes) + int(0.08 * height)
    top, base = max(0, top), min(page.shape[0] - line, base)
    left, right = max(0, edges[0]), min(page.shape[1], edges[-1])
    page[base:base + line, left:right] = 1.0
    if form == "comb":
        for x in edges:
            page[base - int(0.35 * height):base, max(0, x):x + line] = 1.0
    elif form in ("boxes", "frame"):
        page[top:top + line, left:right] = 1.0
        for x in edges if form == "boxes" else (edges[0], edges[-1]):
            page[top:base + line, max(0, x):x + line] = 1.0


def write_numbers(images, labels, out, count=100, spacing="tight", condition="off-white", seed=0, overwrite=False):
    """Write `count` numbers of 2-8 of the digits `images` (labelled `labels`) into `out`, as
    <index>_<number><suffix> (`mnist-job score` reads the number from the name); atomically. Returns count."""
    from job.data.image_sets import publish_folder
    from job.data.photos import CONDITIONS as PHOTO_CONDITIONS

    if spacing not in SPACINGS:
        raise ValueError(f"unknown --spacing {spacing!r}: choose one of {', '.join(SPACINGS)}")
    if condition not in PHOTO_CONDITIONS or condition in ("tight", "thumbnail"):
        raise ValueError(f"--condition {condition!r} does not apply to numbers: choose one of "
                         f"{', '.join(c for c in PHOTO_CONDITIONS if c not in ('tight', 'thumbnail'))}")
    rng = np.random.default_rng(seed)

    def fill(tmp):
        for i in range(count):
            idx = rng.integers(0, len(images), int(rng.integers(2, 9)))
            image, suffix, _ = render_number(list(images[idx]), spacing, condition, seed=seed + i)
            image.save(tmp / f"{i:05d}_{''.join(str(int(label)) for label in labels[idx])}{suffix}")

    publish_folder(out, fill, overwrite)
    return count
