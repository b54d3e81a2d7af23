"""manifest.json and the metadata an exported model carries (docs/artifacts.md), and the export's report."""

import json
import shlex
import sys
from datetime import datetime, timezone

INPUT_SPEC = {"name": "image", "dtype": "float32", "shape": [None, 28, 28], "range": [0, 255],
              "polarity": "white-on-black"}
OUTPUT_SPEC = {"name": "probabilities", "dtype": "float32", "shape": [None, 10]}
INPUT_DESCRIPTION = ("float32 (batch, 28, 28), raw pixels 0-255, a white digit (or garment) on a black "
                     "background; no scaling needed, it is inside the model")


def preprocess(config):
    """How an image file becomes this model's input (mnist_predict.images.prepare's `resize`). Fashion-MNIST
    trains on its raw 28x28 arrays, so a garment's file is only resized ("stretch"): the digit cleaning
    (paper, ink threshold, 20x20 framing) took a dense-512 from 71.9% to 37.6% on Fashion-MNIST's own test
    images. Digits, raw or from a labelled folder (decoded by images.decode), are cleaned and framed ("mnist")."""
    return "stretch" if config.get("dataset") == "fashion_mnist" else "mnist"


def metadata(config, metrics, run_dir, calibration=None, threshold=None):
    """ONNX metadata_props: what the predictor reads (labels, the review threshold) and what a person needs to
    trace the file."""
    props = {"labels": json.dumps(config["labels"]), "input_description": INPUT_DESCRIPTION,
             "model": config["model"], "test_accuracy": str(metrics.get("test_accuracy")),
             "versions": json.dumps(versions()), "source_run": str(run_dir), "preprocess": preprocess(config)}
    if calibration:
        props["temperature"] = str(calibration["temperature"])
    if threshold and threshold["threshold"] is not None:
        props["review_threshold"] = str(threshold["threshold"])
    return props


def versions():
    import keras
    import tensorflow as tf

    from job.export.formats import litert, onnx

    return {"tensorflow": tf.__version__, "keras": keras.__version__, **onnx.versions(), **litert.versions()}


def make_manifest(cfg, tmp, config, metrics, run_dir, results, calibration):
    """Every file with its sha256 and size, the contract, labels, metrics, every gate's result, versions."""
    from mnist_predict.files import sha256

    files = {p.relative_to(tmp).as_posix(): {"sha256": sha256(p), "size": p.stat().st_size}
             for p in sorted(tmp.rglob("*")) if p.is_file() and p.name != "manifest.json"}
    int8 = {name: result.details for name, result in results.items() if result.kind == "int8"}
    return {
        "files": files, "input": INPUT_SPEC, "output": {**OUTPUT_SPEC, "shape": [None, len(config["labels"])]},
        "labels": config["labels"], "opset": cfg.opset if cfg.format in ("onnx", "all") else None,
        "format": cfg.format, "model": config["model"], "source_run": str(run_dir),
        "dataset": config["dataset"], "preprocess": preprocess(config), "versions": versions(),
        "metrics": {k: metrics.get(k) for k in ("test_accuracy", "test_loss", "val_accuracy", "epochs_run")},
        "parity": {name: result.summary() for name, result in results.items()}, "int8": int8, "calibration": calibration,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": cfg.command or shlex.join(["mnist-job", *sys.argv[1:]]),
    }


def print_report(out, manifest):
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"parity against Keras ({manifest['model']})")
    for column in ("format", "max abs diff", "argmax agreement", "gate", "result"):
        table.add_column(column, justify="left" if column == "format" else "right")
    for name, p in manifest["parity"].items():
        int8 = p.get("gated") == "int8"
        table.add_row(name, f"{p['max_abs_diff']:.2e}", f"{p['argmax_agreement']:.4f}",
                      "int8" if int8 else f"atol {p['atol']:g}", "pass" if p["passed"] else "FAIL")
    console.print(table)
    for name, int8 in (manifest.get("int8") or {}).items():
        table = Table(title=f"{name} against fp32: {int8['test_images']} test images, images/s at batch "
                            f"{int8['batch']} ({int8['runtime']}, {int8['threads']} threads)")
        for column in ("", "fp32", "int8", "change"):
            table.add_column(column, justify="left" if not column else "right")
        table.add_row("accuracy", f"{int8['accuracy_fp32']:.4f}", f"{int8['accuracy_int8']:.4f}",
                      f"{-int8['accuracy_drop_pp']:+.2f} pp")
        table.add_row("size (bytes)", f"{int8['size_fp32']:,}", f"{int8['size_int8']:,}", f"{int8['size_ratio']:.2f}x")
        table.add_row("images/s", f"{int8['throughput_fp32']:,.0f}", f"{int8['throughput_int8']:,.0f}",
                      f"{int8['speedup']:.2f}x")
        console.print(table)
    calibration = manifest.get("calibration")
    if manifest.get("calibration_skipped"):
        console.print(f"not calibrated: {manifest['calibration_skipped']['skipped']}")
    if calibration:
        test = calibration["test"]
        console.print(f"calibrated: temperature {calibration['temperature']:.3f}, expected calibration error on the "
                      f"test set {test['ece_before']:.2%} -> {test['ece_after']:.2%}")
    threshold = manifest.get("review_threshold")
    if threshold and threshold["threshold"] is not None:
        console.print(f"review threshold {threshold['threshold']:g}: unflagged rows at most {threshold['max_error']:g} "
                      f"wrong with probability {1 - threshold['delta']:g} ({threshold['n']} labelled images, "
                      f"{threshold['flagged_share']:.1%} of them flagged)")
    elif threshold:
        console.print(f"review threshold: the fixed default is kept: {threshold['skipped']}")
    console.print(f"exported to {out} in {manifest['export_seconds']:.1f} s")
