"""The result of SSD decoding for one image."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np


@dataclass(frozen=True)
class Detections:
    """K detections of one image, sorted by descending score.

    boxes_xyxy: float32[K, 4] (xmin, ymin, xmax, ymax) in source-image pixels (edges at 0 and W,
    see :mod:`trt_perception.core.geometry`), clipped to the image, each of positive area.
    scores: float32[K] in (0, 1]. class_ids: int32[K], the column of the model's class output
    (0 = background, never reported). labels: the class names (``str(class_id)`` without a labels
    file). ids: None when not tracked, else one track id per detection (a string of the camera's
    track counter, "" for a detection of no confirmed track; see :mod:`trt_perception.core.tracking`).
    """

    boxes_xyxy: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    labels: list[str]
    ids: Optional[list[str]] = None

    def __len__(self) -> int:
        return len(self.scores)

    @classmethod
    def empty(cls) -> "Detections":
        """No detections: (0, 4) float32 boxes, (0,) float32 scores, (0,) int32 classes, no labels."""
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32), [])
