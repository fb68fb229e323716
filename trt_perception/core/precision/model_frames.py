"""Frames of a model config as the precision tools use them: preprocessed input tensors with
their resize geometry, and the config's decoder turned into a detections function.

Frame sources are the calibration specs (video, image folder, image, ``BAG#TOPIC``; see
:mod:`trt_perception.core.tensorrt.calibration`).
"""

from __future__ import annotations

from itertools import islice
from typing import Optional, Sequence

import numpy as np

from trt_perception.core.geometry import ResizeGeometry
from trt_perception.core.model_config import ModelConfig
from trt_perception.core.pipeline import outputs_by_role
from trt_perception.core.precision.compare import FrameDecoder
from trt_perception.core.preprocess import preprocess
from trt_perception.core.tensorrt.calibration import CalibrationError, open_source


def read_frames(config: ModelConfig, specs: Sequence[str], every: int = 1, max_frames: Optional[int] = None,
                skip: int = 0) -> tuple[list[np.ndarray], list[ResizeGeometry]]:
    """Every ``every``-th frame of the sources in turn, after the first ``skip`` of those, at
    most ``max_frames``: input tensors (``config.preprocess.input_shape``) and geometries.
    """
    if every < 1 or skip < 0 or (max_frames is not None and max_frames < 1):
        raise CalibrationError(f"frames: every must be >= 1, skip >= 0, max_frames >= 1; got every={every}, "
                               f"skip={skip}, max_frames={max_frames}")
    sources = [open_source(spec, every) for spec in specs]
    pixels = (p for source in sources for _, p in source)
    stop = None if max_frames is None else skip + max_frames
    tensors, geometries = [], []
    for image in islice(pixels, skip, stop):
        tensor, geometry = preprocess(image, "bgr", config.preprocess)
        tensors.append(tensor)
        geometries.append(geometry)
    if not tensors:
        raise CalibrationError(f"no frames in {list(specs)} (every {every}, skip {skip})")
    return tensors, geometries


def detection_decoder(config: ModelConfig, geometries: Sequence[ResizeGeometry]) -> Optional[FrameDecoder]:
    """For a detection model (task ``ssd``): outputs by tensor name + frame index -> its
    detections; None for other tasks (compared by tensors only).
    """
    if config.task != "ssd":
        return None
    from trt_perception.core.decode import create_decoder
    decoder = create_decoder(config)
    return lambda outputs, index: decoder(outputs_by_role(config, outputs), geometries[index])
