"""Lines of handwritten numbers as the line reader sees them (mnist_predict.lines), to train it on.

Numbers of 1-8 training digits are rendered as scans and phone photos (job.data.number_images), loose, tight,
touching and overlapping, some on a form's printed lines and some in printed fonts' digits
(job.data.letters.fonts("train")), then cleaned and cut into line images by `numbers.line_images`, the
reader's own code: what the line reader trains on is what it will read. In some, a letter or symbol of the
training fonts (job.data.letters.TRAIN_CHARACTERS, no digit-shaped ones) stands in for a digit, and the text
has "?" there: a form has letters next to its numbers, and a reader that knows only digits reads a P as 8.

    from job.data.number_lines import number_lines
    images, texts = number_lines(x_train, y_train, count=20000, seed=0)
"""

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from job.data.number_images import FORMS, render_number

# How each line is drawn. Touching and overlapping digits are what the line reader is for, so they are over a
# half; loose and tight lines keep it reading what the search reads well, so that the two can agree.
SPACINGS = {"loose": 0.2, "tight": 0.3, "touching": 0.3, "overlapping": 0.2}
FONT_SHARE = 0.15  # lines in printed fonts' digits: a hand other than MNIST's
FORM_SHARE = 0.4  # lines of two digits or more on a form's printed lines, the forms equally often
LETTER_SHARE = 0.15  # lines with a letter standing in for one of their digits (the letters' fonts installed)
MAX_DIGITS = 8


def number_lines(x, y, count, seed=0, fonts=(), workers=None):
    """`count` rendered numbers of the digits `x` (28x28 uint8, labelled `y`) and of `fonts`' digits, as
    (list of line images (HEIGHT, W) uint8, list of their texts). A render that does not clean into exactly
    one line (rare: a photo's shadow cut the number) is left out, so fewer may come back."""
    found = [line for line in _rendered(_one_line, x, y, count, seed, fonts, workers) if line is not None]
    return [image for image, _ in found], [text for _, text in found]


def rendered_numbers(x, y, count, seed=0, fonts=(), workers=None):
    """The same numbers as number_lines renders them, as whole images: a list of (2-D uint8 grayscale image,
    its text), every render kept. What export calibrates `read`'s confidence on."""
    return _rendered(_one_image, x, y, count, seed, fonts, workers)


def _rendered(make, x, y, count, seed, fonts, workers):
    """[make(seed) for `count` seeds drawn from `seed`], in worker processes that hold the digits once."""
    seeds = [int(s) for s in np.random.default_rng(seed).integers(1 << 62, size=count)]
    data = (x, y, tuple(str(f) for f in fonts))
    workers = workers or min(len(os.sched_getaffinity(0)), 8)
    if workers == 1:
        _share(data)
        return list(map(make, seeds))
    # the digits go to each worker once, not with every seed; spawned, as the caller may run TensorFlow
    with ProcessPoolExecutor(workers, multiprocessing.get_context("spawn"), initializer=_share,
                             initargs=(data,)) as pool:
        return list(pool.map(make, seeds, chunksize=64))


_DATA = None  # (digits, labels, font files) in this process


def _share(data):
    global _DATA
    _DATA = data


def _one_line(seed):
    from mnist_predict import numbers

    image, text = _one_image(seed)
    try:
        lines = numbers.line_images(image)
    except numbers.NoNumber:
        return None
    return (lines[0], text) if len(lines) == 1 else None


def _one_image(seed):
    from job.data.letters import TRAIN_CHARACTERS, draw_letter

    x, y, fonts = _DATA
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, MAX_DIGITS + 1))
    spacing = str(rng.choice(list(SPACINGS), p=list(SPACINGS.values())))
    if fonts and rng.random() < FONT_SHARE:
        text = "".join(str(d) for d in rng.integers(0, 10, n))
        glyphs = [draw_letter(c, rng, fonts[int(rng.integers(len(fonts)))]) for c in text]
        spacing = "tight" if spacing == "overlapping" else spacing  # printed digits do not cross
    else:
        picked = rng.integers(0, len(x), n)
        glyphs, text = list(x[picked]), "".join(str(int(label)) for label in y[picked])
    if fonts and rng.random() < LETTER_SHARE:
        where, char = int(rng.integers(n)), TRAIN_CHARACTERS[int(rng.integers(len(TRAIN_CHARACTERS)))]
        letter = draw_letter(char, rng, fonts[int(rng.integers(len(fonts)))])
        if letter.any():
            glyphs[where], text = letter, text[:where] + "?" + text[where + 1:]
    form = str(rng.choice(list(FORMS))) if n > 1 and rng.random() < FORM_SHARE else None
    condition = ("off-white", "phone")[int(rng.integers(2))]
    image, _, _ = render_number(glyphs, spacing, condition, seed=int(rng.integers(1 << 30)), form=form)
    return np.asarray(image.convert("L")), text
