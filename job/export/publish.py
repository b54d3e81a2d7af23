"""Publish an export atomically: build it in a temporary directory beside the target, rename it into place.

A failed, killed or interrupted export leaves the previous export as it was. Two exports of the same run at
once: the second refuses with one line (an flock on the run directory, held for as long as the export runs).
"""

import fcntl
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

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
