"""Image checks before anything trains: unreadable files are quarantined, fixable ones converted.

Every image is decoded fully once here, so a bad file can never crash a training epoch.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

EXPECTED_SIZE = 224


@dataclass(frozen=True)
class ImageCheck:
    """Outcome for one file: status 'ok', 'fixed' or 'quarantined', with a reason when not ok."""

    status: str
    reason: str = ""
    image: np.ndarray | None = None  # the converted RGB pixels when status == 'fixed'


def check_image(path: str | os.PathLike, expected_size: int = EXPECTED_SIZE) -> ImageCheck:
    """Decode one image file fully and classify it (ok / fixed / quarantined)."""
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            return ImageCheck("quarantined", "zero-byte file")
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.load()  # raises on truncated or corrupt data
                mode, size = img.mode, img.size
                if mode == "RGB" and size == (expected_size, expected_size):
                    return ImageCheck("ok")
                reasons = []
                if mode != "RGB":
                    reasons.append(f"mode {mode} converted to RGB")
                    img = _to_rgb(img)
                if img.size != (expected_size, expected_size):
                    reasons.append(f"size {size[0]}x{size[1]} resized to {expected_size}x{expected_size}")
                    img = img.resize((expected_size, expected_size), Image.BICUBIC)
                return ImageCheck("fixed", "; ".join(reasons), np.asarray(img.convert("RGB")))
    except UnidentifiedImageError:
        return ImageCheck("quarantined", "not an image")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombWarning) as exc:
        return ImageCheck("quarantined", f"truncated or corrupt ({str(exc).splitlines()[0][:80]})")


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        background = Image.new("RGB", img.size, (255, 255, 255))
        rgba = img.convert("RGBA")
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if img.mode.startswith("I") or img.mode == "F":  # 16/32-bit greyscale: scale to 8 bits
        arr = np.asarray(img, dtype=np.float64)
        span = arr.max() - arr.min()
        arr = (arr - arr.min()) / span * 255 if span > 0 else np.zeros_like(arr)
        return Image.fromarray(arr.astype(np.uint8)).convert("RGB")
    return img.convert("RGB")
