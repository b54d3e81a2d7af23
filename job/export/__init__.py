"""Export a trained run to SavedModel, ONNX and LiteRT, prove that each predicts what Keras predicts, publish
atomically.

    mnist-job export runs/cnn-bn-aug-20250101T000000Z --format all --quantize int8
    mnist-job benchmark runs/cnn-bn-aug-20250101T000000Z

Writes RUN_DIR/export/ (docs/artifacts.md): model.onnx, savedmodel/1/, model.tflite, with --quantize int8
model.int8.onnx and model.int8.tflite, parity.npz (and parity.json for the browser page) and manifest.json. The export is a list of steps, below:
calibrate the run's model, record the reference outputs, then for each format write it (formats/<name>.py)
and pass it through the gate (gate.py); only when every gate has passed are the manifest written and the
directory renamed into place (publish.py), so a failed or killed export leaves the previous one as it was.
"""

import json
import logging
import shutil
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from mnist_predict import web
from mnist_predict.files import first_sentence, publish_directory
from mnist_predict.formats import FAMILIES, chosen, fp32_of  # by name: here `formats` is job.export.formats

from job import interrupts
from job.data.datasets import training_split
from job.errors import GateError, Interrupted, JobError, WriteError
from job.export import gate, publish
from job.export.formats import WRITERS, onnx, savedmodel
from job.export.manifest import make_manifest, metadata, print_report  # noqa: F401  (the CLI's report)
from job.train import rundir
from job.train.run_config import recorded

CHOICES = (*FAMILIES, "all")  # --format
CALIBRATION_IMAGES = 300
DELTA = 0.05  # --delta: the chance that the review threshold's guarantee fails


@dataclass
class ExportConfig:
    run_dir: str
    format: str = "all"
    opset: int = onnx.DEFAULT_OPSET
    quantize: str | None = None
    atol: float = 1e-5
    out: str | None = None
    command: str | None = None
    calibrate: bool = True
    review_data: str | None = None  # a labelled folder to choose the review threshold on (job.review.threshold)
    max_error: float | None = None
    delta: float | None = None
    force: bool = False  # export a fine-tuned run that is worse than its base


def check_args(cfg):
    """Every argument checked before TensorFlow is imported, so mistakes cost nothing."""
    if cfg.format not in CHOICES:
        raise JobError(f"unknown --format {cfg.format!r}: choose {', '.join(FAMILIES)} or all")
    if cfg.opset not in onnx.OPSETS:
        raise JobError(f"unsupported --opset {cfg.opset}: tf2onnx {onnx.OPSETS.start}-{onnx.OPSETS.stop - 1} works "
                       f"here (int8 per-channel needs 13 or later)")
    if cfg.quantize not in (None, "int8"):
        raise JobError(f"unknown --quantize {cfg.quantize!r}: only int8 is supported")
    if cfg.quantize and cfg.format == "savedmodel":
        raise JobError("--quantize int8 quantizes the ONNX and LiteRT models: use --format onnx, litert or all")
    if not cfg.atol > 0:
        raise JobError(f"--atol must be positive, got {cfg.atol}")
    run_dir = Path(cfg.run_dir)
    if not run_dir.is_dir():
        raise JobError(f"{run_dir}: no such run directory")
    if cfg.review_data is None and (cfg.max_error is not None or cfg.delta is not None):
        raise JobError("--max-error and --delta set the review threshold chosen on --review-data: add --review-data "
                       "LABELLED_FOLDER")
    if cfg.review_data is not None:
        if cfg.max_error is None:
            raise JobError("--review-data chooses the review threshold for an error rate: add --max-error, e.g. 0.01")
        if not 0 < cfg.max_error < 1 or not 0 < delta_of(cfg) < 1:
            raise JobError(f"--max-error and --delta must be in (0, 1), got {cfg.max_error} and {delta_of(cfg)}")
        from job.data.labelled import is_labelled_folder

        if not is_labelled_folder(cfg.review_data):
            raise JobError(f"--review-data {cfg.review_data}: not a labelled image folder (one subfolder of images "
                           "per class)")
    for name in ("model.keras", "config.json", "metrics.json"):
        if not (run_dir / name).is_file():
            raise JobError(f"{run_dir}: no {name} (not a finished run directory)")
    metrics = rundir.read_json(run_dir / "metrics.json")
    from job.train.finetune import worse_than_base

    worse = worse_than_base(metrics.get("versus_base"))
    if worse and not cfg.force:
        raise GateError(f"{run_dir} is worse than its base run: {worse}; export the base instead, or add --force")
    return run_dir, rundir.read_json(run_dir / "config.json"), metrics


def delta_of(cfg):
    return DELTA if cfg.delta is None else cfg.delta  # --delta 0 is refused, not taken for the default


def say(message, err=False):
    print(message, file=sys.stderr if err else sys.stdout, flush=True)


@dataclass
class Build:
    """An export under way, as the writers of job/export/formats see it."""
    model: object
    tmp: Path
    opset: int
    props: dict
    images: np.ndarray | None = None  # int8 calibration images
    saved: Path | None = None  # the SavedModel, once written

    def savedmodel(self):
        """The SavedModel LiteRT converts from: the export's own, or, when it is not exported, one beside it."""
        if self.saved is None:
            self.saved = self.tmp.with_name(self.tmp.name + "-savedmodel")
            savedmodel.write(self.model, self.saved)
        return self.saved


def export(cfg, log=say):
    """Write and publish the export directory. Returns (out_dir, manifest); GateError if a gate fails."""
    start = time.perf_counter()
    run_dir, config, metrics = check_args(cfg)
    out = Path(cfg.out) if cfg.out else run_dir / "export"
    # Ctrl-C takes effect between steps, never inside TensorFlow or a converter, which may swallow it
    with interrupts.deferred("stopping after the current step (Ctrl-C again to stop at once)") as interrupt, \
            publish.exclusive(run_dir):
        tmp = publish.make_temp_dir(out)
        try:
            model, data, calibration, not_calibrated = calibrated_model(cfg, run_dir, config, log)
            threshold = review_threshold(cfg, model, config, log) if cfg.review_data else None
            interrupt.check()
            reference = gate.write_reference(model, data, tmp / "parity.npz")
            # the same set for the browser page (mnist-predict web), which cannot read .npz
            (tmp / "parity.json").write_text(json.dumps(web.parity_json(reference)))
            build = Build(model, tmp, cfg.opset, metadata(config, metrics, run_dir, calibration, threshold))
            results = {}
            interrupt.check()
            for fmt in chosen(cfg.format):  # fp32: each written, then gated against Keras
                results[fmt.key] = timed(log, fmt, lambda: gate.parity(
                    gate.runner(fmt, write(fmt, build)), reference, cfg.atol))
                interrupt.check()
            refuse_failures(results, reference, out, log)
            lines = export_line_reader(cfg, run_dir, build, data, log)
            interrupt.check()
            reading = calibrate_reading(cfg, tmp, config, data, log) if lines else None
            interrupt.check()
            if cfg.quantize:
                build.images, source = calibration_images(config, data)
                extra = {"calibration": {"source": source, "split": "train", "images": len(build.images)}}
                for fmt in chosen(cfg.format, quantize=True):
                    if fmt.quantized:  # made from its family's fp32 file, gated against it and Keras
                        settings = WRITERS[fmt.key](build, tmp / fmt.file)
                        results[fmt.key] = timed(log, fmt, lambda: gate.quantized(
                            tmp / fp32_of(fmt).file, tmp / fmt.file, data, reference, {**extra, "quantization": settings}))
                        interrupt.check()
                int8 = {key: result for key, result in results.items() if result.kind == "int8"}
                for key, result in int8.items():
                    if result.passed and not result.details["gate"]["size_ratio"]:
                        log(f"warning: {result.failure(key)}: published all the same; a model this small keeps "
                            "fixed overhead", err=True)
                failed = [result.failure(key) for key, result in int8.items() if not result.passed]
                if failed:
                    raise GateError("int8 gate failed: " + "; ".join(failed) + f"; nothing published, {out} left as it was")
            manifest = make_manifest(cfg, tmp, config, metrics, run_dir, results, calibration)
            if not_calibrated:
                manifest["calibration_skipped"] = not_calibrated
            if threshold:
                manifest["review_threshold"] = threshold
            if lines:
                manifest["line_reader"] = lines
            if reading:
                manifest["reading_calibration"] = reading
            manifest["export_seconds"] = round(time.perf_counter() - start, 2)
            rundir.write_json(tmp / "manifest.json", manifest)
            interrupt.check()  # the last moment to stop: the two renames of publish() are not interrupted
            publish_directory(tmp, out)
        except KeyboardInterrupt:
            raise Interrupted(f"interrupted; nothing was published, {out} left as it was") from None
        except Exception as e:
            if interrupt.pending:  # whatever a half-stopped library raised, the cause was the Ctrl-C
                raise Interrupted(f"interrupted; nothing was published, {out} left as it was") from None
            if isinstance(e, OSError) or type(e).__module__.startswith("tensorflow"):  # TF's own write errors
                raise WriteError(f"cannot write the export ({first_sentence(getattr(e, 'strerror', None) or e)}); "
                                 f"nothing published, {out} left as it was") from None
            raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(tmp.with_name(tmp.name + "-savedmodel"), ignore_errors=True)
    if interrupt.pending:  # it came during the last step's renames, which run to the end
        raise Interrupted(f"interrupted as the export was being published: {out} is complete, every gate passed")
    return out, manifest


def calibrated_model(cfg, run_dir, config, log):
    """(the run's model, with its temperature folded in; its data; the calibration report; or in its place,
    when calibration was tried and not applied, the report of why). --no-calibrate: neither report."""
    from job.train.rundir import load_keras_model
    from job.train.training import run_dataset

    model = load_keras_model(run_dir / "model.keras")
    data = run_dataset(config)
    quiet_converters()
    if not cfg.calibrate:
        return model, data, None, None
    from job.train.calibration import calibrate

    x_val, y_val = validation_split(config, data)
    model, calibration = calibrate(model, x_val, y_val, data.x_test, data.y_test)
    test = calibration["test"]
    if "skipped" in calibration:
        log(f"warning: calibration skipped, the raw softmax is exported: {calibration['skipped']}", err=True)
        return model, data, None, calibration
    log(f"calibration: temperature {calibration['temperature']:.3f} (fitted on the validation split), "
        f"test ECE {test['ece_before']:.2%} -> {test['ece_after']:.2%}")
    return model, data, calibration, None


def review_threshold(cfg, model, config, log):
    """The review threshold chosen on --review-data's images, as the exported (calibrated) model scores them
    through the predictor's own preprocessing (job.review.threshold); its report either way."""
    from job.data.labelled import evaluation_set
    from job.review.threshold import guaranteed_threshold
    from job.train.training import predict_probabilities
    from mnist_predict.review import DEFAULT_MIN_CONFIDENCE

    x, y, source = evaluation_set(cfg.review_data, config["labels"])
    probabilities = predict_probabilities(model, x)
    report = guaranteed_threshold(probabilities.max(axis=1), probabilities.argmax(axis=1) == y, cfg.max_error,
                                  delta_of(cfg))
    report["data"] = source
    if report["threshold"] is None:
        log(f"warning: review threshold: {report['skipped']}; the fixed default {DEFAULT_MIN_CONFIDENCE:g} is kept",
            err=True)
    else:
        log(f"review threshold: {report['threshold']:g}, so that at most {cfg.max_error:g} of unflagged rows are wrong "
            f"with probability {1 - report['delta']:g} on images like {len(y)} of {cfg.review_data} "
            f"({report['unflagged']} pass it there, {report['unflagged_errors']} of them wrong; {report['flagged_share']:.1%} "
            "flagged)")
    return report


def export_line_reader(cfg, run_dir, build, data, log):
    """lines.onnx beside model.onnx when the run holds a line reader (mnist-job train-lines) and ONNX is
    exported, gated against Keras (job.export.line_reader); its report, or None."""
    from job.export import line_reader
    from job.train.line_reader import METRICS, MODEL
    from mnist_predict.lines import FILE

    if not (run_dir / MODEL).is_file() or cfg.format not in ("onnx", "all"):
        return None
    start = time.perf_counter()
    model = rundir.load_keras_model(run_dir / MODEL)
    line_reader.write(model, build.tmp / FILE, build.opset, {"model": "line_reader", "contract": "mnist_predict.lines"})
    report = line_reader.gate(model, build.tmp / FILE, data, cfg.atol)
    report["training"] = rundir.read_json(run_dir / METRICS) if (run_dir / METRICS).is_file() else None
    log(f"line reader: {FILE}, max abs diff {report['max_abs_diff']:.2e}, {report['lines']} test lines read as "
        f"Keras reads them, {report['read_exactly']:.0%} exactly right ({time.perf_counter() - start:.1f} s)")
    return report


def write(fmt, build):
    path = build.tmp / fmt.file
    WRITERS[fmt.key](build, path)
    return path


def timed(log, fmt, step):
    start = time.perf_counter()
    result = step()
    log(f"{fmt.key.replace('-', ' ')}: {result.line()} ({time.perf_counter() - start:.1f} s)")
    return result


def refuse_failures(results, reference, out, log):
    failed = {name: result for name, result in results.items() if not result.passed}
    if failed:
        log(gate.worst_cases_table(failed, reference), err=True)
        raise GateError("parity failed: " + "; ".join(result.failure(name) for name, result in failed.items())
                        + f"; nothing published, {out} left as it was")


def quiet_converters():
    # tf2onnx's, TF's and the TFLite converter's notices would bury the export's own report.
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    for name in ("tf2onnx", "onnxruntime", "absl"):
        logging.getLogger(name).setLevel(logging.ERROR)


def calibrate_reading(cfg, tmp, config, data, log):
    """manifest.json's reading_calibration: read's confidence fitted on numbers of the run's validation digits
    through the export's model.onnx and lines.onnx (job.export.reading_calibration); None with
    --no-calibrate."""
    if not cfg.calibrate:
        return None
    from job.data.letters import fonts
    from job.export.reading_calibration import calibrate

    x_val, y_val = validation_split(config, data)
    report = calibrate(tmp, x_val, y_val, fonts("train"), log=log)
    held = report["held_out"]
    fitted = [kind for kind in ("agree", "differ") if kind in report]
    log(f"read's confidence: fitted ({', '.join(fitted) or 'nothing'}) on {report['fitted_on']} of {report['numbers']} "
        f"numbers of {report['digits']} validation digits; on the other {held['readings']}, calibration error "
        f"{held['before']['calibration_error']:.3f} -> {held['after']['calibration_error']:.3f}; flagged below "
        f"{held['before']['min_confidence']:g} -> {held['after']['min_confidence']:g}: accepted wrong "
        f"{held['before']['accepted_wrong']:.1%} -> {held['after']['accepted_wrong']:.1%}, flagged "
        f"{held['before']['flagged']:.1%} -> {held['after']['flagged']:.1%} ({report['seconds']:.0f} s)")
    for kind in ("agree", "differ"):
        if f"{kind}_skipped" in report:
            log(f"warning: read's confidence where the readers {kind}: not fitted, {report[kind + '_skipped']}; "
                "the bounds stand", err=True)
    return report


def validation_split(config, data):
    """The run's own validation images and labels (same val_split and seed as training); a fine-tune that
    replayed its base's training images adds its base's validation split, which neither run trained on, so
    that its temperature is fitted on hundreds of images rather than a few corrections."""
    _, _, x_val, y_val = training_split(replace(recorded(config), max_train_samples=None), data)
    if config.get("init_from") and config.get("replay"):
        from job.train.finetune import base_validation

        x_base, y_base = base_validation(config["init_from"])
        x_val, y_val = np.concatenate([x_val, x_base]), np.concatenate([y_val, y_base])
    return x_val, y_val


def calibration_images(config, data, n=CALIBRATION_IMAGES):
    """The first n images of the run's own training split (same val_split and seed): never test images."""
    settings = recorded(config)
    x_train, _, _, _ = training_split(replace(settings, max_train_samples=None), data)
    images = x_train[:n].astype(np.float32)
    source = (f"training split of {settings.dataset} (val_split {settings.val_split}, seed {settings.seed}), first "
              f"{len(images)} images")
    return images, source
