"""alldag.masks: leukocyte masks from real-looking Segmented/ twins and, where they failed, from the stain."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from alldag.classes import CLASSES, file_prefix
from alldag.masks import (
    DEFAULT_COLOUR_MODEL,
    calibrate_colour_model,
    clean_binary,
    colour_mask,
    fit_colour_model,
    leukocyte_mask,
    load_leukocyte_mask,
    mask_from_segmented,
    mask_overlap,
    read_rgb,
    twin_state,
)
from alldag.synthetic import generated_field, image_rng, render_smear, segmented_twin, twin_outcome, twin_rng
from conftest import SYNTHETIC_PER_CLASS, SYNTHETIC_SEED


def _iou(a, b):
    return (a & b).sum() / (a | b).sum()


def _generated(root):
    """(class, index, exact mask, original, twin, twin outcome) of every image of the session's synthetic dataset."""
    for cls in CLASSES:
        for i in range(1, SYNTHETIC_PER_CLASS + 1):
            _, exact = generated_field(cls, i, SYNTHETIC_SEED)
            name = f"{cls}/{file_prefix(cls)}-{i:03d}.jpg"
            outcome = twin_outcome(SYNTHETIC_SEED, cls, i)
            yield cls, i, exact, read_rgb(root / "Original" / name), read_rgb(root / "Segmented" / name), outcome


def test_cleaned_twin_matches_the_exact_mask_where_a_plain_threshold_does_not(synthetic_root):
    clean, plain = [], []
    for cls, i, exact, _, twin, outcome in _generated(synthetic_root):
        if outcome != "good":
            continue
        clean.append(_iou(mask_from_segmented(twin), exact))
        plain.append(_iou(twin.max(axis=-1) > 24, exact))  # the old fixed threshold keeps specks and outlines
        assert clean[-1] >= 0.75, (cls, i, clean[-1])
    assert len(clean) >= 15 and np.mean(plain) < 0.85 and np.mean(clean) > np.mean(plain) + 0.1


def haematoxylin_mask(image: np.ndarray) -> np.ndarray:
    """The fallback alldag used until the synthetic world took the real colours: haematoxylin by colour
    deconvolution, Otsu, cleaned; the cytoplasm as pixels bluer than the median near a nucleus."""
    from scipy import ndimage
    from skimage.color import rgb2hed
    from skimage.filters import threshold_otsu

    haematoxylin = ndimage.gaussian_filter(rgb2hed(image)[..., 0], 1.0)
    nuclei = clean_binary(haematoxylin > threshold_otsu(haematoxylin))
    blueness = image[..., 2].astype(np.int16) - image[..., 0]
    bluish = ndimage.binary_opening(blueness > np.median(blueness) + 20)
    labels, n = ndimage.label(nuclei)
    if n == 0:
        return nuclei
    distance, (iy, ix) = ndimage.distance_transform_edt(~nuclei, return_indices=True)
    reach = 0.6 * np.sqrt(np.bincount(labels.ravel()) / np.pi)
    return ndimage.binary_fill_holes(nuclei | (bluish & (distance <= reach[labels[iy, ix]])))


FIELDS = {c: [generated_field(c, i, 11) for i in range(1, 13)] for c in CLASSES}


def test_the_old_haematoxylin_fallback_marks_the_red_cells_of_the_real_colours():
    # what happened on the real images: on Pro-B about 9 % of that mask was blast
    precision = {
        c: np.mean([mask_overlap(haematoxylin_mask(i), m)["precision"] for i, m in FIELDS[c]]) for c in CLASSES
    }
    assert precision["Pro"] < 0.3 and max(precision.values()) < 0.7, precision


@pytest.mark.parametrize("cls", CLASSES)
def test_the_colour_fallback_finds_the_leukocytes_of_every_class(cls):
    # calibrated as on the real data, on good twins of Benign, Early and Pre (Pro-B twins fail), other images
    # than those scored: no label, no class-specific threshold
    train = [(i, m) for c in ("Benign", "Early", "Pre") for i, m in FIELDS[c][:6]]
    model = fit_colour_model([i for i, _ in train], [m for _, m in train], seed=0)
    for model_used in (model, DEFAULT_COLOUR_MODEL):
        scores = [mask_overlap(colour_mask(i, model_used), m) for i, m in FIELDS[cls][6:]]
        assert np.mean([s["precision"] for s in scores]) >= 0.7, scores
        assert np.mean([s["recall"] for s in scores]) >= 0.8, scores


@pytest.mark.parametrize("count", [1, 20])
def test_the_colour_fallback_holds_from_one_to_twenty_leukocytes(count, monkeypatch):
    import alldag.synthetic as synthetic

    monkeypatch.setattr(synthetic, "leukocyte_count", lambda cls, rng: count)
    for cls in CLASSES:
        image, exact = render_smear(cls, image_rng(3, cls, count))
        found = colour_mask(image)
        assert mask_overlap(found, exact)["precision"] >= 0.7 and mask_overlap(found, exact)["recall"] >= 0.8, cls


def test_calibration_reports_held_out_agreement_and_skips_half_failed_twins(synthetic_root):
    from alldag.data import scan_dataset

    images = scan_dataset(synthetic_root)
    images["mask_fraction"] = [float(mask_from_segmented(read_rgb(p)).mean()) for p in images["mask_path"]]
    model, quality = calibrate_colour_model(images, 0.02)
    assert quality["held_out_images"] >= 10 and quality["calibration_images"] == model.fitted_on
    assert quality["precision"] >= 0.7 and quality["recall"] >= 0.8 and quality["iou"] >= 0.6, quality


def test_a_half_failed_twin_is_detected_and_replaced():
    for i in range(1, 30):
        image, exact = generated_field("Pre", i, 2)
        half = segmented_twin(image, exact, twin_rng(2, "Pre", i), "half")
        cleaned = mask_from_segmented(half)
        if cleaned.mean() >= 0.02:  # passes the emptiness threshold
            break
    assert twin_state(cleaned, colour_mask(image), 0.02) == "half"
    found = leukocyte_mask(image, half)
    assert found.source == "stain" and _iou(found.mask, exact) > 0.6
    good = segmented_twin(image, exact, twin_rng(2, "Pre", i), "good")
    assert twin_state(mask_from_segmented(good), colour_mask(image), 0.02) == "good"


def test_every_failed_twin_falls_back_to_the_colour_mask(synthetic_root):
    fallbacks = 0
    for cls, i, exact, image, twin, outcome in _generated(synthetic_root):
        found = leukocyte_mask(image, twin)
        if outcome != "good":
            fallbacks += 1
            assert found.source == "stain", (cls, i, outcome)
            assert _iou(found.mask, exact) >= 0.6, (cls, i, _iou(found.mask, exact))
    assert fallbacks >= 8  # the class-dependent failure rates: every Pro-B twin here


def test_several_leukocytes_are_all_in_the_mask(synthetic_root):
    from scipy import ndimage

    several = [
        (exact, twin)
        for _, _, exact, _, twin, outcome in _generated(synthetic_root)
        if outcome == "good" and ndimage.label(exact)[1] > 1
    ]
    assert len(several) >= 10
    for exact, twin in several:
        # neighbouring cells may merge in the blurred threshold: at most a sixth fewer pieces, never more
        assert (
            5 * ndimage.label(exact)[1]
            <= 6 * ndimage.label(mask_from_segmented(twin))[1]
            <= 6 * ndimage.label(exact)[1]
        )


def test_clean_binary_drops_specks_and_outlines_and_fills_holes():
    binary = np.zeros((224, 224), bool)
    yy, xx = np.ogrid[:224, :224]
    cell = (yy - 60) ** 2 + (xx - 60) ** 2 <= 30**2
    binary |= cell & ~((yy - 60) ** 2 + (xx - 60) ** 2 <= 5**2)  # a hole in the middle
    ring = np.abs(np.sqrt((yy - 160.0) ** 2 + (xx - 160.0) ** 2) - 16) < 1  # a red-cell outline
    binary |= ring
    binary[::17, ::13] = True  # speckle
    binary[200:210, 10:20] = True  # a 100-px fragment
    cleaned = clean_binary(binary)
    assert _iou(cleaned, cell) > 0.95 and cleaned[60, 60]
    assert not cleaned[ring].any() and not cleaned[200:210, 10:20].any()


def test_leukocyte_mask_sources():
    image, exact = next(f for f in FIELDS["Benign"] if f[1].mean() > 0.03)  # a twin past the 2 % threshold
    twin = np.where(exact[..., None], image, 0).astype(np.uint8)
    assert leukocyte_mask(image, twin).source == "segmented"
    assert leukocyte_mask(image, None).source == "stain"  # no twin
    assert leukocyte_mask(image, np.zeros_like(image)).source == "stain"  # an empty twin
    blank = np.full_like(image, 245)
    none = leukocyte_mask(blank, np.zeros_like(blank))
    assert none.source == "none" and none.mask is None


def test_load_leukocyte_mask_resizes_and_reads_missing_files(synthetic_root):
    name = f"Pro/{file_prefix('Pro')}-002.jpg"
    found = load_leukocyte_mask(synthetic_root / "Original" / name, synthetic_root / "Segmented" / name, 64)
    assert found.mask.shape == (64, 64) and found.mask.dtype == bool and 0.005 < found.mask.mean() < 0.5
    assert load_leukocyte_mask(synthetic_root / "Original" / name, "", 64).source == "stain"
    assert load_leukocyte_mask(synthetic_root / "missing.jpg", "", 64).source == "none"


@pytest.mark.parametrize("size", [64, 224])
def test_render_and_mask_agree_on_every_size(size):
    image, exact = render_smear("Early", image_rng(3, "Early", 1), size)
    assert exact.any()
    twin = np.asarray(Image.fromarray(np.where(exact[..., None], image, 0).astype(np.uint8)))
    assert _iou(mask_from_segmented(twin), exact) > 0.9
