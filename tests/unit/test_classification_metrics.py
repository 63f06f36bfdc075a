"""alldag.evaluate: metrics on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from alldag.evaluate import classification_metrics, confusion, roc_curves


def _onehot_proba(pred, k, confidence=0.7):
    """Probabilities whose argmax is `pred`."""
    proba = np.full((len(pred), k), (1 - confidence) / (k - 1))
    proba[np.arange(len(pred)), pred] = confidence
    return proba


def test_perfect_binary():
    y = np.array([0, 0, 1, 1, 1])
    proba = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.45, 0.55], [0.0, 1.0]])
    m = classification_metrics(y, proba)
    assert m == {"accuracy": 1.0, "balanced_accuracy": 1.0, "macro_f1": 1.0, "roc_auc": 1.0}
    assert all(type(v) is float for v in m.values())


def test_binary_known_case():
    # y_pred = [0, 1, 1, 1]: TP(class 1)=2, FP=1, TN=1, FN=0
    y = np.array([0, 0, 1, 1])
    proba = np.array([[0.8, 0.2], [0.3, 0.7], [0.4, 0.6], [0.1, 0.9]])
    m = classification_metrics(y, proba)
    assert m["accuracy"] == pytest.approx(0.75)
    assert m["balanced_accuracy"] == pytest.approx((1 / 2 + 1) / 2)
    # F1 class 0: p=1, r=1/2 -> 2/3; class 1: p=2/3, r=1 -> 4/5
    assert m["macro_f1"] == pytest.approx((2 / 3 + 4 / 5) / 2)
    # AUC of p1: positives {0.6, 0.9} vs negatives {0.2, 0.7}: 3 of 4 pairs ranked right
    assert m["roc_auc"] == pytest.approx(0.75)


def test_three_class_known_confusion():
    y = np.array([0, 0, 0, 1, 1, 2])
    pred = np.array([0, 0, 1, 1, 2, 2])
    m = classification_metrics(y, _onehot_proba(pred, 3))
    assert m["accuracy"] == pytest.approx(4 / 6)
    # recalls 2/3, 1/2, 1
    assert m["balanced_accuracy"] == pytest.approx(13 / 18)
    # precisions 1, 1/2, 1/2 -> F1 0.8, 0.5, 2/3
    assert m["macro_f1"] == pytest.approx(59 / 90)
    np.testing.assert_array_equal(confusion(y, pred, 3), [[2, 1, 0], [0, 1, 1], [0, 0, 1]])


def test_four_class_ovr_auc():
    y = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    proba = np.array(
        [
            [0.7, 0.1, 0.1, 0.1],
            [0.3, 0.4, 0.2, 0.1],
            [0.1, 0.6, 0.2, 0.1],
            [0.4, 0.3, 0.2, 0.1],
            [0.1, 0.1, 0.7, 0.1],
            [0.1, 0.1, 0.6, 0.2],
            [0.1, 0.1, 0.1, 0.7],
            [0.2, 0.2, 0.2, 0.4],
        ]
    )
    m = classification_metrics(y, proba)
    # one-vs-rest AUCs by pair counting: 11/12, 11/12, 1, 1 -> macro 23/24
    assert m["roc_auc"] == pytest.approx(23 / 24)
    # predictions: 0,1,1,0,2,2,3,3 -> 6 of 8 right
    assert m["accuracy"] == pytest.approx(6 / 8)
    assert m["balanced_accuracy"] == pytest.approx((0.5 + 0.5 + 1 + 1) / 4)
    curves = roc_curves(y, proba, ["Benign", "Early", "Pre", "Pro"])
    assert list(curves) == ["Benign", "Early", "Pre", "Pro"]
    assert [c[2] for c in curves.values()] == pytest.approx([11 / 12, 11 / 12, 1.0, 1.0])


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
def test_missing_class_gives_nan_auc():
    y = np.array([0, 0, 1, 1])  # class 2 absent from the test set
    pred = np.array([0, 0, 1, 2])
    m = classification_metrics(y, _onehot_proba(pred, 3))
    assert math.isnan(m["roc_auc"])
    assert m["accuracy"] == pytest.approx(0.75)
    assert not math.isnan(m["macro_f1"]) and not math.isnan(m["balanced_accuracy"])


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
def test_single_class_binary_gives_nan_auc():
    m = classification_metrics(np.array([1, 1, 1]), np.array([[0.2, 0.8], [0.6, 0.4], [0.1, 0.9]]))
    assert math.isnan(m["roc_auc"])
    assert m["accuracy"] == pytest.approx(2 / 3)


def test_confusion_includes_absent_classes():
    cm = confusion(np.array([0, 0, 2]), np.array([0, 2, 2]), 4)
    assert cm.shape == (4, 4)
    np.testing.assert_array_equal(cm, [[1, 0, 1, 0], [0, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]])


def test_roc_curves_skip_absent_and_all_positive_classes():
    y = np.array([0, 0, 2, 2])
    proba = np.array([[0.8, 0.1, 0.1], [0.5, 0.1, 0.4], [0.3, 0.2, 0.5], [0.1, 0.1, 0.8]])
    curves = roc_curves(y, proba, ["A", "B", "C"])
    assert list(curves) == ["A", "C"]  # B never occurs
    fpr, tpr, auc = curves["A"]
    assert auc == pytest.approx(1.0)
    assert fpr[0] == 0 and tpr[-1] == 1 and fpr[-1] == 1
    assert curves["C"][2] == pytest.approx(1.0)

    only_one = roc_curves(np.array([1, 1]), np.array([[0.3, 0.7], [0.6, 0.4]]), ["A", "B"])
    assert only_one == {}  # A absent, B is every sample


def test_roc_curves_partial_auc_value():
    y = np.array([0, 1, 0, 1])
    proba = np.array([[0.6, 0.4], [0.3, 0.7], [0.2, 0.8], [0.55, 0.45]])
    curves = roc_curves(y, proba, ["neg", "pos"])
    # "pos": positives {0.7, 0.45} vs negatives {0.4, 0.8} -> 2 of 4 pairs
    assert curves["pos"][2] == pytest.approx(0.5)
    assert curves["neg"][2] == pytest.approx(0.5)
