"""The explanation-method registry: one entry per attribution method, which explain, the gallery, the
"where do the models look" verdict, the report and the headline iterate over.

Light on purpose (no numpy, no model code): an entry names its compute function by "module:function",
imported only when explain runs it, so importing the registry loads nothing else. Adding a method is one
`register(Method(...))` (or one entry below).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from alldag.lazy import function_of


@dataclass(frozen=True)
class MethodInput:
    """What a compute function explains: the model, the images, the class explained in each and the settings."""

    model: Any  # the Keras classifier
    images: Any  # (n, H, W, 3) in [0, 255]
    predicted: Any  # (n,) the class index explained in each image (the model's prediction)
    predict: Callable  # images -> class probabilities, in batches (alldag.explain.batched_predict)
    options: Any  # alldag.explain.ExplainOptions: the config's explain: keys
    seed: int
    label: str  # the job's name in progress lines


@dataclass(frozen=True)
class Attributions:
    """A compute function's result: maps per method it computes, (n, H, W) in [0, 1] with peak 1 (positive
    evidence for the explained class); segments (n, H, W) int when its maps are painted on superpixels."""

    maps: dict[str, Any]
    segments: Any = None


@dataclass(frozen=True)
class Method:
    """One attribution method.

    compute: MethodInput -> Attributions, as a callable or "module:function" (imported when first run);
    methods naming the same compute function are computed together in one call (Grad-CAM and Grad-CAM++
    share one backward pass). superpixels: its map is painted on superpixels, which the gallery outlines.
    study: one of the study's two methods, on which the verdict and the headline's agreement rest.
    """

    name: str
    title: str  # display title in tables, the gallery and sentences
    compute: Callable[[MethodInput], Attributions] | str = field(repr=False)
    superpixels: bool = False
    study: bool = False

    def compute_function(self) -> Callable[[MethodInput], Attributions]:
        """The compute function itself (imported on first use when named by a string)."""
        return function_of(self.compute)


# name -> method; the order is explain's computing order and every table's row order
METHODS: dict[str, Method] = {}


def register(method: Method) -> Method:
    """Add (or replace) a method in the registry; returns it."""
    METHODS[method.name] = method
    return method


register(Method("gradcam", "Grad-CAM", "alldag.explain:gradient_cams", study=True))
register(Method("gradcam_pp", "Grad-CAM++", "alldag.explain:gradient_cams"))
register(Method("lime", "LIME", "alldag.explain:lime_maps", superpixels=True, study=True))


def method_title(method: str) -> str:
    """A method's display title; a name the registry does not know (the uniform reference) as it is."""
    return METHODS[method].title if method in METHODS else method


def pair_name(a: str, b: str) -> str:
    """The name of a pair of methods in agreement tables, e.g. gradcam_vs_lime."""
    return f"{a}_vs_{b}"


def method_pairs() -> list[tuple[str, str]]:
    """Every pair of registered methods, in registry order."""
    names = list(METHODS)
    return [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]


def study_methods() -> tuple[str, ...]:
    """The study's methods (Method.study), in registry order."""
    return tuple(name for name, method in METHODS.items() if method.study)


def study_pair() -> tuple[str, str]:
    """The study's two methods, whose agreement the headline reports."""
    first, second = study_methods()[:2]
    return first, second
