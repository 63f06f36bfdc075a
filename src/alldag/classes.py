"""The dataset's classes and file naming (Aria et al. 2021, Kaggle mehradaria/leukemia)."""

CLASSES = ("Benign", "Early", "Pre", "Pro")

_PREFIX = {
    "Benign": "WBC-Benign",
    "Early": "WBC-Malignant-Early",
    "Pre": "WBC-Malignant-Pre",
    "Pro": "WBC-Malignant-Pro",
}


def file_prefix(cls: str) -> str:
    """File-name prefix the real dataset uses for class `cls` (e.g. 'WBC-Malignant-Pro')."""
    return _PREFIX[cls]
