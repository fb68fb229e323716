"""Multi-object tracking of detections across the frames of one camera (ByteTrack's method).

Terminology: N tracks, K detections of a frame, boxes xyxy in source pixels (as
:class:`~trt_perception.core.decode.ssd.detections.Detections`), stamps in int nanoseconds.

Modules: :mod:`.kalman` (constant-velocity box states), :mod:`.association` (IoU matching in
stages), :mod:`.params` (:class:`TrackerParams` and the parameter rows), :mod:`.tracker`
(:class:`Tracker`, which chains them).
"""

from trt_perception.core.tracking.params import ENABLE_ROW, PARAM_ROWS, TrackerParams
from trt_perception.core.tracking.tracker import Tracker, TrackerStats

__all__ = ["ENABLE_ROW", "PARAM_ROWS", "Tracker", "TrackerParams", "TrackerStats"]
