"""Letters and symbols as a pen writes them: the negatives that teach a digit model what is not a digit.

A form has letters next to its numbers, and a softmax over ten digits calls a P an 8 unless it has seen
P's. These are drawn from printed fonts, then made to look written: a random stroke width, a slant,
rotation and shear, an elastic distortion (Simard, Steinkraus and Platt, ICDAR 2003) and the pen ink of
job.data.photos. A second family, PEN_STROKES, draws letters from a few pen-stroke skeletons instead of a font,
so that a test can measure letters of a kind training never saw.

Two font families split the roles: TRAIN_FONTS (DejaVu) teach, TEST_FONTS (Liberation) measure. No
handwriting-style font is used anywhere: a held-out corpus is made from those.

Letters that are a digit's shape when handwritten (O o Q for 0, I l i j | for 1, S s for 5, Z z for 2,
b G for 6, q g for 9, B for 8) are left out of training: refusing them would teach the model to refuse
the digit. bench/numbers.py reports them apart.

The same fonts' digits, in the same pen (make_font_digits), are positives: hands other than MNIST's, and
printed glyphs that are digits, so that a printed look is no mark of a non-digit.

    from job.data.letters import make_font_digits, make_letters
    x = make_letters(1000, seed=0)                       # uint8 (1000, 28, 28), white on black, framed
    x_digits, y_digits = make_font_digits(200, seed=1)   # and digits in the same fonts and pen, labelled
"""

import glob
import importlib.util
import os

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from mnist_predict.images import frame

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXY" + "abcdefghijklmnopqrstuvwxy"
SYMBOLS = "#+=%&?@"
DIGIT_SHAPED = set("OoQIlij|SsZzbGqgB")
TRAIN_CHARACTERS = "".join(c for c in LETTERS + SYMBOLS if c not in DIGIT_SHAPED) + "*<>$"
TEST_CHARACTERS = LETTERS + SYMBOLS


def _matplotlib_fonts(name):
    """A glob of matplotlib's bundled fonts, found without importing matplotlib."""
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or not spec.origin:
        return "/nonexistent"
    return os.path.join(os.path.dirname(spec.origin), "mpl-data", "fonts", "ttf", name)


# Where each role's fonts are looked for, in order: the first place that has any is taken. Training falls back
# on the DejaVu faces that matplotlib (a dependency) ships, so that a machine or an image without Debian's
# fonts (the smoke test's stand-in for Dockerfile.gpu's base has none) still trains on font letters and font
# digits, instead of on pen strokes alone and no font digits: a model that accepts more letters and reads
# half as many numbers in fonts it never saw (README, "Fonts")
FONT_DIRS = {"train": ("/usr/share/fonts/truetype/dejavu/DejaVu*.ttf", _matplotlib_fonts("DejaVu*.ttf")),
             "test": ("/usr/share/fonts/truetype/liberation/Liberation*.ttf",)}
CANVAS = 96


def fonts(role="train"):
    """The font files of a role, from the first of its FONT_DIRS that has any; empty where none has."""
    for pattern in FONT_DIRS[role]:
        # DejaVu's Math face and matplotlib's Display faces draw no letters
        found = sorted(path for path in glob.glob(pattern) if "Math" not in path and "Display" not in path)
        if found:
            return found
    return []


def make_letters(n, seed=0, role="train", characters=None):
    """n letters and symbols, as uint8 (n, 28, 28) white-on-black images framed as the predictor frames ink.
    Each is drawn from a font of `role`, or from pen strokes when no font is installed."""
    rng = np.random.default_rng(seed)
    characters = characters or (TRAIN_CHARACTERS if role == "train" else TEST_CHARACTERS)
    files = fonts(role)
    out = np.zeros((n, 28, 28), np.uint8)
    for i in range(n):
        char = characters[int(rng.integers(len(characters)))]
        out[i] = draw_letter(char, rng, files[int(rng.integers(len(files)))] if files else None)
    return out


def make_font_digits(n, seed=0, role="train"):
    """(images, labels): n digits from the fonts of `role`, written with the letters' pen, slant and elastic
    wobble: positives beside the letters, and hands other than MNIST's. Empty where no font is installed (the
    pen-stroke skeletons have no digits)."""
    rng = np.random.default_rng(seed)
    files = fonts(role)
    labels = rng.integers(0, 10, n if files else 0).astype(np.int32)
    out = np.zeros((len(labels), 28, 28), np.uint8)
    for i, label in enumerate(labels):
        out[i] = draw_letter(str(label), rng, files[int(rng.integers(len(files)))])
    return out, labels


def draw_letter(char, rng, font_file=None):
    """One character, written: (28, 28) uint8."""
    canvas = Image.new("L", (CANVAS, CANVAS), 0)
    pen = ImageDraw.Draw(canvas)
    if font_file:
        font = ImageFont.truetype(font_file, int(rng.integers(54, 72)))
        pen.text((CANVAS / 2, CANVAS / 2), char, fill=255, font=font, anchor="mm")
    else:
        pen_strokes(pen, char, rng)
    width = int(rng.integers(-2, 4))  # thin, as is, or thicker: a pen's width, not the font's
    if width > 0:
        canvas = canvas.filter(ImageFilter.MaxFilter(2 * width + 1))
    elif width < 0:
        canvas = canvas.filter(ImageFilter.MinFilter(3))
    ink = np.asarray(_distort(canvas, rng), np.float32)
    if ink.max() <= 0:
        return np.zeros((28, 28), np.uint8)
    framed = frame(ink).astype(np.float32)
    # full contrast, as the predictor stretches a thin pen's ink
    return np.clip(framed * (255 / max(framed.max(), 1)), 0, 255).round().astype(np.uint8)


def _distort(image, rng):
    """A writer's slant, tilt and wobble: an affine map, then an elastic field."""
    angle, shear = np.radians(rng.uniform(-12, 12)), rng.uniform(-0.35, 0.35)
    scale_x = rng.uniform(0.8, 1.2)
    c, s = np.cos(angle), np.sin(angle)
    matrix = np.array([[c * scale_x, -s + shear], [s, c]])
    inverse = np.linalg.inv(matrix)
    centre = np.array([CANVAS / 2, CANVAS / 2])
    offset = centre - inverse @ centre
    image = image.transform(image.size, Image.Transform.AFFINE,
                            (inverse[0, 0], inverse[0, 1], offset[0], inverse[1, 0], inverse[1, 1], offset[1]),
                            Image.Resampling.BILINEAR)
    return elastic(np.asarray(image, np.float32), rng, alpha=rng.uniform(4, 9), sigma=rng.uniform(6, 10))


def elastic(image, rng, alpha, sigma):
    """Simard et al.'s elastic distortion: each pixel moved by a smoothed random field of size alpha px."""
    height, width = image.shape

    def field():
        noise = Image.fromarray(((rng.uniform(-1, 1, (height, width)) + 1) * 127.5).astype(np.uint8))
        smooth = np.asarray(noise.filter(ImageFilter.GaussianBlur(sigma)), np.float32) / 127.5 - 1
        return smooth / max(float(np.abs(smooth).max()), 1e-6) * alpha

    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    sy, sx = np.clip(y + field(), 0, height - 1), np.clip(x + field(), 0, width - 1)
    y0, x0 = np.floor(sy).astype(int), np.floor(sx).astype(int)
    y1, x1 = np.minimum(y0 + 1, height - 1), np.minimum(x0 + 1, width - 1)
    fy, fx = sy - y0, sx - x0
    return (image[y0, x0] * (1 - fy) * (1 - fx) + image[y0, x1] * (1 - fy) * fx
            + image[y1, x0] * fy * (1 - fx) + image[y1, x1] * fy * fx)


# Pen-stroke skeletons on a 0-1 grid (x right, y down): polylines, drawn with a round pen. A few shapes
# per character, enough to be a letter of another hand than any font's.
SKELETONS = {
    "A": [[(0.1, 1), (0.5, 0), (0.9, 1)], [(0.28, 0.6), (0.72, 0.6)]],
    "E": [[(0.85, 0), (0.15, 0), (0.15, 1), (0.85, 1)], [(0.15, 0.5), (0.7, 0.5)]],
    "F": [[(0.85, 0), (0.15, 0), (0.15, 1)], [(0.15, 0.5), (0.7, 0.5)]],
    "H": [[(0.15, 0), (0.15, 1)], [(0.85, 0), (0.85, 1)], [(0.15, 0.5), (0.85, 0.5)]],
    "K": [[(0.15, 0), (0.15, 1)], [(0.85, 0), (0.15, 0.55)], [(0.35, 0.4), (0.85, 1)]],
    "L": [[(0.2, 0), (0.2, 1), (0.85, 1)]],
    "M": [[(0.1, 1), (0.15, 0), (0.5, 0.6), (0.85, 0), (0.9, 1)]],
    "N": [[(0.15, 1), (0.15, 0), (0.85, 1), (0.85, 0)]],
    "P": [[(0.2, 1), (0.2, 0), (0.7, 0.05), (0.8, 0.25), (0.7, 0.45), (0.2, 0.5)]],
    "R": [[(0.2, 1), (0.2, 0), (0.7, 0.05), (0.8, 0.25), (0.7, 0.45), (0.2, 0.5), (0.85, 1)]],
    "U": [[(0.15, 0), (0.15, 0.75), (0.5, 1), (0.85, 0.75), (0.85, 0)]],
    "V": [[(0.1, 0), (0.5, 1), (0.9, 0)]],
    "W": [[(0.05, 0), (0.28, 1), (0.5, 0.4), (0.72, 1), (0.95, 0)]],
    "X": [[(0.1, 0), (0.9, 1)], [(0.9, 0), (0.1, 1)]],
    "Y": [[(0.1, 0), (0.5, 0.5), (0.9, 0)], [(0.5, 0.5), (0.5, 1)]],
    "C": [[(0.85, 0.15), (0.5, 0), (0.15, 0.3), (0.15, 0.7), (0.5, 1), (0.85, 0.85)]],
    "J": [[(0.75, 0), (0.75, 0.8), (0.5, 1), (0.2, 0.85)]],
    "e": [[(0.15, 0.65), (0.85, 0.6), (0.7, 0.35), (0.4, 0.35), (0.15, 0.65), (0.4, 1), (0.85, 0.9)]],
    "h": [[(0.2, 0), (0.2, 1)], [(0.2, 0.55), (0.5, 0.4), (0.8, 0.55), (0.8, 1)]],
    "k": [[(0.2, 0), (0.2, 1)], [(0.8, 0.4), (0.2, 0.75), (0.8, 1)]],
    "m": [[(0.1, 1), (0.1, 0.4)], [(0.1, 0.5), (0.3, 0.35), (0.5, 0.5), (0.5, 1)],
          [(0.5, 0.5), (0.7, 0.35), (0.9, 0.5), (0.9, 1)]],
    "n": [[(0.2, 1), (0.2, 0.4)], [(0.2, 0.5), (0.5, 0.35), (0.8, 0.5), (0.8, 1)]],
    "r": [[(0.3, 1), (0.3, 0.4)], [(0.3, 0.55), (0.55, 0.4), (0.8, 0.45)]],
    "t": [[(0.45, 0), (0.45, 0.9), (0.7, 1)], [(0.2, 0.35), (0.75, 0.35)]],
    "u": [[(0.2, 0.4), (0.2, 0.9), (0.5, 1), (0.8, 0.85)], [(0.8, 0.4), (0.8, 1)]],
    "v": [[(0.15, 0.4), (0.5, 1), (0.85, 0.4)]],
    "w": [[(0.05, 0.4), (0.28, 1), (0.5, 0.6), (0.72, 1), (0.95, 0.4)]],
    "x": [[(0.15, 0.4), (0.85, 1)], [(0.85, 0.4), (0.15, 1)]],
    "y": [[(0.15, 0.3), (0.5, 0.75)], [(0.85, 0.3), (0.3, 1.2)]],
    "#": [[(0.35, 0), (0.25, 1)], [(0.75, 0), (0.65, 1)], [(0.05, 0.35), (0.95, 0.35)], [(0.05, 0.65), (0.95, 0.65)]],
    "+": [[(0.5, 0.1), (0.5, 0.9)], [(0.1, 0.5), (0.9, 0.5)]],
    "=": [[(0.1, 0.35), (0.9, 0.35)], [(0.1, 0.65), (0.9, 0.65)]],
    "%": [[(0.85, 0), (0.15, 1)], [(0.2, 0.1), (0.35, 0.1), (0.35, 0.3), (0.2, 0.3), (0.2, 0.1)],
          [(0.65, 0.7), (0.8, 0.7), (0.8, 0.9), (0.65, 0.9), (0.65, 0.7)]],
    "&": [[(0.85, 1), (0.25, 0.35), (0.35, 0.05), (0.55, 0.1), (0.55, 0.3), (0.2, 0.65), (0.3, 0.95),
           (0.6, 0.95), (0.85, 0.6)]],
    "?": [[(0.2, 0.2), (0.5, 0), (0.8, 0.2), (0.75, 0.4), (0.5, 0.55), (0.5, 0.75)], [(0.5, 0.92), (0.5, 1)]],
    "@": [[(0.65, 0.45), (0.45, 0.35), (0.35, 0.6), (0.55, 0.7), (0.68, 0.4), (0.75, 0.7), (0.92, 0.55),
           (0.85, 0.15), (0.5, 0), (0.12, 0.25), (0.1, 0.7), (0.4, 1), (0.8, 0.9)]],
}
PEN_STROKES = "".join(SKELETONS)


def pen_strokes(pen, char, rng):
    """Draw a character's skeleton with a round pen, each point jittered as a hand would."""
    size = CANVAS * rng.uniform(0.5, 0.65)
    origin = (CANVAS - size) / 2
    aspect = rng.uniform(0.6, 1.0)
    for line in SKELETONS.get(char, SKELETONS["X"]):
        points = [(origin + size * (0.5 + (x - 0.5) * aspect) + rng.normal(0, size * 0.03),
                   origin + size * y + rng.normal(0, size * 0.03)) for x, y in line]
        pen.line(points, fill=255, width=int(rng.integers(5, 9)), joint="curve")
