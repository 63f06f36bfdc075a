"""GPU pool: each concurrent training job gets its own device; none on CPU-only machines."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from alldag import AlldagError
from alldag.devices import claim_gpu, gpu_pool, training_device


def test_pool_comes_from_the_environment_first():
    assert gpu_pool({"ALLDAG_GPUS": "0, 2,3"}) == ["0", "2", "3"]
    assert gpu_pool({"ALLDAG_GPUS": ""}) == []


def test_concurrent_claims_get_different_devices_and_a_full_pool_waits(tmp_path):
    with claim_gpu(["0", "1"], tmp_path) as first, claim_gpu(["0", "1"], tmp_path) as second:
        assert {first, second} == {"0", "1"}
        with pytest.raises(AlldagError, match="stayed busy"), claim_gpu(["0", "1"], tmp_path, wait_s=0.3, poll_s=0.1):
            pass
    with claim_gpu(["0", "1"], tmp_path) as again:
        assert again == "0"  # released on exit


def test_a_claim_held_by_another_process_is_respected_and_freed_when_it_dies(tmp_path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import sys, time; from pathlib import Path; from alldag.devices import claim_gpu\n"
                f"with claim_gpu(['0', '1'], Path({str(tmp_path)!r})) as d:\n"
                "    print(d, flush=True); time.sleep(60)"
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "0"
        with claim_gpu(["0", "1"], tmp_path) as device:
            assert device == "1"
    finally:
        holder.kill()
        holder.wait()
    with claim_gpu(["0"], tmp_path, wait_s=5) as device:  # the killed holder's lock is gone
        assert device == "0"


def test_training_device_sets_cuda_visible_devices_from_the_pool(tmp_path, monkeypatch):
    monkeypatch.setenv("ALLDAG_GPUS", "3")
    monkeypatch.setenv("ALLDAG_GPU_LOCK_DIR", str(tmp_path))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    with training_device() as device:
        assert device == "3" and os.environ["CUDA_VISIBLE_DEVICES"] == "3"


def test_a_scheduler_assigned_device_is_left_alone(monkeypatch):
    monkeypatch.delenv("ALLDAG_GPUS", raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5")
    with training_device() as device:
        assert device == "5" and os.environ["CUDA_VISIBLE_DEVICES"] == "5"


@pytest.mark.parametrize(
    "gpus,setting,precision",
    [(0, "auto", "float32"), (1, "auto", "mixed_float16"), (2, "off", "float32"), (0, "on", "mixed_float16")],
)
def test_precision_follows_the_gpus_the_job_sees(monkeypatch, gpus, setting, precision):
    from types import SimpleNamespace

    import keras
    import tensorflow as tf

    from alldag.devices import configure_tensorflow

    grown = []
    fake = [SimpleNamespace(name=f"/physical_device:GPU:{i}") for i in range(gpus)]
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind: fake if kind == "GPU" else [])
    monkeypatch.setattr(tf.config.experimental, "get_device_details", lambda gpu: {"device_name": "Fake GPU"})
    monkeypatch.setattr(tf.config.experimental, "set_memory_growth", lambda gpu, on: grown.append((gpu.name, on)))
    devices = ", ".join(f"GPU:{i} (Fake GPU)" for i in range(gpus)) or "none"
    try:
        assert configure_tensorflow(setting) == {"gpus": gpus, "devices": devices, "precision": precision}
        assert grown == [(f"/physical_device:GPU:{i}", True) for i in range(gpus)]
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_a_job_that_requires_a_gpu_and_sees_none_fails_with_one_line(monkeypatch):
    from alldag import AlldagError
    from alldag.devices import configure_tensorflow

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(AlldagError) as err:
        configure_tensorflow("auto", require_gpu=True)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("train.require_gpu is true but TensorFlow (")
    assert "CUDA_VISIBLE_DEVICES=''" in message and "envs/train-gpu.yaml" in message


def test_inside_a_slurm_job_its_gpu_assignment_wins_over_the_pool(monkeypatch, tmp_path):
    monkeypatch.setenv("ALLDAG_GPUS", "0,1")  # exported on the login node, passed on by sbatch --export=ALL
    monkeypatch.setenv("ALLDAG_GPU_LOCK_DIR", str(tmp_path))
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    with training_device() as device:
        assert device == "3" and os.environ["CUDA_VISIBLE_DEVICES"] == "3"
