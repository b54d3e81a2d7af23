"""Publish an export atomically: build it in a temporary directory beside the target, rename it into place.

A failed, killed or interrupted export leaves the previous export as it was. Two exports of the same run at
once: the second refuses with one line (an flock on the run directory, held for as long as the export runs).
"""

import fcntl
import os
from contextlib import contextmanager

from mnist_predict.files import temp_dir_beside

from job.errors import JobError


@contextmanager
def exclusive(run_dir):
    """Hold an flock on the run directory itself for the whole export: a second export of the same run
    refuses at once. The lock lives on the open directory, so it leaves no file behind and dies with the
    process, however it ends."""
    descriptor = os.open(run_dir, os.O_RDONLY)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise JobError(f"{run_dir}: another export of this run is running; wait for it to finish") from None
        yield
    finally:
        os.close(descriptor)


def make_temp_dir(out):
    """A fresh temp dir beside `out` (mnist_predict.files.temp_dir_beside); also the writability check."""
    try:
        return temp_dir_beside(out)
    except OSError as e:
        raise JobError(f"--out {out}: not writable ({e.strerror or e})") from None
