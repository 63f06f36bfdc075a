"""alldag.synthetic: the deterministic smear generator and its dataset layout."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from alldag.classes import CLASSES, file_prefix
from alldag.synthetic import (
    IMAGE_SIZE,
    SEGMENTATION_FAILURE_RATE,
    generate_dataset,
    generated_field,
    image_rng,
    patient_of,
    render_smear,
    segmented_twin,
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


def test_mask_area_follows_class_morphology():
    area = {cls: np.mean([_render(cls, i)[1].sum() for i in range(1, 21)]) for cls in CLASSES}
    assert area["Pro"] > area["Pre"] > area["Benign"]
    assert area["Pro"] > area["Early"] > area["Benign"]
    # benign lymphocytes are markedly smaller than any blast
    assert area["Benign"] < 0.6 * min(area["Early"], area["Pre"], area["Pro"])


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


def test_extra_leukocytes_share_some_fields_and_leave_the_rest_alone():
    counts = []
    for i in range(1, 31):
        one, one_mask = render_smear("Pre", image_rng(2, "Pre", i))
        more, more_mask = render_smear("Pre", image_rng(2, "Pre", i), extra_leukocytes=1.0)
        assert (one_mask & ~more_mask).sum() == 0  # the first leukocyte is where it was
        outside = ~more_mask
        assert np.abs(one[outside].astype(int) - more[outside]).max() == 0  # the rest of the field too
        counts.append(ndimage.label(more_mask)[1])
    assert min(counts) >= 1 and max(counts) == 3 and np.mean(np.array(counts) > 1) > 0.6, counts


def test_segmented_twin_has_speckle_outlines_and_failures():
    image, mask = render_smear("Pro", image_rng(2, "Pro", 1))
    twin = segmented_twin(image, mask, twin_rng(2, "Pro", 1), failed=False)
    lit = twin.max(axis=-1) > 0
    np.testing.assert_array_equal(twin[mask], image[mask])  # the leukocyte as it is in the image
    assert 0.01 < (lit & ~mask).mean() < 0.1  # speckle and red-cell outlines on the black field
    assert np.percentile(twin[lit & ~mask].max(axis=-1), 95) < 100  # faint
    failed = segmented_twin(image, mask, twin_rng(2, "Pro", 1), failed=True)
    assert 0 < ((failed.max(axis=-1) > 0) & mask).sum() < 0.06 * mask.sum()
    # failures are class-dependent: most often Pro-B
    rate = {
        c: np.mean([twin_rng(0, c, i).uniform() < SEGMENTATION_FAILURE_RATE[c] for i in range(400)]) for c in CLASSES
    }
    assert rate["Pro"] > 0.4 and max(rate["Benign"], rate["Early"], rate["Pre"]) < 0.1


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
    generate_dataset(tmp_path / "ALL", {"Pre": 24}, seed=5, fields_per_patient=4)
    means = np.array(
        [
            np.asarray(Image.open(tmp_path / f"ALL/Original/Pre/{file_prefix('Pre')}-{i:03d}.jpg"), float).mean(
                axis=(0, 1)
            )
            for i in range(1, 25)
        ]
    )
    patient = np.array([patient_of(i, 4) for i in range(1, 25)])
    same = [np.abs(means[a] - means[b]).sum() for a in range(24) for b in range(a) if patient[a] == patient[b]]
    other = [np.abs(means[a] - means[b]).sum() for a in range(24) for b in range(a) if patient[a] != patient[b]]
    assert np.median(same) < 0.5 * np.median(other), (np.median(same), np.median(other))
    assert [patient_of(i, 4) for i in (1, 4, 5, 8, 9)] == [0, 0, 1, 1, 2]  # consecutive file numbers per patient
