"""The study alldag reproduces: its citation and the numbers it reported (reported, not reproduced here).

The one home of these numbers: compare, the report and summary.json import them from here.
"""

from __future__ import annotations

STUDY_CITATION = (
    "Kim N. Deep Learning Technology-based Model to Identify Benign and Pro-B Acute Lymphoblastic Leukemia "
    "(ALL): Xception + LIME. American Journal of Biomedical and Life Sciences. 2021;9(5):279-285. "
    "doi:10.11648/j.ajbls.20210905.19."
)
STUDY_DOI = "10.11648/j.ajbls.20210905.19"
STUDY_SHORT = "Kim 2021"
# Binary (benign vs Pro-B) test accuracy the study reported per backbone.
STUDY_BINARY_ACCURACY = {"VGG16": 0.985, "VGG19": 0.971, "Xception": 0.938, "MobileNet": 0.382}
# Four-class: one overall figure, the best of its four backbones (not a number per backbone).
STUDY_FOUR_CLASS_BEST_ACCURACY = 0.83
STUDY_TASKS = {"benign_vs_pro": "binary", "four_class": "four_class"}


def study_accuracy(task: str, model: str) -> float:
    """The accuracy the study reported for this task and backbone; NaN where it reported none per backbone."""
    if STUDY_TASKS.get(task) == "binary":
        return STUDY_BINARY_ACCURACY.get(model, float("nan"))
    return float("nan")


def study_task_reference(task: str) -> dict | None:
    """What the study reported for a task as a whole (shown once per task), with the citation; None if nothing."""
    kind = STUDY_TASKS.get(task)
    if kind == "binary":
        return {
            "citation": STUDY_CITATION,
            "doi": STUDY_DOI,
            "accuracy_by_backbone": dict(STUDY_BINARY_ACCURACY),
            "note": "binary test accuracy per backbone, as reported",
        }
    if kind == "four_class":
        return {
            "citation": STUDY_CITATION,
            "doi": STUDY_DOI,
            "best_accuracy": STUDY_FOUR_CLASS_BEST_ACCURACY,
            "note": "about 83 %, the best of its four backbones (no per-backbone figure)",
        }
    return None
