"""A review threshold with a guarantee: the lowest --min-confidence whose unflagged rows, on images like those
of a labelled folder, have an error rate of at most `max_error`, with probability at least 1 - delta.

    mnist-job export runs/demo --review-data corrections/ --max-error 0.01 --delta 0.05

The method is Learn then Test (Angelopoulos, Bates, Candès, Jordan and Lei, 2021) with binomial p-values and
fixed-sequence testing. For each threshold t of a grid fixed in advance, from the strictest down, it tests
the null hypothesis "the error rate among rows with top probability >= t exceeds max_error": with n such
rows and k errors among them, p = P(Binomial(n, max_error) <= k), exact. It stops at the first threshold
whose p exceeds delta; the last one rejected is the answer. Testing in a fixed order, each at level delta,
keeps the chance that any chosen threshold is wrong at most delta, with no correction for the grid's size.

Its one assumption: the folder's images and the images the model will be asked about are exchangeable
(drawn alike, in any order). A folder of other photos, another writer, or another paper promises nothing.
"""

import math

import numpy as np

METHOD = "learn-then-test: exact binomial p-values, fixed-sequence testing over a fixed grid"
ASSUMPTION = "the labelled images and the images to predict are exchangeable (drawn alike)"
# Strictest first: the order is part of the method and may not depend on the data. It starts at 0.999, not
# higher: a first threshold that few rows pass fails its test and ends the sequence before it starts.
GRID = tuple(round(t, 4) for t in (0.999, 0.998, 0.997, 0.995, 0.993, 0.99,
                                    *np.arange(0.985, 0.499, -0.005)))


def binomial_cdf(k, n, p):
    """P(Binomial(n, p) <= k), summed in log space so that n of many thousands stays exact enough."""
    if k >= n:
        return 1.0
    log_p, log_q = math.log(p), math.log1p(-p)
    terms = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p + (n - i) * log_q
             for i in range(k + 1)]
    top = max(terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms))


def rows_needed(max_error, delta):
    """The fewest unflagged rows, all right, that can prove an error rate of at most max_error."""
    return math.ceil(math.log(delta) / math.log1p(-max_error))


def guaranteed_threshold(confidence, correct, max_error, delta=0.05, grid=GRID):
    """A dict: threshold (None when no threshold of the grid can be proved), the method and its figures.

    `confidence`: each labelled image's top probability from the exported model; `correct`: whether its top
    label is the image's."""
    if not 0 < max_error < 1:
        raise ValueError(f"--max-error must be in (0, 1), got {max_error}")
    if not 0 < delta < 1:
        raise ValueError(f"--delta must be in (0, 1), got {delta}")
    confidence, correct = np.asarray(confidence, np.float64), np.asarray(correct, bool)
    chosen = None
    for t in grid:
        accepted = confidence >= t
        n, errors = int(accepted.sum()), int((accepted & ~correct).sum())
        if binomial_cdf(errors, n, max_error) > delta:
            break
        chosen = {"threshold": t, "unflagged": n, "unflagged_errors": errors}
    report = {"method": METHOD, "assumption": ASSUMPTION, "n": int(len(confidence)), "max_error": max_error,
              "delta": delta, "threshold": None}
    if chosen is None:
        report["skipped"] = (f"no threshold meets max-error {max_error:g} with delta {delta:g} on {len(confidence)} "
                             f"labelled images: proving it needs at least {rows_needed(max_error, delta)} images above "
                             "the threshold, all of them right, and more for each error")
        return report
    report.update(chosen)
    report["flagged_share"] = round(1 - chosen["unflagged"] / max(len(confidence), 1), 6)
    return report
