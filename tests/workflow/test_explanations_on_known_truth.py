"""Explanations validated where the truth is known: tiny CNNs trained on synthetic smears.

With the planted class-coded corner bar on (Early vs Pre-B; the bar is the easiest cue), attribution must move
into the scale-bar corner; with it off (benign vs Pro-B, told apart by the cells' colour and shape),
attribution must sit on the leukocytes far above what a uniform map scores.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

keras = pytest.importorskip("keras")

from alldag.explain import FILLS, UNIFORM, ExplainOptions, explain_images  # noqa: E402
from alldag.synthetic import image_rng, render_smear  # noqa: E402

SIZE = 64
TRAIN_PER_CLASS, TEST_PER_CLASS, EPOCHS = 80, 6, 10
CELL_EPOCHS = 20  # benign vs Pro-B without the bar: small cells in the real colours need more (10 gave 0.875)
SETTINGS = ExplainOptions(
    images_per_class=6,
    lime_num_samples=200,
    lime_batch_size=200,
    lime_kernel_size=4.0,
    top_percent=20,
    faithfulness_steps=10,
    corner_fraction=0.3,
    gradcam_layer="last_conv",
)
STUDY_METHODS = ("gradcam", "lime")


def _smears(classes, shortcut, first, n):
    drawn = [
        (render_smear(c, image_rng(21, c, first + i), SIZE, shortcut=shortcut), y)
        for y, c in enumerate(classes)
        for i in range(n)
    ]
    images = np.stack([image for (image, _), _ in drawn]).astype(np.float32)
    return images, [mask for (_, mask), _ in drawn], np.array([y for _, y in drawn])


def _tiny_cnn():
    """Three conv layers; max and average pooling side by side, so a small bar is as easy to learn as a cell."""
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    for filters, name in ((16, None), (32, None), (32, "last_conv")):
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name=name)(x)
        if name is None:
            x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Concatenate()([keras.layers.GlobalMaxPooling2D()(x), keras.layers.GlobalAveragePooling2D()(x)])
    return keras.Model(inputs, keras.layers.Dense(2, activation="softmax", name="predictions")(x))


def _explained(classes, shortcut, epochs: int = EPOCHS) -> tuple[float, pd.DataFrame]:
    """Test accuracy and mean metrics per method of a tiny CNN trained on (classes, shortcut) for `epochs`."""
    keras.utils.set_random_seed(0)
    x, _, y = _smears(classes, shortcut, 0, TRAIN_PER_CLASS)
    model = _tiny_cnn()
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=epochs, batch_size=32, verbose=0)
    xt, masks, yt = _smears(classes, shortcut, 1000, TEST_PER_CLASS)
    _, _, predicted, _, rows, _ = explain_images(model, xt, masks, SETTINGS, 0)
    metrics = pd.DataFrame(rows).drop(columns="index").groupby("method").mean()
    print(f"\n{classes} shortcut={shortcut} accuracy={(predicted == yt).mean():.2f}\n{metrics.round(2).to_string()}")
    return float((predicted == yt).mean()), metrics


@pytest.fixture(scope="module")
def shortcut_on():
    return _explained(("Early", "Pre"), 1.0)


@pytest.fixture(scope="module")
def shortcut_off():
    return _explained(("Early", "Pre"), 0.0)


@pytest.fixture(scope="module")
def cells_only():
    return _explained(("Benign", "Pro"), 0.0, CELL_EPOCHS)


def test_planted_shortcut_pulls_attribution_into_the_corner(shortcut_on, shortcut_off):
    accuracy, on = shortcut_on
    _, off = shortcut_off
    assert accuracy >= 0.9, on  # the bar was learned
    corner = on["corner_mass"]
    for method in STUDY_METHODS:
        assert corner[method] > 4 * corner[UNIFORM], on
    for method in ("gradcam", "gradcam_pp", "lime"):
        assert corner[method] > off.at[method, "corner_mass"] + 0.05, (on, off)


def test_planted_shortcut_explanations_are_faithful(shortcut_on):
    _, on = shortcut_on
    for method in STUDY_METHODS:
        for fill in FILLS:  # the blurred copy and the median colour (LIME's own fill)
            assert on.at[method, f"deletion_auc_{fill}"] < on.at[UNIFORM, f"deletion_auc_{fill}"] - 0.1, on
            assert on.at[method, f"insertion_auc_{fill}"] > on.at[UNIFORM, f"insertion_auc_{fill}"] + 0.1, on


def test_without_shortcut_attribution_sits_on_the_leukocyte(cells_only):
    accuracy, off = cells_only
    assert accuracy >= 0.9, off
    uniform = off.loc[UNIFORM]
    assert uniform["mask_mass"] == pytest.approx(uniform["pointing"])  # both are the mask's area fraction
    for method in STUDY_METHODS:
        assert off.at[method, "mask_mass"] > 2 * uniform["mask_mass"], off
        assert off.at[method, "pointing"] > 2 * uniform["pointing"], off
    # in the real colours the background is a class cue too (Pro-B's field is whiter), which LIME's large
    # background superpixels pick up; Grad-CAM's map stays off the empty corner
    assert off.at["gradcam", "corner_mass"] < 2 * uniform["corner_mass"], off
