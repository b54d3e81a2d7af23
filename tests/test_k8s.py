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
KINDS = {
    "train-job.yaml": {"Job", "PersistentVolumeClaim"},
    "train-multiworker.yaml": {"Job", "PersistentVolumeClaim", "Service"},
    "export-job.yaml": {"Job"},
    "predict-indexed-job.yaml": {"Job", "PersistentVolumeClaim"},
    "predict-merge-job.yaml": {"Job"},
}
MANIFESTS = sorted(KINDS)
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
    assert {d["kind"] for d in docs} == KINDS[name]
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


def arg(args, option):
    return args[args.index(option) + 1]


def test_multiworker_job_is_indexed_and_its_pods_find_each_other():
    from job.distributed.multiworker import indexed_job_tf_config

    docs = load("train-multiworker.yaml")
    job, service, pvc = (by_kind(docs, kind) for kind in ("Job", "Service", "PersistentVolumeClaim"))
    spec, name = job["spec"], job["metadata"]["name"]
    [c] = containers(job)
    args, n = c["args"], spec["completions"]
    assert spec["completionMode"] == "Indexed" and n >= 2 and spec["parallelism"] == n
    assert arg(args, "--workers-from-indexed-job") == str(n) and args[0] == "train"
    assert "--resume-or-start" in args and arg(args, "--out") == "/runs/$(JOB_NAME)"
    # Kubernetes' "Job with Pod-to-Pod Communication": a headless Service named as the pods' subdomain.
    pod = spec["template"]["spec"]
    assert service["spec"]["clusterIP"] == "None" and pod["subdomain"] == service["metadata"]["name"]
    assert service["spec"]["selector"] == {"batch.kubernetes.io/job-name": name}
    [port] = c["ports"]
    assert service["spec"]["ports"][0]["port"] == port["containerPort"]
    # The TF_CONFIG that pod i builds names every pod by its DNS name: <job>-<index>.<subdomain>:<port>.
    host = arg(args, "--worker-host").replace("$(JOB_NAME)", name)
    for index in range(n):
        config = indexed_job_tf_config(n, host, index)
        assert config["cluster"]["worker"] == [f"{name}-{i}.{pod['subdomain']}:{port['containerPort']}"
                                               for i in range(n)]
        assert config["task"]["index"] == index
    assert c["image"] == "mnist-job:gpu" and c["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    [volume] = pod["volumes"]
    assert volume["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
    export = by_kind(load("export-job.yaml"), "Job")
    [e] = containers(export)
    assert e["args"][:2] == ["export", f"/runs/{name}"]
    assert claim(export) == pvc["metadata"]["name"]


def test_the_merge_job_reads_what_the_shards_write():
    import fnmatch

    predict = by_kind(load("predict-indexed-job.yaml"), "Job")
    merge = by_kind(load("predict-merge-job.yaml"), "Job")
    [p], [m] = containers(predict), containers(merge)
    n = predict["spec"]["completions"]
    shard_outputs = [arg(p["args"], "--out").replace("$(JOB_COMPLETION_INDEX)", str(i)) for i in range(n)]
    assert m["args"][0] == "merge"
    assert all(fnmatch.fnmatch(path, m["args"][1]) for path in shard_outputs)
    assert not fnmatch.fnmatch(arg(m["args"], "--out"), m["args"][1])  # the merged file is not a shard
    assert ("/out", "predictions") in mounts(p) & mounts(m)
    assert claim(predict) == claim(merge)


def mounts(container):
    return {(v["mountPath"], v.get("subPath")) for v in container["volumeMounts"]}


def claim(job):
    return job["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"]
