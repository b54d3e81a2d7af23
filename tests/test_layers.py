"""The layers of docs/architecture.md hold: each package imports only what the map allows."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ALLOWED = {  # package: the job packages it may import (mnist_predict is open to all of job)
    "job.data": {"job.data", "job.errors"},
    "job.distributed": {"job.distributed", "job.errors", "job.train.rundir"},
    "job.train": {"job.train", "job.data", "job.distributed", "job.errors", "job.interrupts"},
    "job.export": {"job.export", "job.train", "job.data", "job.review", "job.errors", "job.interrupts"},
    "job.review": {"job.review", "job.data", "job.errors"},
}


def imports(path):
    """Every module a file imports, at the top or inside a function."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def allowed(name, permitted):
    return any(name == p or name.startswith(p + ".") for p in permitted)


def test_each_job_package_imports_only_the_layers_below_it():
    wrong = []
    for package, permitted in ALLOWED.items():
        for path in sorted((ROOT / package.replace(".", "/")).rglob("*.py")):
            wrong += [f"{path.relative_to(ROOT)} imports {name}" for name in imports(path)
                      if name.startswith("job.") and not allowed(name, permitted)]
    assert not wrong, wrong


def test_the_edge_predictor_imports_no_job_and_no_tensorflow():
    wrong = [f"{path.relative_to(ROOT)} imports {name}" for path in sorted((ROOT / "deploy" / "mnist_predict").rglob("*.py"))
             for name in imports(path) if name.split(".")[0] in ("job", "tensorflow", "keras")]
    assert not wrong, wrong
