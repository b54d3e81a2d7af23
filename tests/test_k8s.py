"""The Kubernetes manifests in deploy/k8s validate against the API schemas, offline.

kubernetes-validate bundles the OpenAPI-derived JSON schemas of every Kubernetes release it knows, so
this needs neither a cluster nor the network. Beyond the schemas, the tests pin the parts of the
manifests that the schemas cannot see: the GPU limit, the Indexed Job's shard arithmetic, and that
the `$(VAR)` references in args name variables the container declares (Kubernetes leaves unknown
ones unexpanded, silently).
"""

import re
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")
kv = pytest.importorskip("kubernetes_validate")

K8S = Path(__file__).resolve().parents[1] / "deploy" / "k8s"
MANIFESTS = ["train-job.yaml", "predict-indexed-job.yaml"]
# The oldest release the manifests target (backoffLimitPerIndex is on by default from 1.29) and the newest bundled.
VERSIONS = ["1.30.0", kv.latest_version()]


def load(name):
    return [doc for doc in yaml.safe_load_all((K8S / name).read_text()) if doc]


def by_kind(docs, kind):
    [doc] = [d for d in docs if d["kind"] == kind]
    return doc


def containers(job):
    spec = job["spec"]["template"]["spec"]
    return spec.get("initContainers", []) + spec["containers"]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name", MANIFESTS)
def test_manifest_validates_strictly(name, version):
    docs = load(name)
    assert {d["kind"] for d in docs} == {"Job", "PersistentVolumeClaim"}
    for doc in docs:
        kv.validate(doc, version, strict=True)


def test_validator_rejects_a_broken_manifest():
    job = by_kind(load("train-job.yaml"), "Job")
    job["spec"]["template"]["spec"]["restartPolicy"] = ["Never"]  # wrong type
    with pytest.raises(kv.ValidationError):
        kv.validate(job, kv.latest_version(), strict=True)
    job = by_kind(load("train-job.yaml"), "Job")
    job["spec"]["completionsMode"] = "Indexed"  # misspelt field: only strict mode sees it
    with pytest.raises(kv.ValidationError):
        kv.validate(job, kv.latest_version(), strict=True)


def test_train_job_uses_one_gpu_and_the_pvc():
    docs = load("train-job.yaml")
    pvc, job = by_kind(docs, "PersistentVolumeClaim"), by_kind(docs, "Job")
    spec = job["spec"]["template"]["spec"]
    assert spec["restartPolicy"] == "Never" and spec["securityContext"]["runAsNonRoot"] is True
    train = next(c for c in containers(job) if c["name"] == "train")
    assert train["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert train["args"][0] == "train" and "--out" in train["args"]
    export = next(c for c in containers(job) if c["name"] == "export")
    assert export["args"][:1] == ["export"] and export["args"][-2:] == ["--format", "all"]
    assert train["args"][train["args"].index("--out") + 1] == export["args"][1]
    [volume] = spec["volumes"]
    assert volume["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
    for c in containers(job):
        assert any(m["mountPath"] == "/runs" for m in c["volumeMounts"])


def test_predict_job_is_indexed_and_shards_match():
    job = by_kind(load("predict-indexed-job.yaml"), "Job")
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    n = spec["completions"]
    assert n >= 2 and spec["parallelism"] == n
    [c] = containers(job)
    args = c["args"]
    assert args[0] == "/data/images"
    assert args[args.index("--model") + 1] == "/models/model.onnx"
    assert args[args.index("--shard") + 1] == f"$(JOB_COMPLETION_INDEX)/{n}"
    assert args[args.index("--out") + 1] == "/out/predictions-$(JOB_COMPLETION_INDEX).csv"
    mounts = {m["mountPath"] for m in c["volumeMounts"]}
    assert {"/data", "/models", "/out"} <= mounts


@pytest.mark.parametrize("name", MANIFESTS)
def test_arg_references_are_declared(name):
    for c in containers(by_kind(load(name), "Job")):
        declared = {e["name"] for e in c.get("env", [])}
        used = {m for a in c["args"] for m in re.findall(r"\$\((\w+)\)", a)}
        assert used <= declared, f"{c['name']}: {sorted(used - declared)} not in env"
