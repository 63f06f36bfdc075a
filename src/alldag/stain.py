"""Stain probes: the test images with their colour changed or taken away, so a model's score can be read
again without the lab's colours (the `stain_probe_images` rule writes them once per task and fold, every
model of that fold reads them).

Probes (PROBES): the images as they are; Macenko and Reinhard stain normalisation (torchstain's numpy
backend) towards a target taken from the fold's training images; greyscale replicated to three channels.
Light at import (numpy, pandas, PIL): the report and the headline import the names; torchstain loads only
where images are normalised.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from alldag.tables import read_tsv, write_tsv_atomic

log = logging.getLogger(__name__)
AS_IS = "as_is"
MACENKO, REINHARD, GREYSCALE = "macenko", "reinhard", "greyscale"
# probe -> title in the report; every table, metric and figure iterates over this registry
PROBES = {AS_IS: "as is", MACENKO: "Macenko", REINHARD: "Reinhard", GREYSCALE: "greyscale"}
NORMALISATIONS = (MACENKO, REINHARD)  # the probes the headline's "under stain normalisation" sentence names
PROBED_COLUMNS = ["image_id", "probe", "path", "failed"]
TARGET_IMAGES = 16  # training images tiled into the normalisation target (one image's stain is not the lab's)
# Blood-smear stains are pale: with H&E's defaults (Io 240, beta 0.15) the blue-violet leukocytes, whose blue
# channel passes almost all light, leave no pixel to estimate the stains from (measured: eigh does not converge)
MACENKO_IO, MACENKO_BETA = 255, 0.05


@dataclass(frozen=True)
class ProbeImageSettings:
    """What the probed images of one fold need besides its split manifest."""

    seed: int  # draws the training images of the target
    target_images: int = TARGET_IMAGES


@dataclass(frozen=True)
class ProbeImageOutputs:
    """The files stain_probe_images writes: the table of probed images and the folder holding them."""

    table: str  # probed.tsv: PROBED_COLUMNS, one row per test image and probe
    folder: str  # <probe>/<image_id>.png


def stain_target(paths: list[str], seed: int, n: int = TARGET_IMAGES) -> np.ndarray:
    """The normalisation target: `n` images drawn (seeded) from `paths`, tiled side by side (uint8 RGB)."""
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(len(paths), size=min(n, len(paths)), replace=False))
    tiles = [_read(paths[i]) for i in chosen]
    height = min(t.shape[0] for t in tiles)
    return np.concatenate([t[:height] for t in tiles], axis=1)


def _read(path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def greyscale(image: np.ndarray) -> np.ndarray:
    """Luminance (ITU-R 601, as PIL's 'L') replicated to three channels: the colour gone, the shapes kept."""
    grey = np.asarray(Image.fromarray(image).convert("L"))
    return np.repeat(grey[..., None], 3, axis=2)


def fit_probes(target: np.ndarray) -> dict:
    """probe -> function(uint8 RGB image) -> uint8 RGB image, the normalisers fitted to `target`.

    A normaliser that cannot estimate an image's stains raises (ArithmeticError, ValueError or IndexError);
    probe_image keeps such an image as it is and flags it."""
    import torchstain

    macenko = torchstain.normalizers.MacenkoNormalizer(backend="numpy")
    reinhard = torchstain.normalizers.ReinhardNormalizer(backend="numpy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        macenko.fit(target, Io=MACENKO_IO, beta=MACENKO_BETA)
    reinhard.fit(target)
    return {
        AS_IS: lambda image: image,
        MACENKO: lambda image: macenko.normalize(image, Io=MACENKO_IO, beta=MACENKO_BETA, stains=False)[0],
        REINHARD: reinhard.normalize,
        GREYSCALE: greyscale,
    }


def probe_image(probe, image: np.ndarray) -> tuple[np.ndarray, bool]:
    """(probed image, failed): a normaliser that fails on this image (too few stained pixels) leaves it as is."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            out = probe(image)
    except (ArithmeticError, ValueError, IndexError, np.linalg.LinAlgError):
        return image, True
    return np.asarray(out, np.uint8), False


def write_probed_images(*, manifest, settings: ProbeImageSettings, outputs: ProbeImageOutputs) -> pd.DataFrame:
    """Write every test image of the fold's split `manifest` under every probe but AS_IS (as PNG, lossless) and
    the table that lists them, AS_IS rows pointing at the original files. Returns that table."""
    rows = read_tsv(manifest)
    train, test = rows[rows["split"] == "train"], rows[rows["split"] == "test"]
    probes = fit_probes(stain_target(list(train["path"]), settings.seed, settings.target_images))
    table = [(r.image_id, AS_IS, r.path, False) for r in test.itertuples()]
    for r in test.itertuples():
        image = _read(r.path)
        for name, probe in probes.items():
            if name == AS_IS:
                continue
            probed, failed = probe_image(probe, image)
            path = (Path(outputs.folder) / name / str(r.image_id)).with_suffix(".png")  # image_id: <Class>/<file>
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(probed).save(path)
            table.append((r.image_id, name, str(path.resolve()), failed))
    frame = pd.DataFrame(table, columns=PROBED_COLUMNS)
    failed = frame.groupby("probe")["failed"].sum()
    log.info("probed %d test images; left as they were (normaliser failed): %s", len(test), failed.to_dict())
    write_tsv_atomic(frame, outputs.table)
    return frame
