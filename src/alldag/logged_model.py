"""A trained classifier as an MLflow model anyone can load: Keras 3 flavour, no alldag code, exact requirements.

The saved model reads raw RGB in [0, 255] (its preprocessing is a built-in layer), so
`mlflow.pyfunc.load_model("runs:/<id>/model").predict(images)` needs only the packages in its
requirements.txt. Where the artifact store is local, the logged file is a hard link to the DAG's `model.keras`
output (share_file): one stored copy per model.
"""

from __future__ import annotations

import logging
import os
import urllib.parse
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)
ARTIFACT = "model"
KERAS_FILE = "data/model.keras"  # inside the logged model folder (mlflow.keras' layout)
EXAMPLE_FILE = "input_example.png"  # one image: MLflow's own JSON example of a 224 px image is over 2 MB
INPUT_DESCRIPTION = (
    "raw RGB images as float32 in [0, 255], shape (n, {size}, {size}, 3), resized to {size} px "
    "(no other preprocessing); output: class probabilities in the order of 'classes'"
)


def lean_copy(model):
    """The same layers and weights as an uncompiled model: saved without the optimizer's state (a third of
    the file for Adam)."""
    import keras

    return keras.Model(model.inputs, model.outputs, name=model.name)


def signature(image_size: int, classes: list[str]):
    """Input: raw RGB (n, size, size, 3) float32 in [0, 255] named 'image'; output: (n, classes) probabilities."""
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    return ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, image_size, image_size, 3), "image")]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, len(classes)), "probabilities")]),
    )


def requirements() -> list[str]:
    """Exact pins of what loading the model needs: MLflow, Keras and its backend (never alldag)."""
    import keras
    import mlflow

    backend = keras.backend.backend()
    backend_version = __import__(backend).__version__
    return [f"mlflow=={mlflow.__version__}", f"keras=={keras.__version__}", f"{backend}=={backend_version}"]


class _KerasFlavour:
    """mlflow.keras whose save_model also writes one example image as a PNG into the model folder."""

    @staticmethod
    def save_model(path, example_image: np.ndarray, **kwargs):
        import mlflow.keras
        from PIL import Image

        os.makedirs(path, exist_ok=True)
        mlflow.keras.save_model(path=path, **kwargs)
        Image.fromarray(example_image).save(Path(path) / EXAMPLE_FILE)


def log_keras_model(model, example: np.ndarray, classes: list[str]):
    """Log model (lean) in the active run as artifact 'model'; returns MLflow's ModelInfo.

    example: raw RGB images (n, size, size, 3) in [0, 255]; the first is stored as input_example.png in the
    model folder (a PNG, not MLflow's JSON example, which would be megabytes).
    """
    from mlflow.models import Model

    from alldag.tracking import retry

    size = int(example.shape[1])
    return retry(
        Model.log,
        artifact_path=None,
        name=ARTIFACT,
        flavor=_KerasFlavour,
        model=lean_copy(model),
        signature=signature(size, classes),
        example_image=np.clip(np.rint(example[0]), 0, 255).astype(np.uint8),
        pip_requirements=requirements(),
        metadata={
            "input": INPUT_DESCRIPTION.format(size=size),
            "classes": list(classes),
            "input_example": EXAMPLE_FILE,
        },
    )


def local_keras_file(model_info) -> Path | None:
    """Path of the logged .keras file when the artifact store is this machine's file system, else None."""
    import mlflow

    from alldag.tracking import retry

    location = retry(mlflow.get_logged_model, model_info.model_id).artifact_location
    parts = urllib.parse.urlsplit(location)
    if parts.scheme not in ("", "file"):
        return None
    path = Path(urllib.parse.unquote(parts.path)) / KERAS_FILE
    return path if path.is_file() else None


def save_lean(model, model_out) -> None:
    """Write model_out without the optimizer's state (lean_copy); atomic, so a killed job never leaves half a file."""
    Path(model_out).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(model_out).with_name(f".{Path(model_out).name}.tmp.keras")
    tmp.unlink(missing_ok=True)
    lean_copy(model).save(tmp)
    tmp.replace(model_out)


def share_file(model_info, model_file) -> bool:
    """Make the logged model's .keras file a hard link to model_file (the DAG's copy of the same model) where the
    artifact store is local: one stored copy. Returns whether it is linked (False: a remote store, or another
    file system, where the logged copy stays)."""
    logged = local_keras_file(model_info)
    if logged is None:
        return False
    tmp = logged.with_name(f".{logged.name}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(model_file, tmp)
    except OSError as exc:  # another file system: keep the logged copy rather than fail the job
        log.warning("could not hard-link %s to %s (%s): the logged copy stays", logged, model_file, exc)
        return False
    tmp.replace(logged)
    return True
