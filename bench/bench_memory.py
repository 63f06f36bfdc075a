"""Benchmark: peak resident memory (RSS) of every job, at the demo settings and at full-study settings.

Runs the DAG in a scratch folder with `--cores 1` (one job at a time) and follows each job's Python
process (the rule's script, `.snakemake/scripts/tmp*.<rule>.py`): the kernel's high-water mark of its
resident set (VmHWM in /proc/PID/status, its child processes added) is read until the job exits.
Two settings, both random init (`weights: null`) and one epoch (the training images are cached in
the first epoch, so later epochs add nothing):

  demo  config.yaml's offline demo (72 px, batch 16, 40 synthetic images per class), one task
        (benign_vs_pro), all four backbones
  full  the study's 224 px and batch 32, one backbone (--backbone, default MobileNet), --images
        synthetic images per class (default 150), one task; Grad-CAM and LIME on one image per class
        with LIME's full 100-image batches
  steps one training step (batch 32) and one prediction (batch 100, LIME's batch) at 224 px of each
        of the study's backbones, each in a fresh process: what the other backbones add over the
        full setting's one (a VGG on a few hundred images through the whole DAG takes an hour of CPU)

Linux only (/proc). Prints one table per setting: rule, jobs, peak RSS (MiB) of its largest job.
Usage: .venv/bin/python bench/bench_memory.py [--only demo|full|steps] [--backbone NAME] [--images N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import yaml
from dag import OFFLINE_ENV, REPO, snakemake_command

SCRIPT = re.compile(r"\.snakemake/scripts/tmp[^/]*?\.(\w+)\.py$")
POLL_S = 0.05


def high_water_kib(pid: int) -> int:
    """The kernel's peak resident set of one process (VmHWM), in KiB; 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def job_rule(proc: psutil.Process) -> str | None:
    """The rule whose script this process runs, else None."""
    try:
        return next((m.group(1) for arg in proc.cmdline() if (m := SCRIPT.search(arg))), None)
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


def run_and_watch(workdir: Path, configfile: Path) -> tuple[dict[int, tuple[str, int]], int, float]:
    """Run snakemake; returns {job pid: (rule, peak KiB)}, snakemake's own peak KiB and the wall time."""
    cmd = snakemake_command(workdir, configfile, cores=1)
    start = time.perf_counter()
    with open(workdir / "snakemake.log", "w") as log:
        snakemake = subprocess.Popen(cmd, cwd=workdir, stdout=log, stderr=subprocess.STDOUT, env=OFFLINE_ENV)
        jobs, own = watch(snakemake)
    elapsed = time.perf_counter() - start
    if snakemake.returncode != 0:
        sys.exit(f"snakemake failed (exit {snakemake.returncode}); see {workdir / 'snakemake.log'}")
    return jobs, own, elapsed


def watch(snakemake: subprocess.Popen) -> tuple[dict[int, tuple[str, int]], int]:
    """Poll snakemake's process tree until it exits: {job pid: (rule, peak KiB)} and its own peak KiB."""
    root = psutil.Process(snakemake.pid)
    jobs: dict[int, tuple[str, int]] = {}  # job pid -> (rule, peak KiB of the job and its children)
    own = 0
    while snakemake.poll() is None:
        own = max(own, high_water_kib(snakemake.pid))
        try:
            procs = root.children(recursive=True)
        except psutil.NoSuchProcess:
            break
        for proc in procs:
            if proc.pid not in jobs and (rule := job_rule(proc)):
                jobs[proc.pid] = (rule, 0)
        for pid, (rule, peak) in jobs.items():
            try:
                tree = [pid, *(c.pid for c in psutil.Process(pid).children(recursive=True))]
            except psutil.NoSuchProcess:
                continue
            jobs[pid] = (rule, max(peak, sum(high_water_kib(p) for p in tree)))
        time.sleep(POLL_S)
    snakemake.wait()
    return jobs, own


def deep_merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in over.items():
        out[key] = deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def demo_config() -> dict:
    """config.yaml as the offline demo runs it (data.source auto falls back to the demo), one task, one epoch."""
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    cfg["tasks"] = {"benign_vs_pro": cfg["tasks"]["benign_vs_pro"]}
    cfg["demo"]["train"]["epochs"] = 1
    return cfg


def full_config(backbone: str, images_per_class: int) -> dict:
    """The study's image size and batch on synthetic data: one backbone, one task, one epoch, random init."""
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    cfg["tasks"] = {"benign_vs_pro": cfg["tasks"]["benign_vs_pro"]}
    cfg["backbones"] = [backbone]
    cfg.pop("demo")
    return deep_merge(
        cfg,
        {
            "data": {
                "source": "synthetic",
                "max_images_per_class": None,
                "synthetic": {"images_per_class": images_per_class},
            },
            "split": {"folds": 1},
            "train": {"weights": None, "epochs": 1, "early_stopping_patience": None},
            # LIME's peak is one batch of lime_batch_size perturbed images, not the number of samples
            "explain": {"images_per_class": 1, "lime_num_samples": 200},
        },
    )


STEP = """
import resource, sys
import numpy as np, keras
from alldag.models import build_classifier
backbone, size, batch, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
keras.utils.set_random_seed(0)
model = build_classifier(backbone, 2, size, None, 0.3, None)
model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
x = np.random.default_rng(0).uniform(0, 255, (batch, size, size, 3)).astype("float32")
if mode == "fit":
    model.fit(x, np.arange(batch) % 2, batch_size=batch, epochs=1, verbose=0)
else:
    model.predict(x, batch_size=batch, verbose=0)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def step_peaks(backbones: list[str], size: int = 224, batch: int = 32, predict_batch: int = 100) -> dict:
    """Peak RSS (MiB) of a fresh process that builds each backbone and fits one batch, or predicts one
    batch of predict_batch images (LIME's default lime_batch_size)."""
    print(f"\nsteps: {size} px, random init, a fresh process for each step")
    print(f"{'backbone':<16}{f'fit, batch {batch}':>19}{f'predict, batch {predict_batch}':>22}   (peak RSS MiB)")
    peaks = {}
    for backbone in backbones:
        peaks[backbone] = {
            mode: _step_peak(backbone, size, n, mode) for mode, n in (("fit", batch), ("predict", predict_batch))
        }
        print(f"{backbone:<16}{peaks[backbone]['fit']:>19}{peaks[backbone]['predict']:>22}")
    return peaks


def _step_peak(backbone: str, size: int, batch: int, mode: str) -> int:
    env = {
        **os.environ,
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }
    proc = subprocess.run(
        [sys.executable, "-c", STEP, backbone, str(size), str(batch), mode],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        sys.exit(f"the {mode} step of {backbone} failed:\n{proc.stderr[-2000:]}")
    return round(int(proc.stdout.split()[-1]) / 1024)  # ru_maxrss is in KiB on Linux


def measure(name: str, cfg: dict, workdir: Path) -> dict:
    workdir.mkdir(parents=True, exist_ok=True)
    configfile = workdir / "bench_config.yaml"
    configfile.write_text(yaml.safe_dump(cfg, sort_keys=False))
    jobs, own, elapsed = run_and_watch(workdir, configfile)
    rules: dict[str, list[int]] = {}
    for rule, peak in jobs.values():
        rules.setdefault(rule, []).append(peak)
    train = cfg.get("demo", {}).get("train", {}) if name == "demo" else cfg["train"]
    size, batch = (
        train.get("image_size", cfg["train"]["image_size"]),
        train.get("batch_size", cfg["train"]["batch_size"]),
    )
    print(
        f"\n{name}: {size} px, batch {batch}, backbones {', '.join(cfg['backbones'])}; "
        f"{len(jobs)} jobs in {elapsed:.0f} s; workdir {workdir}"
    )
    print(f"{'rule':<16}{'jobs':>5}{'peak RSS MiB':>14}")
    for rule, peaks in sorted(rules.items(), key=lambda kv: -max(kv[1])):
        print(f"{rule:<16}{len(peaks):>5}{max(peaks) / 1024:>14.0f}")
    print(f"{'(snakemake)':<16}{1:>5}{own / 1024:>14.0f}")
    return {
        "rules": {r: round(max(p) / 1024) for r, p in rules.items()},
        "snakemake_mib": round(own / 1024),
        "jobs": len(jobs),
        "seconds": round(elapsed),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=("demo", "full", "steps"), help="measure one setting only")
    parser.add_argument(
        "--backbone", default="MobileNet", help="backbone of the full-study setting (default MobileNet)"
    )
    parser.add_argument("--images", type=int, default=150, help="synthetic images per class at full-study settings")
    parser.add_argument("--keep", type=Path, help="working directory to use and keep (default: a temporary one)")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()
    if not Path("/proc/self/status").is_file():
        sys.exit("bench_memory.py reads /proc/PID/status: run it on Linux")
    root = args.keep or Path(tempfile.mkdtemp(prefix="alldag-mem-"))
    settings = {"demo": demo_config, "full": lambda: full_config(args.backbone, args.images)}
    results = {name: measure(name, make(), root / name) for name, make in settings.items() if args.only in (None, name)}
    if args.only in (None, "steps"):
        backbones = yaml.safe_load((REPO / "config.yaml").read_text())["backbones"]
        results["steps"] = step_peaks(backbones)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
