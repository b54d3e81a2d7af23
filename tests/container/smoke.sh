#!/usr/bin/env bash
# Container smoke test (issue 5): proves Dockerfile.gpu, `make train-gpu` and the edge image on a
# machine with a Docker engine but no GPU and no image registry.
#
# What it proves, and what it does not:
#   * The GPU image is built FROM a *stand-in* for tensorflow/tensorflow:<ver>-gpu: Debian bookworm
#     (debootstrap) + python3 + tensorflow-cpu at the same version. No CUDA, no GPU: the real CUDA
#     base image and the GPU itself are not exercised here.
#   * The edge image is built FROM a stand-in for python:3.11-slim (same bookworm + python3).
#   * Dockerfile.gpu and deploy/Dockerfile are built unchanged; the facts of this machine (its CA
#     certificates, host networking for pip) live only in the stand-ins and in build/run flags.
#
# Run as root (CI does). Env knobs: SMOKE_STATE (default /var/tmp/mnist-job-docker: the daemon's
# data-root, kept so the stand-ins are cached between runs), SMOKE_UID/SMOKE_GID (the "calling user"
# the run files must belong to, default 1000:1000), DEBIAN_MIRROR (default: the mirror apt uses).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO"
STATE=${SMOKE_STATE:-/var/tmp/mnist-job-docker}
TEST_UID=${SMOKE_UID:-1000}
TEST_GID=${SMOKE_GID:-1000}
DOCKER=/usr/bin/docker            # the client that ships with the engine we start
export DOCKER_BUILDKIT=0          # classic builder: never tries a registry for a local FROM image
T0=$(date +%s)
declare -a TIMINGS=()

say() { printf '%s\n' "$*"; }
step() { say ""; say "== smoke [$(( $(date +%s) - T0 ))s] $*"; }
fail() { say "SMOKE FAILED: $*" >&2; exit 1; }
timed() { # timed LABEL CMD...: runs CMD, records its duration
    local label=$1 t; shift; t=$(date +%s)
    "$@"
    TIMINGS+=("$(printf '%-44s %5ss' "$label" "$(( $(date +%s) - t ))")")
}
image_mb() { $DOCKER image inspect -f '{{.Size}}' "$1" | awk '{printf "%.0f MB", $1/1e6}'; }

[ "$(id -u)" = 0 ] || fail "run as root (it installs packages and starts dockerd)"
say "mnist-job container smoke test: stand-in base images (Debian bookworm + tensorflow-cpu), no GPU."

# ---------------------------------------------------------------- 1. packages
step "1/8 install docker.io and debootstrap"
need=()
for c in dockerd:docker.io debootstrap:debootstrap make:make; do
    command -v "${c%%:*}" >/dev/null || need+=("${c#*:}")
done
[ -x "$DOCKER" ] || need+=(docker.io)
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}"
fi

# ---------------------------------------------------------------- 2. dockerd
step "2/8 start dockerd (no iptables, no bridge)"
mkdir -p "$STATE"
exec 9>"$STATE/lock"
flock -n 9 || fail "another smoke test holds $STATE/lock"
RUNDIR=$(mktemp -d /tmp/mjd.XXXX)       # short: the exec-root and socket paths have length limits
PIDFILE=$RUNDIR/dockerd.pid
SOCK=$RUNDIR/d.sock
WORK=$(mktemp -d /tmp/mnist-smoke.XXXX)
DOCKERD_PID=
cleanup() {
    local rc=$? pid
    pid=$(cat "$PIDFILE" 2>/dev/null || echo "$DOCKERD_PID")
    if [ -n "$pid" ]; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
        kill -9 "$pid" 2>/dev/null || true
    fi
    # dockerd leaves its namespace mounts (exec-root/netns) behind, and a failed debootstrap its
    # /proc: unmount what is left under our folders before removing them
    grep -oE " ($RUNDIR|$WORK)/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    rm -rf "$RUNDIR" "$WORK" || true
    trap - EXIT
    exit "$rc"
}
trap cleanup EXIT INT TERM
dockerd --iptables=false --bridge=none --storage-driver=overlay2 \
    --data-root "$STATE/data" --exec-root "$RUNDIR/x" -H "unix://$SOCK" -p "$PIDFILE" \
    >"$STATE/dockerd.log" 2>&1 &
DOCKERD_PID=$!
export DOCKER_HOST=unix://$SOCK
for _ in $(seq 1 60); do $DOCKER version >/dev/null 2>&1 && break; sleep 1; done
$DOCKER version >/dev/null 2>&1 || { tail -20 "$STATE/dockerd.log" >&2; fail "dockerd did not start"; }
say "dockerd pid $(cat "$PIDFILE"), data-root $STATE/data"

# ---------------------------------------------------------------- 3. stand-in bases
TF_BASE=$(sed -n 's/^ARG TF_IMAGE=//p' Dockerfile.gpu | head -1)
PY_BASE=$(sed -n 's/^ARG PYTHON_IMAGE=//p' deploy/Dockerfile | head -1)
if [ -z "$TF_BASE" ] || [ -z "$PY_BASE" ]; then fail "cannot read the ARG defaults of the Dockerfiles"; fi
TF_VERSION=${TF_BASE##*:}; TF_VERSION=${TF_VERSION%%-*}
STANDIN_LABEL=org.mnist-job.standin
ROOTFS_IMAGE=mnist-job-standin/bookworm-python:latest

is_standin() { [ "$($DOCKER image inspect -f "{{index .Config.Labels \"$STANDIN_LABEL\"}}" "$1" 2>/dev/null)" = "$2" ]; }
debian_mirror() {
    local m
    m=$(grep -hs -E '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list /etc/apt/sources.list \
        | grep -oE 'https?://[^ ]+/debian/?( |$)' | head -1 | tr -d ' ')
    echo "${DEBIAN_MIRROR:-${m:-http://deb.debian.org/debian}}"
}
build_rootfs() {
    local rootfs=$WORK/rootfs mirror; mirror=$(debian_mirror)
    say "debootstrap bookworm (minbase + python3) from $mirror"
    debootstrap --variant=minbase --include=python3,python3-pip,python3-venv,ca-certificates \
        bookworm "$rootfs" "$mirror" >"$WORK/debootstrap.log" 2>&1 \
        || { tail -30 "$WORK/debootstrap.log" >&2; fail "debootstrap failed"; }
    tar -C "$rootfs" -c . | $DOCKER import -c 'CMD ["/bin/bash"]' - "$ROOTFS_IMAGE" >/dev/null
    rm -rf "$rootfs"
}
build_standin() { # build_standin TAG DESCRIPTION EXTRA_RUN
    local tag=$1 desc=$2 extra=$3 ctx=$WORK/standin-$RANDOM
    mkdir -p "$ctx/certs"
    cp /usr/local/share/ca-certificates/*.crt "$ctx/certs/" 2>/dev/null || true
    cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM $ROOTFS_IMAGE
# Facts of the smoke-test machine, kept out of the project's Dockerfiles: its CA certificates.
COPY certs/ /usr/local/share/ca-certificates/
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# Like the official images: pip installs into the system python without PEP 668 refusal, and
# 'python' exists.
RUN update-ca-certificates >/dev/null && rm -f /usr/lib/python3*/EXTERNALLY-MANAGED \
 && ln -sf /usr/bin/python3 /usr/local/bin/python && python3 -m pip --version $extra
LABEL $STANDIN_LABEL="$desc"
DOCKERFILE
    $DOCKER build --network host -q -t "$tag" "$ctx" >/dev/null
}
step "3/8 stand-in bases: $PY_BASE and $TF_BASE"
PY_DESC="stand-in: Debian bookworm python3, not $PY_BASE"
TF_DESC="stand-in: Debian bookworm + tensorflow-cpu==$TF_VERSION, no CUDA, not $TF_BASE"
if is_standin "$PY_BASE" "$PY_DESC" && is_standin "$TF_BASE" "$TF_DESC"; then
    say "cached in $STATE/data: $PY_BASE ($(image_mb "$PY_BASE")), $TF_BASE ($(image_mb "$TF_BASE"))"
else
    for tag in "$PY_BASE" "$TF_BASE"; do   # never shadow a real image with a stand-in silently
        if $DOCKER image inspect "$tag" >/dev/null 2>&1 && ! is_standin "$tag" "$PY_DESC" \
            && ! is_standin "$tag" "$TF_DESC"; then fail "$tag exists and is not our stand-in"; fi
    done
    $DOCKER image inspect "$ROOTFS_IMAGE" >/dev/null 2>&1 || timed "debootstrap bookworm rootfs" build_rootfs
    timed "stand-in $PY_BASE" build_standin "$PY_BASE" "$PY_DESC" ""
    timed "stand-in $TF_BASE" build_standin "$TF_BASE" "$TF_DESC" \
        "&& python3 -m pip install tensorflow-cpu==$TF_VERSION"
fi
freeze() { $DOCKER run --rm --network none --entrypoint python3 "$1" -m pip freeze --all | sort; }
BASE_FREEZE=$(freeze "$TF_BASE")
say "base image TensorFlow: $(grep -iE '^(tensorflow|keras)' <<<"$BASE_FREEZE" | tr '\n' ' ')"

# ---------------------------------------------------------------- 4. Dockerfile.gpu
IMAGE=mnist-job:gpu-smoke
EDGE_IMAGE=mnist-predict:edge-smoke
MAKE_DOCKER=(DOCKER="$DOCKER" IMAGE="$IMAGE" EDGE_IMAGE="$EDGE_IMAGE" DOCKER_BUILD_FLAGS="--network host")
step "4/8 build Dockerfile.gpu unchanged, FROM the stand-in $TF_BASE"
timed "build Dockerfile.gpu" make --no-print-directory image "${MAKE_DOCKER[@]}"
IMAGE_FREEZE=$(freeze "$IMAGE")
changed=$(comm -23 <(echo "$BASE_FREEZE") <(echo "$IMAGE_FREEZE"))
[ -z "$changed" ] || fail "installing the project replaced packages of the base: $(echo "$changed" | tr '\n' ' ')"
added=$(comm -13 <(echo "$BASE_FREEZE") <(echo "$IMAGE_FREEZE"))
if grep -qiE '^(tensorflow|tf-nightly|keras)' <<<"$added"; then fail "a second TensorFlow/Keras was added: $added"; fi
say "all $(wc -l <<<"$BASE_FREEZE") packages of the base kept at their versions, TensorFlow included; added: $(wc -l <<<"$added")"

# ---------------------------------------------------------------- 5. make train-gpu
step "5/8 make train-gpu GPU_FLAGS= (1 epoch, mnist-sample, as uid $TEST_UID, no network)"
make --no-print-directory venv >/dev/null    # the host venv runs the checks below
RUNS=$WORK/runs
mkdir -p "$RUNS" "$WORK/data"
chown "$TEST_UID:$TEST_GID" "$RUNS"
chmod 755 "$WORK"
timed "make train-gpu (train + export)" make --no-print-directory train-gpu "${MAKE_DOCKER[@]}" \
    GPU_FLAGS= EPOCHS=1 DATASET=mnist-sample RUNS="$RUNS" DATA_CACHE="$WORK/data" RUN_NAME=smoke \
    DOCKER_USER="$TEST_UID:$TEST_GID" DOCKER_RUN_FLAGS="--network none"

# ---------------------------------------------------------------- 6. check the run on the host
step "6/8 check the run on the host"
RUN=$RUNS/smoke
ONNX=$RUN/export/model.onnx
for f in model.keras metrics.json config.json export/manifest.json export/parity.npz export/model.onnx \
    export/savedmodel/1/saved_model.pb; do
    [ -e "$RUN/$f" ] || fail "missing $RUN/$f"
done
.venv/bin/mnist-predict check --model "$ONNX" || fail "mnist-predict check failed on $ONNX"
strangers=$(find "$RUN" \( ! -uid "$TEST_UID" -o ! -gid "$TEST_GID" \) -printf '%u:%g %p\n')
[ -z "$strangers" ] || fail "files not owned by $TEST_UID:$TEST_GID: $strangers"
say "every file under the run ($(find "$RUN" | wc -l) entries) belongs to $TEST_UID:$TEST_GID, the uid passed"

# ---------------------------------------------------------------- 7. non-root
step "7/8 the images run as non-root"
for img in "$IMAGE" "$EDGE_IMAGE"; do
    [ "$img" = "$EDGE_IMAGE" ] && timed "build deploy/Dockerfile (edge)" make --no-print-directory edge-image "${MAKE_DOCKER[@]}"
    uid=$($DOCKER run --rm --network none --entrypoint id "$img" -u)
    [ "$uid" != 0 ] || fail "$img runs as root by default"
    say "$img: default user uid $uid"
done
# The base has no Debian fonts: training must find the DejaVu faces matplotlib ships (job.data.letters.fonts),
# or it would train without font letters and font digits, a model that reads printed numbers far worse
fonts=$($DOCKER run --rm --network none --entrypoint python3 "$IMAGE" -c \
    'from job.data.letters import fonts; print(len(fonts("train")))')
[ "$fonts" -ge 12 ] || fail "$IMAGE finds $fonts training fonts: training would leave font letters and digits out"
say "$IMAGE: $fonts training fonts (matplotlib's DejaVu where the base has none)"
if $DOCKER run --rm --network none --entrypoint python3 "$EDGE_IMAGE" -c \
    'import importlib.util as u, sys; sys.exit(u.find_spec("tensorflow") is None)'; then
    fail "the edge image contains TensorFlow"
fi

step "7b/8 edge image: mnist-predict on a mounted folder, two shards as in the Indexed Job, then merge"
mkdir -p "$WORK/images" "$WORK/out"
.venv/bin/python - "$RUN/export/parity.npz" "$WORK/images" <<'PY'
import sys
import numpy as np
from PIL import Image
with np.load(sys.argv[1]) as npz:
    rows = np.flatnonzero(npz["kinds"] == "test")[:12]
    for i in rows:
        Image.fromarray(npz["inputs"][i].astype(np.uint8)).save(f"{sys.argv[2]}/{i:03d}-label{npz['labels'][i]}.png")
PY
chown -R "$TEST_UID:$TEST_GID" "$WORK/out"
for shard in 0 1; do
    timed "edge predict shard $shard/2" $DOCKER run --rm --network none --user "$TEST_UID:$TEST_GID" \
        -v "$WORK/images":/data/images:ro -v "$RUN/export":/models:ro -v "$WORK/out":/out \
        "$EDGE_IMAGE" /data/images --model /models/model.onnx --shard "$shard/2" \
        --out "/out/predictions-$shard.csv" --workers 0
done
.venv/bin/python - "$WORK/out" "$WORK/images" <<'PY'
import csv, os, sys
rows = [r for i in (0, 1) for r in csv.DictReader(open(f"{sys.argv[1]}/predictions-{i}.csv"))]
names = sorted(os.path.basename(r["path"]) for r in rows)
assert names == sorted(os.listdir(sys.argv[2])), names           # the shards cover every file once
assert all(r["status"] == "ok" for r in rows), rows
right = sum(r["label"] == n.split("label")[1][0] for r, n in ((r, os.path.basename(r["path"])) for r in rows))
print(f"edge predictions: {len(rows)} files over 2 shards, all ok, {right}/{len(rows)} match the true label")
PY
# The merge Job of deploy/k8s/predict-merge-job.yaml: the glob is expanded by mnist-predict, not a shell.
timed "edge merge" $DOCKER run --rm --network none --user "$TEST_UID:$TEST_GID" -v "$WORK/out":/out \
    "$EDGE_IMAGE" merge "/out/predictions-*.csv" --out /out/predictions.csv
.venv/bin/python - "$WORK/out" <<'PY'
import csv, sys
merged = list(csv.DictReader(open(f"{sys.argv[1]}/predictions.csv")))
assert [r["path"] for r in merged] == sorted(r["path"] for r in merged) and len(merged) == 12, merged
print(f"merged: {len(merged)} rows in path order")
PY

# ---------------------------------------------------------------- 8. report (dockerd stops in the trap)
step "8/8 summary (dockerd is stopped by its pid on exit)"
$DOCKER image prune -f >/dev/null   # earlier builds of the two images; the stand-ins stay cached
size() { $DOCKER image inspect -f '{{.Size}}' "$1"; }
mb() { awk -v b="$1" 'BEGIN {printf "%6.0f MB", b/1e6}'; }
say "Stand-in base images (Debian bookworm + tensorflow-cpu), no GPU: the real CUDA base and the GPU are not tested."
say "Image sizes (uncompressed):"
say "  $(printf '%-40s' "$TF_BASE") $(mb "$(size "$TF_BASE")")   stand-in"
say "  $(printf '%-40s' "$IMAGE") $(mb "$(size "$IMAGE")")   Dockerfile.gpu; its own layers: $(mb $(( $(size "$IMAGE") - $(size "$TF_BASE") )))"
say "  $(printf '%-40s' "$PY_BASE") $(mb "$(size "$PY_BASE")")   stand-in"
say "  $(printf '%-40s' "$EDGE_IMAGE") $(mb "$(size "$EDGE_IMAGE")")   deploy/Dockerfile; its own layers: $(mb $(( $(size "$EDGE_IMAGE") - $(size "$PY_BASE") )))"
say "Timings:"
for t in "${TIMINGS[@]}"; do say "  $t"; done
say "  $(printf '%-44s %5ss' total "$(( $(date +%s) - T0 ))")"
say "SMOKE PASSED (stand-in base, no GPU)"
