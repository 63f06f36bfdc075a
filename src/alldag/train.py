"""The `train` stage: fit one backbone on one task's split and write the model, its history and its run record
(the `track` stage logs them to MLflow: it alone writes the model's run)."""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from alldag.figures import save, training_curves_figure
from alldag.progress import Progress
from alldag.provenance import TRAINING_PACKAGES, package_versions
from alldag.tables import read_tsv, write_tsv_atomic
from alldag.tracking import Tracking, child_run_record, write_run_file
from alldag.weights import weights_lineage

log = logging.getLogger(__name__)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow is imported lazily, after this


@dataclass(frozen=True)
class TrainSettings:
    """Everything that determines a training run (all from config)."""

    backbone: str
    task: str
    fold: int
    classes: tuple[str, ...]
    image_size: int
    epochs: int
    batch_size: int
    learning_rate: float
    weights: str | None
    dropout: float
    bn_momentum: float | None
    recalibrate_bn: bool
    seed: int
    kernel_initializer: str | None = None  # random init only: re-draw the convolution kernels with this
    class_weights: bool = True
    early_stopping_patience: int | None = None
    head_epochs: int = 0
    fine_tune_layers: int = 0
    fine_tune_learning_rate: float = 1e-5
    weights_file: str | None = None  # the file the backbone's weights are loaded from (None: weights itself)
    mixed_precision: str = "auto"  # auto | on | off (alldag.devices.configure_tensorflow)
    checkpoint_minutes: float = 0.0  # how often a checkpoint is written (0: after every epoch)
    require_gpu: bool = False  # fail with one line instead of training on the CPU


# how a run is carried out, not what it computes: a checkpoint written under other values still resumes
_RUNTIME_ONLY = ("checkpoint_minutes", "require_gpu")
# logged otherwise: the weights file as lineage, the precision used among the hardware params
_NOT_PARAMS = ("weights_file", "mixed_precision", *_RUNTIME_ONLY)


def balanced_class_weights(y: np.ndarray, n_classes: int) -> dict[int, float]:
    """Keras class_weight giving every class the same total weight: n / (k * count of the class)."""
    counts = np.bincount(np.asarray(y, int), minlength=n_classes)
    return {i: float(len(y) / (n_classes * c)) if c else 0.0 for i, c in enumerate(counts)}


def training_phases(settings: TrainSettings, pretrained: bool = True) -> list[tuple[str, int, float, int | None]]:
    """(name, last epoch, learning rate, trainable top backbone layers) of each training phase.

    With pretrained weights (settings.weights set and a keras.applications backbone: pretrained) and
    0 < head_epochs < epochs: the head alone (backbone frozen), then the top fine_tune_layers (0 = all)
    at fine_tune_learning_rate. Otherwise one phase, all layers: a randomly initialised network
    (a custom architecture, whatever train.weights says) has no features to keep frozen.
    """
    if pretrained and settings.weights is not None and 0 < settings.head_epochs < settings.epochs:
        return [
            ("head", settings.head_epochs, settings.learning_rate, 0),
            ("fine_tune", settings.epochs, settings.fine_tune_learning_rate, settings.fine_tune_layers or None),
        ]
    return [("full", settings.epochs, settings.learning_rate, None)]


def run_fingerprint(settings: TrainSettings, manifest: pd.DataFrame, augmentation: dict) -> str:
    """What a checkpoint must match to be resumed: the settings, the split and the augmentation."""
    from alldag.checkpoint import fingerprint

    computed = {k: v for k, v in asdict(settings).items() if k not in _RUNTIME_ONLY}
    return fingerprint(computed, augmentation, manifest[["path", "y", "split"]].values.tolist())


def fit(
    settings: TrainSettings,
    manifest: pd.DataFrame,
    augmentation: dict,
    checkpoint_dir,
    report=lambda rows: None,
    checkpoint_every_s: float = 0.0,
    build_model=None,
    report_metrics=lambda metrics: None,
):
    """Build and fit the classifier, resuming from checkpoint_dir; returns (model, history DataFrame).

    Each epoch is checkpointed (see alldag.checkpoint) and then passed to report(rows) exactly once,
    even across a kill and restart. build_model() replaces the keras.applications backbone for
    custom architectures (it must take raw RGB in [0, 255]). report_metrics(dict) gets the recalibrated
    BatchNorm scores.
    """
    import keras
    import tensorflow as tf

    from alldag import checkpoint
    from alldag.inputs import make_dataset

    keras.utils.set_random_seed(settings.seed)
    tf.config.experimental.enable_op_determinism()  # same seed, same CPU -> same metrics
    train_rows = manifest[manifest["split"] == "train"]
    val_ds = make_dataset(manifest[manifest["split"] == "val"], settings.image_size, settings.batch_size)
    model = _build_model(settings, build_model, train_rows)
    phases = training_phases(settings, pretrained=build_model is None)
    key = run_fingerprint(settings, manifest, augmentation)
    state = checkpoint.load_state(checkpoint_dir, key)
    rows = list(state["history"]) if state else []
    done = state["epoch"] if state else 0
    if state:
        log.info("resuming from the checkpoint after epoch %d (phase %s)", done, state["phase"])
    fitting = _Fitting(settings, train_rows, val_ds, augmentation, Path(checkpoint_dir), key, rows, report)
    names = [name for name, *_ in phases]
    for phase in phases:
        if state and names.index(phase[0]) < names.index(state["phase"]):
            continue  # finished before the checkpoint
        done, state = _fit_phase(fitting, model, phase, done, state, checkpoint_every_s), None
    frame = mark_kept_epoch(pd.DataFrame(rows), bool(settings.early_stopping_patience))
    if settings.recalibrate_bn and (recalibrated := _recalibrated(model, train_rows, val_ds, settings)):
        report_metrics(recalibrated)
    return model, frame


def _build_model(settings: TrainSettings, build_model, train_rows: pd.DataFrame):
    """The classifier: build_model() for a custom architecture, else the keras.applications backbone's (with
    kernel_initializer lsuv, its kernels scaled on the first batch of training images)."""
    from alldag.models import LSUV, build_classifier, unit_variance_kernels

    if build_model is None:
        model = build_classifier(
            settings.backbone,
            len(settings.classes),
            settings.image_size,
            settings.weights_file or settings.weights,
            settings.dropout,
            settings.bn_momentum,
            settings.kernel_initializer,
            settings.seed,
        )
        if settings.kernel_initializer == LSUV and settings.weights is None:
            from alldag.images import load_images

            drawn = train_rows.sample(n=min(settings.batch_size, len(train_rows)), random_state=settings.seed)
            batch = load_images(drawn["path"], settings.image_size)
            found = unit_variance_kernels(model, batch)
            log.info("LSUV: convolution outputs had SD %s before scaling", [round(sd, 2) for sd in found])
        return model
    if settings.weights is not None:
        log.info(
            "%s is a custom architecture (random init): one training phase, train.weights (%s) and "
            "head_epochs do not apply",
            settings.backbone,
            settings.weights,
        )
    return build_model()


@dataclass
class _Fitting:
    """What every phase of one fit() shares: its data, checkpoint and the epoch rows so far (appended to)."""

    settings: TrainSettings
    train_rows: pd.DataFrame
    val_ds: object
    augmentation: dict
    checkpoint_dir: Path
    key: str  # run_fingerprint
    rows: list
    report: object  # report(rows) of fit()


def _fit_phase(fitting: _Fitting, model, phase: tuple, done: int, state: dict | None, checkpoint_every_s) -> int:
    """Train one phase (name, last epoch, rate, trainable top layers) from epoch `done`, or from the
    checkpoint `state` when it was saved in this phase; returns the last epoch trained."""
    import keras

    from alldag import checkpoint
    from alldag.models import set_backbone_trainable

    name, until, rate, trainable_top = phase
    s, directory = fitting.settings, fitting.checkpoint_dir
    if name != "full":
        n_trainable = set_backbone_trainable(model, trainable_top)
        log.info("phase %s: %d backbone layers trainable, learning rate %g", name, n_trainable, rate)
    model.compile(optimizer=keras.optimizers.Adam(rate), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    resumed, best = None, None
    if state:
        best = checkpoint.load_weights(directory, model, state)
        resumed = state["early_stopping"]
        if state["phase_finished"]:
            if best is not None:
                model.set_weights(best)  # what EarlyStopping's restore did before the kill
            return done
    callbacks = []
    if s.early_stopping_patience:
        callbacks.append(checkpoint.resumable_early_stopping(s.early_stopping_patience, resumed, best))
    stopper = callbacks[0] if callbacks else None
    callbacks.append(
        checkpoint.checkpoint_callback(
            directory, fitting.key, fitting.rows, name, fitting.report, checkpoint_every_s, stopper
        )
    )
    callbacks.append(checkpoint.reseed_each_epoch(s.seed))
    with epoch_progress(f"train {s.task}/{s.backbone}/fold{s.fold} ({name})", done, until) as progress:
        model.fit(
            _training_dataset(fitting, done, until),
            validation_data=fitting.val_ds,
            initial_epoch=done,
            epochs=until,
            verbose=2,
            class_weight=balanced_class_weights(fitting.train_rows["y"], len(s.classes)) if s.class_weights else None,
            callbacks=[*callbacks, progress],
            steps_per_epoch=-(-len(fitting.train_rows) // s.batch_size),
        )
    return fitting.rows[-1]["epoch"] if fitting.rows else done


def _training_dataset(fitting: _Fitting, first: int, until: int):
    """Epochs first + 1 .. until of the training set; shuffle and augmentation seeded per epoch from (seed,
    epoch), so a resumed fit draws as an uninterrupted one."""
    from alldag.augment import build_augmenter
    from alldag.inputs import make_dataset

    s = fitting.settings
    return make_dataset(
        fitting.train_rows,
        s.image_size,
        s.batch_size,
        training=True,
        seed=s.seed,
        epochs=range(first, until),
        epoch_augmenter=lambda seed: build_augmenter({**fitting.augmentation, "seed": seed}),
    )


def _recalibrated(model, train_rows: pd.DataFrame, val_ds, settings: TrainSettings) -> dict:
    """Recompute the BatchNorm statistics on the training images (precise BN); the validation scores after it."""
    from alldag.inputs import make_dataset
    from alldag.models import recalibrate_batchnorm

    changed, frozen = recalibrate_batchnorm(model, make_dataset(train_rows, settings.image_size, settings.batch_size))
    if frozen:
        log.info("precise BN: %d frozen BatchNormalization layers keep their statistics (skipped)", frozen)
    if not changed:
        return {}
    loss, accuracy = model.evaluate(val_ds, verbose=0)
    log.info("recalibrated %d BatchNormalization layers: val_loss %.4f, val_accuracy %.4f", changed, loss, accuracy)
    return {"val_loss_recalibrated": loss, "val_accuracy_recalibrated": accuracy}


@contextmanager
def epoch_progress(label: str, first_epoch: int, last_epoch: int):
    """A Keras callback, as a context, logging a progress line per epoch (and every 30 s) over one fit()
    call that runs epochs first_epoch + 1 .. last_epoch; early stopping ends it sooner, and says so."""
    import keras

    with Progress(label, last_epoch, unit="epoch", every=1, done=first_epoch) as progress:

        class EpochProgress(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                progress.advance()

        yield EpochProgress()
        if progress.done < last_epoch:
            progress.label += f", stopped early after epoch {progress.done}"
            progress.total = progress.done


def mark_kept_epoch(history: pd.DataFrame, early_stopping: bool) -> pd.DataFrame:
    """history with a `kept` column, True on the epoch whose weights the model ends with.

    With early stopping, Keras restores the best val_loss epoch of the last phase (each phase's callback
    starts afresh; the first of equal minima); without it, the last epoch's weights are kept.
    """
    kept = pd.Series(False, index=history.index)
    if len(history):
        last_phase = history[history["phase"] == history["phase"].iloc[-1]] if "phase" in history else history
        kept[last_phase["val_loss"].idxmin() if early_stopping else history.index[-1]] = True
    return history.assign(kept=kept)


def run_record(
    settings: TrainSettings, tracking: Tracking, manifest: pd.DataFrame, augmentation: dict, hardware: dict
) -> dict:
    """The model's child-run record (alldag.tracking.child_run_record): the settings, augmentation, package
    versions, training-set size and hardware as params; the weights file's name and sha256 as params and tags."""
    lineage = weights_lineage(settings.weights_file)
    params = {
        **{k: v for k, v in asdict(settings).items() if k not in _NOT_PARAMS},
        "classes": ",".join(settings.classes),
        "weights": str(settings.weights),
        **lineage,
        **{f"augment.{k}": v for k, v in augmentation.items()},
        **package_versions(TRAINING_PACKAGES),
        "n_train": int((manifest["split"] == "train").sum()),
        "gpus": hardware["gpus"],
        "devices": hardware["devices"],
        "precision": hardware["precision"],
    }
    record = child_run_record(
        tracking,
        task=settings.task,
        model=settings.backbone,
        fold=settings.fold,
        image_size=settings.image_size,
        epochs=settings.epochs,
        weights=settings.weights,
        seed=settings.seed,
        params=params,
    )
    record["tags"].update({f"alldag.{key}": value for key, value in lineage.items()})
    return record


@dataclass(frozen=True)
class TrainOutputs:
    """The files a training job writes (see train_model)."""

    model: str  # model.keras
    history: str  # history.tsv
    curves: str  # training_curves.png
    run: str  # mlflow_run.json


def train_model(
    *,
    settings: TrainSettings,
    manifest,
    augmentation,
    tracking: Tracking,
    outputs: TrainOutputs,
    build_model=None,
    pretrained: dict | None = None,
) -> None:
    """Train one (task, backbone) model and write its outputs; files only: the `track` job makes its MLflow run.

    manifest: the fold's split manifest (TSV); augmentation: the augment stage's spec (JSON).
    outputs: model (.keras, without optimizer state), history (TSV, one row per epoch), curves (PNG of the
    accuracy and loss curves), run (JSON: the run's record for the `track` rule, see record_training). A
    checkpoint folder beside the model lets a killed job resume; it is removed once the outputs are written.
    settings.require_gpu: raise AlldagError (one line) instead of training on the CPU when no GPU is visible.
    pretrained: the checksum-table row (alldag.weights.WeightsFile's fields) settings.weights_file must match.
    """
    from alldag import checkpoint
    from alldag.augment import read_spec
    from alldag.devices import configure_tensorflow, training_device
    from alldag.logged_model import save_lean
    from alldag.system_metrics import sampled
    from alldag.weights import WeightsFile, check_cached

    if pretrained:
        check_cached(settings.weights_file, WeightsFile(**pretrained))
    with training_device() as device:
        hardware = configure_tensorflow(settings.mixed_precision, settings.require_gpu)
        log.info(
            "training %s on %s; GPU %s (TensorFlow sees: %s), %s",
            settings.backbone,
            settings.task,
            device or "none",
            hardware["devices"],
            hardware["precision"],
        )
        rows, spec = read_tsv(manifest), read_spec(augmentation)
        checkpoint_dir = Path(outputs.model).parent / "checkpoint"
        started, recalibrated = _now_ms(), {}
        with sampled(tracking.system_metrics) as samples:
            model, history = fit(
                settings,
                rows,
                spec,
                checkpoint_dir,
                checkpoint_every_s=60 * settings.checkpoint_minutes,
                build_model=build_model,
                report_metrics=recalibrated.update,
            )
        write_training_outputs(history, settings, outputs.history, outputs.curves)
        save_lean(model, outputs.model)
        record = run_record(settings, tracking, rows, spec, hardware)
        record |= {"started": started, "ended": _now_ms(), "metrics": recalibrated, "system_metrics": samples}
        write_run_file(outputs.run, tracking, record)
        checkpoint.clear(checkpoint_dir)
    log.info("saved %s; the track rule logs it to MLflow", outputs.model)


def _now_ms() -> int:
    """Now, as MLflow stamps run times: epoch milliseconds."""
    import time

    return int(time.time() * 1000)


def write_training_outputs(history: pd.DataFrame, settings: TrainSettings, history_out, curves_out) -> None:
    """The per-epoch history TSV and the training-curves figure."""
    Path(history_out).parent.mkdir(parents=True, exist_ok=True)
    write_tsv_atomic(history, history_out)
    save(training_curves_figure(history, f"{settings.backbone} on {settings.task}"), curves_out)


def settings_from_params(params: dict) -> tuple[TrainSettings, Tracking]:
    """Build TrainSettings and Tracking from a rule's params and wildcards (task, backbone, fold), and
    weights_file: the train rule's weights input (the cached ImageNet file), if it has one."""
    t = dict(params["train"])
    local = t["weights"] if t["weights"] not in (None, "imagenet") else None
    # a custom architecture starts from random weights whatever train.weights says
    weights_file = None if "architecture" in params else params.get("weights_file") or local
    settings = TrainSettings(
        backbone=params["backbone"],
        task=params["task"],
        fold=int(params.get("fold", 0)),
        classes=tuple(params["classes"]),
        image_size=t["image_size"],
        epochs=t["epochs"],
        batch_size=t["batch_size"],
        learning_rate=t["learning_rate"],
        weights=t["weights"],
        dropout=t["dropout"],
        bn_momentum=t["bn_momentum"],
        recalibrate_bn=t["recalibrate_bn"],
        seed=params["seed"],
        kernel_initializer=t["kernel_initializer"],
        class_weights=t["class_weights"],
        early_stopping_patience=t["early_stopping_patience"],
        head_epochs=t["head_epochs"],
        fine_tune_layers=t["fine_tune_layers"],
        fine_tune_learning_rate=t["fine_tune_learning_rate"],
        weights_file=weights_file,
        mixed_precision=t["mixed_precision"],
        checkpoint_minutes=t["checkpoint_minutes"],
        require_gpu=t["require_gpu"],
    )
    return settings, Tracking.from_params(params["tracking"])
