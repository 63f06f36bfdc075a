"""The `train` stage: fit one backbone on one task's split, save the model, track it in MLflow."""

from __future__ import annotations

import json
import logging
import os
import platform
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from alldag.data import read_tsv, write_tsv_atomic
from alldag.figures import save, training_curves_figure

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
    class_weights: bool = True
    early_stopping_patience: int | None = None
    head_epochs: int = 0
    fine_tune_layers: int = 0
    fine_tune_learning_rate: float = 1e-5


@dataclass(frozen=True)
class Tracking:
    """Where and under which runs to log: from config and the workflow's parent-run file."""

    uri: str
    experiment: str
    artifact_root: str
    parent_run_file: str
    tags: dict

    @classmethod
    def from_params(cls, params: dict) -> "Tracking":
        """From a rule's tracking params; MLFLOW_TRACKING_URI wins, relative sqlite paths become absolute."""
        from alldag.tracking import resolve_tracking_uri

        return cls(**{**params, "uri": resolve_tracking_uri(params["uri"], os.getcwd())})


def configure_devices() -> list:
    """Turn on GPU memory growth (no-op on CPU); returns the visible GPUs."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        tf.config.experimental.set_memory_growth(gpu, True)
    return gpus


def _mlflow_epoch_callback():
    import keras

    from alldag.tracking import log_metrics

    class MlflowEpochLogger(keras.callbacks.Callback):
        """Log every epoch's train/val loss and accuracy with step=epoch."""

        def on_epoch_end(self, epoch, logs=None):
            log_metrics({k: v for k, v in (logs or {}).items() if k != "learning_rate"}, step=epoch)

    return MlflowEpochLogger()


def balanced_class_weights(y: np.ndarray, n_classes: int) -> dict[int, float]:
    """Keras class_weight giving every class the same total weight: n / (k * count of the class)."""
    counts = np.bincount(np.asarray(y, int), minlength=n_classes)
    return {i: float(len(y) / (n_classes * c)) if c else 0.0 for i, c in enumerate(counts)}


def _phase_callbacks(settings: TrainSettings) -> list:
    import keras

    callbacks = [_mlflow_epoch_callback()]
    if settings.early_stopping_patience:
        callbacks.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=settings.early_stopping_patience,
                                                       restore_best_weights=True))
    return callbacks


def fit(settings: TrainSettings, manifest: pd.DataFrame, augmentation: dict):
    """Build and fit the classifier; returns (model, history DataFrame with one row per epoch).

    With pretrained weights and head_epochs > 0, training has two phases: the head alone with the
    backbone frozen, then the top fine_tune_layers of the backbone as well at fine_tune_learning_rate.
    """
    import keras
    import tensorflow as tf

    from alldag.augment import build_augmenter
    from alldag.inputs import make_dataset
    from alldag.models import build_classifier, recalibrate_batchnorm, set_backbone_trainable
    from alldag.tracking import log_metrics

    keras.utils.set_random_seed(settings.seed)
    tf.config.experimental.enable_op_determinism()  # same seed, same CPU -> same metrics
    train_rows = manifest[manifest["split"] == "train"]
    val_rows = manifest[manifest["split"] == "val"]
    train_ds = make_dataset(train_rows, settings.image_size, settings.batch_size, training=True,
                            augmenter=build_augmenter(augmentation), seed=settings.seed)
    val_ds = make_dataset(val_rows, settings.image_size, settings.batch_size)
    model = build_classifier(settings.backbone, len(settings.classes), settings.image_size, settings.weights,
                             settings.dropout, settings.bn_momentum)
    class_weight = balanced_class_weights(train_rows["y"], len(settings.classes)) if settings.class_weights else None
    two_phase = settings.weights is not None and 0 < settings.head_epochs < settings.epochs
    phases = ([("head", settings.head_epochs, settings.learning_rate, 0),
               ("fine_tune", settings.epochs, settings.fine_tune_learning_rate, settings.fine_tune_layers or None)]
              if two_phase else [("full", settings.epochs, settings.learning_rate, None)])
    frames, done = [], 0
    for phase, until, rate, trainable_top in phases:
        if phase != "full":
            n_trainable = set_backbone_trainable(model, trainable_top)
            log.info("phase %s: %d backbone layers trainable, learning rate %g", phase, n_trainable, rate)
        model.compile(optimizer=keras.optimizers.Adam(rate), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        history = model.fit(train_ds, validation_data=val_ds, initial_epoch=done, epochs=until, verbose=2,
                            class_weight=class_weight, callbacks=_phase_callbacks(settings))
        frame = pd.DataFrame(history.history)
        frame.insert(0, "epoch", [e + 1 for e in history.epoch])
        frame.insert(1, "phase", phase)
        frames.append(frame)
        done = frame["epoch"].iloc[-1] if len(frame) else done
    frame = pd.concat(frames, ignore_index=True)
    if settings.recalibrate_bn:
        n = recalibrate_batchnorm(model, make_dataset(train_rows, settings.image_size, settings.batch_size))
        if n:
            loss, accuracy = model.evaluate(val_ds, verbose=0)
            log.info("recalibrated %d BatchNormalization layers: val_loss %.4f, val_accuracy %.4f", n, loss, accuracy)
            log_metrics({"val_loss_recalibrated": loss, "val_accuracy_recalibrated": accuracy})
    return model, frame


def _versions() -> dict:
    import keras
    import tensorflow as tf

    return {"python": platform.python_version(), "tensorflow": tf.__version__, "keras": keras.__version__}


def _log_model(model, manifest: pd.DataFrame, settings: TrainSettings) -> None:
    import mlflow

    from alldag.inputs import load_images
    from alldag.tracking import retry

    sample = load_images(manifest["path"].head(2), settings.image_size)
    signature = mlflow.models.infer_signature(sample, model.predict(sample, verbose=0))
    retry(mlflow.tensorflow.log_model, model, name="model", signature=signature, input_example=sample[:1].astype(np.float32),
          pip_requirements=[f"tensorflow=={_versions()['tensorflow']}", f"keras=={_versions()['keras']}", "alldag"])


def train_model(settings: TrainSettings, split_manifest, augmentation_json, tracking: Tracking,
                model_out, history_out, curves_out, run_out) -> None:
    """Train one (task, backbone) model and write its outputs.

    Outputs: model_out (.keras), history_out (TSV, one row per epoch), curves_out (PNG of the
    accuracy and loss curves), run_out (JSON with the MLflow child run id).
    """
    import mlflow

    from alldag.augment import read_spec
    from alldag.tracking import child_run, log_artifact, parent_run_id, retry

    gpus = configure_devices()
    log.info("training %s on %s; GPUs visible: %d", settings.backbone, settings.task, len(gpus))
    manifest = read_tsv(split_manifest)
    augmentation = read_spec(augmentation_json)
    parent = parent_run_id(tracking.uri, tracking.experiment, tracking.artifact_root, tracking.parent_run_file,
                           tracking.tags)
    name = f"{settings.task}/{settings.backbone}/fold{settings.fold}"
    with child_run(tracking.uri, tracking.experiment, tracking.artifact_root, parent, name,
                   {**tracking.tags, "task": settings.task, "backbone": settings.backbone,
                    "fold": str(settings.fold)}) as run:
        params = {**asdict(settings), "classes": ",".join(settings.classes), "weights": str(settings.weights),
                  **{f"augment.{k}": v for k, v in augmentation.items()}, **_versions(),
                  "n_train": int((manifest["split"] == "train").sum()), "gpus": len(gpus)}
        retry(mlflow.log_params, params)
        model, history = fit(settings, manifest, augmentation)
        Path(model_out).parent.mkdir(parents=True, exist_ok=True)
        tmp_model = Path(model_out).with_name(f".{Path(model_out).name}.tmp.keras")
        model.save(tmp_model)
        tmp_model.replace(model_out)
        write_tsv_atomic(history, history_out)
        save(training_curves_figure(history, f"{settings.backbone} on {settings.task}"), curves_out)
        best = history.loc[history["val_loss"].idxmin()]
        retry(mlflow.log_metrics, {"best_epoch": int(best["epoch"]), "best_val_accuracy": float(best["val_accuracy"])})
        log_artifact(curves_out, "figures")
        log_artifact(history_out)
        log_artifact(augmentation_json)
        log_artifact(split_manifest)
        _log_model(model, manifest, settings)
        Path(run_out).write_text(json.dumps({"run_id": run.info.run_id, "parent_run_id": parent,
                                             "tracking_uri": tracking.uri, "name": name}, indent=2))
    log.info("saved %s (run %s)", model_out, run.info.run_id)


def settings_from_params(params: dict) -> tuple[TrainSettings, Tracking]:
    """Build TrainSettings and Tracking from a rule's params and wildcards (task, backbone, fold)."""
    t = dict(params["train"])
    settings = TrainSettings(backbone=params["backbone"], task=params["task"], fold=int(params.get("fold", 0)), classes=tuple(params["classes"]),
                             image_size=t["image_size"], epochs=t["epochs"], batch_size=t["batch_size"],
                             learning_rate=t["learning_rate"], weights=t["weights"], dropout=t["dropout"],
                             bn_momentum=t["bn_momentum"], recalibrate_bn=t["recalibrate_bn"],
                             seed=params["seed"], class_weights=t["class_weights"],
                             early_stopping_patience=t["early_stopping_patience"], head_epochs=t["head_epochs"],
                             fine_tune_layers=t["fine_tune_layers"],
                             fine_tune_learning_rate=t["fine_tune_learning_rate"])
    return settings, Tracking.from_params(params["tracking"])

