"""SSD detection decoding: anchors, box coding, scores, NMS -> :class:`Detections`.

Terminology
===========

==== ===================================================================================
A    number of anchors (default boxes); 1917 for the shipped SSDLite pedestrian model
C    number of class columns of the model's class output, background included (column 0)
M    number of candidates: (anchor, class) pairs whose score passes the threshold
K    number of detections reported for an image
==== ===================================================================================

Boxes are ``xyxy`` = (xmin, ymin, xmax, ymax) unless a name says otherwise; anchors are
``(cx, cy, w, h)``. Units: *normalized* = fraction of the network input's width (x) or height (y);
*source pixels* = pixels of the camera image with edges at 0 and W
(:mod:`trt_perception.core.geometry`). A class id is the column index of the class output.

Modules: :mod:`.anchors` (generators), :mod:`.box_coding`, :mod:`.scores` (score conversion and
candidate selection), :mod:`.nms`, :mod:`.detections` (result type), :mod:`.decoder`
(:class:`SsdDecoder`, which chains them).
"""

from trt_perception.core.decode.ssd.decoder import SsdDecoder
from trt_perception.core.decode.ssd.detections import Detections

__all__ = ["Detections", "SsdDecoder"]
