"""The small helpers every layer shares: atomic writes, file digests, the usable cores, one-line errors.

The lowest module of the project: it imports only the standard library, and `job/` uses it too, so that a
file is written, hashed and reported one way everywhere.

    with atomic_path("out/model.keras") as temporary:   # a temporary name beside the file, same suffix
        model.save(temporary)                            # renamed into place only if this block succeeds
"""

import hashlib
import os
import shutil
import tempfile
from contextlib import contextmanager, suppress
from pathlib import Path

MAX_MODEL_MB = 200  # a model file larger than this is refused before it is read (.keras, .onnx, .tflite)


@contextmanager
def atomic_path(path, mode=0o644):
    """Yield a temporary path beside `path` (same suffix, so writers that go by it still can); once the block
    ends without an error it is renamed to `path`, else removed. A kill leaves the old file or the new one,
    never half of one, and a hidden temporary at worst."""
    path = os.path.abspath(path)
    directory, name = os.path.split(path)
    os.makedirs(directory, exist_ok=True)
    stem, suffix = os.path.splitext(name)
    descriptor, temporary = tempfile.mkstemp(dir=directory, prefix=f".{stem}.tmp-", suffix=suffix)
    os.close(descriptor)
    try:
        yield temporary
        os.chmod(temporary, mode)  # mkstemp makes it private; what we write is meant to be shared
        os.replace(temporary, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


@contextmanager
def atomic_file(path, mode="w"):
    """Yield `path` open for writing (text, UTF-8, or binary with mode "wb"); it appears whole or not at all,
    synced to disk before the rename."""
    with atomic_path(path) as temporary:
        text = "b" not in mode
        with open(temporary, mode, **({"newline": "", "encoding": "utf-8"} if text else {})) as file:
            yield file
            file.flush()
            os.fsync(file.fileno())


def write_text(path, text):
    """Write a text file atomically."""
    with atomic_file(path) as file:
        file.write(text)


def temp_dir_beside(out):
    """A fresh hidden directory beside `out` (same filesystem, so that publish_directory's rename is atomic),
    after clearing what killed processes left there (recover). Raises OSError where `out` is not writable."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    recover(out)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-{os.getpid()}-", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp makes it private; what is published is an ordinary folder
    return tmp


def recover(out):
    """Undo what a killed publish left: remove dead processes' temp dirs, restore a folder caught mid-swap."""
    out = Path(out)
    for path in sorted(out.parent.glob(f".{out.name}.*-*")):
        kind, _, rest = path.name[len(out.name) + 2:].partition("-")
        pid = rest.split("-")[0]
        if kind not in ("tmp", "old") or not pid.isdigit() or _alive(int(pid)):
            continue
        if kind == "old" and not out.exists():
            os.rename(path, out)  # killed between the two renames of publish_directory: the old one comes back
        else:
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def publish_directory(tmp, out):
    """Swap the finished folder `tmp` into place at `out`. Between the two renames `out` is briefly absent; a
    kill in exactly that window leaves the previous folder at .<name>.old-<pid>, and the next temp_dir_beside
    renames it back (recover)."""
    out = Path(out)
    backup = out.with_name(f".{out.name}.old-{os.getpid()}")
    if out.exists():
        os.rename(out, backup)
    os.rename(tmp, out)
    shutil.rmtree(backup, ignore_errors=True)


def sha256(path):
    """The file's sha256, hex, read in blocks (a model may be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def usable_cpus():
    """The cores this process may use. In a container os.cpu_count() is the host's count; the affinity mask is
    what the process is allowed to run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def first_sentence(error, limit=300):
    """An error message on one line, cut after the last whole sentence that fits in `limit` characters (at
    least the first): never in the middle of one."""
    text = " ".join(str(error).split()) or type(error).__name__
    ends = [i + 1 for i, c in enumerate(text) if c in ".!?" and (i + 1 == len(text) or text[i + 1] == " ")]
    fitting = [end for end in ends if end <= limit]
    if fitting:
        return text[: fitting[-1]]
    return text[: ends[0]] if ends else text
