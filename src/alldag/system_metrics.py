"""A training job's system metrics (CPU, memory, disk, network, GPU), sampled with MLflow's own monitors into
its run record; the `track` job logs them (alldag.tracking.log_steps_once) as the run's `system/...` metrics,
each sample at its own time.

MLflow's SystemMetricsMonitor logs straight into a live run, but a computing job writes files only (the track
job is the run's one writer), so this keeps MLflow's samplers, interval and names and hands the samples over.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager

log = logging.getLogger(__name__)


def _sampler_class():
    import threading

    from mlflow.environment_variables import (
        MLFLOW_SYSTEM_METRICS_NODE_ID,
        MLFLOW_SYSTEM_METRICS_SAMPLES_BEFORE_LOGGING,
        MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL,
    )
    from mlflow.system_metrics import system_metrics_monitor as mlflow_monitor

    class Sampler(mlflow_monitor.SystemMetricsMonitor):
        """SystemMetricsMonitor collecting into self.samples instead of a run; its own __init__ would open a
        tracking store (MLflow's default: ./mlflow.db)."""

        def __init__(self):
            self.monitors = [mlflow_monitor.CPUMonitor(), mlflow_monitor.DiskMonitor(), mlflow_monitor.NetworkMonitor()]
            if gpu := self._initialize_gpu_monitor():
                self.monitors.append(gpu)
            self.sampling_interval = MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL.get() or 10
            self.samples_before_logging = MLFLOW_SYSTEM_METRICS_SAMPLES_BEFORE_LOGGING.get() or 1
            self.node_id = MLFLOW_SYSTEM_METRICS_NODE_ID.get()
            self._metrics_prefix, self._shutdown_event, self._process = "system/", threading.Event(), None
            self.samples: list[dict] = []

        def monitor(self):  # MLflow's loop, minus its check that a run is still RUNNING
            while not self._shutdown_event.is_set():
                for _ in range(self.samples_before_logging):
                    self.collect_metrics()
                    if self._shutdown_event.wait(self.sampling_interval):
                        break
                self.publish_metrics(self.aggregate_metrics())

        def publish_metrics(self, metrics):
            prefix = self._metrics_prefix + (self.node_id + "/" if self.node_id else "")
            stamp = int(time.time() * 1000)
            step = len(self.samples)
            self.samples.append(
                {"step": step, "timestamp": stamp, "metrics": {prefix + k: v for k, v in metrics.items()}}
            )
            for monitor in self.monitors:
                monitor.clear_metrics()

        def finish(self):
            if self._process is not None:
                self._shutdown_event.set()
                self._process.join()
                self._process = None

    return Sampler


@contextmanager
def sampled(enabled: bool):
    """A list that fills with samples ({step, timestamp (epoch ms), metrics}) while the context runs, every
    MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL seconds (MLflow's default: 10); empty when not enabled or when
    MLflow's samplers cannot start (psutil missing: one warning)."""
    if not enabled:
        yield []
        return
    try:
        sampler = _sampler_class()()
    except Exception as exc:  # psutil missing, or another sampler that cannot start here
        log.warning("system metrics are not sampled: %s", exc)
        yield []
        return
    sampler.start()
    try:
        yield sampler.samples
    finally:
        sampler.finish()
