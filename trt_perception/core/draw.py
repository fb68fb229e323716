"""Annotated debug images: detections and skeletons drawn onto a BGR copy of the frame."""

from __future__ import annotations

import cv2
import numpy as np

from trt_perception.core.decode.pose import Skeleton
from trt_perception.core.decode.ssd.detections import Detections


def to_bgr(pixels: np.ndarray, order: str) -> np.ndarray:
    """A new uint8[H, W, 3] BGR array from pixels in ``order`` ("rgb", "bgr" or "mono")."""
    if order == "mono":
        return cv2.cvtColor(np.ascontiguousarray(pixels), cv2.COLOR_GRAY2BGR)
    if order == "rgb":
        return cv2.cvtColor(np.ascontiguousarray(pixels), cv2.COLOR_RGB2BGR)
    return np.array(pixels, dtype=np.uint8, copy=True, order="C")


def draw_detections(bgr: np.ndarray, dets: Detections) -> np.ndarray:
    """Draw each box with its label, score and track id (``#7``, when tracked) onto ``bgr`` (in
    place); returns ``bgr``.
    """
    ids = dets.ids if dets.ids is not None else [""] * len(dets)
    for (x0, y0, x1, y1), score, label, track_id in zip(dets.boxes_xyxy.tolist(), dets.scores.tolist(),
                                                         dets.labels, ids):
        p0, p1 = (int(round(x0)), int(round(y0))), (int(round(x1)) - 1, int(round(y1)) - 1)
        cv2.rectangle(bgr, p0, p1, (40, 255, 40), 2)
        caption = f"#{track_id} {label} {score:.2f}" if track_id else f"{label} {score:.2f}"
        cv2.putText(bgr, caption, (p0[0], max(p0[1] - 4, 10)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.45, (40, 255, 40), 1, cv2.LINE_AA)
    return bgr


def draw_skeletons(bgr: np.ndarray, skeletons: list[Skeleton]) -> np.ndarray:
    """Draw each person's links and keypoints (source pixels) onto ``bgr`` (in place)."""
    for person in skeletons:
        where = {part: (int(round(x - 0.5)), int(round(y - 0.5)))
                 for part, (x, y) in zip(person.parts.tolist(), person.xy.tolist())}
        for a, b in person.links.tolist():
            cv2.line(bgr, where[a], where[b], (0, 160, 255), 2, cv2.LINE_AA)
        for point in where.values():
            cv2.circle(bgr, point, 3, (0, 255, 255), -1, cv2.LINE_AA)
    return bgr
