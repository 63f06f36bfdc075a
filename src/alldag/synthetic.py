"""Synthetic peripheral-blood-smear fields in the layout and the colours of the real ALL image dataset.

Each image is a 224x224 RGB field painted with the colours measured on the real images
(`shared/REAL-SMEARS.md`, table in PALETTES): a near-white background, pale grey-blue red cells and
several blue-violet leukocytes (Pro-B: light-magenta blasts on an almost white field; Pre-B: red cells
nearly as saturated as its leukocytes), with the real leukocyte counts per field (LEUKOCYTES_PER_FIELD)
and the real shares of the field per region. The leukocytes' morphology follows the class the way real
ones differ: benign lymphocytes are small with dense, smooth chromatin and no nucleoli; the B-lineage
blasts are larger, with a high nucleus-to-cytoplasm ratio, fine open chromatin, nucleoli, and (Pro-B) an
irregular, cleaved nucleus. The class-correlated colours are the real data's own shortcut: the colour
baseline has to be beaten on them. Extra shortcuts are planted only on purpose: ``shortcut`` (a class-coded
bottom-right corner bar like a scale bar) and ``colour_shortcut`` (a class-coded stain tint).

Images come from "patients" (PatientLayout): each owns a run of consecutive file numbers of one class, of a
length drawn between the bounds of ``fields_per_patient`` (real patients: 10-60 fields, boundaries on no block
size), and shares its stain (a scaling of optical density per channel) and cell size; in INTERLEAVED_CLASS two
staining sessions alternate file by file, as real Pre-B files do. So splits must keep patients together, and a
block of consecutive file numbers does not isolate one.

Every image depends only on (seed, class, index) and its patient's traits: generation is deterministic and
can be split across processes. ``Segmented/`` holds the leukocytes on black with the artefacts of the real
twins (JPEG speckle, faint red-cell outlines) and their real failure rates after cleaning (TWIN_OUTCOME_RATES:
nearly empty, or half-failed: fragments of one leukocyte). The exact mask is what ``render_smear`` returns.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from alldag.classes import CLASSES, file_prefix

IMAGE_SIZE = 224
JPEG_QUALITY = 92
SPECKLE_DENSITY = 0.01  # share of black twin pixels hit by a JPEG-like speck
CORNER_FRACTION = 0.3  # the scale-bar corner kept clear of leukocytes (config explain.corner_fraction)

# Twin outcomes per class after cleaning, measured on the real Segmented/ folder: (good, half-failed, nearly
# empty). Real usable twins: Benign 427/504, Early 977/985, Pre 923/963, Pro 11/804.
TWIN_OUTCOMES = ("good", "half", "empty")
TWIN_OUTCOME_RATES = {
    "Benign": (0.83, 0.02, 0.15),
    "Early": (0.98, 0.01, 0.01),
    "Pre": (0.95, 0.01, 0.04),
    "Pro": (0.005, 0.005, 0.99),
}
# Leukocytes per field (components of good real twins): (median, 90th percentile); at most MAX_LEUKOCYTES.
LEUKOCYTES_PER_FIELD = {"Benign": (5, 9), "Early": (6, 9), "Pre": (17, 22), "Pro": (3, 6)}
MAX_LEUKOCYTES = 22


@dataclass(frozen=True)
class ClassColours:
    """One class's colours (RGB 0-255) as measured on the real images, and its red cells' share of the field."""

    background: tuple[int, int, int]
    red_cells: tuple[int, int, int]
    nucleus: tuple[int, int, int]  # the dense chromatin; the leukocyte's median lies between it and the cytoplasm
    cytoplasm: tuple[int, int, int]
    red_cell_share: float


@dataclass(frozen=True)
class Palette:
    """The colours of one lab (stain, microscope, camera): per class."""

    name: str
    colours: dict[str, ClassColours]


# REAL-SMEARS.md medians: background, red cells, leukocytes (Pro: blasts). Nucleus and cytoplasm straddle the
# measured leukocyte median (Benign 164,144,244; Early 154,127,250; Pre 156,142,252; Pro 220,175,253).
REAL_PALETTE = Palette(
    "real",
    {
        "Benign": ClassColours((243, 252, 239), (188, 196, 216), (158, 136, 240), (205, 192, 252), 0.41),
        "Early": ClassColours((241, 252, 248), (179, 191, 222), (132, 102, 244), (192, 172, 254), 0.37),
        "Pre": ClassColours((229, 249, 251), (151, 177, 237), (134, 116, 248), (194, 184, 255), 0.36),
        "Pro": ClassColours((252, 254, 249), (200, 210, 227), (206, 150, 250), (238, 206, 255), 0.31),
    },
)
# Another lab (Wright-Giemsa, warmer lamp, another camera): pink-beige background, salmon red cells, purple
# leukocytes, and the same colours in every class, so only morphology carries the class there.
_SECOND_LAB = ClassColours((238, 228, 226), (214, 160, 170), (96, 52, 128), (176, 146, 196), 0.38)
SECOND_LAB_PALETTE = Palette("second_lab", {cls: _SECOND_LAB for cls in CLASSES})
PALETTES = {p.name: p for p in (REAL_PALETTE, SECOND_LAB_PALETTE)}


@dataclass(frozen=True)
class Morphology:
    """Class-specific leukocyte appearance; (mean, sd) pairs are in pixels at 224 px."""

    cell_radius: tuple[float, float]
    nc_ratio: tuple[float, float]  # nucleus radius / cell radius
    chromatin_contrast: float  # amplitude of the chromatin texture
    chromatin_scale: int  # texture grid cells across a 224 px cell box (higher = finer)
    nucleus_darkness: float  # 0 = as pale as the cytoplasm, 1 = the palette's nucleus colour
    nucleoli: tuple[int, int]  # inclusive range of nucleoli count
    irregularity: float  # amplitude of the nuclear outline harmonics / cleft


# Radii give the real leukocyte shares of the field (Benign 0.05 in 5 cells, Pre 0.18 in 17, Pro 0.025 in 3).
MORPHOLOGY: dict[str, Morphology] = {
    "Benign": Morphology((12.0, 1.0), (0.82, 0.04), 0.10, 14, 0.95, (0, 0), 0.04),
    "Early": Morphology((13.0, 1.2), (0.90, 0.03), 0.22, 40, 0.75, (1, 2), 0.05),
    "Pre": Morphology((13.8, 1.2), (0.86, 0.04), 0.30, 28, 0.80, (1, 3), 0.09),
    "Pro": Morphology((11.5, 1.2), (0.80, 0.05), 0.26, 34, 0.75, (1, 2), 0.16),
}
RED_CELL_RADIUS = (7.5, 10.0)  # px at 224
RED_CELL_COVER = 1.35

# Sensor noise: one fixed tile, cropped at a per-image offset (a fresh normal draw costs 2 ms).
_GRAIN = np.random.default_rng(0).standard_normal((2 * IMAGE_SIZE, 2 * IMAGE_SIZE, 3), dtype=np.float32) * 2.5
# Class-coded stain tints (optical-density gains per channel), used only when a colour shortcut is planted.
_SHORTCUT_TINTS = {
    "Benign": (1.5, 0.8, 0.9),
    "Early": (0.8, 0.9, 1.5),
    "Pre": (0.9, 1.5, 0.8),
    "Pro": (1.4, 1.4, 0.7),
}
# Class-coded corner overlays used only when a shortcut is planted (RGB and bar length in px).
_SHORTCUT_BARS = {
    "Benign": ((20, 20, 20), 18),
    "Early": ((240, 240, 240), 30),
    "Pre": ((20, 20, 20), 42),
    "Pro": ((240, 240, 240), 54),
}

FIELDS_PER_PATIENT = (10, 60)  # real patients: about 37 fields each, 10-60 (89 patients, 3,256 images)
INTERLEAVED_CLASS = "Pre"  # real Pre-B files alternate between two looks (two sessions) from one file to the next


@dataclass(frozen=True)
class PatientTraits:
    """What one patient's fields share: the slide's stain (optical-density gains per RGB channel), brightness
    and leukocyte size."""

    stain: tuple[float, float, float]
    brightness: float
    size_scale: float


def image_rng(seed: int, cls: str, index: int) -> np.random.Generator:
    """The random stream of one image, independent of every other image."""
    return np.random.default_rng([seed, CLASSES.index(cls), index])


def _bounds(fields_per_patient) -> tuple[int, int]:
    """(shortest, longest) patient from an int (every patient as long) or a [min, max] pair."""
    if isinstance(fields_per_patient, int):
        return fields_per_patient, fields_per_patient
    low, high = (int(v) for v in fields_per_patient)
    return low, high


@lru_cache(maxsize=64)
def _session_lengths(seed: int, cls: str, session: int, low: int, high: int) -> tuple[int, ...]:
    """The lengths of a session's patients, in file order (enough for 5,000 files)."""
    rng = np.random.default_rng([seed, CLASSES.index(cls), session, 2])
    return tuple(int(v) for v in rng.integers(low, high + 1, max(1, 5000 // max(low, 1))))


def patient_of(cls: str, index: int, seed: int, fields_per_patient=FIELDS_PER_PATIENT) -> str:
    """The patient of file number `index` (1-based) of `cls`: '<cls>-<session>-<patient>' (0-based).

    Patients own consecutive file numbers of their session, with lengths drawn between the bounds of
    fields_per_patient (an int: every patient that long); INTERLEAVED_CLASS has two sessions alternating file
    by file, other classes one.
    """
    low, high = _bounds(fields_per_patient)
    sessions = 2 if cls == INTERLEAVED_CLASS and low != high else 1
    session, k = (index - 1) % sessions, (index - 1) // sessions
    ends = np.cumsum(_session_lengths(seed, cls, session, low, high))
    return f"{cls}-{session}-{int(np.searchsorted(ends, k, side='right'))}"


def patient_traits(seed: int, cls: str, patient: str) -> PatientTraits:
    """The traits of one patient (patient_of), from a stream apart from every image's; a session shares a look."""
    _, session, number = patient.rsplit("-", 2)
    look = np.random.default_rng([seed, CLASSES.index(cls), int(session), 3]).uniform(0.88, 1.12, 3)
    rng = np.random.default_rng([seed, CLASSES.index(cls), int(session), int(number), 1])
    return PatientTraits(
        stain=tuple(float(v) for v in look * rng.uniform(0.82, 1.18, 3)),
        brightness=float(rng.uniform(0.98, 1.02)),
        size_scale=float(rng.normal(1.0, 0.06)),
    )


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


def _paint_disc(img: np.ndarray, cy: float, cx: float, r: float, rgb: np.ndarray, pallor: float, plasma) -> None:
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
    box += a * (rgb + p * (plasma - rgb) - box)


def _paint_red_cells(img: np.ndarray, colours: ClassColours, rng: np.random.Generator, scale: float) -> None:
    """Red cells until the class's share of the field is covered on average (overlaps included)."""
    size = img.shape[0]
    mean_area = np.pi * (np.mean(RED_CELL_RADIUS) * scale) ** 2
    # overlapping discs cover 1 - exp(-n a / A); RED_CELL_COVER for the pale centres and the leukocytes on top
    coverage = -np.log(1 - colours.red_cell_share) * RED_CELL_COVER
    count = int(round(coverage * size * size / mean_area * rng.uniform(0.85, 1.15)))
    rgb, plasma = np.asarray(colours.red_cells, np.float32), np.asarray(colours.background, np.float32)
    for _ in range(count):
        _paint_disc(
            img,
            rng.uniform(0, size),
            rng.uniform(0, size),
            rng.uniform(*RED_CELL_RADIUS) * scale,
            rgb * rng.uniform(0.97, 1.02),
            rng.uniform(0.1, 0.35),
            plasma,
        )


def leukocyte_count(cls: str, rng: np.random.Generator) -> int:
    """Leukocytes in one field: log-normal around the class's real median, its 90th percentile matched."""
    median, p90 = LEUKOCYTES_PER_FIELD[cls]
    sigma = np.log(p90 / median) / 1.2816
    return int(np.clip(round(median * np.exp(sigma * rng.standard_normal())), 1, MAX_LEUKOCYTES))


def _place(mask: np.ndarray, radius: float, rng: np.random.Generator, gap: float) -> tuple[float, float] | None:
    """A centre for a cell of `radius` clear of the cells in mask and of the scale-bar corner; None if none found."""
    size = mask.shape[0]
    for _attempt in range(60):
        cy, cx = rng.uniform(radius + 1, size - radius - 1, 2)
        if min(cy, cx) + radius > (1 - CORNER_FRACTION) * size:
            continue
        y0, y1 = int(max(cy - radius - gap, 0)), int(min(cy + radius + gap + 1, size))
        x0, x1 = int(max(cx - radius - gap, 0)), int(min(cx + radius + gap + 1, size))
        yy, xx = np.ogrid[y0:y1, x0:x1]
        if not mask[y0:y1, x0:x1][(yy - cy) ** 2 + (xx - cx) ** 2 <= (radius + gap) ** 2].any():
            return cy, cx
    return None


def _paint_leukocyte(
    img: np.ndarray, cy: float, cx: float, radius: float, cls: str, colours: ClassColours, rng: np.random.Generator
) -> tuple[slice, slice, np.ndarray]:
    """Paint one leukocyte (cytoplasm, textured nucleus, nucleoli) into img in place; returns its box and mask."""
    m, size = MORPHOLOGY[cls], img.shape[0]
    half = int(radius * 1.15) + 3
    y0, y1 = max(int(cy) - half, 0), min(int(cy) + half, size)
    x0, x1 = max(int(cx) - half, 0), min(int(cx) + half, size)
    yy, xx = np.ogrid[y0:y1, x0:x1]
    dy, dx = (yy - cy).astype(np.float32), (xx - cx).astype(np.float32)
    theta = np.arctan2(dy, dx)
    cell = np.sqrt(dy * dy + dx * dx) <= radius * (1 + 0.05 * np.cos(2 * theta + rng.uniform(0, 2 * np.pi)))

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
    nucleus = ((yy - ny) ** 2 + (xx - nx) ** 2 <= (nc * radius * outline) ** 2) & cell

    box = img[y0:y1, x0:x1]
    bh, bw = y1 - y0, x1 - x0
    cyto = np.asarray(colours.cytoplasm, np.float32) * rng.uniform(0.97, 1.02)
    box[:] = np.where(cell[..., None], cyto, box)
    texture = _smooth_noise(rng, 2 * half, max(2, m.chromatin_scale * half // 112))[:bh, :bw]
    dark = np.clip(m.nucleus_darkness + m.chromatin_contrast * texture, 0, 1)[..., None]
    nuc_rgb = cyto * (1 - dark) + np.asarray(colours.nucleus, np.float32) * dark
    box[:] = np.where(nucleus[..., None], nuc_rgb, box)
    for _ in range(int(rng.integers(m.nucleoli[0], m.nucleoli[1] + 1))):
        a, rr = rng.uniform(0, 2 * np.pi), rng.uniform(0, 0.5) * nc * radius
        oy, ox = ny + rr * np.sin(a), nx + rr * np.cos(a)
        blob = ((yy - oy) ** 2 + (xx - ox) ** 2 <= (rng.uniform(0.12, 0.2) * radius) ** 2) & nucleus
        box[:] = np.where(blob[..., None], box * 0.5 + cyto * 0.5, box)
    return slice(y0, y1), slice(x0, x1), cell


def _stain(img: np.ndarray, gains: np.ndarray) -> np.ndarray:
    """Scale the optical density of each channel (Beer-Lambert): white stays white, stained parts change."""
    density = -np.log(np.clip(img, 1.0, 255.0) / 255.0)
    return 255.0 * np.exp(-density * gains.astype(np.float32))


def render_smear(
    cls: str,
    rng: np.random.Generator,
    size: int = IMAGE_SIZE,
    shortcut: float = 0.0,
    colour_shortcut: float = 0.0,
    patient: PatientTraits | None = None,
    palette: Palette = REAL_PALETTE,
) -> tuple[np.ndarray, np.ndarray]:
    """Render one field of class `cls` (of `patient`, whose traits it shares; None = a patient of its own).

    Returns (image, mask): image is uint8 (size, size, 3) RGB; mask is bool (size, size), True on the
    leukocytes (nucleus and cytoplasm). `shortcut` in [0, 1] is the probability that the class-coded corner
    bar is drawn; `colour_shortcut` in [0, 1] the probability of a class-coded stain tint (the kind of signal
    a global-colour classifier picks up); palette: the lab's colours.
    """
    colours, scale = palette.colours[cls], size / IMAGE_SIZE
    img = np.empty((size, size, 3), np.float32)
    img[:] = colours.background
    _paint_red_cells(img, colours, rng, scale)

    mask = np.zeros((size, size), bool)
    size_scale = patient.size_scale if patient else 1.0
    for _ in range(leukocyte_count(cls, rng)):
        radius = max(rng.normal(*MORPHOLOGY[cls].cell_radius) * size_scale, 7.0) * scale
        centre = _place(mask, radius, rng, gap=2 * scale)
        if centre is None:
            continue
        ys, xs, cell = _paint_leukocyte(img, *centre, radius, cls, colours, rng)
        mask[ys, xs] |= cell

    gains = rng.uniform(0.9, 1.1, 3) if patient is None else np.asarray(patient.stain) * rng.uniform(0.97, 1.03, 3)
    if colour_shortcut > 0 and rng.uniform() < colour_shortcut:
        gains = gains * np.asarray(_SHORTCUT_TINTS[cls])
    img = _stain(img, gains) * (patient.brightness if patient else rng.uniform(0.98, 1.02))
    oy, ox = rng.integers(0, _GRAIN.shape[0] - size + 1, 2)
    img += _GRAIN[oy : oy + size, ox : ox + size]

    if shortcut > 0 and rng.uniform() < shortcut:
        rgb, length = _SHORTCUT_BARS[cls]
        length = int(length * scale)
        img[size - int(10 * scale) : size - int(6 * scale), size - int(6 * scale) - length : size - int(6 * scale)] = (
            rgb
        )
    return np.clip(img, 0, 255).astype(np.uint8), mask


def twin_rng(seed: int, cls: str, index: int) -> np.random.Generator:
    """The random stream of one Segmented/ twin's artefacts, apart from the image's own stream."""
    return np.random.default_rng([seed, CLASSES.index(cls), index, 1])


def twin_outcome(seed: int, cls: str, index: int) -> str:
    """'good', 'half' or 'empty': how the Segmented/ twin of file `index` of `cls` turned out (TWIN_OUTCOME_RATES)."""
    draw = twin_rng(seed, cls, index).uniform()
    return TWIN_OUTCOMES[int(np.searchsorted(np.cumsum(TWIN_OUTCOME_RATES[cls]), draw, side="right").clip(0, 2))]


def segmented_twin(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, outcome: str) -> np.ndarray:
    """The Segmented/ twin of a field (uint8 RGB) as the real ones look: the leukocytes on black, with faint
    red-cell outlines and JPEG-like speckle. outcome 'empty' keeps a small fragment of one leukocyte (a nearly
    empty twin); 'half' keeps fragments of one leukocyte grown just past the 2 % emptiness threshold."""
    rng.uniform()  # the outcome's own draw (twin_outcome), so the artefacts below come from the same stream
    kept = {"good": lambda: mask, "empty": lambda: _fragment(mask, rng, 0.03), "half": lambda: _half(mask, rng)}
    kept = kept[outcome]()
    twin = np.where(kept[..., None], image, 0).astype(np.float32)
    twin += _red_cell_outlines(image, mask)[..., None] * image * 0.3
    twin += np.where(kept, 0, _speckle(rng, mask.shape[0]))[..., None]
    return np.clip(twin, 0, 255).astype(np.uint8)


def _fragment(mask: np.ndarray, rng: np.random.Generator, share: float) -> np.ndarray:
    """A small disc of the leukocytes (about `share` of their area) around one of their pixels."""
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return mask
    pick = int(rng.integers(len(ys)))
    r = np.sqrt(share * len(ys) / np.pi)
    yy, xx = np.ogrid[0 : mask.shape[0], 0 : mask.shape[1]]
    return mask & ((yy - ys[pick]) ** 2 + (xx - xs[pick]) ** 2 <= r * r)


def _half(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A half-failed twin: one leukocyte, broken into pieces and smeared over its surroundings, covering
    2.2-3 % of the field (just past the emptiness threshold) while missing every other leukocyte."""
    from scipy import ndimage

    labels, n = ndimage.label(mask)
    if n == 0:
        return mask
    one = labels == int(rng.integers(1, n + 1))
    target = rng.uniform(0.022, 0.03) * mask.size
    grown = one
    while grown.sum() < target:
        grown = ndimage.binary_dilation(grown, iterations=2)
    cuts = _smooth_noise(rng, mask.shape[0], 12) > -0.6  # holes and breaks, as in real half-failures
    return grown & cuts


def _red_cell_outlines(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Bool rims (about 2 px at 224 px) of the red cells outside the leukocytes: pixels clearly darker than the
    field's brightest half (the background)."""
    from scipy.ndimage import binary_erosion

    grey = image.astype(np.float32).mean(axis=-1)
    cells = (grey < np.percentile(grey, 75) - 15) & ~mask
    return cells & ~binary_erosion(cells, iterations=max(1, round(2 * image.shape[0] / IMAGE_SIZE)))


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
    fields_per_patient=FIELDS_PER_PATIENT,
    palette: str = REAL_PALETTE.name,
) -> tuple[np.ndarray, np.ndarray]:
    """(image, exact mask) of file `index` (from 1) of `cls` as generate_dataset writes it, with its patient's
    traits (before JPEG)."""
    traits = patient_traits(seed, cls, patient_of(cls, index, seed, fields_per_patient))
    return render_smear(
        cls, image_rng(seed, cls, index), size, shortcut, colour_shortcut, patient=traits, palette=PALETTES[palette]
    )


def magnified_field(
    cls: str, index: int, seed: int, *, magnification: float, palette: str, fields_per_patient=FIELDS_PER_PATIENT
) -> np.ndarray:
    """A single-cell crop (IMAGE_SIZE px) of a field rendered `magnification` times larger, centred on one of
    its leukocytes (drawn from the image's own stream): cells look 1.5-3x larger, as under a stronger objective."""
    size = int(round(IMAGE_SIZE * magnification))
    image, mask = generated_field(cls, index, seed, size=size, fields_per_patient=fields_per_patient, palette=palette)
    ys, xs = np.nonzero(mask)
    pick = int(image_rng(seed, cls, index + 100_000).integers(len(ys))) if len(ys) else None
    cy, cx = (ys[pick], xs[pick]) if pick is not None else (size // 2, size // 2)
    y0 = int(np.clip(cy - IMAGE_SIZE // 2, 0, size - IMAGE_SIZE))
    x0 = int(np.clip(cx - IMAGE_SIZE // 2, 0, size - IMAGE_SIZE))
    return image[y0 : y0 + IMAGE_SIZE, x0 : x0 + IMAGE_SIZE]


@contextmanager
def _written_in_place(folder: str | os.PathLike):
    """Yield a temporary sibling of folder to write into; on success it replaces folder, on failure it is removed,
    so an interrupted run never leaves a half-written dataset."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        yield tmp
        if folder.exists():
            shutil.rmtree(folder)
        tmp.rename(folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def generate_external_set(
    folder: str | os.PathLike,
    images_per_class: dict[str, int],
    seed: int,
    *,
    palette: str = SECOND_LAB_PALETTE.name,
    magnification: float = 1.0,
    jpeg_quality: int = JPEG_QUALITY,
) -> int:
    """Write a synthetic second lab's images as <folder>/<Class>/*.jpg (no Segmented/ twins): its palette, its
    magnification (magnified_field, above 1) and its camera's JPEG quality. Written in a temporary sibling and
    renamed into place. Returns the number of images."""
    with _written_in_place(folder) as tmp:
        for cls, count in images_per_class.items():
            (tmp / cls).mkdir()
            for k in range(1, count + 1):
                if magnification > 1:
                    image = magnified_field(cls, k, seed, magnification=magnification, palette=palette)
                else:
                    image = generated_field(cls, k, seed, palette=palette)[0]
                Image.fromarray(image).save(tmp / cls / f"{file_prefix(cls)}-{k:03d}.jpg", quality=jpeg_quality)
    return sum(images_per_class.values())


def generate_dataset(
    root: str | os.PathLike,
    images_per_class: dict[str, int],
    seed: int,
    shortcut: float = 0.0,
    size: int = IMAGE_SIZE,
    colour_shortcut: float = 0.0,
    fields_per_patient=FIELDS_PER_PATIENT,
    palette: str = REAL_PALETTE.name,
) -> int:
    """Write a synthetic dataset under root as Original/<Class>/*.jpg plus its Segmented/ twin (with the real
    twins' artefacts and outcome rates, see segmented_twin and TWIN_OUTCOME_RATES).

    Patients own runs of consecutive file numbers (patient_of). The folder is built in a temporary sibling and
    renamed into place, so an interrupted run never leaves a half-written dataset. Returns the number of images
    written per folder.
    """
    total = 0
    with _written_in_place(root) as tmp:
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
                    palette=palette,
                )
                name = f"{file_prefix(cls)}-{i:03d}.jpg"
                Image.fromarray(image).save(orig_dir / name, quality=JPEG_QUALITY)
                twin = segmented_twin(image, mask, twin_rng(seed, cls, i), twin_outcome(seed, cls, i))
                Image.fromarray(twin).save(seg_dir / name, quality=JPEG_QUALITY)
                total += 1
    return total
