"""Export a trained run to SavedModel and ONNX, prove that they predict what Keras predicts, publish atomically.

    mnist-job export runs/cnn-bn-aug-20250101T000000Z --format all --quantize int8

Writes RUN_DIR/export/ (docs/artifacts.md): model.onnx, model.int8.onnx (with --quantize int8),
savedmodel/1/, parity.npz and manifest.json. Everything is built in a temporary directory beside the target
and renamed into place only once every parity check has passed, so a failed or killed export leaves the
previous artifacts as they were.
"""

import json
import logging
import os
import shlex
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from job.errors import GateError, JobError

FORMATS = ("onnx", "savedmodel", "all")
# tf2onnx 1.17 converts opsets 7-18 here; per-channel QuantizeLinear (int8) needs 13, and 13-18 are tested.
OPSETS = range(13, 19)
DEFAULT_OPSET = 17
PARITY_TEST_IMAGES = 1000
CALIBRATION_IMAGES = 300
BENCH_BATCH, BENCH_REPEATS = 256, 20
INPUT_SPEC = {"name": "image", "dtype": "float32", "shape": [None, 28, 28], "range": [0, 255],
              "polarity": "white-on-black"}
OUTPUT_SPEC = {"name": "probabilities", "dtype": "float32", "shape": [None, 10]}
INPUT_DESCRIPTION = ("float32 (batch, 28, 28), raw pixels 0-255, a white digit (or garment) on a black "
                     "background; no scaling needed, it is inside the model")
# Augmentation and dropout are training-time randomness: none of them may reach a served graph.
RANDOM_OPS = ("RandomUniform", "RandomNormal", "RandomUniformLike", "RandomNormalLike", "Multinomial",
              "Bernoulli", "Dropout")


@dataclass
class ExportConfig:
    run_dir: str
    format: str = "all"
    opset: int = DEFAULT_OPSET
    quantize: str | None = None
    atol: float = 1e-5
    out: str | None = None
    command: str | None = None
    calibrate: bool = True


@dataclass
class Parity:
    """ORT (or the reloaded SavedModel) against the Keras outputs recorded in parity.npz."""
    max_abs_diff: float
    argmax_agreement: float  # on the test rows, as the edge checker counts it
    argmax_flips: int  # rows whose argmax differs where Keras's own top-2 margin exceeds 2*atol
    atol: float
    passed: bool
    row_diff: np.ndarray  # per-row max abs diff, batch run and batch-of-one run together
    predicted: np.ndarray

    def summary(self):
        return {"max_abs_diff": self.max_abs_diff, "argmax_agreement": self.argmax_agreement,
                "argmax_flips": self.argmax_flips, "atol": self.atol, "passed": self.passed}


def check_args(cfg):
    """Every argument checked before TensorFlow is imported, so mistakes cost nothing."""
    if cfg.format not in FORMATS:
        raise JobError(f"unknown --format {cfg.format!r}: choose onnx, savedmodel or all")
    if cfg.opset not in OPSETS:
        raise JobError(f"unsupported --opset {cfg.opset}: tf2onnx {OPSETS.start}-{OPSETS.stop - 1} works "
                       f"here (int8 per-channel needs 13 or later)")
    if cfg.quantize not in (None, "int8"):
        raise JobError(f"unknown --quantize {cfg.quantize!r}: only int8 is supported")
    if cfg.quantize and cfg.format == "savedmodel":
        raise JobError("--quantize int8 quantizes the ONNX model: use --format onnx or all")
    if not cfg.atol > 0:
        raise JobError(f"--atol must be positive, got {cfg.atol}")
    run_dir = Path(cfg.run_dir)
    if not run_dir.is_dir():
        raise JobError(f"{run_dir}: no such run directory")
    for name in ("model.keras", "config.json", "metrics.json"):
        if not (run_dir / name).is_file():
            raise JobError(f"{run_dir}: no {name} (not a finished run directory)")
    try:
        config = json.loads((run_dir / "config.json").read_text())
        metrics = json.loads((run_dir / "metrics.json").read_text())
    except ValueError as e:
        raise JobError(f"{run_dir}: config.json or metrics.json is not valid JSON ({e})") from None
    return run_dir, config, metrics


def say(message, err=False):
    print(message, file=sys.stderr if err else sys.stdout, flush=True)


def export(cfg, log=say):
    """Write and publish the export directory. Returns (out_dir, manifest); GateError if parity fails."""
    start = time.perf_counter()
    run_dir, config, metrics = check_args(cfg)
    out = Path(cfg.out) if cfg.out else run_dir / "export"
    tmp = make_temp_dir(out)
    try:
        from job.rundir import load_keras_model, write_json
        from job.training import run_dataset

        model = load_keras_model(run_dir / "model.keras")
        data = run_dataset(config)
        quiet_converters()
        calibration = None
        if cfg.calibrate:
            from job.calibration import calibrate

            x_val, y_val = validation_split(config, data)
            model, calibration = calibrate(model, x_val, y_val, data.x_test, data.y_test)
            test = calibration["test"]
            log(f"calibration: temperature {calibration['temperature']:.3f} (fitted on the validation split), "
                f"test ECE {test['ece_before']:.2%} -> {test['ece_after']:.2%}")
        reference = write_reference(model, data, tmp / "parity.npz")
        props = metadata(config, metrics, run_dir, calibration)
        parity, int8 = {}, None
        if cfg.format in ("onnx", "all"):
            t = time.perf_counter()
            write_onnx(model, tmp / "model.onnx", cfg.opset, props)
            parity["onnx"] = check_onnx(tmp / "model.onnx", reference, cfg.atol)
            log(f"onnx: opset {cfg.opset}, max abs diff {parity['onnx'].max_abs_diff:.2e} "
                f"({time.perf_counter() - t:.1f} s)")
        if cfg.format in ("savedmodel", "all"):
            t = time.perf_counter()
            write_savedmodel(model, tmp / "savedmodel" / "1")
            parity["savedmodel"] = check_savedmodel(tmp / "savedmodel" / "1", reference, cfg.atol)
            log(f"savedmodel: max abs diff {parity['savedmodel'].max_abs_diff:.2e} "
                f"({time.perf_counter() - t:.1f} s)")
        failed = {name: p for name, p in parity.items() if not p.passed}
        if failed:
            log(worst_cases_table(failed, reference), err=True)
            raise GateError("parity failed: " + "; ".join(
                f"{name} max abs diff {p.max_abs_diff:.3g} (atol {p.atol:g}), {p.argmax_flips} argmax "
                f"differ" for name, p in failed.items()) + f"; nothing published, {out} left as it was")
        if cfg.quantize:
            t = time.perf_counter()
            int8 = write_int8(tmp, config, data, reference, props)
            log(f"int8: quantized and measured ({time.perf_counter() - t:.1f} s)")
        manifest = make_manifest(cfg, tmp, config, metrics, run_dir, parity, int8, calibration)
        manifest["export_seconds"] = round(time.perf_counter() - start, 2)
        write_json(tmp / "manifest.json", manifest)
        publish(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out, manifest


# --- atomic publish ---------------------------------------------------------------------------------------

def make_temp_dir(out):
    """A fresh temp dir beside `out` (same filesystem, so rename is atomic); also the writability check."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        recover(out)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-{os.getpid()}-", dir=out.parent))
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)  # mkdtemp makes it private; the published export is an ordinary folder
        return tmp
    except OSError as e:
        raise JobError(f"--out {out}: not writable ({e.strerror or e})") from None


def recover(out):
    """Undo what a killed export left: remove dead exports' temp dirs, restore a backup caught mid-swap."""
    for path in sorted(out.parent.glob(f".{out.name}.*-*")):
        kind, _, rest = path.name[len(out.name) + 2:].partition("-")
        pid = rest.split("-")[0]
        if kind not in ("tmp", "old") or not pid.isdigit() or alive(int(pid)):
            continue
        if kind == "old" and not out.exists():
            os.rename(path, out)  # killed between the two renames of publish(): the old export comes back
        else:
            shutil.rmtree(path, ignore_errors=True)


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def publish(tmp, out):
    """Swap tmp into place. Between the two renames `out` is briefly absent; a kill in exactly that window
    leaves the previous export at .<name>.old-<pid>, and the next export renames it back (recover)."""
    backup = out.with_name(f".{out.name}.old-{os.getpid()}")
    if out.exists():
        os.rename(out, backup)
    os.rename(tmp, out)
    shutil.rmtree(backup, ignore_errors=True)


# --- reference set and parity -----------------------------------------------------------------------------

def reference_inputs(x_test, y_test, seed=0):
    """1,000 test images, then the edge cases: all-zero, all-255 and two random-noise images."""
    n = min(PARITY_TEST_IMAGES, len(x_test))
    noise = np.random.default_rng(seed).uniform(0, 255, size=(2, 28, 28))
    inputs = np.concatenate([x_test[:n].astype(np.float32), np.zeros((1, 28, 28)), np.full((1, 28, 28), 255.0),
                             noise]).astype(np.float32)
    kinds = np.array(["test"] * n + ["zeros", "full255", "noise", "noise"])
    labels = np.concatenate([y_test[:n].astype(np.int64), np.full(4, -1, np.int64)])
    return inputs, kinds, labels


def write_reference(model, data, path):
    inputs, kinds, labels = reference_inputs(data.x_test, data.y_test)
    probabilities = np.asarray(model(inputs, training=False), dtype=np.float32)
    np.savez(path, inputs=inputs, probabilities=probabilities, kinds=kinds, labels=labels)
    return {"inputs": inputs, "probabilities": probabilities, "kinds": kinds, "labels": labels}


def compare(run, reference, atol):
    """Run the inputs as one batch and every edge case again as a batch of one (other kernels run there)."""
    inputs, expected, kinds = reference["inputs"], reference["probabilities"], reference["kinds"]
    got = np.asarray(run(inputs))
    row_diff = np.abs(got - expected).max(axis=1)
    for row in np.flatnonzero(kinds != "test"):
        single = np.asarray(run(inputs[row:row + 1]))
        row_diff[row] = max(row_diff[row], float(np.abs(single - expected[row]).max()))
    # A near-tie (e.g. the all-zero image) may flip its argmax within atol; that says nothing about the
    # model, so a flip counts only where Keras's own top-2 margin is wider than any in-tolerance change.
    top2 = np.sort(expected, axis=1)[:, -2:]
    flips = int(((got.argmax(axis=1) != expected.argmax(axis=1)) & (top2[:, 1] - top2[:, 0] > 2 * atol)).sum())
    test = kinds == "test"
    agreement = float((got[test].argmax(axis=1) == expected[test].argmax(axis=1)).mean()) if test.any() else 1.0
    diff = float(row_diff.max())
    return Parity(diff, agreement, flips, atol, diff <= atol and flips == 0, row_diff, got.argmax(axis=1))


def ort_runner(path):
    """The edge predictor's own onnxruntime session: the gate runs the model exactly as the edge will."""
    from mnist_predict.predictor import Predictor, UsageError

    try:
        return Predictor(path)
    except UsageError as e:
        raise GateError(f"{Path(path).name} breaks the model contract (docs/artifacts.md): {e}") from None


def check_onnx_file(path):
    import onnx

    model = onnx.load(str(path))
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as e:
        raise GateError(f"{path.name} fails onnx.checker: {str(e).splitlines()[0]}") from None
    random_ops = sorted({n.op_type for n in model.graph.node if n.op_type in RANDOM_OPS})
    if random_ops:
        raise GateError(f"{path.name} contains training-time ops {random_ops}; augmentation must stay out")


def check_onnx(path, reference, atol):
    check_onnx_file(path)
    return compare(ort_runner(path).run, reference, atol)


def check_savedmodel(path, reference, atol):
    """Reload the SavedModel as TF Serving would (signature, not Keras) and compare."""
    import tensorflow as tf

    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    return compare(lambda x: serve(image=tf.constant(x))["probabilities"].numpy(), reference, atol)


def worst_cases_table(failed, reference, rows=8):
    from rich.console import Console
    from rich.table import Table

    table = Table(title="parity failed: worst cases (Keras vs exported model)")
    for column in ("format", "row", "kind", "label", "keras argmax", "export argmax", "max abs diff"):
        table.add_column(column, justify="left" if column in ("format", "kind") else "right")
    for name, p in failed.items():
        for row in np.argsort(-p.row_diff)[:rows]:
            table.add_row(name, str(row), str(reference["kinds"][row]), str(reference["labels"][row]),
                          str(reference["probabilities"][row].argmax()), str(p.predicted[row]),
                          f"{p.row_diff[row]:.3g}")
    console = Console(stderr=True, width=100)
    with console.capture() as capture:
        console.print(table)
    return capture.get()


# --- converters -------------------------------------------------------------------------------------------

def quiet_converters():
    # tf2onnx and TF's deprecation notices would bury the export's own report.
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    for name in ("tf2onnx", "onnxruntime"):
        logging.getLogger(name).setLevel(logging.ERROR)


def serving_function(model):
    import tensorflow as tf

    spec = tf.TensorSpec((None, 28, 28), tf.float32, name="image")
    # training=False: Dropout is an identity and BatchNormalization uses its moving statistics.
    return tf.function(lambda image: {"probabilities": model(image, training=False)}, input_signature=[spec])


def write_onnx(model, path, opset, props):
    """tf2onnx on a frozen graph, with the I/O names of the contract and a dynamic batch dimension."""
    import onnx
    import tf2onnx
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    # Freezing first matters: from_function would turn the constants captured by Normalization
    # (mean, variance) into extra graph inputs. from_keras fails on Keras 3 (KeyError keras_tensor_N).
    frozen = convert_variables_to_constants_v2(serving_function(model).get_concrete_function())
    source, sink = frozen.inputs[0].name, frozen.outputs[0].name
    proto, _ = tf2onnx.convert.from_graph_def(
        frozen.graph.as_graph_def(), name=model.name, input_names=[source], output_names=[sink], opset=opset,
        tensors_to_rename={source: "image", sink: "probabilities"})
    for value in (*proto.graph.input, *proto.graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    onnx.helper.set_model_props(proto, props)
    onnx.save(proto, str(path))


def write_savedmodel(model, path):
    import keras
    import tensorflow as tf

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", lambda image: {"probabilities": model(image, training=False)},
                         input_signature=[tf.TensorSpec((None, 28, 28), tf.float32, name="image")])
    archive.write_out(str(path), verbose=False)


def metadata(config, metrics, run_dir, calibration=None):
    props = {"labels": json.dumps(config["labels"]), "input_description": INPUT_DESCRIPTION,
             "model": config["model"], "test_accuracy": str(metrics.get("test_accuracy")),
             "versions": json.dumps(converter_versions()), "source_run": str(run_dir)}
    if calibration:
        props["temperature"] = str(calibration["temperature"])
    return props


def converter_versions():
    import keras
    import onnx
    import onnxruntime
    import tensorflow as tf
    import tf2onnx

    return {"tensorflow": tf.__version__, "keras": keras.__version__, "tf2onnx": tf2onnx.__version__,
            "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__, "numpy": np.__version__}


# --- int8 -------------------------------------------------------------------------------------------------

def validation_split(config, data):
    """The run's own validation images and labels (same val_split and seed as training)."""
    from job.data import split_validation

    _, _, x_val, y_val = split_validation(data.x_train, data.y_train, config.get("val_split", 0.1),
                                          config.get("seed", 42))
    return x_val, y_val


def calibration_images(config, data, n=CALIBRATION_IMAGES):
    """The first n images of the run's own training split (same val_split and seed): never test images."""
    from job.data import split_validation

    x_train, _, _, _ = split_validation(data.x_train, data.y_train, config.get("val_split", 0.1),
                                        config.get("seed", 42))
    images = x_train[:n].astype(np.float32)
    source = (f"training split of {config['dataset']} (val_split {config.get('val_split', 0.1)}, "
              f"seed {config.get('seed', 42)}), first {len(images)} images")
    return images, source


# Chosen by measurement on Fashion-MNIST models (numbers in issue 3's closing note). reduce_range (7-bit
# weights): on CPUs without VNNI, onnxruntime's u8s8 kernels sum pairs of products in int16, which
# saturates with full 8-bit weights; that cost cnn-bn-aug 3.9 pp and mnist-convnet 3.2 pp of accuracy,
# 7-bit weights cost under 0.1 pp. The input scaling (Sub/Mul) and the Softmax stay float: int8 there costs
# accuracy and saves no time. Keeping the single-channel first conv float (slow as int8) does not pay:
# onnxruntime moves its QuantizeLinear above the MaxPool, which then runs as a slower uint8 pool.
QUANTIZATION = {"format": "QDQ", "per_channel": True, "activation_type": "QUInt8", "weight_type": "QInt8",
                "reduce_range": True, "calibration_method": "MinMax",
                # MaxPool stays float: onnxruntime's uint8 MaxPool took over half the int8 CNN's time here,
                # and leaving it out measured 1.64x fp32 instead of 1.38x (one thread, same accuracy).
                "op_types_to_quantize": ["Conv", "MatMul", "Gemm", "Relu", "Add", "GlobalAveragePool", "Reshape"]}


def quantize_int8(fp32_path, int8_path, images, **overrides):
    """Static QDQ quantization, per-channel int8 weights, activations calibrated on the given images."""
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self, batches):
            self.batches = iter(batches)

        def get_next(self):
            return next(self.batches, None)

    q = {**QUANTIZATION, **overrides}
    prepared = int8_path.with_name(int8_path.stem + ".prepared.onnx")
    # Shape inference and graph clean-up first, as onnxruntime advises; symbolic shapes (sympy) are not
    # needed with a fixed 28x28 input.
    quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
    batches = [{"image": images[i:i + 32]} for i in range(0, len(images), 32)]
    try:
        quantize_static(str(prepared), str(int8_path), Reader(batches), quant_format=QuantFormat[q["format"]],
                        per_channel=q["per_channel"], activation_type=QuantType[q["activation_type"]],
                        weight_type=QuantType[q["weight_type"]], reduce_range=q["reduce_range"],
                        calibrate_method=CalibrationMethod[q["calibration_method"]],
                        op_types_to_quantize=q["op_types_to_quantize"])
    finally:
        prepared.unlink(missing_ok=True)
    return q


def write_int8(tmp, config, data, reference, props):
    import onnx

    images, source = calibration_images(config, data)
    fp32_path, int8_path = tmp / "model.onnx", tmp / "model.int8.onnx"
    quantization = quantize_int8(fp32_path, int8_path, images)
    model = onnx.load(str(int8_path))
    onnx.helper.set_model_props(model, props)
    onnx.save(model, str(int8_path))
    check_onnx_file(int8_path)

    fp32, int8 = ort_runner(fp32_path), ort_runner(int8_path)
    x_test = data.x_test.astype(np.float32)
    y_test = data.y_test.astype(np.int64)
    pred32, pred8 = fp32.predict(x_test).labels, int8.predict(x_test).labels
    acc32, acc8 = float((pred32 == y_test).mean()), float((pred8 == y_test).mean())
    speed32, speed8, speedup = throughput(fp32.run, int8.run, x_test)
    size32, size8 = fp32_path.stat().st_size, int8_path.stat().st_size
    parity = compare(int8.run, reference, atol=1.0)  # int8 is judged by agreement, not by atol
    report = {
        "file": int8_path.name, "test_images": len(y_test),
        "accuracy_fp32": round(acc32, 6), "accuracy_int8": round(acc8, 6),
        "accuracy_drop_pp": round(100 * (acc32 - acc8), 3),
        "argmax_agreement_vs_fp32": round(float((pred32 == pred8).mean()), 6),
        "argmax_agreement_vs_keras": parity.argmax_agreement,
        "max_abs_diff_vs_keras": round(parity.max_abs_diff, 6),
        "size_fp32": size32, "size_int8": size8, "size_ratio": round(size8 / size32, 3),
        "throughput_fp32": round(speed32, 1), "throughput_int8": round(speed8, 1),
        "speedup": round(speedup, 3), "batch": BENCH_BATCH, "repeats": BENCH_REPEATS,
        "threads": fp32.session.get_session_options().intra_op_num_threads,
        "calibration": {"source": source, "split": "train", "images": len(images)},
        "quantization": quantization,
    }
    return report


def throughput(run_a, run_b, x, batch=BENCH_BATCH, repeats=BENCH_REPEATS):
    """Images/s of two models at one batch size, and b's speedup over a.

    Timed alternately, and the speedup is the median of the paired ratios, so that load from other
    processes, which comes and goes, falls on both models alike.
    """
    batch_x = np.resize(x, (batch, 28, 28)).astype(np.float32)
    for _ in range(2):  # warm-up: first runs allocate and pick kernels
        run_a(batch_x), run_b(batch_x)
    times = np.zeros((repeats, 2))
    for i in range(repeats):
        for j, run in enumerate((run_a, run_b)):
            t = time.perf_counter()
            run(batch_x)
            times[i, j] = time.perf_counter() - t
    speed_a, speed_b = batch / np.median(times, axis=0)
    return float(speed_a), float(speed_b), float(np.median(times[:, 0] / times[:, 1]))


# --- manifest and report ----------------------------------------------------------------------------------

def make_manifest(cfg, tmp, config, metrics, run_dir, parity, int8, calibration=None):
    from mnist_predict.predictor import sha256

    files = {p.relative_to(tmp).as_posix(): {"sha256": sha256(p), "size": p.stat().st_size}
             for p in sorted(tmp.rglob("*")) if p.is_file() and p.name != "manifest.json"}
    parity_summary = {name: p.summary() for name, p in parity.items()}
    if int8:
        parity_summary["int8"] = {"argmax_agreement": int8["argmax_agreement_vs_keras"],
                                  "max_abs_diff": int8["max_abs_diff_vs_keras"], "gated": False}
    return {
        "files": files, "input": INPUT_SPEC, "output": {**OUTPUT_SPEC, "shape": [None, len(config["labels"])]},
        "labels": config["labels"], "opset": cfg.opset if cfg.format != "savedmodel" else None,
        "format": cfg.format, "model": config["model"], "source_run": str(run_dir),
        "dataset": config["dataset"], "versions": converter_versions(),
        "metrics": {k: metrics.get(k) for k in ("test_accuracy", "test_loss", "val_accuracy", "epochs_run")},
        "parity": parity_summary, "int8": int8, "calibration": calibration,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": cfg.command or shlex.join(["mnist-job", *sys.argv[1:]]),
    }


def print_report(out, manifest):
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"parity against Keras ({manifest['model']})")
    for column in ("format", "max abs diff", "argmax agreement", "atol", "result"):
        table.add_column(column, justify="left" if column == "format" else "right")
    for name, p in manifest["parity"].items():
        gated = p.get("gated", True)
        table.add_row(name, f"{p['max_abs_diff']:.2e}", f"{p['argmax_agreement']:.4f}",
                      f"{p['atol']:g}" if gated else "-",
                      ("pass" if p["passed"] else "FAIL") if gated else "recorded")
    console.print(table)
    int8 = manifest.get("int8")
    if int8:
        table = Table(title=f"int8 against fp32: {int8['test_images']} test images, images/s at batch "
                            f"{int8['batch']} ({int8['threads']} threads)")
        for column in ("", "fp32", "int8", "change"):
            table.add_column(column, justify="left" if not column else "right")
        table.add_row("accuracy", f"{int8['accuracy_fp32']:.4f}", f"{int8['accuracy_int8']:.4f}",
                      f"{-int8['accuracy_drop_pp']:+.2f} pp")
        table.add_row("size (bytes)", f"{int8['size_fp32']:,}", f"{int8['size_int8']:,}", f"{int8['size_ratio']:.2f}x")
        table.add_row("images/s", f"{int8['throughput_fp32']:,.0f}", f"{int8['throughput_int8']:,.0f}",
                      f"{int8['speedup']:.2f}x")
        console.print(table)
        console.print(f"int8 argmax agreement with fp32: {int8['argmax_agreement_vs_fp32']:.4f}")
    calibration = manifest.get("calibration")
    if calibration:
        test = calibration["test"]
        console.print(f"calibrated: temperature {calibration['temperature']:.3f}, expected calibration error on the "
                      f"test set {test['ece_before']:.2%} -> {test['ece_after']:.2%}")
    console.print(f"exported to {out} in {manifest['export_seconds']:.1f} s")
