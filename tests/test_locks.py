"""The lock files agree with pyproject.toml: made from its current dependency lists, pinning a version of
every requirement that its range accepts, every package hash-pinned. `make lock` regenerates them."""

import re
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "requirements"))

from lock import LOCKS, inputs_digest  # noqa: E402


def pins(text):
    return {m.group(1).lower().replace("_", "-"): m.group(2) for m in re.finditer(r"^([\w.\-]+)==([^\s\\]+)", text, re.M)}


def provided(text):
    line = re.search(r"^# provided: (.*)$", text, re.M)
    return set(line.group(1).split()) if line else set()


@pytest.mark.parametrize("lock", list(LOCKS))
def test_each_lock_is_made_from_the_current_pyproject(lock):
    pyproject, extras = LOCKS[lock]
    text = (ROOT / lock).read_text()
    recorded = re.search(r"^# inputs sha256: (\w+)$", text, re.M).group(1)
    assert recorded == inputs_digest(pyproject, extras), f"{pyproject} changed since {lock} was made: run make lock"


@pytest.mark.parametrize("lock", list(LOCKS))
def test_each_requirement_is_pinned_within_its_range_with_hashes(lock):
    pyproject, extras = LOCKS[lock]
    project = tomllib.loads((ROOT / pyproject).read_text())["project"]
    requirements = [Requirement(r) for r in project["dependencies"]]
    requirements += [Requirement(r) for extra in extras for r in project["optional-dependencies"][extra]]
    text = (ROOT / lock).read_text()
    pinned, base = pins(text), provided(text)
    for requirement in requirements:
        name = requirement.name.lower().replace("_", "-")
        if name in base:  # the GPU image's base provides it, with TensorFlow
            continue
        assert name in pinned, f"{lock} does not pin {name}"
        assert requirement.specifier.contains(pinned[name], prereleases=True), (lock, name, pinned[name])
    blocks = re.findall(r"^[\w.\-]+==.*?(?=^[\w.\-]+==|\Z)", text, re.M | re.S)
    assert len(blocks) == len(pinned) and all("--hash=sha256:" in block for block in blocks)


def test_every_package_on_disk_is_installed():
    """`pip install .` (the images) installs the packages pyproject.toml lists: a new subpackage left out of
    the list works in the editable dev install and is missing from the container."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {".".join(init.parent.relative_to(ROOT).parts) for init in (ROOT / "job").rglob("__init__.py")}
    assert on_disk and on_disk <= listed, sorted(on_disk - listed)
    deploy = tomllib.loads((ROOT / "deploy" / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    assert {".".join(i.parent.relative_to(ROOT / "deploy").parts) for i in (ROOT / "deploy").rglob("__init__.py")} \
        <= set(deploy)


def test_tensorflow_and_keras_are_pinned_once_and_every_other_place_follows():
    """pyproject.toml's cpu extra is the one pin; the GPU extra, the base image (Dockerfile.gpu, Makefile),
    the lock script and both locks name the same TensorFlow, and the extras the same Keras."""
    from lock import TENSORFLOW

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    cpu = {Requirement(r).name: str(Requirement(r).specifier) for r in extras["cpu"]}
    gpu = {Requirement(r).name: str(Requirement(r).specifier) for r in extras["gpu"]}
    tf = cpu["tensorflow-cpu"].removeprefix("==")
    assert re.fullmatch(r"\d+\.\d+\.\d+", tf), cpu
    assert gpu["tensorflow"] == f"=={tf}" and gpu["keras"] == cpu["keras"]
    image = f"tensorflow/tensorflow:{tf}-gpu"
    assert f"ARG TF_IMAGE={image}\n" in (ROOT / "Dockerfile.gpu").read_text()
    assert f"TF_IMAGE ?= {image}\n" in (ROOT / "Makefile").read_text()
    assert TENSORFLOW == f"tensorflow=={tf}"
    assert f"# resolved with tensorflow=={tf};" in (ROOT / "requirements/gpu.lock").read_text()
    locked = pins((ROOT / "requirements/cpu.lock").read_text())
    assert locked["tensorflow-cpu"] == tf and f"=={locked['keras']}" == cpu["keras"]
    from job.distributed.multiworker import (
        KERAS_PATCHED,  # the multi-worker patch names the Keras it was written for
    )

    assert locked["keras"].startswith(KERAS_PATCHED + ".")
