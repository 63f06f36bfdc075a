"""alldag.synthetic: the deterministic smear generator and its dataset layout."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from alldag.classes import CLASSES, file_prefix
from alldag.masks import mask_from_segmented
from alldag.synthetic import (
    IMAGE_SIZE,
    LEUKOCYTES_PER_FIELD,
    TWIN_OUTCOME_RATES,
    TWIN_OUTCOMES,
    generate_dataset,
    generated_field,
    image_rng,
    patient_of,
    render_smear,
    segmented_twin,
    twin_outcome,
    twin_rng,
)
from conftest import SYNTHETIC_PER_CLASS, SYNTHETIC_SEED

# The corner bar of a planted shortcut: rows 214..217, ending 6 px from the right edge.
BAR_ROWS = slice(IMAGE_SIZE - 10, IMAGE_SIZE - 6)
BAR_END = IMAGE_SIZE - 6


def _render(cls, index, seed=1, shortcut=0.0):
    return render_smear(cls, image_rng(seed, cls, index), shortcut=shortcut)


def _generated(cls, index, seed=SYNTHETIC_SEED):
    """The field generate_dataset writes as file `index` of `cls` (with its patient's traits)."""
    return generated_field(cls, index, seed)


@pytest.mark.parametrize("cls", CLASSES)
def test_render_smear_types_and_shapes(cls):
    image, mask = _render(cls, 1)
    assert image.dtype == np.uint8
    assert image.shape == (IMAGE_SIZE, IMAGE_SIZE, 3)
    assert mask.dtype == bool
    assert mask.shape == (IMAGE_SIZE, IMAGE_SIZE)
    # one leukocyte: a sizeable blob, far from filling the field
    assert 500 < mask.sum() < 0.5 * IMAGE_SIZE**2


def test_render_smear_other_size():
    image, mask = render_smear("Pre", image_rng(0, "Pre", 1), size=64)
    assert image.shape == (64, 64, 3) and mask.shape == (64, 64)


def test_leukocyte_is_darker_than_background():
    image, mask = _render("Benign", 3)
    grey = image.astype(float).mean(axis=-1)
    assert grey[mask].mean() < grey[~mask].mean() - 20


@pytest.mark.parametrize("cls", CLASSES)
def test_render_is_deterministic(cls):
    a_img, a_mask = _render(cls, 4)
    b_img, b_mask = _render(cls, 4)
    np.testing.assert_array_equal(a_img, b_img)
    np.testing.assert_array_equal(a_mask, b_mask)


def test_render_differs_by_index_seed_and_class():
    base, _ = _render("Pro", 4)
    assert (base != _render("Pro", 5)[0]).mean() > 0.1
    assert (base != _render("Pro", 4, seed=2)[0]).mean() > 0.1
    assert (base != _render("Early", 4)[0]).mean() > 0.1


def test_image_rng_streams_are_independent_of_order():
    first = image_rng(3, "Pre", 7).random(5)
    image_rng(3, "Pre", 6).random(100)  # drawing another image's stream changes nothing
    np.testing.assert_array_equal(first, image_rng(3, "Pre", 7).random(5))


def test_leukocyte_size_follows_class_morphology():
    def mean_cell_area(cls):
        areas = []
        for i in range(1, 21):
            labels, n = ndimage.label(_render(cls, i)[1])
            areas += list(np.bincount(labels.ravel())[1:])
        return np.median(areas)

    area = {cls: mean_cell_area(cls) for cls in CLASSES}
    # benign lymphocytes are smaller than Early and Pre-B blasts (Pro-B blasts: few and small at this scale)
    assert area["Benign"] < 0.9 * min(area["Early"], area["Pre"]), area


# REAL-SMEARS.md, median over images per class: share of the field and RGB of each region.
REAL = {
    "Benign": {"background": (0.48, (243, 252, 239)), "red": (0.41, (188, 196, 216)), "leuk": (0.06, (164, 144, 244))},
    "Early": {"background": (0.55, (241, 252, 248)), "red": (0.37, (179, 191, 222)), "leuk": (0.06, (154, 127, 250))},
    "Pre": {"background": (0.45, (229, 249, 251)), "red": (0.28, (151, 177, 237)), "leuk": (0.19, (156, 142, 252))},
    "Pro": {"background": (0.64, (252, 254, 249)), "red": (0.31, (200, 210, 227)), "leuk": (0.02, (220, 175, 253))},
}


@pytest.mark.parametrize("cls", CLASSES)
def test_colours_and_shares_match_the_real_smears(cls):
    from skimage.filters import threshold_otsu

    shares, colours = {k: [] for k in REAL[cls]}, {k: [] for k in REAL[cls]}
    for i in range(1, 25):
        image, mask = generated_field(cls, i, 3)
        # as measured on the real images: red cells and background split by Otsu on brightness outside the cells
        grey = image.astype(float).mean(axis=-1)
        dark = grey < threshold_otsu(grey[~mask])
        for region, where in (("leuk", mask), ("red", dark & ~mask), ("background", ~dark & ~mask)):
            shares[region].append(where.mean())
            colours[region].append(np.median(image[where], axis=0))
    for region, (share, rgb) in REAL[cls].items():
        assert np.median(shares[region]) == pytest.approx(share, abs=0.07), (region, np.median(shares[region]))
        assert np.abs(np.median(colours[region], axis=0) - rgb).max() <= 16, (region, np.median(colours[region], 0))


@pytest.mark.parametrize("cls", CLASSES)
def test_leukocytes_per_field_match_the_real_counts(cls):
    counts = [ndimage.label(generated_field(cls, i, 4)[1])[1] for i in range(1, 61)]
    median, p90 = LEUKOCYTES_PER_FIELD[cls]
    assert abs(np.median(counts) - median) <= max(1, 0.15 * median), counts
    assert abs(np.percentile(counts, 90) - p90) <= max(2, 0.2 * p90), counts
    assert min(counts) >= 1 and max(counts) <= 22


def test_twin_outcomes_follow_the_real_failure_rates():
    for cls in CLASSES:
        outcomes = [twin_outcome(0, cls, i) for i in range(1, 2001)]
        for outcome, rate in zip(TWIN_OUTCOMES, TWIN_OUTCOME_RATES[cls]):
            assert outcomes.count(outcome) / 2000 == pytest.approx(rate, abs=0.025), (cls, outcome)
    assert TWIN_OUTCOME_RATES["Pro"][2] == 0.99 and TWIN_OUTCOME_RATES["Benign"][2] == 0.15


def test_patients_vary_in_length_and_pre_b_alternates_between_two_sessions():
    runs = []
    for cls in ("Benign", "Pro"):
        ids = [patient_of(cls, i, 1, (10, 60)) for i in range(1, 801)]
        starts = [i for i in range(1, 800) if ids[i] != ids[i - 1]]
        runs += list(np.diff([0, *starts]))
    assert min(runs) >= 10 and max(runs) <= 60 and len(set(runs)) > 10, runs
    assert not all(r % 40 == 0 for r in runs)  # boundaries on no block size
    pre = [patient_of("Pre", i, 1, (10, 60)) for i in range(1, 41)]
    assert all(a.split("-")[1] != b.split("-")[1] for a, b in zip(pre, pre[1:]))  # sessions alternate file by file
    assert patient_of("Benign", 7, 1, 4) == "Benign-0-1"  # a fixed length: consecutive runs of 4


def _bar_pixels(image):
    return image[BAR_ROWS, :BAR_END]


def _bar_length(image, rgb):
    """Columns of the bar rows that are exactly the bar colour in every bar row."""
    region = _bar_pixels(image)
    exact = (region == np.array(rgb, np.uint8)).all(axis=-1).all(axis=0)
    return int(exact.sum())


@pytest.mark.parametrize(
    "cls,rgb,length",
    [
        ("Benign", (20, 20, 20), 18),
        ("Early", (240, 240, 240), 30),
        ("Pre", (20, 20, 20), 42),
        ("Pro", (240, 240, 240), 54),
    ],
)
def test_shortcut_draws_class_coded_corner_bar(cls, rgb, length):
    with_bar, _ = _render(cls, 2, shortcut=1.0)
    without, _ = _render(cls, 2, shortcut=0.0)
    region = with_bar[BAR_ROWS, BAR_END - length : BAR_END]
    assert (region == np.array(rgb, np.uint8)).all()
    assert _bar_length(with_bar, rgb) >= length
    # no bar without the shortcut: the same region is not a flat block of the bar colour
    assert _bar_length(without, rgb) < length // 2
    assert not (without[BAR_ROWS, BAR_END - length : BAR_END] == np.array(rgb, np.uint8)).all()
    # and the shortcut changes nothing outside the bar
    changed = (with_bar != without).any(axis=-1)
    changed[BAR_ROWS, BAR_END - length : BAR_END] = False
    assert not changed.any()


def test_shortcut_bars_differ_between_classes():
    corners = {cls: _render(cls, 2, shortcut=1.0)[0][BAR_ROWS, BAR_END - 54 : BAR_END].astype(int) for cls in CLASSES}
    for i, a in enumerate(CLASSES):
        for b in CLASSES[i + 1 :]:
            assert np.abs(corners[a] - corners[b]).sum() > 0, (a, b)


def test_generate_dataset_layout(synthetic_root):
    for folder in ("Original", "Segmented"):
        assert sorted(p.name for p in (synthetic_root / folder).iterdir()) == sorted(CLASSES)
        for cls in CLASSES:
            names = sorted(p.name for p in (synthetic_root / folder / cls).iterdir())
            assert names == [f"{file_prefix(cls)}-{i:03d}.jpg" for i in range(1, SYNTHETIC_PER_CLASS + 1)]
    assert (synthetic_root / "Original" / "Pro" / "WBC-Malignant-Pro-001.jpg").is_file()
    assert (synthetic_root / "Original" / "Benign" / "WBC-Benign-008.jpg").is_file()
    assert sorted(p.name for p in synthetic_root.iterdir()) == ["Original", "Segmented"]


def test_generated_original_matches_render(synthetic_root):
    image, _ = _generated("Early", 3)
    with Image.open(synthetic_root / "Original" / "Early" / "WBC-Malignant-Early-003.jpg") as im:
        assert im.size == (IMAGE_SIZE, IMAGE_SIZE) and im.mode == "RGB"
        decoded = np.asarray(im).astype(int)
    assert np.abs(decoded - image.astype(int)).mean() < 4  # JPEG error only


def test_segmented_twin_has_speckle_outlines_and_failures():
    image, mask = generated_field("Pre", 1, 2)
    twin = segmented_twin(image, mask, twin_rng(2, "Pre", 1), "good")
    lit = twin.max(axis=-1) > 0
    np.testing.assert_array_equal(twin[mask], image[mask])  # the leukocytes as they are in the image
    assert 0.01 < (lit & ~mask).mean() < 0.15  # speckle and red-cell outlines on the black field
    assert np.percentile(twin[lit & ~mask].max(axis=-1), 95) < 100  # faint
    empty = segmented_twin(image, mask, twin_rng(2, "Pre", 1), "empty")
    assert 0 < ((empty.max(axis=-1) > 0) & mask).sum() < 0.06 * mask.sum()
    half = mask_from_segmented(segmented_twin(image, mask, twin_rng(2, "Pre", 1), "half"))
    assert 0.015 < half.mean() < 0.04 and (half & mask).sum() < 0.5 * mask.sum()  # fragments of one leukocyte


def test_generate_dataset_returns_count_and_replaces_existing(tmp_path):
    root = tmp_path / "data" / "ALL"
    assert generate_dataset(root, {"Benign": 3, "Pro": 2}, seed=1) == 5
    stale = root / "Original" / "Benign" / "stale.jpg"
    stale.write_bytes(b"old")
    (root / "Original" / "Early").mkdir()

    assert generate_dataset(root, {"Pre": 4}, seed=2) == 4
    assert sorted(p.name for p in (root / "Original").iterdir()) == ["Pre"]
    assert sorted(p.name for p in (root / "Segmented").iterdir()) == ["Pre"]
    assert len(list((root / "Original" / "Pre").iterdir())) == 4
    assert not stale.exists()
    # the temporary build folder is renamed away, nothing hidden remains next to it
    assert [p.name for p in root.parent.iterdir()] == ["ALL"]
    assert not [p for p in root.parent.iterdir() if p.name.startswith(".")]


def test_generate_dataset_is_deterministic(tmp_path):
    generate_dataset(tmp_path / "a", {"Early": 2}, seed=9)
    generate_dataset(tmp_path / "b", {"Early": 2}, seed=9)
    for folder in ("Original", "Segmented"):
        for name in ("WBC-Malignant-Early-001.jpg", "WBC-Malignant-Early-002.jpg"):
            assert (tmp_path / "a" / folder / "Early" / name).read_bytes() == (
                tmp_path / "b" / folder / "Early" / name
            ).read_bytes()


def test_generate_dataset_failure_leaves_no_temp_folder(tmp_path):
    root = tmp_path / "ALL"
    generate_dataset(root, {"Benign": 1}, seed=1)
    with pytest.raises((KeyError, ValueError)):
        generate_dataset(root, {"Benign": 1, "NotAClass": 1}, seed=1)
    # the old dataset survives a failed regeneration and no temporary sibling is left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ALL"]
    assert (root / "Original" / "Benign" / "WBC-Benign-001.jpg").is_file()


def test_fields_of_one_patient_share_stain_more_than_fields_of_two_patients(tmp_path):
    generate_dataset(tmp_path / "ALL", {"Early": 24}, seed=5, fields_per_patient=4)
    means = np.array(
        [
            np.asarray(Image.open(tmp_path / f"ALL/Original/Early/{file_prefix('Early')}-{i:03d}.jpg"), float).mean(
                axis=(0, 1)
            )
            for i in range(1, 25)
        ]
    )
    patient = [patient_of("Early", i, 5, 4) for i in range(1, 25)]
    same = [np.abs(means[a] - means[b]).sum() for a in range(24) for b in range(a) if patient[a] == patient[b]]
    other = [np.abs(means[a] - means[b]).sum() for a in range(24) for b in range(a) if patient[a] != patient[b]]
    assert np.median(same) < 0.7 * np.median(other), (np.median(same), np.median(other))
