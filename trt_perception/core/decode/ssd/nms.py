"""Greedy non-maximum suppression, optionally per class.

Boxes are float[K, 4] (xmin, ymin, xmax, ymax) in any one unit (IoU does not change when x and
y are scaled and shifted, so normalized and pixel units give the same result). Boxes are visited
by descending score (ties: lower index first); a box is kept unless its IoU with an already kept
box (of the same class, when ``class_ids`` is given) is greater than ``iou_threshold``, so a
threshold of 1 keeps everything. A pair whose union has zero area has IoU 0.
"""

from __future__ import annotations

from typing import Optional

import numpy as np


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float,
        class_ids: Optional[np.ndarray] = None) -> np.ndarray:
    """Indices (int64[K']) of the boxes kept, by descending score (see the module docstring)."""
    order = np.argsort(-scores, kind="stable")
    count = order.size
    if count <= 1:
        return order
    b = boxes[order]
    wh = np.minimum(b[:, None, 2:], b[None, :, 2:])
    wh -= np.maximum(b[:, None, :2], b[None, :, :2])
    np.maximum(wh, 0, out=wh)
    inter = wh[..., 0] * wh[..., 1]
    size = b[:, 2:] - b[:, :2]
    np.maximum(size, 0, out=size)
    area = size[:, 0] * size[:, 1]
    union = area[:, None] + area[None, :]
    union -= inter
    over = inter > union * iou_threshold          # IoU > t, without dividing (union 0 -> False)
    if class_ids is not None:
        sorted_ids = class_ids[order]
        over &= sorted_ids[:, None] == sorted_ids[None, :]
    suppressed = np.zeros(count, dtype=bool)
    keep = []
    for i in range(count):
        if not suppressed[i]:
            keep.append(i)
            suppressed |= over[i]
    return order[keep]
