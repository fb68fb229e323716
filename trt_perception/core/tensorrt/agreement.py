"""Detection agreement of a reduced-precision model (FP16, INT8) with its FP32 reference.

Per image, the reference detections and the test detections of the same class are matched
one-to-one, greedily by decreasing IoU, keeping pairs with IoU >= ``iou_threshold``. Over many
images :class:`DetectionAgreement` reports the matched count, precision (matched / test
detections), recall (matched / reference detections), the mean IoU of matched pairs and the
score drift (test score - reference score) of matched pairs.

Boxes: float[K, 4] ``xyxy`` in any one pixel frame (edges convention of
:mod:`trt_perception.core.geometry`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


def pairwise_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """float64[Ka, Kb] IoU of every box of ``a`` with every box of ``b`` (0 where both are empty)."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    iou: np.ndarray = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    return iou


def match_detections(ref_boxes: np.ndarray, ref_classes: np.ndarray, test_boxes: np.ndarray,
                     test_classes: np.ndarray, iou_threshold: float = 0.5) -> list[tuple[int, int, float]]:
    """One-to-one (ref index, test index, IoU) pairs of equal class with IoU >= ``iou_threshold``,
    chosen greedily from the highest IoU down.
    """
    iou = pairwise_iou(ref_boxes, test_boxes)
    iou[np.asarray(ref_classes)[:, None] != np.asarray(test_classes)[None, :]] = 0.0
    pairs = []
    used_ref: set[int] = set()
    used_test: set[int] = set()
    order = np.argsort(-iou, axis=None, kind="stable")
    for flat in order:
        i, j = divmod(int(flat), iou.shape[1])
        if iou[i, j] < iou_threshold:
            break
        if i not in used_ref and j not in used_test:
            pairs.append((i, j, float(iou[i, j])))
            used_ref.add(i)
            used_test.add(j)
    return pairs


@dataclass
class DetectionAgreement:
    """Accumulates :func:`match_detections` over images (see the module docstring)."""

    iou_threshold: float = 0.5
    images: int = 0
    reference: int = 0
    test: int = 0
    ious: list[float] = field(default_factory=list)
    score_drift: list[float] = field(default_factory=list)

    def add(self, ref_boxes: np.ndarray, ref_scores: np.ndarray, ref_classes: np.ndarray,
            test_boxes: np.ndarray, test_scores: np.ndarray, test_classes: np.ndarray) -> None:
        """Add one image's reference and test detections."""
        pairs = match_detections(ref_boxes, ref_classes, test_boxes, test_classes, self.iou_threshold)
        self.images += 1
        self.reference += len(ref_scores)
        self.test += len(test_scores)
        self.ious += [iou for _, _, iou in pairs]
        self.score_drift += [float(test_scores[j]) - float(ref_scores[i]) for i, j, _ in pairs]

    @property
    def matched(self) -> int:
        """Number of reference detections matched by a candidate detection."""
        return len(self.ious)

    def summary(self) -> dict[str, Any]:
        """Counts, precision, recall, mean IoU and score drift (mean, mean absolute, max absolute)."""
        drift = np.asarray(self.score_drift, np.float64)
        return {
            "images": self.images, "reference_detections": self.reference, "test_detections": self.test,
            "matched": self.matched,
            "precision": self.matched / self.test if self.test else 1.0,
            "recall": self.matched / self.reference if self.reference else 1.0,
            "mean_iou": float(np.mean(self.ious)) if self.ious else float("nan"),
            "score_drift_mean": float(drift.mean()) if drift.size else float("nan"),
            "score_drift_mean_abs": float(np.abs(drift).mean()) if drift.size else float("nan"),
            "score_drift_max_abs": float(np.abs(drift).max()) if drift.size else float("nan"),
        }
