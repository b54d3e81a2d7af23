"""The gate every exported format passes before anything is published.

A format plugs in with a runner: a function from a float32 (N, 28, 28) batch to probabilities.
- fp32 formats: `parity(runner, reference, atol)` runs the reference set (parity.npz: 1,000 test images and
  edge cases) as one batch and each edge case again as a batch of one; max abs diff <= atol and no argmax
  flip against the Keras outputs recorded there.
- int8 formats: `quantized(...)` checks argmax agreement with Keras on the reference images and the test
  accuracy drop against the fp32 file, against INT8_GATE; a failure publishes nothing. The size ratio is
  checked too, but only warned about: a small model's int8 file carries fixed overhead (scales, zero points,
  the graph) and can stay above 0.3x while being perfectly right (mnist-convnet's: 34k weights, 0.34x).
"""

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from job.errors import GateError

PARITY_TEST_IMAGES = 1000
INT8_GATE = {"min_argmax_agreement": 0.99, "max_accuracy_drop_pp": 0.5, "max_size_ratio": 0.3}
BENCH_BATCH, BENCH_REPEATS = 256, 20


@dataclass
class GateResult:
    """One format's gate, whichever kind: "parity" (fp32: max abs diff <= atol and no argmax flip against the
    Keras outputs of parity.npz) or "int8" (argmax agreement with Keras and the accuracy drop against the fp32
    file, INT8_GATE; `details` holds the whole report, which the manifest keeps under "int8")."""
    kind: str
    passed: bool
    max_abs_diff: float
    argmax_agreement: float  # on the test rows, as the edge checker counts it
    argmax_flips: int = 0  # rows whose argmax differs where Keras's own top-2 margin exceeds 2*atol
    atol: float | None = None
    details: dict | None = None
    row_diff: np.ndarray | None = None  # per-row max abs diff, batch run and batch-of-one run together
    predicted: np.ndarray | None = None

    def summary(self):
        """What manifest.json's "parity" holds for the format."""
        if self.kind == "int8":
            return {"argmax_agreement": self.argmax_agreement, "max_abs_diff": self.max_abs_diff, "gated": "int8",
                    "passed": self.passed}
        return {"max_abs_diff": self.max_abs_diff, "argmax_agreement": self.argmax_agreement,
                "argmax_flips": self.argmax_flips, "atol": self.atol, "passed": self.passed}

    def line(self):
        """The export's report line for it (without the seconds)."""
        if self.kind == "int8":
            r = self.details
            return (f"accuracy {r['accuracy_fp32']:.4f} -> {r['accuracy_int8']:.4f}, size {r['size_ratio']:.2f}x, "
                    f"{'passed' if self.passed else 'FAILED'}")
        return f"max abs diff {self.max_abs_diff:.2e}"

    def failure(self, name):
        """Why it failed, in one clause (for an int8 gate that passed, its size warning)."""
        if self.kind == "int8":
            return int8_failure(name, self)
        return (f"{name} max abs diff {self.max_abs_diff:.3g} (atol {self.atol:g}), {self.argmax_flips} argmax "
                "differ")


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


def parity(run, reference, atol):
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
    return GateResult("parity", diff <= atol and flips == 0, diff, agreement, flips, atol, row_diff=row_diff,
                      predicted=got.argmax(axis=1))


def runner(fmt, path):
    """A batch -> probabilities function for a file of format `fmt` (mnist_predict.formats), through the
    runtime that serves it."""
    if fmt.runtime == "tensorflow":
        from job.export.formats import savedmodel

        return savedmodel.runner(path)
    return edge_runner(path).run


def edge_runner(path):
    """The edge predictor's own session (onnxruntime or LiteRT): the gate runs a file exactly as the edge will."""
    from mnist_predict.predictor import Predictor, UsageError

    try:
        return Predictor(path)
    except UsageError as e:
        raise GateError(f"{Path(path).name} breaks the model contract (docs/artifacts.md): {e}") from None


def quantized(fp32_path, int8_path, data, reference, extra=None):
    """The int8 file against its fp32 source: accuracy on the whole test set, size, speed, and argmax
    agreement with Keras. Returns the report, with `passed` and each criterion of INT8_GATE."""
    fp32, int8 = edge_runner(fp32_path), edge_runner(int8_path)
    x_test, y_test = data.x_test.astype(np.float32), data.y_test.astype(np.int64)
    pred32, pred8 = fp32.predict(x_test).labels, int8.predict(x_test).labels
    acc32, acc8 = float((pred32 == y_test).mean()), float((pred8 == y_test).mean())
    speed32, speed8, speedup = throughput(fp32.run, int8.run, x_test)
    size32, size8 = Path(fp32_path).stat().st_size, Path(int8_path).stat().st_size
    against_keras = parity(int8.run, reference, atol=1.0)  # int8 is judged by agreement, not by atol
    report = {
        "file": Path(int8_path).name, "test_images": len(y_test),
        "accuracy_fp32": round(acc32, 6), "accuracy_int8": round(acc8, 6),
        "accuracy_drop_pp": round(100 * (acc32 - acc8), 3),
        "argmax_agreement_vs_fp32": round(float((pred32 == pred8).mean()), 6),
        "argmax_agreement_vs_keras": against_keras.argmax_agreement,
        "max_abs_diff_vs_keras": round(against_keras.max_abs_diff, 6),
        "size_fp32": size32, "size_int8": size8, "size_ratio": round(size8 / size32, 3),
        "throughput_fp32": round(speed32, 1), "throughput_int8": round(speed8, 1),
        "speedup": round(speedup, 3), "batch": BENCH_BATCH, "repeats": BENCH_REPEATS,
        "threads": fp32.runtime.threads, "runtime": fp32.runtime.name, **(extra or {}),
    }
    report["gate"] = {"argmax_agreement": report["argmax_agreement_vs_keras"] >= INT8_GATE["min_argmax_agreement"],
                      "accuracy_drop": report["accuracy_drop_pp"] <= INT8_GATE["max_accuracy_drop_pp"],
                      "size_ratio": report["size_ratio"] <= INT8_GATE["max_size_ratio"]}
    report["passed"] = report["gate"]["argmax_agreement"] and report["gate"]["accuracy_drop"]
    return GateResult("int8", report["passed"], report["max_abs_diff_vs_keras"], report["argmax_agreement_vs_keras"],
                      details=report)


def int8_failure(name, result):
    """The one line a failed int8 gate (or, for a passed one, its size warning) gives."""
    report = result.details
    wrong = [f"argmax agreement {report['argmax_agreement_vs_keras']:.4f} < {INT8_GATE['min_argmax_agreement']}"
             if not report["gate"]["argmax_agreement"] else "",
             f"accuracy drop {report['accuracy_drop_pp']:.2f} pp > {INT8_GATE['max_accuracy_drop_pp']}"
             if not report["gate"]["accuracy_drop"] else "",
             f"size {report['size_ratio']:.2f}x > {INT8_GATE['max_size_ratio']}x" if not report["gate"]["size_ratio"] else ""]
    return f"{name}: " + ", ".join(w for w in wrong if w)


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
