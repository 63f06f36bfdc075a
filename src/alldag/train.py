"""The `train` stage: fit one backbone on one task's split, save the model, track it in MLflow."""

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
from alldag.run_metrics import best_epoch_metrics, epoch_reporter, log_missing_epochs
from alldag.tables import read_tsv, write_tsv_atomic
from alldag.tracking import Tracking, child_run_record, retry, write_run_file
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
    from alldag.augment import build_augmenter
    from alldag.inputs import make_dataset
    from alldag.models import build_classifier, recalibrate_batchnorm, set_backbone_trainable

    keras.utils.set_random_seed(settings.seed)
    tf.config.experimental.enable_op_determinism()  # same seed, same CPU -> same metrics
    train_rows = manifest[manifest["split"] == "train"]
    val_rows = manifest[manifest["split"] == "val"]
    val_ds = make_dataset(val_rows, settings.image_size, settings.batch_size)
    model = (
        build_model()
        if build_model
        else build_classifier(
            settings.backbone,
            len(settings.classes),
            settings.image_size,
            settings.weights_file or settings.weights,
            settings.dropout,
            settings.bn_momentum,
            settings.kernel_initializer,
            settings.seed,
        )
    )
    class_weight = balanced_class_weights(train_rows["y"], len(settings.classes)) if settings.class_weights else None
    phases = training_phases(settings, pretrained=build_model is None)
    if build_model is not None and settings.weights is not None:
        log.info(
            "%s is a custom architecture (random init): one training phase, train.weights (%s) and "
            "head_epochs do not apply",
            settings.backbone,
            settings.weights,
        )
    key = run_fingerprint(settings, manifest, augmentation)
    state = checkpoint.load_state(checkpoint_dir, key)
    rows = list(state["history"]) if state else []
    done = state["epoch"] if state else 0
    if state:
        log.info("resuming from the checkpoint after epoch %d (phase %s)", done, state["phase"])
    names = [name for name, *_ in phases]
    for phase, until, rate, trainable_top in phases:
        if state and names.index(phase) < names.index(state["phase"]):
            continue  # finished before the checkpoint
        if phase != "full":
            n_trainable = set_backbone_trainable(model, trainable_top)
            log.info("phase %s: %d backbone layers trainable, learning rate %g", phase, n_trainable, rate)
        model.compile(
            optimizer=keras.optimizers.Adam(rate), loss="sparse_categorical_crossentropy", metrics=["accuracy"]
        )
        resumed, best = None, None
        if state:
            best = checkpoint.load_weights(checkpoint_dir, model, state)
            resumed, finished, state = state["early_stopping"], state["phase_finished"], None
            if finished:
                if best is not None:
                    model.set_weights(best)  # what EarlyStopping's restore did before the kill
                continue
        callbacks = []
        if settings.early_stopping_patience:
            callbacks.append(checkpoint.resumable_early_stopping(settings.early_stopping_patience, resumed, best))
        callbacks.append(
            checkpoint.checkpoint_callback(
                checkpoint_dir, key, rows, phase, report, checkpoint_every_s, callbacks[0] if callbacks else None
            )
        )
        callbacks.append(checkpoint.reseed_each_epoch(settings.seed))
        # shuffle and augmentation seeded per epoch from (seed, epoch): a resumed fit draws as an uninterrupted one
        train_ds = make_dataset(
            train_rows,
            settings.image_size,
            settings.batch_size,
            training=True,
            seed=settings.seed,
            epochs=range(done, until),
            epoch_augmenter=lambda s: build_augmenter({**augmentation, "seed": s}),
        )
        label = f"train {settings.task}/{settings.backbone}/fold{settings.fold} ({phase})"
        with epoch_progress(label, done, until) as progress:
            model.fit(
                train_ds,
                validation_data=val_ds,
                initial_epoch=done,
                epochs=until,
                verbose=2,
                class_weight=class_weight,
                callbacks=[*callbacks, progress],
                steps_per_epoch=-(-len(train_rows) // settings.batch_size),
            )
        done = rows[-1]["epoch"] if rows else done
    frame = mark_kept_epoch(pd.DataFrame(rows), bool(settings.early_stopping_patience))
    if settings.recalibrate_bn:
        changed, frozen = recalibrate_batchnorm(
            model, make_dataset(train_rows, settings.image_size, settings.batch_size)
        )
        if frozen:
            log.info("precise BN: %d frozen BatchNormalization layers keep their statistics (skipped)", frozen)
        if changed:
            loss, accuracy = model.evaluate(val_ds, verbose=0)
            log.info(
                "recalibrated %d BatchNormalization layers: val_loss %.4f, val_accuracy %.4f", changed, loss, accuracy
            )
            report_metrics({"val_loss_recalibrated": loss, "val_accuracy_recalibrated": accuracy})
    return model, frame


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


def _open_live_run(
    tracking: Tracking, record: dict, split_manifest, manifest: pd.DataFrame, previous: str | None
) -> tuple[str, str]:
    """Start (or, after a restart, reopen) the model's child run and log its params and datasets: (run, parent)."""
    import mlflow

    from alldag.tracking import log_split_datasets, open_child_run

    if previous is not None:
        log.info("continuing MLflow run %s", previous)
    run_id, parent = open_child_run(tracking, record, previous)
    if previous is None:
        retry(mlflow.log_params, record["params"])
        log_split_datasets(split_manifest, manifest, record["dataset"], tracking.data_source)
    return run_id, parent


def _finish_live_run(
    run_id: str,
    history: pd.DataFrame,
    files: list[tuple],
    model,
    manifest: pd.DataFrame,
    settings: TrainSettings,
    model_out,
) -> bool:
    """Log what the active run lacks once training is done (epochs, best epoch, files, the model); True when done."""
    import mlflow

    from alldag.tracking import log_artifact

    if log_missing_epochs(run_id, history):
        log.info("logged the epochs the interrupted job had checkpointed but not yet logged")
    retry(mlflow.log_metrics, best_epoch_metrics(history))
    for path, folder in files:
        log_artifact(path, folder)
    _log_model(model, manifest, settings, model_out)
    return True


def _log_model(model, manifest: pd.DataFrame, settings: TrainSettings, model_out) -> None:
    """Log the model to the active run (MLflow's Keras 3 flavour) and write model_out as its one stored copy."""
    from alldag.images import load_images
    from alldag.logged_model import log_keras_model, store_model

    example = load_images(manifest["path"].head(1), settings.image_size)
    info = log_keras_model(model, example, list(settings.classes))
    log.info(
        "model %s: %s",
        "linked to its MLflow artifact"
        if store_model(model, info, model_out) == "linked"
        else "saved (the MLflow artifact store is not local)",
        model_out,
    )


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
    """Train one (task, backbone) model and write its outputs.

    manifest: the fold's split manifest (TSV); augmentation: the augment stage's spec (JSON).
    outputs: model (.keras, without optimizer state; a hard link to the logged MLflow model's file when
    the artifact store is local), history (TSV, one row per epoch), curves (PNG of the accuracy and loss
    curves), run (JSON: the MLflow child run id, or null, and the run's record for the `track` rule). A
    checkpoint folder beside the model lets a killed job resume; it is removed once the outputs are written.
    Epochs are logged live while MLflow answers; a tracking failure is a warning.
    settings.require_gpu: raise AlldagError (one line) instead of training on the CPU when no GPU is visible.
    pretrained: the checksum-table row (alldag.weights.WeightsFile's fields) settings.weights_file must match.
    """
    import mlflow

    from alldag import checkpoint
    from alldag.augment import read_spec
    from alldag.devices import configure_tensorflow, training_device
    from alldag.logged_model import store_model
    from alldag.tracking import LiveTracking, log_metrics
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
        split_manifest, augmentation_json = manifest, augmentation  # the files; below, the names hold their contents
        manifest = read_tsv(split_manifest)
        augmentation = read_spec(augmentation_json)
        checkpoint_dir = Path(outputs.model).parent / "checkpoint"
        key = run_fingerprint(settings, manifest, augmentation)
        previous = checkpoint.load_run(checkpoint_dir, key)
        record = run_record(settings, tracking, manifest, augmentation, hardware)
        live = LiveTracking(record["name"])
        run_id, parent = live.call(_open_live_run, tracking, record, split_manifest, manifest, previous) or (
            previous,
            None,
        )
        if run_id is not None and previous is None:
            checkpoint.save_run(checkpoint_dir, key, run_id)
        report = epoch_reporter(run_id) if run_id else (lambda rows: None)
        try:
            model, history = fit(
                settings,
                manifest,
                augmentation,
                checkpoint_dir,
                lambda rows: live.call(report, rows),
                60 * settings.checkpoint_minutes,
                build_model,
                report_metrics=lambda m: run_id and live.call(log_metrics, m),
            )
            write_training_outputs(history, settings, outputs.history, outputs.curves)
            files = [
                (outputs.curves, "figures"),
                (outputs.history, None),
                (augmentation_json, None),
                (split_manifest, None),
            ]
            if not (
                run_id and live.call(_finish_live_run, run_id, history, files, model, manifest, settings, outputs.model)
            ):
                store_model(model, None, outputs.model)
        except BaseException:
            if run_id:
                live.call(retry, mlflow.end_run, status="FAILED")
            raise
        if run_id:
            live.call(retry, mlflow.end_run)
        write_run_file(outputs.run, tracking, record, run_id=run_id, parent=parent, error=live.error)
        checkpoint.clear(checkpoint_dir)
    log.info("saved %s (MLflow run %s)", outputs.model, run_id or "not yet: the track rule makes it")


def write_training_outputs(history: pd.DataFrame, settings: TrainSettings, history_out, curves_out) -> None:
    """The per-epoch history TSV and the training-curves figure (the model is written by _log_model)."""
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
