"""GPU placement for training jobs: one device per concurrent job, mixed precision, memory growth.

Snakemake's `gpu` resource only limits how many GPU jobs run at once; it does not say which device
each job gets. On a multi-GPU workstation each training job therefore takes a free device id from
a pool with an exclusive lock file and sets CUDA_VISIBLE_DEVICES before TensorFlow starts. The
pool is ALLDAG_GPUS ("0,1,3"), else every GPU `nvidia-smi -L` lists. A CUDA_VISIBLE_DEVICES set by
the caller is left alone when there is no pool, and always inside a SLURM job.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from alldag import AlldagError

log = logging.getLogger(__name__)
POOL_ENV = "ALLDAG_GPUS"
LOCK_DIR_ENV = "ALLDAG_GPU_LOCK_DIR"


def gpu_pool(env: dict | None = None) -> list[str]:
    """Device ids jobs may use: ALLDAG_GPUS if set (empty = none), else those nvidia-smi lists."""
    env = os.environ if env is None else env
    if POOL_ENV in env:
        return [d.strip() for d in env[POOL_ENV].split(",") if d.strip()]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(out.splitlines()) if line.startswith("GPU ")]


def lock_dir(env: dict | None = None) -> Path:
    """Where the pool's lock files live: shared by every workflow of this user on this machine."""
    env = os.environ if env is None else env
    return Path(env.get(LOCK_DIR_ENV) or Path(tempfile.gettempdir()) / f"alldag-gpu-locks-{os.getuid()}")


def _try_lock(path: Path):
    handle = open(path, "a+")  # noqa: SIM115 (the lock lives as long as this handle)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


@contextmanager
def claim_gpu(pool: list[str], directory: Path, wait_s: float | None = None, poll_s: float = 0.5):
    """Hold one free device id of `pool` for the block (None when the pool is empty).

    The lock is an flock on `directory/gpu<id>.lock`, so it is released even if the job is killed.
    While every device is busy the job waits (saying so every minute); with wait_s set it raises
    AlldagError after that many seconds.
    """
    if not pool:
        yield None
        return
    directory.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    next_note = start + 60
    while True:
        for device in pool:
            handle = _try_lock(directory / f"gpu{device}.lock")
            if handle is not None:
                try:
                    yield device
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)
                    handle.close()
                return
        now = time.monotonic()
        if wait_s is not None and now - start > wait_s:
            raise AlldagError(
                f"all GPUs of the pool {','.join(pool)} stayed busy for {wait_s:.0f} s: "
                f"run fewer GPU jobs at once (--resources gpu=N) or widen {POOL_ENV}"
            )
        if now > next_note:
            log.info(
                "waiting for a free GPU (pool %s all busy); --resources gpu=%d lets Snakemake queue GPU jobs instead",
                ",".join(pool),
                len(pool),
            )
            next_note = now + 60
        time.sleep(poll_s)


@contextmanager
def training_device():
    """Pick this job's GPU (see module doc) and set CUDA_VISIBLE_DEVICES; yields the id or None."""
    scheduled = "SLURM_JOB_ID" in os.environ  # SLURM assigns the job's GPUs itself, even if ALLDAG_GPUS came along
    if "CUDA_VISIBLE_DEVICES" in os.environ and (scheduled or POOL_ENV not in os.environ):
        log.info("CUDA_VISIBLE_DEVICES=%s set by the caller: using it", os.environ["CUDA_VISIBLE_DEVICES"])
        yield os.environ["CUDA_VISIBLE_DEVICES"] or None
        return
    with claim_gpu(gpu_pool(), lock_dir()) as device:
        if device is not None:
            os.environ["CUDA_VISIBLE_DEVICES"] = device
            log.info("claimed GPU %s from the pool", device)
        yield device


def visible_devices(tf) -> str:
    """TensorFlow's GPUs as 'GPU:0 (NVIDIA H100), GPU:1 (...)', or 'none' when it sees only the CPU."""
    names = []
    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        label = gpu.name.removeprefix("/physical_device:")
        names.append(f"{label} ({details['device_name']})" if details.get("device_name") else label)
    return ", ".join(names) or "none"


def no_gpu_message(tf, env: dict | None = None) -> str:
    """One line on why a job that requires a GPU sees none, and what to do."""
    env = os.environ if env is None else env
    cuda = (
        "CUDA_VISIBLE_DEVICES=" + repr(env["CUDA_VISIBLE_DEVICES"])
        if "CUDA_VISIBLE_DEVICES" in env
        else "CUDA_VISIBLE_DEVICES unset"
    )
    build = "built with CUDA" if tf.test.is_built_with_cuda() else "a CPU-only build"
    return (
        f"train.require_gpu is true but TensorFlow ({build}; {cuda}) sees no GPU: run on a GPU node with "
        "TensorFlow's CUDA build (--sdm conda uses envs/train-gpu.yaml; or make install "
        "LOCK=requirements-gpu.lock), or set train.require_gpu: false (drop the GPU profile) to train on the CPU"
    )


def configure_tensorflow(mixed_precision: str, require_gpu: bool = False) -> dict:
    """Memory growth on every visible GPU; mixed_float16 when asked ('on') or when a GPU is there ('auto').

    Returns {"gpus": n, "devices": visible_devices(), "precision": policy name}. Raises AlldagError
    when require_gpu is set and TensorFlow sees no GPU. Call before building any model.
    """
    import keras
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if require_gpu and not gpus:
        raise AlldagError(no_gpu_message(tf))
    for gpu in gpus:
        tf.config.experimental.set_memory_growth(gpu, True)
    mixed = mixed_precision == "on" or (mixed_precision == "auto" and bool(gpus))
    keras.mixed_precision.set_global_policy("mixed_float16" if mixed else "float32")
    return {"gpus": len(gpus), "devices": visible_devices(tf), "precision": keras.mixed_precision.global_policy().name}
