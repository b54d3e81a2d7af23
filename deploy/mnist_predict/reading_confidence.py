"""The probability that a reading of `read` is right, from the confidences of its two readers.

The digit search's confidence (numbers.choose) and the line reader's (its model's probability of its text,
mnist_predict.lines) are each one reader's figure, and the two err alike: they learned from the same digits.
Where an export holds a line reader, `mnist-job export` fits how the two figures together predict a right
reading (job.export.reading_calibration): a logistic regression on their logits, one for the texts both read
alike, one for a text that the other reader reads otherwise. It is fitted on numbers of the run's validation
digits, which neither model trained on, and manifest.json keeps it as `reading_calibration`:

    {"agree": [bias, search, line], "differ": [bias, given, other, line_given], "min_confidence": 0.97, ...}

    P(right) = sigmoid(bias + search * logit(search's confidence) + line * logit(line reader's))
    P(right) = sigmoid(bias + given * logit(the given text's reader's) + other * logit(the other's)
                       + line_given * (1 if the given text is the line reader's))

With a fitted confidence, `read` flags a reading below `min_confidence` (export writes 0.97; a given
--min-confidence overrides it): a probability now, so the threshold is the risk a reading may carry.

An export without them (made before, or where the fit was skipped) weighs as it always has: a text both read
is as sure as the less sure reader, a text one reader reads is at most 1 minus the other's confidence, and
`read` flags below 0.8. Its twin is in deploy/web/numbers.js (tests/test_web.py).
"""

import math

from .review import DEFAULT_MIN_CONFIDENCE

CLIP = 1e-6  # confidences are taken within [CLIP, 1 - CLIP]: a product of probabilities may round to 0 or 1


SIZES = {"agree": 3, "differ": 4}  # weights of each fit


def checked(calibration):
    """manifest.json's reading_calibration, or None; ValueError where a fit's weights are not SIZES[kind]
    finite numbers (a hand-edited or damaged manifest would otherwise give figures that mean nothing)."""
    if calibration is None:
        return None
    if not isinstance(calibration, dict):
        raise ValueError("reading_calibration must be an object")
    for kind, size in SIZES.items():
        weights = calibration.get(kind)
        if weights is not None and not (isinstance(weights, list) and len(weights) == size and all(
                isinstance(w, (int, float)) and not isinstance(w, bool) and math.isfinite(w) for w in weights)):
            raise ValueError(f"reading_calibration.{kind} must be {size} finite numbers, got {weights!r}")
    threshold = calibration.get("min_confidence")
    if threshold is not None and not (isinstance(threshold, (int, float)) and not isinstance(threshold, bool)
                                      and 0 <= threshold <= 1):
        raise ValueError(f"reading_calibration.min_confidence must be a number in [0, 1], got {threshold!r}")
    return calibration


def min_confidence(calibration=None):
    """The --min-confidence `read` flags below by default: the calibration's, else DEFAULT_MIN_CONFIDENCE."""
    threshold = (calibration or {}).get("min_confidence")
    return DEFAULT_MIN_CONFIDENCE if threshold is None else float(threshold)


def logit(p):
    p = min(max(float(p), CLIP), 1 - CLIP)
    return math.log(p / (1 - p))


def agree_features(search, line):
    """What the fit for a text both readers read weighs: the bias, then each reader's logit."""
    return [1.0, logit(search), logit(line)]


def differ_features(given, other, line_given):
    """... and for a text one reader reads (`given`'s confidence) where the other reads another (`other`'s)."""
    return [1.0, logit(given), logit(other), 1.0 if line_given else 0.0]


def sigmoid(z):
    if z >= 0:
        return 1 / (1 + math.exp(-z))
    e = math.exp(z)
    return e / (1 + e)


def weighed(weights, features):
    """A fit's probability for these features (agree_features or differ_features)."""
    return sigmoid(sum(w * x for w, x in zip(weights, features)))


def agreed(search, line, calibration=None):
    """The confidence of a text both readers read, with these confidences."""
    weights = (calibration or {}).get("agree")
    return min(search, line) if weights is None else weighed(weights, agree_features(search, line))


def differing(given, other, line_given, calibration=None):
    """The confidence of a text one reader reads with confidence `given` where the other reads another text
    with confidence `other`; `line_given`: the text is the line reader's."""
    weights = (calibration or {}).get("differ")
    if weights is None:
        return min(given, 1 - other)
    return weighed(weights, differ_features(given, other, line_given))
