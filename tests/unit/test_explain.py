"""alldag.explain: the attribution methods, the faithfulness driver and the stage's helpers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from alldag import AlldagError
from alldag.attribution_metrics import VS_RANDOM_COLUMNS
from alldag.explain import (
    FILLS,
    METHODS,
    UNIFORM,
    ExplainOptions,
    _lime_explainer,
    background_fill,
    batched_predict,
    blurred_fill,
    choose_images,
    explain_images,
    faithfulness,
    gallery_choice,
    lime_segments_to_heatmap,
    load_masks,
    normalise_heatmap,
    perturbed_batches,
    quickshift_kernel,
    resize_heatmap,
)

SETTINGS = ExplainOptions(
    images_per_class=2,
    lime_num_samples=40,
    lime_batch_size=16,
    lime_kernel_size=4.0,
    top_percent=20,
    faithfulness_steps=5,
    corner_fraction=0.3,
    gradcam_layer=None,
)


def test_normalise_heatmap():
    heat = np.array([[-2.0, 0.0], [1.0, 4.0]])
    out = normalise_heatmap(heat)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[0.0, 0.0], [0.25, 1.0]])
    assert heat[0, 0] == -2.0  # input untouched
    np.testing.assert_array_equal(normalise_heatmap(-np.ones((2, 2))), np.zeros((2, 2)))


def test_resize_heatmap():
    heat = np.arange(16, dtype=np.float32).reshape(4, 4)
    out = resize_heatmap(heat, 10)
    assert out.shape == (10, 10) and out.dtype == np.float32
    assert heat.min() <= out.min() and out.max() <= heat.max()
    assert (np.diff(out, axis=0) >= -1e-5).all() and (np.diff(out, axis=1) >= -1e-5).all()
    np.testing.assert_allclose(resize_heatmap(np.full((2, 2), 0.5), 7), np.full((7, 7), 0.5), atol=1e-6)


@pytest.mark.parametrize(
    ("grid", "size"), [(1, 8), (2, 72), (3, 96), (7, 224), (9, 64), (10, 7), (8, 3), (7, 2), (5, 5)]
)
def test_resize_heatmap_gives_pillows_numbers_for_a_batch(grid, size):
    """The maps' numbers do not change with the batched resize: bit for bit Pillow's bilinear "F" resize."""
    from PIL import Image

    heats = np.random.default_rng(grid * size).normal(size=(2, 3, grid, grid)).astype(np.float32)
    pillow = [np.asarray(Image.fromarray(h).resize((size, size), Image.BILINEAR)) for h in heats.reshape(6, grid, grid)]
    np.testing.assert_array_equal(resize_heatmap(heats, size), np.reshape(pillow, (2, 3, size, size)))


def test_normalise_heatmap_scales_each_map_of_a_batch():
    heats = np.stack([np.full((2, 2), 4.0), -np.ones((2, 2)), np.array([[1.0, 2.0], [-1.0, 0.5]])])
    np.testing.assert_array_equal(normalise_heatmap(heats), [normalise_heatmap(h) for h in heats])
    np.testing.assert_allclose(normalise_heatmap(heats)[2], [[0.5, 1.0], [0.0, 0.25]])


def test_lime_segments_to_heatmap():
    segments = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]])
    heat = lime_segments_to_heatmap(segments, [(0, 0.5), (1, -0.2), (2, 0.25)])
    np.testing.assert_allclose(
        heat, [[1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0], [0.5, 0.5, 0.0, 0.0], [0.5, 0.5, 0.0, 0.0]]
    )
    assert heat.dtype == np.float32
    np.testing.assert_array_equal(lime_segments_to_heatmap(segments, [(0, -1.0)]), np.zeros((4, 4)))


def test_vectorised_lime_perturbation_matches_lime():
    """Same random draws, same perturbed images, same labels as lime's own per-sample loop."""
    from lime import lime_image

    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (12, 12, 3)).astype(np.uint8)
    segments = np.repeat(np.repeat(np.arange(9).reshape(3, 3), 4, axis=0), 4, axis=1)
    fudged = rng.integers(0, 255, (12, 12, 3)).astype(np.uint8)  # per pixel, above and below the image's bytes
    seen = {}

    def classifier(tag):
        def fn(batch):
            seen.setdefault(tag, []).append(np.array(batch))
            return np.stack([batch.mean(axis=(1, 2, 3)), batch[:, 0, 0, 0]], axis=1)

        return fn

    ours = _lime_explainer(3).data_labels(image, fudged, segments, classifier("ours"), 25, batch_size=10)
    theirs = lime_image.LimeImageExplainer(random_state=3).data_labels(
        image, fudged, segments, classifier("lime"), 25, batch_size=10
    )
    np.testing.assert_array_equal(ours[0], theirs[0])
    np.testing.assert_array_equal(ours[1], theirs[1])
    np.testing.assert_array_equal(np.concatenate(seen["ours"]), np.concatenate(seen["lime"]))
    assert [len(b) for b in seen["ours"]] == [10, 10, 5] and seen["ours"][0].dtype == seen["lime"][0].dtype


def test_perturbed_batches_reuse_one_buffer_and_need_uint8():
    image, fill = np.full((2, 2, 3), 200, np.uint8), np.full((2, 2, 3), 9, np.uint8)
    segments = np.array([[0, 0], [1, 1]])
    batches = [b.copy() for b in perturbed_batches(image, fill, segments, np.array([[1, 0], [0, 1], [0, 0]]), 2)]
    np.testing.assert_array_equal(batches[0][0, :, :, 0], [[200, 200], [9, 9]])
    np.testing.assert_array_equal(batches[0][1, :, :, 0], [[9, 9], [200, 200]])
    assert batches[1].shape == (1, 2, 2, 3) and (batches[1] == 9).all()
    with pytest.raises(AlldagError, match="uint8"):
        next(perturbed_batches(image.astype(np.float32), fill, segments, np.ones((1, 2), int), 2))


def test_quickshift_kernel_scales_with_size():
    assert quickshift_kernel(4.0, 224) == 4.0 and quickshift_kernel(4.0, 112) == 2.0
    assert quickshift_kernel(4.0, 32) == 1.0  # quickshift's minimum


def test_background_fill_is_the_median_colour():
    image = np.zeros((3, 3, 3), np.float32)
    image[..., 0] = [[1, 1, 1], [1, 1, 1], [9, 9, 200]]
    fill = background_fill(image)
    assert fill.shape == image.shape and (fill[..., 0] == 1).all() and (fill[..., 1:] == 0).all()


def test_batched_predict_calls_in_batches():
    calls = []

    class Model:
        def predict_on_batch(self, x):
            calls.append(len(x))
            return np.stack([x.mean(axis=(1, 2, 3)), -x.mean(axis=(1, 2, 3))], axis=1)

    images = np.arange(7 * 2 * 2 * 3, dtype=np.uint8).reshape(7, 2, 2, 3)
    out = batched_predict(Model(), 3)(images)
    assert calls == [3, 3, 1] and out.shape == (7, 2) and out.dtype == np.float32
    np.testing.assert_allclose(out[:, 0], images.reshape(7, -1).mean(axis=1), rtol=1e-6)


def test_faithfulness_rewards_the_map_on_the_evidence():
    """Toy model: p(class 0) is the contrast of a fine checkerboard in the top-left quarter, which both the
    median fill and the blurred copy remove; the right map beats random, random beats the wrong map."""
    size = 32
    image = np.full((size, size, 3), 100.0, np.float32)
    image[:16, :16] += 100.0 * (np.indices((16, 16)).sum(axis=0) % 2)[..., None]  # the evidence

    def predict(batch):
        quarter = np.asarray(batch)[:, :16, :16, 0]
        p = np.clip(np.abs(np.diff(quarter, axis=2)).mean(axis=(1, 2)) / 100.0, 0, 1)
        return np.stack([p, 1 - p], axis=1)

    right = np.zeros((size, size), np.float32)
    right[:16, :16] = 1.0
    aucs = faithfulness(
        predict,
        image,
        0,
        {"right": right, "wrong": 1 - right, UNIFORM: np.ones((size, size))},
        8,
        np.random.default_rng(0),
    )
    for fill in FILLS:
        deletion, insertion = f"deletion_auc_{fill}", f"insertion_auc_{fill}"
        assert aucs["right"][deletion] < aucs[UNIFORM][deletion] < aucs["wrong"][deletion], (fill, aucs)
        assert aucs["right"][insertion] > aucs[UNIFORM][insertion] > aucs["wrong"][insertion], (fill, aucs)
    # median fill: p = 1, about 0.5, 0 at x = 0, 1/8, 2/8 (the evidence is the first quarter of the order), then 0
    assert aucs["right"]["deletion_auc_median"] == pytest.approx(0.125, abs=0.02)


def _checkerboard_case(size=32):
    """An image whose evidence is a fine checkerboard in the top-left quarter, and a toy model whose p(class 0)
    is that checkerboard's contrast (both the median fill and the blurred copy remove it)."""
    image = np.full((size, size, 3), 100.0, np.float32)
    image[:16, :16] += 100.0 * (np.indices((16, 16)).sum(axis=0) % 2)[..., None]

    def predict(batch):
        quarter = np.asarray(batch)[:, :16, :16, 0]
        p = np.clip(np.abs(np.diff(quarter, axis=2)).mean(axis=(1, 2)) / 100.0, 0, 1)
        return np.stack([p, 1 - p], axis=1)

    return image, predict


def test_faithfulness_against_random_orders_is_about_zero_for_a_random_map():
    """A map of noise is a random pixel order: its AUCs minus the mean of RANDOM_ORDERS seeded random orders
    are about 0 for every fill and curve, while the map on the evidence beats random by far."""
    image, predict = _checkerboard_case()
    rng = np.random.default_rng(0)
    right = np.zeros((32, 32), np.float32)
    right[:16, :16] = 1.0
    differences = []
    for _ in range(12):
        aucs = faithfulness(predict, image, 0, {"noise": rng.random((32, 32)), "right": right}, 8, rng)
        differences.append([aucs["noise"][c] for c in VS_RANDOM_COLUMNS])
        assert (
            aucs["right"]["deletion_auc_blur_vs_random"] < -0.2 and aucs["right"]["insertion_auc_blur_vs_random"] > 0.2
        )
        assert aucs["right"]["deletion_auc_median_vs_random"] < -0.2, aucs
    assert np.abs(np.mean(differences, axis=0)).max() < 0.03, differences  # the right map's: beyond 0.2
    assert np.abs(differences).max() < 0.1, differences


def test_faithfulness_aucs_are_relative_to_the_original_probability():
    image = np.random.default_rng(0).uniform(0, 255, (16, 16, 3)).astype(np.float32)

    def half_sure(batch):  # p = 0.4 whatever the pixels: every curve is flat at the original probability
        return np.tile([0.4, 0.6], (len(batch), 1))

    aucs = faithfulness(half_sure, image, 0, {UNIFORM: np.ones((16, 16))}, 4, np.random.default_rng(0))
    assert aucs[UNIFORM] == pytest.approx(
        {f"{c}_auc_{f}": 1.0 for c in ("deletion", "insertion") for f in FILLS}
        | {column: 0.0 for column in VS_RANDOM_COLUMNS}
    )


def test_blurred_fill_keeps_colour_and_removes_detail():
    image = np.full((64, 64, 3), 120.0, np.float32)
    image[::2, :, 0] = 220.0  # fine stripes in red
    blurred = blurred_fill(image)
    assert blurred.shape == image.shape and blurred.dtype == np.float32
    assert np.ptp(blurred[8:-8, 8:-8, 0]) < 5 and blurred[..., 0].mean() == pytest.approx(170, abs=1)
    np.testing.assert_allclose(blurred[..., 1], 120.0)


def test_choose_images_is_a_seeded_stratified_sample():
    test = pd.DataFrame(
        {
            "image_id": [f"{c}/{i:02d}.jpg" for c in ("Pro", "Benign") for i in range(10)],
            "label": ["Pro"] * 10 + ["Benign"] * 10,
            "y": [1] * 10 + [0] * 10,
        }
    )
    chosen = choose_images(test, 3, seed=1)
    assert chosen["label"].tolist() == ["Benign"] * 3 + ["Pro"] * 3  # class order, then image_id
    assert list(chosen.index) == list(range(6))
    assert chosen["image_id"].tolist() == sorted(chosen["image_id"])
    assert chosen.equals(choose_images(test, 3, seed=1))
    assert not chosen.equals(choose_images(test, 3, seed=2))
    assert chosen["image_id"].tolist() != [
        "Benign/00.jpg",
        "Benign/01.jpg",
        "Benign/02.jpg",
        "Pro/00.jpg",
        "Pro/01.jpg",
        "Pro/02.jpg",
    ]  # not just the first files
    assert len(choose_images(test.iloc[:12], 5, seed=0)) == 7  # Benign has 2 test images only


def test_load_masks_of_an_older_manifest_decides_afresh(synthetic_root):
    from alldag.synthetic import twin_outcome

    good = next(i for i in range(1, 9) if twin_outcome(5, "Pre", i) == "good")
    name = f"Pre/WBC-Malignant-Pre-{good:03d}.jpg"
    row = {
        "image_id": name,
        "path": str(synthetic_root / "Original" / name),
        "mask_path": str(synthetic_root / "Segmented" / name),
    }
    chosen = pd.DataFrame([row, row | {"mask_path": ""}, row | {"path": str(synthetic_root / "missing.jpg")}])
    found = load_masks(chosen, 64)
    assert [f.source for f in found] == ["segmented", "stain", "none"]
    assert found[0].mask.shape == (64, 64) and found[0].mask.dtype == bool and 0.01 < found[0].mask.mean() < 0.5
    assert found[2].mask is None
    iou = (found[0].mask & found[1].mask).sum() / (found[0].mask | found[1].mask).sum()
    assert iou > 0.6  # the colour model finds the same cells as the twin


def test_load_masks_reads_the_audits_mask_files(tmp_path):
    """With a mask_file column, explain reads the audit's final masks (never recomputes them): a file
    resized to the model's size, '' for an image without a usable mask, a missing file a one-line error."""
    from alldag import AlldagError
    from alldag.masks import write_mask_file

    mask = np.zeros((128, 128), bool)
    mask[10:50, 60:100] = True
    write_mask_file(mask, tmp_path / "Pro" / "a.png")
    chosen = pd.DataFrame(
        {
            "image_id": ["Pro/a.jpg", "Pro/b.jpg"],
            "path": ["no-such-image.jpg"] * 2,  # not read: the mask comes from the file
            "mask_path": [""] * 2,
            "mask_source": ["fallback-x", "none"],
            "mask_file": [str(tmp_path / "Pro" / "a.png"), ""],
        }
    )
    found = load_masks(chosen, 64)
    assert [f.source for f in found] == ["fallback-x", "none"] and found[1].mask is None
    assert found[0].mask.shape == (64, 64) and found[0].mask[5:25, 30:50].all() and found[0].mask.sum() == 400
    with pytest.raises(AlldagError, match="rerun the audit"):
        load_masks(chosen.assign(mask_file=[str(tmp_path / "gone.png"), ""]), 64)


def test_gallery_captions_say_when_a_map_has_no_positive_attribution():
    from alldag.figures import map_caption

    nan = float("nan")
    assert map_caption({"mask_ratio": 2.34, "corner_ratio": 0.5, "no_positive_attribution": False}) == (
        "leukocytes 2.3x, corner 0.5x chance"
    )
    blank = {"mask_ratio": nan, "corner_ratio": nan, "no_positive_attribution": True}
    assert map_caption(blank) == "no positive attribution"  # was "leukocytes nanx, corner nanx chance"
    assert map_caption({"mask_ratio": nan, "corner_ratio": 1.2}) == "no mask, corner 1.2x chance"


def test_gallery_choice_takes_the_best_and_worst_per_class():
    chosen = pd.DataFrame({"image_id": list("abcdefg"), "label": ["A"] * 4 + ["B"] * 3})
    ratios = {"a": 2.0, "b": 5.0, "c": float("nan"), "d": 1.0, "e": float("nan"), "f": float("nan"), "g": 3.0}
    per_image = pd.DataFrame(
        [{"image_id": i, "method": m, "mask_ratio": r} for i, r in ratios.items() for m in METHODS]
        + [{"image_id": "a", "method": UNIFORM, "mask_ratio": 1.0}]
    )
    assert chosen["image_id"].to_numpy()[gallery_choice(per_image, chosen)].tolist() == ["b", "d", "g", "e"]


def _red_model(size):
    """A fixed Keras model: channel 0 of layer "conv" fires on bright red, channel 1 on bright green;
    class 0's logit grows with the mean of channel 0 only (green is ignored)."""
    import keras

    inputs = keras.Input((size, size, 3))
    conv = keras.layers.Conv2D(
        2,
        1,
        activation="relu",
        name="conv",
        kernel_initializer=keras.initializers.Constant([[[[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]]]),
        bias_initializer=keras.initializers.Constant(-200.0),
    )(inputs)
    pooled = keras.layers.GlobalAveragePooling2D()(conv)
    outputs = keras.layers.Dense(
        2,
        activation="softmax",
        name="predictions",
        kernel_initializer=keras.initializers.Constant([[2.0, -2.0], [0.0, 0.0]]),
    )(pooled)
    return keras.Model(inputs, outputs)


def _red_and_green(n, size, red_at, green_at):
    """Dim noise images with a bright red 4x4 patch at red_at and a bright green one at green_at."""
    images = np.random.default_rng(1).uniform(0, 120, (n, size, size, 3)).astype(np.float32)
    (ry, rx), (gy, gx) = red_at, green_at
    images[:, ry : ry + 4, rx : rx + 4, 0] = 250.0
    images[:, gy : gy + 4, gx : gx + 4, 1] = 250.0
    return images


def test_gradient_cams_weigh_the_channel_the_model_reads():
    from alldag.explain import gradient_cam_fn

    size = 16
    maps = gradient_cam_fn(_red_model(size), "conv")(_red_and_green(3, size, (10, 10), (2, 2)), np.zeros(3, int))
    for name in ("gradcam", "gradcam_pp"):
        heat = maps[name]
        assert heat.shape == (3, size, size) and heat.min() >= 0 and heat.max() == pytest.approx(1.0)
        assert heat[:, 10:14, 10:14].sum() / heat.sum() > 0.95  # the red patch, not the green one


def test_gradient_cams_do_not_depend_on_the_batch_size():
    from alldag.explain import gradient_cam_fn

    size = 16
    images, classes = _red_and_green(5, size, (10, 10), (2, 2)), np.array([0, 1, 0, 1, 0])
    whole = gradient_cam_fn(_red_model(size), "conv", batch_size=16)(images, classes)
    chunked = gradient_cam_fn(_red_model(size), "conv", batch_size=2)(images, classes)
    for name in ("gradcam", "gradcam_pp"):
        np.testing.assert_array_equal(chunked[name], whole[name])
        alone = gradient_cam_fn(_red_model(size), "conv")(images[3:], classes[3:])
        np.testing.assert_array_equal(chunked[name][3:], alone[name])


def test_explain_images_rows_and_maps():
    size = 32
    model = _red_model(size)
    images = _red_and_green(2, size, (27, 27), (12, 12))  # evidence in the corner, a decoy on the "cell"
    masks = [np.zeros((size, size), bool), None]
    masks[0][8:20, 8:20] = True
    maps, segments, predicted, proba, method_rows, pair_rows = explain_images(model, images, masks, SETTINGS, 0)
    assert set(maps) == set(METHODS) and all(m.shape == (2, size, size) for m in maps.values())
    assert segments.shape == (2, size, size) and (predicted == 0).all() and proba.shape == (2, 2)
    rows = pd.DataFrame(method_rows)
    assert len(rows) == 2 * (len(METHODS) + 1) and set(rows["method"]) == set(METHODS) | {UNIFORM}
    uniform = rows[rows["method"] == UNIFORM].set_index("index")
    assert uniform.at[0, "mask_mass"] == pytest.approx(144 / 1024) and uniform.at[0, "mask_ratio"] == pytest.approx(1)
    assert uniform.at[0, "corner_mass"] == pytest.approx(100 / 1024)  # side round(0.3 * 32) = 10
    assert math.isnan(uniform.at[1, "mask_mass"])  # no mask for image 1
    for method in METHODS:
        found = rows[rows["method"] == method].set_index("index")
        assert (found["corner_mass"] > 3 * uniform["corner_mass"]).all(), (method, found)
        for fill in FILLS:
            assert (found[f"deletion_auc_{fill}"] < uniform[f"deletion_auc_{fill}"]).all(), (method, fill, found)
            assert (found[f"insertion_auc_{fill}"] > uniform[f"insertion_auc_{fill}"]).all(), (method, fill, found)
    pairs = pd.DataFrame(pair_rows)
    assert len(pairs) == 2 * 3 and set(pairs["pair"]) == {
        "gradcam_vs_gradcam_pp",
        "gradcam_vs_lime",
        "gradcam_pp_vs_lime",
    }
    assert pairs["top_iou"].between(0, 1).all()


def test_explain_settings_type_every_explain_key_of_the_schema(schema_path):
    from types import SimpleNamespace

    from alldag.config import validate_config
    from alldag.explain import ExplainSettings

    explain = validate_config({}, schema_path)["explain"]
    params = SimpleNamespace(classes=["a", "b"], explain=explain, seed=3)
    wildcards = SimpleNamespace(task="t", backbone="m", fold="0")
    settings = ExplainSettings.from_params(params, wildcards)
    assert settings.options == ExplainOptions(**explain) and settings.options.lime_num_samples == 1000
    assert settings.classes == ("a", "b") and settings.seed == 3
    with pytest.raises(TypeError):
        ExplainOptions(**explain, unknown_key=1)  # a key the schema gains must be typed here too
