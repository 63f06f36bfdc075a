"""Per-epoch training checkpoints, so a killed training job continues where it stopped.

After every epoch the weights (optimizer state included), the history so far, the MLflow run id
and the early-stopping state are saved together: the weights go to a new file, then one small
`state.json` is replaced atomically to point at it. A crash at any moment leaves either the old or
the new checkpoint, never a mix. A checkpoint made with other settings (its fingerprint differs) is
ignored, so a changed config never resumes stale weights.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

from alldag.tables import write_text_atomic

log = logging.getLogger(__name__)
STATE = "state.json"


def fingerprint(*parts) -> str:
    """A short hash of everything that makes a training run what it is (settings, data, augmentation)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def load_state(directory: str | os.PathLike, expected_fingerprint: str) -> dict | None:
    """The last checkpoint's state if it exists and matches the fingerprint, else None (stale ones are removed)."""
    path = Path(directory) / STATE
    if not path.is_file():
        return None
    state = json.loads(path.read_text())
    if state.get("fingerprint") != expected_fingerprint or not (Path(directory) / state["weights"]).is_file():
        log.warning("ignoring the checkpoint in %s: it was made with other settings", directory)
        clear(directory)
        return None
    return state


def save_state(directory: str | os.PathLike, model, state: dict, best_weights=None) -> None:
    """Write the model's weights (with optimizer state) and `state`, then point state.json at them.

    best_weights (early stopping's best so far) are written once per best epoch.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    weights = f"epoch{state['epoch']:04d}.weights.h5"
    model.save_weights(directory / weights)
    state = {**state, "weights": weights, "best_weights": None}
    if best_weights is not None:
        import numpy as np

        state["best_weights"] = f"best{state['early_stopping']['best_epoch']:04d}.npz"
        if not (directory / state["best_weights"]).is_file():
            np.savez(directory / f".{state['best_weights']}", *best_weights)
            (directory / f".{state['best_weights']}").replace(directory / state["best_weights"])
    write_text_atomic(json.dumps(state, indent=1, default=float), directory / STATE)
    keep = {STATE, weights, state["best_weights"]}
    for old in directory.iterdir():
        if old.name not in keep and not old.name.startswith("."):
            old.unlink()


def load_weights(directory: str | os.PathLike, model, state: dict) -> list | None:
    """Restore the checkpoint's weights and optimizer state into a compiled model; returns the saved best weights."""
    import numpy as np

    model.optimizer.build(model.trainable_variables)
    model.load_weights(Path(directory) / state["weights"])
    if not state.get("best_weights"):
        return None
    with np.load(Path(directory) / state["best_weights"]) as saved:
        return [saved[f"arr_{i}"] for i in range(len(saved.files))]


def clear(directory: str | os.PathLike) -> None:
    shutil.rmtree(directory, ignore_errors=True)


def checkpoint_callback(
    directory, fingerprint_: str, history_rows: list, phase: str, report, every_s: float = 0.0, early_stopping=None
):
    """A Keras callback: records each epoch in history_rows and checkpoints, then reports, the new epochs.

    A checkpoint is saved at most every `every_s` seconds (0 = every epoch) and always at the end of
    training. `report(rows)` (MLflow logging) sees an epoch only once it is in a saved checkpoint,
    so a resumed job never reports an epoch twice. Place it after EarlyStopping in the callback list.
    """
    import time

    import keras

    class EpochCheckpoint(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.saved_at, self.pending = time.monotonic(), []

        def on_epoch_end(self, epoch, logs=None):
            row = {"epoch": epoch + 1, "phase": phase, **{k: float(v) for k, v in (logs or {}).items()}}
            history_rows.append(row)
            self.pending.append(row)
            finished = self.model.stop_training or epoch + 1 >= self.params.get("epochs", 0)
            if finished or time.monotonic() - self.saved_at >= every_s:
                self.flush(epoch + 1, finished)

        def on_train_end(self, logs=None):
            if self.pending:
                self.flush(history_rows[-1]["epoch"], True)

        def flush(self, epoch, finished):
            stopping = None
            if early_stopping is not None:
                stopping = {
                    "wait": early_stopping.wait,
                    "best": early_stopping.best,
                    "best_epoch": early_stopping.best_epoch,
                }
            save_state(
                directory,
                self.model,
                {
                    "fingerprint": fingerprint_,
                    "epoch": epoch,
                    "history": history_rows,
                    "phase": phase,
                    "phase_finished": finished,
                    "early_stopping": stopping,
                },
                best_weights=getattr(early_stopping, "best_weights", None),
            )
            report(self.pending)
            self.saved_at, self.pending = time.monotonic(), []

    return EpochCheckpoint()


def resumable_early_stopping(patience: int, resumed: dict | None, best_weights):
    """EarlyStopping on val_loss with best-weights restore that continues a checkpoint's counters."""
    import keras

    class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
        def on_train_begin(self, logs=None):
            super().on_train_begin(logs)
            if resumed:
                self.wait, self.best, self.best_epoch = resumed["wait"], resumed["best"], resumed["best_epoch"]
                self.best_weights = best_weights

    return ResumableEarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True)


def reseed_each_epoch(seed: int):
    """A Keras callback: at each epoch's start, sets every random layer's seed (dropout) from (seed, epoch, layer).

    The seed state is not part of the saved weights; reseeding per epoch makes a resumed job draw
    the same dropout masks as an uninterrupted one.
    """
    import keras
    import numpy as np

    from alldag.inputs import epoch_seed

    class ReseedEachEpoch(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            generators = [g for layer in self.model._flatten_layers() for g in layer._seed_generators]
            for i, generator in enumerate(generators):
                generator.state.assign(np.array([epoch_seed(seed, "layer", epoch, i), 0], generator.state.dtype))

    return ReseedEachEpoch()
