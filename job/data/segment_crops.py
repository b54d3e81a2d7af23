"""The crops number reading makes, as training samples: digits with slivers of their neighbours' ink and
strokes cut short, and the fragments and merged pairs that a wrong cut makes.

`mnist_predict.numbers` cuts a number into atoms and lets the model choose which runs of atoms are digits,
so the model must read a digit whose cut was not perfect, and be unsure of half a digit or of two digits
framed as one; a model trained on whole, clean digits is confidently wrong on both. These samples are made
by the reader itself: training digits are set side by side (job.data.number_images.strip, tight and touching),
read into candidates by `numbers.layout_of`, and each candidate is labelled by the true digit boxes: a
candidate that spans one digit's box (slivers of its neighbours allowed) is that digit; a fragment of one
(unless it is shaped like a 1), or two digits framed as one, is an outlier; those between are left out.

    from job.data.segment_crops import segment_crops
    (x_pos, y_pos), x_neg = segment_crops(x_train, y_train, 600, 600, seed=0)
"""

import numpy as np

from job.data.number_images import strip
from mnist_predict import numbers

COVER = 0.9  # a candidate that spans this share of a digit's width and height is that digit ...
SLIVER = 0.25  # ... when it reaches no further than this many digit heights beyond it
FRAGMENT = 0.6  # one that spans less than this share of every digit's width is a fragment: not a digit ...
# ... unless, framed, it is no wider than this many of the 28x28 frame's pixels: a straight stroke is a 1 in
# any hand (as the letters l and I are, which job.data.letters leaves out for the same reason), and refusing
# it taught the model to doubt 1s: 3% of the 1s in numbers read as "?"
ONE_WIDE = 8
INK = 40  # a framed pixel brighter than this is ink, not a soft edge
# Every run of atoms up to this many line heights wide is framed here, more than reading frames
# (numbers.MAX_WIDTH and MIN_PRIOR): training's merged pairs stay as they were before reading left out
# the runs that never won, to save time
MERGED_WIDTH = 1.6
# ... and cuts start every numbers.STEP line heights in every piece, not closer in the widest as reading's do
# (numbers.FINE_STEP): the crops, and so the trained models, stay as they were


def matches(candidate, box):
    """The candidate holds the whole digit of `box`, with at most slivers of its neighbours."""
    w, h = _overlap(candidate, box)
    return w >= COVER * box[2] and h >= COVER * box[3] and candidate[2] <= box[2] + SLIVER * box[3]


def is_outlier(candidate, boxes):
    """A fragment (less than FRAGMENT of any digit's width), or two digits or more framed as one."""
    cx, cy, cw, ch = candidate
    centres = sum(cx <= x + w / 2 < cx + cw and cy <= y + h / 2 < cy + ch for x, y, w, h in boxes)
    return centres >= 2 or all(_overlap(candidate, box)[0] < FRAGMENT * box[2] for box in boxes)


def one_shaped(pixels):
    """A framed candidate no wider than a 1 (ONE_WIDE px of ink across the 28x28 frame)."""
    columns = np.flatnonzero((pixels > INK).any(axis=0))
    return len(columns) == 0 or columns[-1] - columns[0] + 1 <= ONE_WIDE


def _overlap(a, b):
    return (min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]), min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))


def segment_crops(x, y, n_digits, n_outliers, seed=0):
    """((digits uint8 (n, 28, 28), their labels), outliers uint8 (m, 28, 28)) from numbers of the digits x
    labelled y; up to n_digits and n_outliers of them (fewer only for tiny x)."""
    rng = np.random.default_rng(seed)
    digits, labels, outliers = [], [], []
    for _ in range(4 * (n_digits + n_outliers) + 10):
        if len(digits) >= n_digits and len(outliers) >= n_outliers:
            break
        idx = rng.integers(0, len(x), int(rng.integers(2, 4)))
        spacing = ("tight", "touching", "touching", "overlapping")[int(rng.integers(4))]
        ink, boxes = strip(list(x[idx]), spacing, rng, int(rng.integers(3, 5)))
        try:
            layout = numbers.layout_of((255 - ink * 255).astype(np.uint8), "always", MERGED_WIDTH, -np.inf,
                                       numbers.STEP)
        except numbers.NoNumber:
            continue
        for candidate in layout.candidates:
            pixels = layout.inputs[candidate.index]
            match = [k for k, box in enumerate(boxes) if matches(candidate.box, box)]
            if match:
                if len(digits) < n_digits:
                    digits.append(pixels)
                    labels.append(int(y[idx[match[0]]]))
            elif is_outlier(candidate.box, boxes) and not one_shaped(pixels) and len(outliers) < n_outliers:
                outliers.append(pixels)
    empty = np.zeros((0, 28, 28), np.uint8)
    return ((np.stack(digits) if digits else empty, np.array(labels, np.int32)),
            np.stack(outliers) if outliers else empty)
