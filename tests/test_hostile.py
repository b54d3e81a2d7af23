"""Untrusted models, a full disk, and stderr kept clean: each failure is one line, and leaves nothing behind.

The protections of onnxruntime (external data confined to the model's folder) and of Keras (safe mode
refuses Python lambdas) hold today; these tests keep a version bump from dropping them silently.
"""

import hashlib
import json
import os
import resource
import signal
import subprocess
import sys

import numpy as np
import onnx
import pytest
from conftest import BIN
from onnx import TensorProto, helper, numpy_helper
from predict_fixtures import digit_folder, export_dir, glyphs, model_path, template_weights  # noqa: F401


def run(tool, *args, file_limit=None, env=None):
    def limits():
        if file_limit:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails instead of killing
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_limit, file_limit))

    return subprocess.run([str(BIN / tool), *map(str, args)], capture_output=True, text=True, timeout=600,
                          preexec_fn=limits, env=env)


def one_line(result, code):
    lines = result.stderr.strip().splitlines()
    assert result.returncode == code, result.stderr[-2000:]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    return lines[0]


def test_onnx_external_data_outside_the_model_folder_is_refused(tmp_path, glyphs, digit_folder):
    weights, bias = template_weights(glyphs)
    tensor = numpy_helper.from_array(weights.astype(np.float32), "weights")
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "../../../etc/passwd"), ("offset", "0"), ("length", str(784 * 10 * 4))):
        tensor.external_data.add(key=key, value=value)
    nodes = [helper.make_node("Reshape", ["image", "shape"], ["flat"]),
             helper.make_node("MatMul", ["flat", "weights"], ["logits"]),
             helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1)]
    graph = helper.make_graph(nodes, "escape", [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 28, 28])],
                              [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 10])],
                              [numpy_helper.from_array(np.array([-1, 784], np.int64), "shape"), tensor])
    (tmp_path / "models").mkdir()
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9),
              tmp_path / "models" / "model.onnx")
    line = one_line(run("mnist-predict", digit_folder, "--model", tmp_path / "models" / "model.onnx"), 2)
    assert "is not a loadable ONNX model" in line and "escapes model directory" in line
    assert line.endswith(".")  # cut at the end of a sentence, not in the middle of one


@pytest.mark.slow
def test_a_keras_file_with_a_python_lambda_is_refused(tmp_path, npz_path):
    import keras

    from job.train.training import TrainConfig, train

    run_dir, _ = train(TrainConfig(model="dense-128", dataset="mnist", data=str(npz_path), epochs=1,
                                   max_train_samples=100, out=str(tmp_path / "run"), verbose=0))
    inputs = keras.Input((28, 28), name="image")
    hidden = keras.layers.Lambda(lambda x: x / 255.0)(inputs)  # could as well run os.system
    outputs = keras.layers.Dense(10, activation="softmax", name="probabilities")(keras.layers.Flatten()(hidden))
    keras.Model(inputs, outputs).save(run_dir / "model.keras")
    line = one_line(run("mnist-job", "export", run_dir), 2)
    assert "cannot load Keras model" in line and "Lambda" in line and "arbitrary code" in line
    assert line.endswith(".") and not (run_dir / "export").exists()


def test_an_oversized_model_is_refused_before_loading(model_path, digit_folder):
    line = one_line(run("mnist-predict", digit_folder, "--model", model_path, "--max-model-mb", "0.01"), 2)
    assert "over the 0.01 MB limit" in line


def test_check_pins_a_known_export_by_its_manifest(export_dir):
    pinned = hashlib.sha256((export_dir / "manifest.json").read_bytes()).hexdigest()
    assert run("mnist-predict", "check", "--model", export_dir / "model.onnx", "--manifest-sha256", pinned).returncode == 0
    line = one_line(run("mnist-predict", "check", "--model", export_dir / "model.onnx", "--manifest-sha256", "ab" * 32), 2)
    assert "is not the pinned export" in line


def test_a_full_disk_while_predicting_leaves_no_partial_output(tmp_path, digit_folder, model_path):
    out = tmp_path / "out" / "p.csv"
    line = one_line(run("mnist-predict", digit_folder, "--model", model_path, "--out", out, file_limit=2000), 1)
    assert line == f"error: cannot write {out}: File too large"
    assert not list((tmp_path / "out").iterdir())


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, npz_path):
    from job.train.training import TrainConfig, train

    run_dir, _ = train(TrainConfig(model="dense-128", dataset="mnist", data=str(npz_path), epochs=2,
                                   max_train_samples=600, out=str(tmp_path_factory.mktemp("r") / "run"), verbose=0))
    return run_dir


@pytest.mark.slow
def test_a_full_disk_while_exporting_publishes_nothing(finished_run):
    line = one_line(run("mnist-job", "export", finished_run, file_limit=500_000), 1)
    assert line.startswith("mnist-job: error: cannot write the export (File too large); nothing published")
    assert not [p.name for p in finished_run.iterdir() if "export" in p.name]


@pytest.mark.slow
def test_tensorflow_start_up_lines_stay_out_of_an_error(finished_run, tmp_path):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text(json.dumps({"model": "dense-128"}))
    (tmp_path / "bad" / "metrics.json").write_text("{}")
    (tmp_path / "bad" / "model.keras").write_bytes((finished_run / "model.keras").read_bytes()[:5000])
    line = one_line(run("mnist-job", "export", tmp_path / "bad"), 2)  # TensorFlow is imported by then
    assert "corrupt, not a complete .keras" in line


@pytest.mark.parametrize("keep", [False, True])
def test_the_filter_drops_native_log_lines_written_to_fd_2_unless_asked_to_keep_them(keep):
    # Whether TensorFlow logs at start-up depends on the CPU and the build (a CI machine printed none),
    # so the filter is driven with lines written the way C++ writes them: straight to file descriptor 2.
    # Closing fd 2 ends the filter's pipe; joining its thread then waits for every line, with no sleep.
    code = ("from job.native_logs import filter_native_logs; filter_native_logs(); import os, sys, threading\n"
            "os.write(2, b'I0000 00:00:1795459018.812972   15007 port.cc:153] oneDNN custom operations are on.\\n')\n"
            "os.write(2, b'a crash report\\n'); print('python stderr', file=sys.stderr); os.close(2)\n"
            "[t.join() for t in threading.enumerate() if t.name == 'native-logs']")
    env = {k: v for k, v in os.environ.items() if k != "MNIST_JOB_NATIVE_LOGS"}
    if keep:
        env["MNIST_JOB_NATIVE_LOGS"] = "1"
    lines = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                           timeout=60).stderr.splitlines()
    assert "a crash report" in lines and "python stderr" in lines
    assert any("oneDNN custom operations" in line for line in lines) == keep


def test_the_filter_drops_only_log_lines():
    from job.native_logs import DROPPED

    for line in (b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n",
                 b"I0000 00:00:1795459018.812972   15007 port.cc:153] oneDNN custom operations are on.\n",
                 b"E0000 00:00:1795454516.427122   10517 node_def_util.cc:682] NodeDef mentions attribute\n",
                 b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n"):
        assert DROPPED.match(line), line
    for line in (b"mnist-job: error: something\n", b"F0000 00:00:1.0 1 check.cc:1] Check failed: x\n",
                 b"Segmentation fault\n", b"Traceback (most recent call last):\n"):
        assert not DROPPED.match(line), line
    assert sys.stderr  # the test process itself is untouched
