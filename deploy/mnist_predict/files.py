"""The small helpers every layer shares: atomic writes, file digests, the usable cores, one-line errors.

The lowest module of the project: it imports only the standard library, and `job/` uses it too, so that a
file is written, hashed and reported one way everywhere.

    with atomic_path("out/model.keras") as temporary:   # a temporary name beside the file, same suffix
        model.save(temporary)                            # renamed into place only if this block succeeds
"""

import hashlib
import os
import tempfile
from contextlib import contextmanager, suppress

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
    least the first): never in the middle of one. TensorFlow's errors carry theirs in `.message`."""
    text = " ".join(str(getattr(error, "message", None) or error).split()) or type(error).__name__
    ends = [i + 1 for i, c in enumerate(text) if c in ".!?" and (i + 1 == len(text) or text[i + 1] == " ")]
    fitting = [end for end in ends if end <= limit]
    if fitting:
        return text[: fitting[-1]]
    return text[: ends[0]] if ends else text
