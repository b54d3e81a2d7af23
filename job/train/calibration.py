"""Temperature scaling (Guo et al., 2017): one number that makes the model's probabilities honest.

Label smoothing, dropout and augmentation leave a model less confident than it is right: cnn-bn-aug is right
98.8% of the time on the sample but its median top probability is 0.91. Dividing the logits by a temperature
T fitted on held-out data (the run's own validation split) fixes that without changing any prediction, and
export folds it into the graph, so every exported format outputs calibrated probabilities.

    T = fit_temperature(logits(model, x_val), y_val)
    served = calibrated_model(model, T)        # image -> probabilities, softmax(logits / T)
    expected_calibration_error(served.predict(x_test), y_test)

Calibration is only applied where it is supported and helps, else the raw softmax is exported with the
reason (`calibrate` returns it):
- The validation split must be able to see a miscalibration at all: the model's mean top probability must lie
  outside the 95% interval of its validation accuracy (Wilson, job.train.stats), an interval that narrows with the
  number of images. On 29 images right 97% of the time the interval is 83-99%, and a fit there chases noise.
- The fitted temperature must lie inside its search range: a fit that runs to the edge (0.05 when every
  validation image is right) says "as sharp as possible", not "this sharp".
- It must not make the error it reports worse: when the test set's ECE after would exceed the ECE before,
  the raw softmax is kept.
"""

import numpy as np

from job.train.stats import wilson

BINS = 15
GRID = (0.05, 20)  # the temperatures fit_temperature searches


def expected_calibration_error(probabilities, labels, bins=BINS):
    """ECE: the gap between confidence and accuracy in each of `bins` equal-width confidence bins,
    weighted by the share of rows in the bin. 0 is perfect; a model right 99% of the time whose top
    probability is always 0.9 scores 0.09."""
    probabilities, labels = np.asarray(probabilities), np.asarray(labels)
    if not len(labels):
        return float("nan")
    confidence, correct = probabilities.max(axis=1), probabilities.argmax(axis=1) == labels
    which = np.clip((confidence * bins).astype(int), 0, bins - 1)
    gap = 0.0
    for b in range(bins):
        rows = which == b
        if rows.any():
            gap += rows.mean() * abs(correct[rows].mean() - confidence[rows].mean())
    return float(gap)


def negative_log_likelihood(logits, labels, temperature=1.0):
    scaled = logits / temperature
    scaled = scaled - scaled.max(axis=1, keepdims=True)
    log_probabilities = scaled - np.log(np.exp(scaled).sum(axis=1, keepdims=True))
    return float(-log_probabilities[np.arange(len(labels)), labels].mean())


def fit_temperature(logits, labels):
    """The T in GRID (0.05 to 20) that minimises the negative log-likelihood of softmax(logits / T): a coarse
    log-spaced grid, then golden-section search around its best point (NLL is unimodal in log T)."""
    logits, labels = np.asarray(logits, np.float64), np.asarray(labels, np.int64)
    if not len(labels):
        raise ValueError("cannot fit a temperature on no rows")
    grid = np.geomspace(*GRID, 61)
    best = int(np.argmin([negative_log_likelihood(logits, labels, t) for t in grid]))
    low, high = np.log(grid[max(best - 1, 0)]), np.log(grid[min(best + 1, len(grid) - 1)])
    ratio = (np.sqrt(5) - 1) / 2
    for _ in range(40):
        a, b = high - ratio * (high - low), low + ratio * (high - low)
        if negative_log_likelihood(logits, labels, np.exp(a)) < negative_log_likelihood(logits, labels, np.exp(b)):
            high = b
        else:
            low = a
    return float(np.exp((low + high) / 2))


def logits_model(model):
    """The same network without its final softmax: image -> logits. Zoo models end in a Dense layer
    named `probabilities` with a softmax activation."""
    import keras

    head = model.get_layer("probabilities")
    logits = keras.layers.Dense(head.units, name="logits", dtype=head.dtype_policy)(head.input)
    clone = keras.Model(model.input, logits, name=model.name)
    clone.get_layer("logits").set_weights(head.get_weights())
    return clone


def calibrated_model(model, temperature):
    """image -> probabilities = softmax(logits / T), with the zoo's input and output names."""
    import keras

    base = logits_model(model)
    scaled = keras.layers.Rescaling(1.0 / temperature, name="temperature")(base.output)
    probabilities = keras.layers.Softmax(name="probabilities", dtype="float32")(scaled)
    return keras.Model(base.input, probabilities, name=model.name)


def unsupported(probabilities, labels):
    """Why `labels` are too few to fit a temperature to these probabilities, or None: the validation split
    supports a fit only where the gap between confidence and accuracy is larger than its own uncertainty."""
    probabilities, labels = np.asarray(probabilities), np.asarray(labels)
    n = len(labels)
    if not n:
        return "the validation split is empty"
    accuracy = float((probabilities.argmax(axis=1) == labels).mean())
    confidence = float(probabilities.max(axis=1).mean())
    low, high = wilson(accuracy, n)
    if low <= confidence <= high:
        return (f"the {n} validation images cannot show a miscalibration: the mean top probability "
                f"{confidence:.3f} lies within the 95% interval of their accuracy, {low:.3f}-{high:.3f}")
    return None


def calibrate(model, x_val, y_val, x_test, y_test):
    """Fit T on the validation split. Returns (the model to serve, report): the calibrated model and the ECE
    before and after, or the model itself and a report whose `skipped` says why calibration was not applied
    (too few validation images, a fit at the edge of GRID, or a worse test ECE)."""
    def predict(m, x):
        return np.asarray(m.predict(x.astype(np.float32), batch_size=1024, verbose=0))

    def ece(probabilities, y):
        return round(expected_calibration_error(probabilities, y), 6)

    splits = {"validation": (x_val, y_val), "test": (x_test, y_test)}
    raw = {split: predict(model, x) for split, (x, _) in splits.items()}
    report = {"method": "temperature scaling", "bins": BINS, "fitted_on": f"validation split ({len(y_val)} images)"}
    skipped = unsupported(raw["validation"], y_val)
    if skipped is None:
        val_logits = np.asarray(logits_model(model).predict(x_val.astype(np.float32), batch_size=1024, verbose=0),
                                np.float64)
        temperature = fit_temperature(val_logits, y_val)
        report["temperature"] = round(temperature, 6)
        if not GRID[0] * 1.01 < temperature < GRID[1] / 1.01:
            skipped = (f"the fitted temperature {temperature:.3g} is at the edge of its range {GRID[0]:g}-{GRID[1]:g}: "
                       "the validation split does not pin it down")
    served, tuned = model, raw
    if skipped is None:
        served = calibrated_model(model, report["temperature"])
        tuned = {split: predict(served, x) for split, (x, _) in splits.items()}
        before, after = ece(raw["test"], y_test), ece(tuned["test"], y_test)
        if after > before:
            skipped = (f"temperature {report['temperature']:.3f} would raise the test set's expected calibration "
                       f"error from {before:.2%} to {after:.2%}")
            served, tuned = model, raw
    for split, (_, y) in splits.items():
        report[split] = {"ece_before": ece(raw[split], y), "ece_after": ece(tuned[split], y),
                         "median_top_probability_before": round(float(np.median(raw[split].max(axis=1))), 6),
                         "median_top_probability_after": round(float(np.median(tuned[split].max(axis=1))), 6)}
    if skipped is not None:
        report["skipped"] = skipped
    return served, report
