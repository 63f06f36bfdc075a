"""A real single-node SLURM cluster (Debian's slurmctld, slurmd, munge) in a scratch folder, for tests.

Installed with apt when missing (root only); every daemon runs in the foreground of a process we own,
binds 127.0.0.1, keeps its state, logs and sockets in the scratch folder, and is stopped on exit.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

PACKAGES = ("slurmctld", "slurmd", "munge")
BINARIES = ("slurmctld", "slurmd", "munged", "mungekey", "sbatch", "squeue", "sinfo", "scontrol")
NODE = "alldag-node"
# One fake GPU (a GRES without device files): the real profile's `gpu=1` -> `--gpus=1` is then schedulable
# on a machine without GPUs. CPUs and memory are declared, not probed (config_overrides), so the profile's
# `mem_mb` and `cpus-per-task` requests fit whatever this machine has.
SLURM_CONF = """\
ClusterName=alldagtest
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={state}/munge.socket
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
StateSaveLocation={state}/ctld
SlurmdSpoolDir={state}/spool
SlurmctldPidFile={state}/slurmctld.pid
SlurmdPidFile={state}/slurmd.pid
SlurmctldLogFile={state}/slurmctld.log
SlurmdLogFile={state}/slurmd.log
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=300
ReturnToService=2
SlurmdParameters=config_overrides
GresTypes=gpu
NodeName={node} NodeAddr=127.0.0.1 NodeHostname=localhost CPUs=16 RealMemory=65536 Gres=gpu:1 State=UNKNOWN
PartitionName=cpu Nodes={node} Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes={node} MaxTime=INFINITE State=UP
"""
GRES_CONF = "NodeName={node} Name=gpu File=/dev/null\n"
# Inside a job the plugin's `srun` runs without SLURM_CONF (it drops SLURM_* variables), so the config must
# also be where SLURM looks by default: a symlink there for the cluster's lifetime.
SYSTEM_CONF = Path("/etc/slurm/slurm.conf")


@dataclass(frozen=True)
class Cluster:
    env: dict  # the environment for SLURM clients (SLURM_CONF set)
    pids: list[int]  # munged, slurmctld, slurmd
    state: Path  # configuration, state, logs
    ports: list[int]  # slurmctld's, slurmd's


class SlurmUnavailable(Exception):
    """SLURM cannot be installed or started here; the message says why."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening_addresses(port: int) -> set[str]:
    """IP addresses with a TCP socket listening on port, from /proc/net/tcp{,6} ("::" and "0.0.0.0" = all)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                raw = bytes.fromhex(address)
                words = b"".join(
                    raw[i : i + 4][::-1] for i in range(0, len(raw), 4)
                )  # each 32-bit word is little-endian
                found.add(str(ipaddress.ip_address(words)))
    return found


def ensure_installed(timeout: int = 600) -> None:
    """Install the SLURM and munge packages with apt if a binary is missing; SlurmUnavailable if we cannot."""
    if all(shutil.which(b) for b in BINARIES):
        return
    if os.geteuid() != 0:
        raise SlurmUnavailable(
            "SLURM is not installed and installing it needs root (apt-get install slurmctld slurmd munge)"
        )
    if not shutil.which("apt-get"):
        raise SlurmUnavailable("SLURM is not installed and this machine has no apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", *PACKAGES]
    proc = subprocess.run(install, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:  # stale package lists: refresh once
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, timeout=timeout)
        proc = subprocess.run(install, env=env, capture_output=True, text=True, timeout=timeout)
    missing = [b for b in BINARIES if not shutil.which(b)]
    if proc.returncode != 0 or missing:
        raise SlurmUnavailable(
            f"apt-get install {' '.join(PACKAGES)} failed: {(proc.stderr or proc.stdout).strip()[-300:]}"
        )


def check_system_config_free() -> None:
    """SlurmUnavailable if this machine has a SLURM configuration of its own (we never touch a real cluster's)."""
    if SYSTEM_CONF.is_symlink() and not SYSTEM_CONF.exists():
        SYSTEM_CONF.unlink()  # left by an earlier test session that was killed
    if SYSTEM_CONF.exists():
        raise SlurmUnavailable(
            f"{SYSTEM_CONF} exists: this machine has a SLURM configuration, which the test leaves alone"
        )


@contextmanager
def _daemon(cmd: list[str], log: Path, env: dict):
    """Run cmd in the foreground of its own process group; stop the group on exit (TERM, then KILL)."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=15)


def _wait_for(check, what: str, procs, logs, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        dead = [p for p in procs if p.poll() is not None]
        if dead:
            break
        time.sleep(0.5)
    tails = "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')[-1500:]}" for log in logs if log.exists())
    raise SlurmUnavailable(f"{what} did not come up within {timeout:.0f} s\n{tails}")


def _ok(cmd: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=20)


@contextmanager
def single_node_cluster(state: Path):
    """Start munged, slurmctld and slurmd with their state in `state`; yields a Cluster.

    Cluster.env is os.environ plus SLURM_CONF pointing at the generated slurm.conf: pass it to
    sbatch/squeue/snakemake. Jobs are cancelled and all daemons stopped when the block exits, also on errors.
    """
    state = Path(state).resolve()
    for sub in ("ctld", "spool"):
        (state / sub).mkdir(parents=True, exist_ok=True)
    state.chmod(0o700)  # munged refuses sockets in group/world-writable folders
    values = {"state": state, "node": NODE, "ctld_port": free_port(), "slurmd_port": free_port()}
    conf = state / "slurm.conf"
    conf.write_text(SLURM_CONF.format(**values))
    (state / "gres.conf").write_text(GRES_CONF.format(**values))
    env = {**os.environ, "SLURM_CONF": str(conf)}
    key = state / "munge.key"
    proc = _ok(["mungekey", "--create", "--force", f"--keyfile={key}"], env)
    if proc.returncode != 0:
        raise SlurmUnavailable(f"mungekey failed: {proc.stderr.strip()}")
    key.chmod(0o600)
    logs = [state / "munged.log", state / "slurmctld.log", state / "slurmd.log"]
    with ExitStack() as stack:
        check_system_config_free()
        SYSTEM_CONF.parent.mkdir(parents=True, exist_ok=True)
        SYSTEM_CONF.symlink_to(conf)
        stack.callback(SYSTEM_CONF.unlink, missing_ok=True)
        munged = stack.enter_context(
            _daemon(
                [
                    "munged",
                    "--foreground",
                    "--force",
                    f"--socket={state}/munge.socket",
                    f"--key-file={key}",
                    f"--pid-file={state}/munged.pid",
                    f"--log-file={logs[0]}",
                    f"--seed-file={state}/munge.seed",
                ],
                state / "munged.out",
                env,
            )
        )
        _wait_for(lambda: (state / "munge.socket").exists(), "munged", [munged], logs + [state / "munged.out"])
        ctld = stack.enter_context(_daemon(["slurmctld", "-D", "-i", "-f", str(conf)], state / "slurmctld.out", env))
        _wait_for(
            lambda: _ok(["scontrol", "ping"], env).stdout.count("UP") > 0,
            "slurmctld",
            [ctld],
            logs + [state / "slurmctld.out"],
        )
        slurmd = stack.enter_context(_daemon(["slurmd", "-D", "-N", NODE, "-f", str(conf)], state / "slurmd.out", env))
        _wait_for(
            lambda: _ok(["sinfo", "-h", "-o", "%T", "-n", NODE], env).stdout.strip() == "idle",
            "slurmd",
            [ctld, slurmd],
            logs + [state / "slurmd.out"],
        )
        stack.callback(_cancel_all_jobs, env)  # runs first: job steps are not in the daemons' process groups
        yield Cluster(env, [munged.pid, ctld.pid, slurmd.pid], state, [values["ctld_port"], values["slurmd_port"]])


def _cancel_all_jobs(env: dict, timeout: float = 30) -> None:
    """Cancel every job of this cluster and wait until none is running."""
    _ok(["scancel", "--user", str(os.geteuid())], env)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _ok(["squeue", "-h", "-t", "RUNNING,COMPLETING,PENDING"], env).stdout.strip():
        time.sleep(0.5)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
