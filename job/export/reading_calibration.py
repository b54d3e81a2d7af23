"""Calibrate `read`'s confidence at export: how the two readers' confidences predict a right reading.

    mnist-job export runs/demo     # a run with a line reader: manifest.json gets reading_calibration

`read` weighs the digit search's reading against the line reader's (mnist_predict.numbers.with_line_reading).
Without this, a text both read is as sure as the less sure of the two: safe, but no probability (on
bench/numbers.py, readings said to be 0.86 sure were right 96% of the time). Here numbers of 1-8 of the
run's validation digits, which neither model trained on (job.train.line_reader leaves them out), are
rendered as the line reader's training numbers are (job.data.number_lines: loose to overlapping, scans and
photos, forms, printed digits, letters standing in), read with the export's own model.onnx and lines.onnx,
and each reading marked right or wrong. Half of them fit a logistic regression on the readers' logits, one
for the texts both read alike and one for the texts they read otherwise (mnist_predict.reading_confidence
names the features); the other half measure it against the bounds it replaces. A fit with too few readings,
or too few of them wrong, is skipped, and `read` keeps the bounds for that kind.
"""

import time

import numpy as np
from mnist_predict import numbers, reading_confidence
from mnist_predict.predictor import Predictor
from mnist_predict.review import DEFAULT_MIN_CONFIDENCE

NUMBERS = 1200  # rendered numbers: about 40 s of rendering and reading on 2 cores
# read's default --min-confidence with a fitted confidence: a reading accepted is at least 97% sure. On
# bench/numbers.py's renders (other hands and fonts than the fit's) it leaves 0.65% of readings accepted and
# wrong, where 0.95 leaves 1.10% and the bounds at 0.8 1.30%
MIN_CONFIDENCE = 0.97
MIN_ROWS, MIN_WRONG = 60, 10  # the least a fit needs: readings of its kind, and wrong ones among them
RIDGE = 1e-2  # an L2 penalty on the weights (not the bias): finite weights where the halves separate cleanly
BINS = (0.0, 0.5, 0.8, 0.9, 0.95, 0.99, 1.0)  # the bins of the calibration error


def calibrate(export_dir, x, y, fonts=(), count=NUMBERS, seed=0, log=print):
    """manifest.json's reading_calibration for the export in `export_dir` (model.onnx and lines.onnx), fitted
    on `count` numbers of the digits x (labelled y)."""
    from job.data.number_lines import rendered_numbers

    started = time.perf_counter()
    rows = readings(Predictor(export_dir / "model.onnx"), rendered_numbers(x, y, count, seed=seed, fonts=fonts))
    order = np.random.default_rng(seed).permutation(len(rows))
    fitting, held = [rows[k] for k in order[:len(rows) // 2]], [rows[k] for k in order[len(rows) // 2:]]
    report = {"numbers": len(rows), "digits": int(len(x)), "fitted_on": len(fitting)}
    for kind in reading_confidence.SIZES:
        mine = [row for row in fitting if row["kind"] == kind]
        wrong = sum(not row["right"] for row in mine)
        if len(mine) < MIN_ROWS or min(wrong, len(mine) - wrong) < MIN_WRONG:
            report[f"{kind}_skipped"] = (f"{len(mine)} readings, {wrong} of them wrong: a fit needs {MIN_ROWS} and "
                                         f"{MIN_WRONG} of each, right and wrong")
            continue
        weights = fit_logistic(np.array([row["features"] for row in mine]), np.array([row["right"] for row in mine]))
        report[kind] = [round(float(w), 6) for w in weights]
    if "agree" in report:  # a reading is accepted only where both readers read it: that fit sets the risk
        report["min_confidence"] = MIN_CONFIDENCE
    report["held_out"] = held_out_figures(held, report)
    report["seconds"] = round(time.perf_counter() - started, 1)
    return report


def readings(predictor, numbers_and_texts):
    """Per rendered number, what the fit needs: its kind ("agree" or "differ"), the features of that kind,
    whether the text given is right, the confidence without calibration, and whether `read` flags it for
    anything but its confidence."""
    reader = predictor.line_reader()
    rows = []
    for image, truth in numbers_and_texts:
        try:
            layout = numbers.layout_of(image, for_line_reader=True)
        except numbers.NoNumber:
            continue  # a blank render (a photo's glare took the ink): read gives an error row, not a reading
        probabilities = predictor.run(layout.inputs)
        search = numbers.choose(layout, probabilities)
        outputs = reader.run([line for line, _ in layout.lines])
        decoded = numbers.line_reading(outputs)
        weighed = numbers.with_line_reading(search, layout, probabilities, outputs, line=decoded)
        _, line_text, line = decoded
        if line_text == search.text:
            kind, features = "agree", reading_confidence.agree_features(search.confidence, line)
        else:
            line_given = weighed.text == line_text
            given, other = (line, search.confidence) if line_given else (search.confidence, line)
            kind, features = "differ", reading_confidence.differ_features(given, other, line_given)
        rows.append({"kind": kind, "features": features, "right": weighed.text == truth, "search": search.confidence,
                     "line": line, "bounded": weighed.confidence, "flagged": bool(weighed.review)})
    return rows


def fit_logistic(features, right, ridge=RIDGE, steps=50):
    """Weights of P(right) = sigmoid(features @ w), by Newton's method on the log-likelihood less
    ridge * |w without the bias|^2 / 2 (features' first column is the bias's 1)."""
    x, t = np.asarray(features, np.float64), np.asarray(right, np.float64)
    penalty = np.full(x.shape[1], ridge)
    penalty[0] = 0.0
    w = np.zeros(x.shape[1])
    for _ in range(steps):
        p = 1 / (1 + np.exp(-np.clip(x @ w, -50, 50)))
        gradient = x.T @ (t - p) - penalty * w
        hessian = (x * (p * (1 - p))[:, None]).T @ x + np.diag(penalty) + 1e-9 * np.eye(x.shape[1])
        step = np.linalg.solve(hessian, gradient)
        w += step
        if np.abs(step).max() < 1e-8:
            break
    return w


def held_out_figures(rows, calibration):
    """The held-out half read both ways, bounds ("before") and fit ("after"): the calibration error, and at
    read's default --min-confidence of each (0.8; the calibration's) the readings accepted and wrong and those
    flagged."""
    fitted = {kind: calibration[kind] for kind in reading_confidence.SIZES if kind in calibration}
    right = np.array([row["right"] for row in rows], bool)
    before = np.array([row["bounded"] for row in rows])
    after = np.array([reading_confidence.weighed(fitted[row["kind"]], row["features"]) if row["kind"] in fitted
                      else row["bounded"] for row in rows])
    flagged = np.array([row["flagged"] for row in rows], bool)
    figures = {"readings": len(rows), "right": round(float(right.mean()), 4) if len(rows) else None}
    for name, confidence, threshold in (("before", before, DEFAULT_MIN_CONFIDENCE),
                                        ("after", after, reading_confidence.min_confidence(calibration))):
        accepted = ~flagged & (confidence >= threshold)
        figures[name] = {"min_confidence": threshold, "calibration_error": round(calibration_error(confidence, right), 4),
                         "accepted_wrong": round(float((accepted & ~right).mean()), 4) if len(rows) else None,
                         "flagged": round(float((~accepted).mean()), 4) if len(rows) else None}
    return figures


def calibration_error(confidence, right, bins=BINS):
    """Expected calibration error: over the bins, the gap between the mean confidence and the share right,
    weighed by the share of readings in the bin."""
    confidence, right = np.asarray(confidence, np.float64), np.asarray(right, np.float64)
    if not len(confidence):
        return 0.0
    where = np.clip(np.searchsorted(bins, confidence, side="right") - 1, 0, len(bins) - 2)
    return float(sum(abs(confidence[where == b].mean() - right[where == b].mean()) * np.mean(where == b)
                     for b in range(len(bins) - 1) if (where == b).any()))
