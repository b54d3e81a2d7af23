"""Regenerate the three lock files from the loose ranges in pyproject.toml: `make lock` runs this.

    requirements/cpu.lock       the .venv of `make demo` and `make test`: the project with [cpu,test]
    requirements/gpu.lock       Dockerfile.gpu: the project without TensorFlow, resolved together with
                                tensorflow==2.21.0 so that every version is one TensorFlow accepts, then
                                without TensorFlow's own dependency tree, which the base image provides
    deploy/requirements.lock    deploy/Dockerfile and `pip install ./deploy`: the predictor with [litert]

uv resolves (`uv pip compile --generate-hashes`: one run takes a second, where pip-compile takes minutes on
TensorFlow's tree) and plain pip installs, with `--require-hashes`, so installing needs no uv. Each lock
starts with the sha256 of the dependency lists it was made from; tests/test_locks.py fails when
pyproject.toml changes and the locks do not.

    .venv/bin/python requirements/lock.py        # needs the uv package (make lock installs it)
"""

import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLATFORM = ["--python-version", "3.11", "--python-platform", "x86_64-manylinux_2_28"]
TENSORFLOW = "tensorflow==2.21.0"  # the GPU base image's, tensorflow/tensorflow:2.21.0-gpu
# uv ignores upper bounds on Requires-Python, and pip obeys them: pin below the releases that exclude 3.11.
CONSTRAINTS = ["backports-strenum<1.3  # 1.3.1 declares Requires-Python <3.11 (ai-edge-litert needs it)"]
LOCKS = {  # lock file: (pyproject.toml, extras)
    "requirements/cpu.lock": ("pyproject.toml", ["cpu", "test"]),
    "requirements/gpu.lock": ("pyproject.toml", []),
    "deploy/requirements.lock": ("deploy/pyproject.toml", ["litert"]),
}


def inputs_digest(pyproject, extras):
    """sha256 of what a lock is made from: the dependencies and the extras it takes."""
    project = tomllib.loads((ROOT / pyproject).read_text())["project"]
    chosen = {"dependencies": project.get("dependencies", []),
              "extras": {name: project.get("optional-dependencies", {}).get(name, []) for name in extras}}
    return hashlib.sha256(json.dumps(chosen, sort_keys=True).encode()).hexdigest()


def compile_lock(sources, extras=(), extra_requirements=(), previous=None):
    """`uv pip compile` of the sources (plus extra requirement lines), with hashes: the lock's text. The pins of
    `previous` (a lock file) are kept where they still fit, as uv keeps those of an existing output file: adding
    a test tool does not move TensorFlow's dependencies (UPGRADE=1 in the environment re-resolves them all)."""
    with tempfile.NamedTemporaryFile("w", suffix=".in", delete=False) as extra, \
            tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as constraints, \
            tempfile.NamedTemporaryFile("w", suffix=".lock", delete=False) as output:
        extra.write("\n".join(extra_requirements) + "\n")
        constraints.write("\n".join(CONSTRAINTS) + "\n")
        if previous and (ROOT / previous).is_file() and not os.environ.get("UPGRADE"):
            output.write((ROOT / previous).read_text())
    command = [str(Path(sys.executable).parent / "uv"), "pip", "compile", *sources, extra.name, *PLATFORM,
               "--constraint", constraints.name, "--generate-hashes", "--no-header", "--quiet",
               "--output-file", output.name, *[f"--extra={e}" for e in extras]]
    try:
        subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True)
        return Path(output.name).read_text()
    finally:
        for name in (extra.name, constraints.name, output.name):
            Path(name).unlink(missing_ok=True)


def blocks(text):
    """{package name: its block of lines} of a compiled lock."""
    out, name = {}, None
    for line in text.splitlines(keepends=True):
        match = re.match(r"^([A-Za-z0-9_.\-]+)==", line)
        if match:
            name = match.group(1).lower()
            out[name] = ""
        if name:
            out[name] += line
    return out


def header(lock, digest, note=""):
    return (f"# {lock}: made by `make lock` (requirements/lock.py), do not edit.\n"
            f"# inputs sha256: {digest}\n{note}")


def main():
    for lock, (pyproject, extras) in LOCKS.items():
        digest = inputs_digest(pyproject, extras)
        if lock == "requirements/gpu.lock":
            provided = blocks(compile_lock([], extra_requirements=[TENSORFLOW]))
            everything = blocks(compile_lock([pyproject], extra_requirements=[TENSORFLOW], previous=lock))
            kept = {name: block for name, block in everything.items() if name not in provided}
            note = (f"# resolved with {TENSORFLOW}; left to the base image, which provides them with TensorFlow:\n"
                    f"# provided: {' '.join(sorted(provided))}\n")
            text = "".join(kept[name] for name in sorted(kept))
        else:
            note, text = "", compile_lock([pyproject], extras, previous=lock)
        (ROOT / lock).write_text(header(lock, digest, note) + text)
        print(f"{lock}: {len(blocks(text))} packages")


if __name__ == "__main__":
    main()
