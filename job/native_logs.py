"""Keep TensorFlow's and LiteRT's C++ log lines out of the way of mnist-job's own messages.

TensorFlow 2.21 logs through absl before absl's logging is initialized, so TF_CPP_MIN_LOG_LEVEL does not
reach "WARNING: All log messages before absl::InitializeLog() ...", the oneDNN notice or tf.data's
"NodeDef mentions attribute" errors: every mnist-job error used to arrive under four lines of them.

`filter_native_logs()` points file descriptor 2, where C++ writes, at a pipe; a thread drops the lines that
match those log formats and passes everything else (a real crash report, an F-level check failure) through.
Python's own sys.stderr writes straight to the terminal, as before. MNIST_JOB_NATIVE_LOGS=1 keeps every line.

    from job.native_logs import filter_native_logs
    filter_native_logs()      # first thing in main()
"""

import os
import re
import sys
import threading

DROPPED = re.compile(
    rb"^(WARNING: All log messages before absl::InitializeLog\(\)"  # absl, before its logging starts
    rb"|[IWE]\d{4} [\d:.]+ +\d+ [\w./-]+:\d+\] "  # absl/glog INFO, WARNING, ERROR (F, fatal, passes)
    rb"|INFO: Created TensorFlow Lite \w+ delegate"  # LiteRT's interpreter, on every start
    rb"|fully_quantize: \d, inference_type: )"  # the TFLite converter's calibration notice
)
ENVIRONMENT = "MNIST_JOB_NATIVE_LOGS"


def filter_native_logs():
    """Filter C++ log lines out of stderr for the rest of the process (not when ENVIRONMENT is set)."""
    if os.environ.get(ENVIRONMENT) or not _writes_to_fd_2(sys.stderr):
        return  # asked not to, or stderr is already captured (pytest's capsys, a redirect in Python)
    terminal = os.dup(2)
    sys.stderr.flush()
    sys.stderr = os.fdopen(os.dup(terminal), "w", buffering=1, encoding=sys.stderr.encoding, errors="replace")
    read, write = os.pipe()
    os.dup2(write, 2)
    os.close(write)
    threading.Thread(target=_forward, args=(read, terminal), daemon=True, name="native-logs").start()


def _writes_to_fd_2(stream):
    try:
        return stream.fileno() == 2
    except (AttributeError, OSError, ValueError):
        return False


def _forward(read, terminal):
    with os.fdopen(read, "rb") as pipe:
        for line in pipe:
            if not DROPPED.match(line):
                os.write(terminal, line)
