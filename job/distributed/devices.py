"""Devices and distribution for training: GPU detection, strategies, mixed precision, replica scaling.

Order of calls in a training run (TensorFlow must not have run an op before the first two):

    info = detect_devices()                 # logs GPUs or the CPU; memory growth on every GPU
    strategy = make_strategy(args.strategy)  # auto | one | mirrored | multiworker
    set_mixed_precision(args.mixed_precision)
    global_batch = scale_batch(args.batch_size, strategy)   # batch * replicas, logged
    with strategy.scope():
        model = build_model(...)            # last layer dtype="float32" under mixed precision
        model.compile(..., jit_compile=bool(args.jit))
    model.fit(..., batch_size=global_batch)

TensorFlow and Keras are imported inside the functions, so importing this module (and `mnist-job --help`)
stays fast.
"""

import logging
import os
import platform

from mnist_predict.files import usable_cpus

from job.errors import JobError

log = logging.getLogger(__name__)

STRATEGIES = ("auto", "one", "mirrored", "multiworker")


def detect_devices():
    """Log the visible GPUs (or the CPU and its thread count) and enable memory growth on each GPU.

    Call before TensorFlow initializes its runtime (before the first op or strategy). Returns a dict
    for config.json / metrics.json: {"kind": "gpu"|"cpu", "count": int, "names": [str], "description": str}.
    """
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        threads = usable_cpus()
        intra = tf.config.threading.get_intra_op_parallelism_threads() or threads
        name = _cpu_name()
        description = f"CPU ({name}), {threads} threads, intra-op {intra}"
        log.info("no GPU visible: training on %s", description)
        return {"kind": "cpu", "count": 1, "names": [name], "description": description}
    names = []
    for gpu in gpus:
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError as e:  # the runtime is already initialized: growth can no longer change
            log.warning("cannot enable memory growth on %s: %s", gpu.name, e)
        details = tf.config.experimental.get_device_details(gpu)
        name = details.get("device_name", gpu.name)
        cc = details.get("compute_capability")
        names.append(name)
        log.info("GPU %s: %s%s, memory growth on", gpu.name, name,
                 f" (compute capability {cc[0]}.{cc[1]})" if cc else "")
    description = f"{len(gpus)} x GPU ({', '.join(sorted(set(names)))})"
    log.info("training on %s", description)
    return {"kind": "gpu", "count": len(gpus), "names": names, "description": description}


def make_strategy(name="auto", connect_timeout=None):
    """Return a tf.distribute.Strategy for `name`, one of STRATEGIES.

    auto        MirroredStrategy when more than one GPU is visible, else the default strategy
    one         OneDeviceStrategy on the first GPU, or on the CPU
    mirrored    MirroredStrategy over all GPUs; without GPUs, over all logical CPU devices
    multiworker MultiWorkerMirroredStrategy; the cluster and this worker's task come from TF_CONFIG (job.distributed.multiworker).
                Returns once every worker has joined, or exits with one line after connect_timeout seconds.
    """
    import tensorflow as tf

    if name not in STRATEGIES:
        raise JobError(f"unknown strategy {name!r}: choose one of {', '.join(STRATEGIES)}")
    gpus = tf.config.list_physical_devices("GPU")
    if name == "auto":
        strategy = tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()
    elif name == "one":
        strategy = tf.distribute.OneDeviceStrategy("/gpu:0" if gpus else "/cpu:0")
    elif name == "mirrored":
        devices = None if gpus else [d.name for d in tf.config.list_logical_devices("CPU")]
        strategy = tf.distribute.MirroredStrategy(devices=devices)
    else:
        from job.distributed import multiworker

        if not os.environ.get("TF_CONFIG"):
            log.warning("multiworker without TF_CONFIG: this process is a cluster of one worker")
        worker = multiworker.this_worker()
        log.info("%s: this process is task %d of %s", worker, worker.index, ", ".join(worker.addresses))
        with multiworker.connect_watchdog(worker, connect_timeout or multiworker.DEFAULT_CONNECT_TIMEOUT):
            strategy = tf.distribute.MultiWorkerMirroredStrategy()
            multiworker.join_cluster(strategy)
        multiworker.patch_keras()
    log.info("strategy %s: %s, %d replica(s) in sync", name, type(strategy).__name__,
             strategy.num_replicas_in_sync)
    return strategy


def synchronize_batch_norm(model, strategy):
    """With more than one replica, BatchNormalization normalises with the global batch's statistics.

    Keras 3 otherwise updates each replica's moving mean and variance from its own slice of the batch, so
    the workers' models drift apart and the chief keeps statistics of its shard alone. Synchronised, every
    replica holds the same statistics, those of training on the global batch in one process."""
    import keras

    if replica_count(strategy) < 2:
        return 0
    layers = [layer for layer in _all_layers(model) if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in layers:
        layer.synchronized = True
    if layers:
        log.info("BatchNormalization: statistics of the global batch, synchronised across replicas (%d layers)",
                 len(layers))
    return len(layers)


def _all_layers(model):
    for layer in getattr(model, "layers", []):
        yield layer
        yield from _all_layers(layer)


def replica_count(strategy):
    """Number of replicas that each take one per-replica batch per step (all workers together)."""
    return int(strategy.num_replicas_in_sync)


def scale_batch(batch_size, strategy):
    """Global batch size for `batch_size` per replica: batch_size * replicas. Logged."""
    replicas = replica_count(strategy)
    global_batch = int(batch_size) * replicas
    log.info("global batch %d = %d per replica x %d replica(s)", global_batch, batch_size, replicas)
    return global_batch


def set_mixed_precision(enabled):
    """Set Keras' global dtype policy to mixed_float16 (enabled) or float32; returns the policy name.

    Call before building the model. Models must keep their output in float32 (the last layer with
    dtype="float32"); Keras then scales the loss automatically (LossScaleOptimizer).
    """
    import keras

    policy = "mixed_float16" if enabled else "float32"
    keras.mixed_precision.set_global_policy(policy)
    if enabled:
        import tensorflow as tf

        if not tf.config.list_physical_devices("GPU"):
            log.warning("mixed_float16 on the CPU is slower than float32: it pays off on GPUs with "
                        "Tensor Cores (compute capability 7.0 and newer)")
        log.info("mixed precision: %s (float32 variables and outputs)", policy)
    return policy


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
