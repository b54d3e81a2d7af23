"""Render MNIST digits as the scans and phone photos users really feed the predictor, and non-digits too.

Real photos of handwriting cannot be downloaded here, so the robustness benchmark, the tests and the
labelled-folder demo make their own from real MNIST strokes: each digit is drawn large as pen ink on paper,
then lit, shadowed, rotated, blurred, noised and JPEG-compressed under one named condition. Every image is
a pure function of (digit, condition, seed). TF-free: numpy and Pillow.

    from job.data.photos import render, CONDITIONS
    image, suffix = render(x_test[0], "phone", seed=0)       # a PIL image and ".jpg" or ".png"
    mnist-job images --dataset mnist-sample --condition phone --limit 200 --out photos/
"""

import io

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

# Each condition, and what it stands for.
CONDITIONS = {
    "clean": "white paper, black ink, a lossless scan",
    "off-white": "cream paper, dark ink, JPEG quality 80-92",
    "grey-paper": "grey paper: a flat indoor photo",
    "uneven-light": "white paper lit unevenly: a brightness ramp across the page",
    "shadow": "a soft shadow over part of the page",
    "noise": "sensor noise on light-grey paper",
    "heavy-jpeg": "JPEG quality 8-20",
    "blue-ink": "blue ballpoint on white paper",
    "pencil": "faint, grainy pencil",
    "ruled": "light-blue ruled lines and a red margin under the ink",
    "blur": "out of focus",
    "thumbnail": "a whole page of 14-26 px",
    "tight": "a 28x28 digit cropped tight to its ink and stretched to fill the frame",
    "phone": "grey paper, light ramp, noise, slight rotation, blue or black ink, JPEG",
}
JUNK = {
    "blank": "paper with no ink, under every kind of light",
    "noise": "uniform random pixels",
    "scribbles": "a page of random pen strokes",
    "blobs": "smoothed random texture",
    "garment": "a Fashion-MNIST item drawn as ink on paper",
}


def rgb(value):
    return np.asarray(value, dtype=np.float32).reshape(1, 1, -1)


def stroke(digit, scale, rng, thin=0.0):
    """A 28x28 MNIST digit as pen ink coverage (0-1), `scale` times larger, with crisp edges."""
    size = 28 * scale
    big = np.asarray(Image.fromarray(digit).resize((size, size), Image.Resampling.BICUBIC), np.float32) / 255
    # MNIST strokes are soft-edged; a pen's are not. The level sets the stroke's width.
    level = rng.uniform(0.3, 0.5) + thin
    return np.clip((big - level) / 0.12 + 0.5, 0, 1)


def place(ink, rng, margin=(0.25, 1.0)):
    """The ink on a larger page at a random position: margins are this share of the ink's size."""
    height, width = ink.shape
    page_h = int(height * (1 + rng.uniform(*margin)))
    page_w = int(width * (1 + rng.uniform(*margin)))
    page = np.zeros((page_h, page_w), np.float32)
    top, left = rng.integers(0, page_h - height + 1), rng.integers(0, page_w - width + 1)
    page[top:top + height, left:left + width] = ink
    return page


def compose(ink, paper, color):
    """Ink coverage over a paper colour: an (H, W, 3) float image 0-255."""
    alpha = ink[..., None]
    return rgb(paper) * (1 - alpha) + rgb(color) * alpha


def ramp(shape, rng, low):
    """Illumination falling linearly to `low` across the page in a random direction."""
    h, w = shape
    angle = rng.uniform(0, 2 * np.pi)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    t = (x / w - 0.5) * np.cos(angle) + (y / h - 0.5) * np.sin(angle)
    t = (t - t.min()) / max(float(np.ptp(t)), 1e-6)
    return (low + (1 - low) * t)[..., None]


def shadow(shape, rng, depth):
    """A soft-edged shadow over a half-plane through the page, such as a hand or a phone casts."""
    h, w = shape
    angle = rng.uniform(0, 2 * np.pi)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    cy, cx = rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w
    distance = (x - cx) * np.cos(angle) + (y - cy) * np.sin(angle)
    softness = rng.uniform(0.03, 0.1) * max(h, w)
    inside = 1 / (1 + np.exp(distance / softness))
    return (1 - depth * inside)[..., None]


def ruled_lines(image, rng, spacing):
    """Light-blue horizontal rules and a red margin, drawn on the paper (under the ink)."""
    h, w, _ = image.shape
    canvas = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    blue = tuple(int(v) for v in rng.uniform((150, 185, 215), (195, 220, 245)))
    width = int(rng.integers(1, 4))
    for y in np.arange(rng.uniform(0, spacing), h, spacing):
        draw.line([(0, y), (w, y + rng.uniform(-2, 2))], fill=blue, width=width)
    if rng.random() < 0.5:
        x = rng.uniform(0.05, 0.2) * w
        draw.line([(x, 0), (x, h)], fill=(230, 120, 130), width=width)
    return np.asarray(canvas, np.float32)


def rotate(image, degrees, fill):
    pil = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))
    return np.asarray(pil.rotate(degrees, Image.Resampling.BICUBIC, expand=False,
                                 fillcolor=tuple(int(v) for v in fill)), np.float32)


def encode(image, rng, quality=None, gray=False):
    """A PIL image, JPEG-compressed at `quality` (decoded again, as a user's file would be) or lossless."""
    pil = Image.fromarray(np.clip(np.round(image), 0, 255).astype(np.uint8))
    if gray:
        pil = pil.convert("L")
    if quality is None:
        return pil, ".png"
    buffer = io.BytesIO()
    pil.save(buffer, "JPEG", quality=int(quality))
    return Image.open(io.BytesIO(buffer.getvalue())), ".jpg"


def dark_ink(rng):
    return rng.uniform(5, 45, size=3).clip(0, 255) * np.ones(3)


def blue_ink(rng):
    return rng.uniform((15, 30, 100), (70, 90, 190))


def white(rng):
    return np.full(3, rng.uniform(238, 255))


def render(digit, condition, seed=0, scale=None):
    """One digit (28x28 uint8, white on black) under `condition`: (PIL image, file suffix)."""
    if condition not in CONDITIONS:
        raise ValueError(f"unknown condition {condition!r}: choose one of {', '.join(CONDITIONS)}")
    rng = np.random.default_rng(seed)
    if condition == "tight":
        return tight(digit), ".png"
    scale = scale or int(rng.integers(4, 9))
    thin = rng.uniform(0.1, 0.25) if condition == "pencil" else 0.0
    return render_ink(place(stroke(digit, scale, rng, thin), rng), condition, rng, scale)


def render_ink(ink, condition, rng, scale):
    """Ink coverage (0-1, on its page) under `condition`: (PIL image, file suffix). `scale` is the pen's
    size in MNIST pixels (rules and blur follow it)."""
    quality, paper, color = None, white(rng), dark_ink(rng)
    if condition == "off-white":
        paper, quality = rng.uniform((232, 222, 195), (248, 240, 225)), rng.integers(80, 93)
    elif condition in ("grey-paper", "phone"):
        paper = np.full(3, rng.uniform(95, 165)) * rng.uniform(0.95, 1.05, 3)
        color = rng.uniform(10, 0.4 * paper.min(), size=1) * np.ones(3)
    elif condition == "noise":
        paper = np.full(3, rng.uniform(165, 215))
    elif condition == "blue-ink":
        color = blue_ink(rng)
    elif condition == "pencil":
        ink = ink * rng.uniform(0.55, 1.0, ink.shape).astype(np.float32)  # graphite is grainy
        color = np.full(3, rng.uniform(95, 165))
    if condition == "phone" and rng.random() < 0.5:
        color = blue_ink(rng) * paper / 255
    image = compose(ink, paper, color)
    if condition == "ruled":
        image = ruled_lines(compose(np.zeros_like(ink), paper, color), rng, 28 * scale * rng.uniform(0.25, 0.4))
        image = image * (1 - ink[..., None]) + rgb(color) * ink[..., None]
    if condition in ("uneven-light", "phone"):
        image = image * ramp(ink.shape, rng, rng.uniform(0.3, 0.55) if condition == "uneven-light" else
                             rng.uniform(0.55, 0.85))
    if condition == "shadow":
        image = image * shadow(ink.shape, rng, rng.uniform(0.4, 0.65))
    if condition == "phone":
        image = rotate(image, rng.uniform(-7, 7), image[0, 0])
    if condition in ("blur", "phone"):
        radius = scale * (rng.uniform(0.8, 1.6) if condition == "blur" else rng.uniform(0.2, 0.5))
        image = np.asarray(Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).filter(
            ImageFilter.GaussianBlur(radius)), np.float32)
    if condition in ("noise", "phone"):
        sigma = rng.uniform(12, 25) if condition == "noise" else rng.uniform(4, 12)
        image = image + rng.normal(0, sigma, image.shape[:2])[..., None]
    if condition == "heavy-jpeg":
        quality = rng.integers(8, 21)
    elif condition == "phone":
        quality = rng.integers(60, 86)
    if condition == "thumbnail":
        height = int(rng.integers(14, 27))
        pil = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))
        width = max(8, round(height * pil.width / pil.height))
        image = np.asarray(pil.resize((width, height), Image.Resampling.LANCZOS), np.float32)
    return encode(image, rng, quality, gray=condition in ("clean", "noise", "pencil", "thumbnail"))


def tight(digit):
    """Crop to the ink and stretch it to fill 28x28, as many home-made datasets do."""
    rows, cols = np.flatnonzero(digit.any(axis=1)), np.flatnonzero(digit.any(axis=0))
    crop = digit[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    return Image.fromarray(crop).resize((28, 28), Image.Resampling.BILINEAR)


def phone_photo(digit, seed=0, megapixels=12):
    """A full-size phone JPEG (4000x3000 for 12 MP) of one digit: what a user's camera roll holds."""
    rng = np.random.default_rng(seed)
    small, _ = render(digit, "phone", seed, scale=8)
    # the digit a third of the frame tall
    return full_size(small, rng, megapixels, frame_size(megapixels)[1] // 3 / small.height * 1.6)


def frame_size(megapixels):
    """(width, height) of a 4:3 photo of this many megapixels."""
    width = int(round((megapixels * 1e6 * 4 / 3) ** 0.5))
    return width, int(round(width * 3 / 4))


def full_size(small, rng, megapixels, side):
    """A small render scaled by `side` into the middle of a full-size phone JPEG (4:3, `megapixels`), with
    full-resolution sensor noise: the bytes of the file."""
    width, height = frame_size(megapixels)
    page = small.convert("RGB").resize((int(small.width * side), int(small.height * side)), Image.Resampling.BILINEAR)
    frame = Image.new("RGB", (width, height), page.getpixel((0, 0)))
    frame.paste(page, ((width - page.width) // 2, (height - page.height) // 2))
    pixels = np.asarray(frame, np.float32) + rng.normal(0, 4, (height, width, 1)).astype(np.float32)
    buffer = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=88)
    return buffer.getvalue()


def render_junk(kind, seed=0, garments=None):
    """One image that is not a digit: (PIL image, suffix). `garments` (N, 28, 28) feeds 'garment'."""
    if kind not in JUNK:
        raise ValueError(f"unknown non-digit kind {kind!r}: choose one of {', '.join(JUNK)}")
    rng = np.random.default_rng(seed)
    size = (int(rng.integers(120, 260)), int(rng.integers(120, 260)))
    paper = np.full(3, rng.uniform(120, 255))
    if kind == "noise":
        return encode(rng.uniform(0, 255, (*size, 1)).repeat(3, axis=2), rng, gray=True)
    if kind == "blank":
        image = compose(np.zeros(size, np.float32), paper, paper)
        image = image * ramp(size, rng, rng.uniform(0.4, 1.0)) * shadow(size, rng, rng.uniform(0, 0.5))
        image = image + rng.normal(0, rng.uniform(0, 10), size)[..., None]
        return encode(image, rng, rng.choice([None, 80]))
    if kind == "blobs":
        noise = Image.fromarray(rng.uniform(0, 255, (size[0] // 8, size[1] // 8)).astype(np.uint8))
        field = np.asarray(noise.resize(size[::-1], Image.Resampling.BICUBIC), np.float32) / 255
        return encode(compose(np.clip(field * 1.5 - 0.5, 0, 1), paper, dark_ink(rng)), rng, gray=True)
    if kind == "garment":
        if garments is None or not len(garments):
            raise ValueError("'garment' needs Fashion-MNIST images (garments=...)")
        item = garments[rng.integers(len(garments))]
        ink = place(np.asarray(Image.fromarray(item).resize((168, 168), Image.Resampling.BICUBIC),
                               np.float32) / 255, rng)
        return encode(compose(ink, white(rng), dark_ink(rng)), rng, gray=True)
    canvas = Image.new("L", size[::-1], int(paper[0]))
    draw = ImageDraw.Draw(canvas)
    for _ in range(int(rng.integers(5, 15))):  # scribbles: random polylines across the page
        start = rng.uniform(0.2, 0.8, 2) * size[::-1]
        points = start + np.cumsum(rng.normal(0, 0.15 * min(size), (int(rng.integers(5, 15)), 2)), axis=0)
        draw.line([tuple(p) for p in points], fill=int(rng.uniform(0, 60)), width=int(rng.integers(2, 7)),
                  joint="curve")
    return canvas, ".png"
