"""Ctrl-C at a step boundary, for work that runs inside libraries that do not expect it.

A KeyboardInterrupt raised in the middle of TensorFlow, tf2onnx or a converter can be swallowed (a bare
`except:`, and the export went on to publish), turned into a traceback, or lost. Inside `deferred()`, the
first Ctrl-C only sets a flag and says so; the work calls `check()` between its steps, which raises
KeyboardInterrupt there, where the caller's clean-up and message are sure to run. A second Ctrl-C raises at
once.

    with deferred() as interrupt:
        step_one()
        interrupt.check()
        step_two()
"""

import signal
import sys
import threading
from contextlib import contextmanager


class Interruption:
    def __init__(self):
        self.pending = False

    def check(self):
        if self.pending:
            raise KeyboardInterrupt


@contextmanager
def deferred(notice="stopping after the current step (Ctrl-C again to stop at once)"):
    state = Interruption()
    if threading.current_thread() is not threading.main_thread():  # only the main thread gets signals
        yield state
        return

    def handler(signum, frame):
        if state.pending:
            raise KeyboardInterrupt
        state.pending = True
        print(f"interrupted: {notice}", file=sys.stderr, flush=True)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield state
    finally:
        signal.signal(signal.SIGINT, previous)
