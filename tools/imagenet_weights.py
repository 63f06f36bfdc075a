"""Write workflow/resources/imagenet-weights.tsv: the no-top ImageNet weights file keras.applications downloads
for every backbone of alldag.backbones.REGISTRY, with its URL and the hash Keras checks it against.

Each backbone is built with weights='imagenet' while keras' get_file is replaced by a stand-in that records
(file name, URL, file_hash) and stops: nothing is downloaded. MobileNet and MobileNetV2 load a file per input
size (one row per size; image_size '*' is the file Keras falls back to for any other size); every other
backbone has one file ('*').

    python tools/imagenet_weights.py          # rewrite the table (5.5 minutes on two busy cores: it builds 52 models)
    python tools/imagenet_weights.py --check  # exit 1 if the table differs from what it would write
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from alldag.weights import TABLE, WeightsFile, format_weights_table, read_weights_table  # noqa: E402

SIZED = {"MobileNet": (128, 160, 192), "MobileNetV2": (96, 128, 160, 192)}  # keras' own lists, less 224


class Recorded(Exception):
    """Raised by the get_file stand-in: its args are (file name, URL, file_hash)."""


def keras_weights_file(name: str, image_size: int) -> tuple[str, str, str]:
    """(file name, URL, file_hash or '') that keras.applications.<name> would download at this input size."""
    from keras.src.utils import file_utils

    from alldag.backbones import constructor

    def record(fname, origin=None, file_hash=None, **kwargs):
        raise Recorded(fname, origin, file_hash or "")

    real, file_utils.get_file = file_utils.get_file, record
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # MobileNet warns that it falls back to its 224-px file
            constructor(name)(include_top=False, weights="imagenet", input_shape=(image_size, image_size, 3))
    except Recorded as got:
        return got.args
    finally:
        file_utils.get_file = real
    raise RuntimeError(f"keras.applications.{name} downloaded nothing")


def table_rows(pinned: dict[tuple[str, str], str]) -> list[WeightsFile]:
    """One row per (backbone, file), in registry order; pinned: (backbone, image_size) -> sha256 to keep."""
    from alldag.backbones import REGISTRY

    rows = []
    for name, backbone in REGISTRY.items():
        for size in (*SIZED.get(name, ()), "*"):
            fname, url, file_hash = keras_weights_file(name, backbone.default_size if size == "*" else size)
            rows.append(WeightsFile(name, str(size), fname, url, file_hash, pinned.get((name, str(size)), "")))
    return rows


if __name__ == "__main__":
    path = REPO / TABLE
    current = read_weights_table(path) if path.is_file() else []
    text = format_weights_table(table_rows({(r.backbone, r.image_size): r.sha256 for r in current}))
    if "--check" in sys.argv:
        if text != path.read_text():
            sys.exit(f"{TABLE} differs from keras.applications: run python tools/imagenet_weights.py")
        sys.exit(0)
    path.write_text(text)
