"""Rule environments in use: the post-deploy install into a new env, and the GPU profile choosing the GPU
training env (and refusing to train on a machine without a GPU)."""

from __future__ import annotations

import os
import re
import subprocess
import venv

import yaml

from workflow_helpers import REPO, snakemake, write_config


def test_post_deploy_script_installs_the_package_editable(tmp_path):
    """What Snakemake runs in a new conda env: alldag, code only, from the checkout that ALLDAG_REPO names."""
    prefix = tmp_path / "env"
    venv.EnvBuilder(with_pip=True).create(prefix)
    env = {
        **{k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        "PATH": f"{prefix / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "ALLDAG_REPO": str(REPO),
    }
    proc = subprocess.run(
        ["bash", str(REPO / "envs" / "report.post-deploy.sh")], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    where = subprocess.run(
        [str(prefix / "bin" / "python"), "-c", "import alldag; print(alldag.__file__)"],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert where.stdout.strip() == str(REPO / "src" / "alldag" / "__init__.py"), where.stderr
    deps = subprocess.run(
        [str(prefix / "bin" / "python"), "-m", "pip", "list", "--format=freeze"],
        env=env,
        capture_output=True,
        text=True,
    ).stdout
    assert "pandas" not in deps.lower(), "the post-deploy install pulled dependencies the env file does not pin"
    no_repo = {k: v for k, v in env.items() if k != "ALLDAG_REPO"}
    proc = subprocess.run(
        ["bash", str(REPO / "envs" / "report.post-deploy.sh")], env=no_repo, capture_output=True, text=True
    )
    assert proc.returncode != 0 and "ALLDAG_REPO: is not set" in proc.stderr


def _conda_envs_of_dag(tmp_path, *args) -> set[str]:
    """The env files Snakemake would deploy for the tiny study's DAG (it hashes each before it needs conda)."""
    tmp_path.mkdir()
    config = yaml.safe_load((REPO / "tests" / "configs" / "tiny.yaml").read_text())
    proc = snakemake(tmp_path, "--containerize", *args, config=write_config(tmp_path, config), timeout=300)
    return set(re.findall(r"Hashing conda environment \S*/envs/([\w-]+\.yaml)", proc.stdout + proc.stderr))


def test_gpu_profile_selects_the_gpu_training_env(tmp_path):
    assert "train-gpu.yaml" not in _conda_envs_of_dag(tmp_path / "cpu") >= {"train.yaml", "data.yaml"}
    gpu = _conda_envs_of_dag(tmp_path / "gpu", "--workflow-profile", str(REPO / "profiles" / "local"))
    assert "train-gpu.yaml" in gpu


def test_gpu_profile_training_job_without_a_gpu_fails_with_one_line(tmp_path):
    """profiles/local sets train.require_gpu: on this CPU-only machine the training job must refuse to run."""
    config = yaml.safe_load((REPO / "tests" / "configs" / "micro.yaml").read_text())
    config.update(backbones=["MobileNet"], custom_models={})
    target = "results/models/benign_vs_pro/MobileNet/fold0/model.keras"
    proc = snakemake(
        tmp_path,
        "--workflow-profile",
        str(REPO / "profiles" / "local"),
        "--cores",
        "2",
        target,
        config=write_config(tmp_path, config),
        env={"ALLDAG_GPUS": ""},
        timeout=900,
    )
    assert proc.returncode != 0
    log = (tmp_path / "logs/train/benign_vs_pro/MobileNet/fold0.log").read_text()
    errors = [line for line in log.splitlines() if "ERROR alldag:" in line]
    assert len(errors) == 1, log[-3000:]
    assert "train.require_gpu is true but TensorFlow (" in errors[0] and "sees no GPU" in errors[0]
    assert not (tmp_path / target).exists()
