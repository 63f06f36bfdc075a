"""Synthetic peripheral-blood-smear fields in the layout of the real ALL image dataset.

Each image is a 224x224 RGB field: a pale plasma background with red cells (central pallor),
and one centred leukocyte whose morphology follows the class the way real ones differ:
benign lymphocytes are small with dense, smooth chromatin and no nucleoli; the B-lineage
blasts (Early Pre-B, Pre-B, Pro-B) are larger, with a high nucleus-to-cytoplasm ratio, fine
open chromatin, nucleoli, and (Pro-B) an irregular, cleaved nucleus. Stain and brightness vary
per image independently of the class, so colour is *not* a shortcut unless one is planted on
purpose with ``shortcut`` (a class-coded bottom-right corner overlay like a scale bar).

Images come from "patients": each patient gives FIELDS_PER_PATIENT consecutive file numbers of one class
and shares its stain and cell-size traits across them, so images of one patient resemble each other more
than images of two patients (as on real slides), and splits must keep patients together.

Every image depends only on (seed, class, index) and its patient's traits (seed, class, patient):
generation is deterministic and can be split across processes. ``Segmented/`` holds the leukocyte on
black with the artefacts of the real twins (JPEG speckle, faint red-cell outlines, and a class-dependent
rate of failed, nearly empty segmentations, most often Pro-B); some fields hold more than one leukocyte.
The exact mask is what ``render_smear`` returns.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from alldag.classes import CLASSES, file_prefix

IMAGE_SIZE = 224
JPEG_QUALITY = 92
# Real-twin artefacts (generate_dataset): share of fields with extra leukocytes, and per class the share of
# Segmented/ twins whose segmentation failed (597 of 3,256 real twins are nearly empty, most of them Pro-B).
EXTRA_LEUKOCYTE_RATE = 0.3
SEGMENTATION_FAILURE_RATE = {"Benign": 0.04, "Early": 0.04, "Pre": 0.04, "Pro": 0.6}
SPECKLE_DENSITY = 0.01  # share of black twin pixels hit by a JPEG-like speck


@dataclass(frozen=True)
class Morphology:
    """Class-specific leukocyte appearance; (mean, sd) pairs are in pixels at 224 px."""

    cell_radius: tuple[float, float]
    nc_ratio: tuple[float, float]  # nucleus radius / cell radius
    chromatin_contrast: float  # amplitude of the chromatin texture
    chromatin_scale: int  # texture grid cells across the field (higher = finer)
    nucleus_darkness: float  # 0 = pale, 1 = very dark
    nucleoli: tuple[int, int]  # inclusive range of nucleoli count
    irregularity: float  # amplitude of the nuclear outline harmonics / cleft
    cytoplasm_rgb: tuple[int, int, int]


MORPHOLOGY: dict[str, Morphology] = {
    "Benign": Morphology((30, 3), (0.80, 0.04), 0.10, 14, 0.95, (0, 0), 0.04, (200, 195, 225)),
    "Early": Morphology((42, 4), (0.90, 0.03), 0.22, 40, 0.70, (1, 2), 0.05, (170, 170, 215)),
    "Pre": Morphology((46, 4), (0.84, 0.04), 0.30, 28, 0.75, (1, 3), 0.09, (160, 160, 210)),
    "Pro": Morphology((50, 5), (0.78, 0.05), 0.26, 34, 0.65, (2, 4), 0.16, (150, 155, 205)),
}

_PLASMA = np.array([236, 222, 226], np.float32)
_RBC = np.array([214, 140, 150], np.float32)
_NUCLEUS_DARK = np.array([70, 30, 105], np.float32)
_NUCLEUS_PALE = np.array([150, 110, 185], np.float32)
_NUCLEOLUS = np.array([175, 160, 205], np.float32)
# Class-coded corner overlays used only when a shortcut is planted (RGB and bar length in px).
# Sensor noise: one fixed tile, cropped at a per-image offset (a fresh normal draw costs 2 ms).
_GRAIN = np.random.default_rng(0).standard_normal((2 * IMAGE_SIZE, 2 * IMAGE_SIZE, 3), dtype=np.float32) * 3.0
# Class-coded stain tints (RGB gains), used only when a colour shortcut is planted.
_SHORTCUT_TINTS = {
    "Benign": (1.15, 0.92, 0.95),
    "Early": (0.9, 0.95, 1.15),
    "Pre": (0.95, 1.15, 0.9),
    "Pro": (1.1, 1.1, 0.85),
}
_SHORTCUT_BARS = {
    "Benign": ((20, 20, 20), 18),
    "Early": ((240, 240, 240), 30),
    "Pre": ((20, 20, 20), 42),
    "Pro": ((240, 240, 240), 54),
}


FIELDS_PER_PATIENT = 4  # default images per synthetic patient (consecutive file numbers)


@dataclass(frozen=True)
class PatientTraits:
    """What one patient's fields share: the slide's stain (RGB gains), brightness and leukocyte size."""

    stain: tuple[float, float, float]
    brightness: float
    size_scale: float


def image_rng(seed: int, cls: str, index: int) -> np.random.Generator:
    """The random stream of one image, independent of every other image."""
    return np.random.default_rng([seed, CLASSES.index(cls), index])


def patient_traits(seed: int, cls: str, patient: int) -> PatientTraits:
    """The traits of one patient (0-based within its class), from a stream apart from every image's."""
    rng = np.random.default_rng([seed, CLASSES.index(cls), patient, 1])
    return PatientTraits(
        stain=tuple(float(v) for v in rng.uniform(0.9, 1.08, 3)),
        brightness=float(rng.uniform(0.92, 1.06)),
        size_scale=float(rng.normal(1.0, 0.06)),
    )


def patient_of(index: int, fields_per_patient: int) -> int:
    """The 0-based patient of file number `index` (1-based): patients own consecutive file numbers."""
    return (index - 1) // fields_per_patient


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Zero-mean, unit-ish smooth noise field of shape (size, size), `cells` blobs across."""
    coarse = rng.standard_normal((cells, cells)).astype(np.float32)
    up = Image.fromarray(coarse, mode="F").resize((size, size), Image.BILINEAR)
    return np.asarray(up)


@lru_cache(maxsize=256)
def _disc_sprite(r_halves: int, frac_y: int, frac_x: int) -> tuple[np.ndarray, np.ndarray]:
    """(alpha, pallor weight) of a red-cell disc of radius r_halves/2 px at a sub-pixel offset."""
    r = r_halves / 2
    n = int(2 * r + 4)
    c = r + 1.5
    yy, xx = np.ogrid[0:n, 0:n]
    d = np.sqrt((yy - c - frac_y / 4) ** 2 + (xx - c - frac_x / 4) ** 2) / r
    alpha = np.clip((1.0 - d) * r / 1.5, 0.0, 1.0)[..., None].astype(np.float32)  # ~1.5 px rim
    centre = np.clip(1.0 - d / 0.55, 0.0, 1.0)[..., None].astype(np.float32)
    return alpha, centre


def _paint_disc(img: np.ndarray, cy: float, cx: float, r: float, rgb: np.ndarray, pallor: float) -> None:
    """Blend a red cell (disc with a pale centre) into img in place, touching only its box."""
    alpha, centre = _disc_sprite(int(r * 2), int((cy % 1) * 4), int((cx % 1) * 4))
    n = alpha.shape[0]
    r = int(r * 2) / 2
    oy, ox = int(cy - (r + 1.5)), int(cx - (r + 1.5))
    h, w, _ = img.shape
    y0, x0, y1, x1 = max(oy, 0), max(ox, 0), min(oy + n, h), min(ox + n, w)
    if y0 >= y1 or x0 >= x1:
        return
    a = alpha[y0 - oy : y1 - oy, x0 - ox : x1 - ox]
    p = centre[y0 - oy : y1 - oy, x0 - ox : x1 - ox] * pallor
    box = img[y0:y1, x0:x1]
    box += a * (rgb + p * (_PLASMA - rgb) - box)


def render_smear(
    cls: str,
    rng: np.random.Generator,
    size: int = IMAGE_SIZE,
    shortcut: float = 0.0,
    colour_shortcut: float = 0.0,
    extra_leukocytes: float = 0.0,
    patient: PatientTraits | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Render one field of class `cls` (of `patient`, whose traits it shares; None = a patient of its own).

    Returns (image, mask): image is uint8 (size, size, 3) RGB; mask is bool (size, size), True on
    the leukocytes (nucleus and cytoplasm). `shortcut` in [0, 1] is the probability that the
    class-coded corner bar is drawn; `colour_shortcut` in [0, 1] the probability of a class-coded
    stain tint (the kind of signal a global-colour classifier picks up); `extra_leukocytes` in
    [0, 1] the probability that one or two more leukocytes of the class share the field (drawn from
    a child stream, so the rest of the field is the same with or without them).
    """
    m = MORPHOLOGY[cls]
    scale = size / IMAGE_SIZE
    img = np.empty((size, size, 3), np.float32)
    img[:] = _PLASMA

    for _ in range(int(rng.integers(10, 20))):
        r = rng.uniform(13, 19) * scale
        _paint_disc(
            img,
            rng.uniform(0, size),
            rng.uniform(0, size),
            r,
            _RBC * rng.uniform(0.93, 1.05),
            pallor=rng.uniform(0.3, 0.6),
        )

    cy, cx = size / 2 + rng.normal(0, 8 * scale, 2)
    radius = max(rng.normal(*m.cell_radius) * (patient.size_scale if patient else 1.0), 18) * scale
    # All leukocyte geometry is computed inside its bounding box only (speed).
    half = int(radius * 1.15) + 3
    y0, y1 = max(int(cy) - half, 0), min(int(cy) + half, size)
    x0, x1 = max(int(cx) - half, 0), min(int(cx) + half, size)
    yy, xx = np.ogrid[y0:y1, x0:x1]
    dy, dx = (yy - cy).astype(np.float32), (xx - cx).astype(np.float32)
    theta = np.arctan2(dy, dx)
    dist = np.sqrt(dy * dy + dx * dx)

    aspect = rng.uniform(0.9, 1.1)
    cell_r = (
        radius
        * (1 + 0.04 * np.cos(2 * theta + rng.uniform(0, 2 * np.pi)))
        * np.where(np.abs(np.cos(theta)) > 0.5, aspect, 1.0)
    )
    cell = dist <= cell_r

    nc = np.clip(rng.normal(*m.nc_ratio), 0.55, 0.96)
    phase = rng.uniform(0, 2 * np.pi, 3)
    cleft_angle = np.mod(theta - phase[2] + np.pi, 2 * np.pi) - np.pi
    outline = (
        1
        + m.irregularity * 0.5 * np.cos(2 * theta + phase[0])
        + m.irregularity * 0.3 * np.cos(3 * theta + phase[1])
        - m.irregularity * np.exp(-(cleft_angle**2) / 0.05)
    )
    shift = (1 - nc) * radius * 0.6
    ny, nx = cy + rng.uniform(-shift, shift), cx + rng.uniform(-shift, shift)
    ndist = np.sqrt((yy - ny) ** 2 + (xx - nx) ** 2)
    nucleus = (ndist <= nc * radius * outline) & cell

    box = img[y0:y1, x0:x1]
    bh, bw = y1 - y0, x1 - x0
    cyto = np.array(m.cytoplasm_rgb, np.float32) * rng.uniform(0.95, 1.04)
    grain = _smooth_noise(rng, 2 * half, 8)[:bh, :bw, None] * 6
    box[:] = np.where(cell[..., None], cyto + grain, box)

    texture = _smooth_noise(rng, 2 * half, max(2, m.chromatin_scale * half // 112))[:bh, :bw]
    dark = np.clip(m.nucleus_darkness + m.chromatin_contrast * texture, 0, 1)[..., None]
    nuc_rgb = _NUCLEUS_PALE * (1 - dark) + _NUCLEUS_DARK * dark
    box[:] = np.where(nucleus[..., None], nuc_rgb, box)

    n_nucleoli = int(rng.integers(m.nucleoli[0], m.nucleoli[1] + 1))
    for _ in range(n_nucleoli):
        a, rr = rng.uniform(0, 2 * np.pi), rng.uniform(0, 0.5) * nc * radius
        oy, ox = ny + rr * np.sin(a), nx + rr * np.cos(a)
        size_n = rng.uniform(2.5, 4.5) * scale
        by0, bx0 = max(int(oy - size_n) - y0, 0), max(int(ox - size_n) - x0, 0)
        by1, bx1 = max(int(oy + size_n) + 2 - y0, 0), max(int(ox + size_n) + 2 - x0, 0)
        sub = box[by0:by1, bx0:bx1]
        blob = ((yy[by0:by1] - oy) ** 2 + (xx[:, bx0:bx1] - ox) ** 2 <= size_n**2) & nucleus[by0:by1, bx0:bx1]
        sub[:] = np.where(blob[..., None], sub * 0.3 + _NUCLEOLUS * 0.7, sub)
    mask = np.zeros((size, size), bool)
    mask[y0:y1, x0:x1] = cell
    if extra_leukocytes > 0:
        _paint_extra_leukocytes(img, mask, m, rng.spawn(1)[0], scale, extra_leukocytes)

    # Stain and illumination vary per slide (patient), independently of the class; fields of a slide a little.
    stain, brightness = rng.uniform(0.9, 1.08, 3), rng.uniform(0.92, 1.06)
    if patient:
        stain, brightness = np.asarray(patient.stain) * rng.uniform(0.98, 1.02, 3), patient.brightness
    img *= stain.astype(np.float32) * brightness
    if colour_shortcut > 0 and rng.uniform() < colour_shortcut:
        img *= np.asarray(_SHORTCUT_TINTS[cls], np.float32)
    oy, ox = rng.integers(0, _GRAIN.shape[0] - size + 1, 2)
    img += _GRAIN[oy : oy + size, ox : ox + size]

    if shortcut > 0 and rng.uniform() < shortcut:
        rgb, length = _SHORTCUT_BARS[cls]
        length = int(length * scale)
        img[size - int(10 * scale) : size - int(6 * scale), size - int(6 * scale) - length : size - int(6 * scale)] = (
            rgb
        )

    return np.clip(img, 0, 255).astype(np.uint8), mask


def _paint_extra_leukocytes(
    img: np.ndarray, mask: np.ndarray, m: Morphology, rng: np.random.Generator, scale: float, rate: float
) -> None:
    """With probability `rate`, paint one or two more leukocytes of morphology `m` into img and mask
    (in place): round cells clear of the other leukocytes and of the scale-bar corner."""
    if rng.uniform() >= rate:
        return
    size = img.shape[0]
    yy, xx = np.ogrid[0:size, 0:size]
    for _ in range(int(rng.integers(1, 3))):
        radius = max(rng.normal(*m.cell_radius), 18) * scale * 0.8  # room beside the centred cell
        for _attempt in range(50):
            cy, cx = rng.uniform(radius + 2, size - radius - 2, 2)
            in_corner = min(cy, cx) + radius > 0.7 * size  # the scale-bar corner (corner_fraction 0.3)
            clear = not mask[(yy - cy) ** 2 + (xx - cx) ** 2 <= (radius + 6 * scale) ** 2].any()
            if clear and not in_corner:
                break
        else:
            continue
        dist2 = (yy - cy) ** 2 + (xx - cx) ** 2
        cell = dist2 <= radius**2
        nc = np.clip(rng.normal(*m.nc_ratio), 0.55, 0.96)
        nucleus = dist2 <= (nc * radius) ** 2
        texture = _smooth_noise(rng, size, max(2, m.chromatin_scale * size // 224))
        dark = np.clip(m.nucleus_darkness + m.chromatin_contrast * texture, 0, 1)[..., None]
        cyto = np.array(m.cytoplasm_rgb, np.float32) * rng.uniform(0.95, 1.04)
        img[:] = np.where(cell[..., None], cyto, img)
        img[:] = np.where(nucleus[..., None], _NUCLEUS_PALE * (1 - dark) + _NUCLEUS_DARK * dark, img)
        mask |= cell


def twin_rng(seed: int, cls: str, index: int) -> np.random.Generator:
    """The random stream of one Segmented/ twin's artefacts, apart from the image's own stream."""
    return np.random.default_rng([seed, CLASSES.index(cls), index, 1])


def segmented_twin(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, failed: bool) -> np.ndarray:
    """The Segmented/ twin of a field (uint8 RGB) as the real ones look: the leukocytes on black, with
    faint red-cell outlines and JPEG-like speckle; a `failed` segmentation keeps only a small fragment."""
    kept = _failed_fragment(mask, rng) if failed else mask
    twin = np.where(kept[..., None], image, 0).astype(np.float32)
    twin += _red_cell_outlines(image, mask)[..., None] * image * 0.3
    twin += np.where(kept, 0, _speckle(rng, mask.shape[0]))[..., None]
    return np.clip(twin, 0, 255).astype(np.uint8)


def _failed_fragment(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """What a failed segmentation keeps: a small disc of the leukocyte (about 3 % of its area)."""
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return mask
    pick = int(rng.integers(len(ys)))
    r = np.sqrt(0.03 * len(ys) / np.pi)
    yy, xx = np.ogrid[0 : mask.shape[0], 0 : mask.shape[1]]
    return mask & ((yy - ys[pick]) ** 2 + (xx - xs[pick]) ** 2 <= r * r)


def _red_cell_outlines(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Bool rims (about 2 px at 224 px) of the red cells outside the leukocytes: where R - B is well above
    the field's median (the plasma's)."""
    from scipy.ndimage import binary_erosion

    redness = image[..., 0].astype(np.int16) - image[..., 2]
    red = (redness > np.median(redness) + 30) & ~mask
    return red & ~binary_erosion(red, iterations=max(1, round(2 * image.shape[0] / IMAGE_SIZE)))


def _speckle(rng: np.random.Generator, size: int) -> np.ndarray:
    """Sparse faint specks (float, 0 off the specks) like JPEG noise on a black Segmented/ field."""
    hits = rng.random((size, size)) < SPECKLE_DENSITY
    return np.where(hits, rng.uniform(20, 90, (size, size)), 0.0).astype(np.float32)


def generated_field(
    cls: str,
    index: int,
    seed: int,
    *,
    size: int = IMAGE_SIZE,
    shortcut: float = 0.0,
    colour_shortcut: float = 0.0,
    fields_per_patient: int = FIELDS_PER_PATIENT,
) -> tuple[np.ndarray, np.ndarray]:
    """(image, exact mask) of file `index` (from 1) of `cls` as generate_dataset writes it: its patient's
    traits and the extra leukocytes included (before JPEG)."""
    traits = patient_traits(seed, cls, patient_of(index, fields_per_patient))
    return render_smear(
        cls,
        image_rng(seed, cls, index),
        size,
        shortcut,
        colour_shortcut,
        extra_leukocytes=EXTRA_LEUKOCYTE_RATE,
        patient=traits,
    )


def generate_dataset(
    root: str | os.PathLike,
    images_per_class: dict[str, int],
    seed: int,
    shortcut: float = 0.0,
    size: int = IMAGE_SIZE,
    colour_shortcut: float = 0.0,
    fields_per_patient: int = FIELDS_PER_PATIENT,
) -> int:
    """Write a synthetic dataset under root as Original/<Class>/*.jpg plus its Segmented/ twin
    (with the real twins' artefacts, see segmented_twin; extra leukocytes in EXTRA_LEUKOCYTE_RATE of fields).

    Files 1..fields_per_patient of a class come from its first patient, the next ones from the second, etc.

    The folder is built in a temporary sibling and renamed into place, so an interrupted run never
    leaves a half-written dataset. Returns the number of images written per folder.
    """
    root = Path(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
    total = 0
    try:
        for cls, count in images_per_class.items():
            orig_dir, seg_dir = tmp / "Original" / cls, tmp / "Segmented" / cls
            orig_dir.mkdir(parents=True)
            seg_dir.mkdir(parents=True)
            for i in range(1, count + 1):
                image, mask = generated_field(
                    cls,
                    i,
                    seed,
                    size=size,
                    shortcut=shortcut,
                    colour_shortcut=colour_shortcut,
                    fields_per_patient=fields_per_patient,
                )
                name = f"{file_prefix(cls)}-{i:03d}.jpg"
                Image.fromarray(image).save(orig_dir / name, quality=JPEG_QUALITY)
                artefacts = twin_rng(seed, cls, i)
                failed = artefacts.uniform() < SEGMENTATION_FAILURE_RATE[cls]
                segmented = segmented_twin(image, mask, artefacts, failed)
                Image.fromarray(segmented).save(seg_dir / name, quality=JPEG_QUALITY)
                total += 1
        if root.exists():
            shutil.rmtree(root)
        tmp.rename(root)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return total
