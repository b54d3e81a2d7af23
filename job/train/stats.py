"""Uncertainty of an accuracy measured on a finite set: how many images a difference has to be worth.

    wilson(0.99, 600)                      # 95% interval of 99% measured on 600 images
    tied((0.9950, 600), (0.9933, 600))     # True: 1 image out of 600 tells nothing
"""

import numpy as np

Z95 = 1.96


def wilson(p, n, z=Z95):
    """95% Wilson interval of an accuracy p measured on n images."""
    if not n:
        return 0.0, 1.0
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(centre - half), float(centre + half)


def tied(a, b, z=Z95):
    """Whether accuracies a = (p, n) and b differ by less than their 95% uncertainty (two-proportion z-test)."""
    (pa, na), (pb, nb) = a, b
    spread = np.sqrt(pa * (1 - pa) / max(na, 1) + pb * (1 - pb) / max(nb, 1))
    return bool(abs(pa - pb) <= z * spread)


def as_good(score, best, n):
    """A validation accuracy at least as good as the best so far: better, or tied with it."""
    return best is None or score >= best or tied((score, n), (best, n))


def kept_epoch(scores, n, floor=None):
    """The epoch (1-based) a best checkpoint keeps: the latest one as good as every epoch before it, so that
    a few images' noise on the validation set does not choose an earlier, less-trained epoch.

    With `floor` (a fine-tuned run's base model, epoch 0), only epochs that beat it strictly are candidates,
    and 0 means that none did: the base is kept."""
    kept, best = 0, None
    for epoch, score in enumerate(scores, 1):
        if floor is not None and score <= floor:
            continue
        if as_good(score, best, n):
            kept = epoch
        best = score if best is None else max(best, score)
    return kept
