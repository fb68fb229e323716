"""What the fused preprocessing kernel is given, computed on the host (no CUDA needed here).

- :class:`FrameLayout`: a camera frame's encoding, size and row step -> the bytes it occupies and
  the kernel's encoding id (checked as :func:`trt_perception.core.image.decode_image` checks them);
- :func:`resize_tables`: OpenCV ``INTER_LINEAR`` source indices and 11-bit fixed-point weights
  for every output column and row, so the kernel reproduces ``cv2.resize`` on uint8 exactly;
- :class:`PreprocessPlan`: the above plus the letterbox placement and normalization of a
  :class:`~trt_perception.core.preprocess.PreprocessConfig`, packed as the kernel's parameter
  struct, and the launch geometry.

Supported encodings (names of ``sensor_msgs/image_encodings``, as in :mod:`trt_perception.core.image`):
rgb8, bgr8, rgba8, bgra8, mono8, mono16, uyvy/yuv422, yuyv/yuv422_yuy2, nv12, nv21.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import numpy as np

from trt_perception.core.geometry import ResizeGeometry
from trt_perception.core.image import ImageError, ImageLayout
from trt_perception.core.preprocess import PreprocessConfig

#: kernel encoding ids (ENC_* in preprocess_kernel.cu); mono16 is split by byte order
ENCODING_IDS = {
    "rgb8": 0, "bgr8": 1, "rgba8": 2, "bgra8": 3, "mono8": 4, "mono16_le": 5, "mono16_be": 6,
    "yuyv": 7, "yuv422_yuy2": 7, "uyvy": 8, "yuv422": 8, "nv12": 9, "nv21": 10,
}
#: encoding -> bytes per pixel in a row (nv12/nv21: of the luma plane)
_BYTES_PER_PIXEL = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1, "mono16": 2,
                    "yuyv": 2, "yuv422_yuy2": 2, "uyvy": 2, "yuv422": 2, "nv12": 1, "nv21": 1}
GPU_ENCODINGS = tuple(_BYTES_PER_PIXEL)

#: the kernel's PreprocessParams struct, field for field (int32 and float32 only: no padding)
PARAMS_DTYPE = np.dtype([(name, np.int32) for name in (
    "encoding", "src_pitch", "src_w", "src_h", "dst_w", "dst_h", "content_w", "content_h",
    "pad_x", "pad_y", "pad_value", "bgr_out", "nhwc", "half_out")]
    + [("scale", np.float32, 3), ("bias", np.float32, 3)])

#: threads per block (x, y, z) of the preprocessing kernel: one thread per output pixel
BLOCK = (32, 8, 1)
COEF_ONE = 2048  # OpenCV's INTER_RESIZE_COEF_SCALE: weights are in units of 1/2048


@dataclass(frozen=True)
class FrameLayout(ImageLayout):
    """A raw frame's layout (:class:`~trt_perception.core.image.ImageLayout`) and its kernel encoding id."""

    @classmethod
    def create(cls, encoding: str, width: int, height: int, step: int,
               is_bigendian: Union[bool, int] = False) -> "FrameLayout":
        """Raises :class:`ImageError` for an encoding the kernel lacks, or as
        :meth:`~trt_perception.core.image.ImageLayout.create` does.
        """
        if encoding not in _BYTES_PER_PIXEL:
            raise ImageError(f"encoding {encoding!r} is not supported by the GPU preprocessing; "
                             f"supported: {', '.join(GPU_ENCODINGS)}")
        return super().create(encoding, width, height, step, is_bigendian)

    @property
    def encoding_id(self) -> int:
        """The kernel's integer code for this frame's encoding (mono16 split by byte order)."""
        if self.encoding == "mono16":
            return ENCODING_IDS["mono16_be" if self.is_bigendian else "mono16_le"]
        return ENCODING_IDS[self.encoding]


def min_step(encoding: str, width: int) -> int:
    """Bytes of one unpadded row of ``width`` pixels (nv12/nv21: of the luma plane)."""
    return width * _BYTES_PER_PIXEL[encoding]


def resize_tables(src_w: int, src_h: int, dst_w: int, dst_h: int) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV ``INTER_LINEAR`` sampling of a ``src_w x src_h`` uint8 image resized to ``dst_w x dst_h``.

    Returns ``cols`` int32[dst_w, 4] = (x0, x1, a0, a1) and ``rows`` int32[dst_h, 4] =
    (y0, y1, b0, b1): output pixel (j, i) blends source columns x0, x1 with weights a0, a1 and
    rows y0, y1 with b0, b1 (in 1/2048). As OpenCV computes them: the sample position
    ``(d + 0.5) * src / dst - 0.5`` in float32, weights rounded separately; columns outside the
    image take the edge pixel with full weight, rows are clamped to the image.
    """
    cols = _axis_table(src_w, dst_w)
    outside = (cols[:, 0] < 0) | (cols[:, 0] >= src_w - 1)
    cols[outside, 0] = np.clip(cols[outside, 0], 0, src_w - 1)
    cols[outside, 2:] = (COEF_ONE, 0)
    cols[:, 1] = np.minimum(cols[:, 0] + 1, src_w - 1)
    rows = _axis_table(src_h, dst_h)
    rows[:, 1] = np.clip(rows[:, 0] + 1, 0, src_h - 1)
    rows[:, 0] = np.clip(rows[:, 0], 0, src_h - 1)
    return cols, rows


def _axis_table(src: int, dst: int) -> np.ndarray:
    """int32[dst, 4] = (floor of the sample position, unused, weight of it, weight of the next)."""
    pos = ((np.arange(dst, dtype=np.float64) + 0.5) * (src / dst) - 0.5).astype(np.float32)
    start = np.floor(pos)
    frac = pos - start                                    # float32, as OpenCV's fx -= sx
    table = np.empty((dst, 4), dtype=np.int32)
    table[:, 0] = start.astype(np.int32)
    table[:, 1] = 0
    table[:, 2] = np.rint((np.float32(1) - frac) * np.float32(COEF_ONE))
    table[:, 3] = np.rint(frac * np.float32(COEF_ONE))
    return table


def launch_grid(width: int, height: int) -> tuple[int, int, int]:
    """Blocks (x, y, z) of :data:`BLOCK` covering a ``width x height`` output, one thread a pixel."""
    return (-(-width // BLOCK[0]), -(-height // BLOCK[1]), 1)


@dataclass(frozen=True)
class PreprocessPlan:
    """Everything one configuration of the kernel needs (see the module docstring)."""

    config: PreprocessConfig
    frame: FrameLayout
    geometry: ResizeGeometry
    params: np.ndarray          # PARAMS_DTYPE scalar record
    col_table: np.ndarray       # int32[content_w, 4]
    row_table: np.ndarray       # int32[content_h, 4]
    grid: tuple[int, int, int]

    @classmethod
    def create(cls, config: PreprocessConfig, frame: FrameLayout) -> "PreprocessPlan":
        """The plan for frames of ``frame``'s layout into the input described by ``config`` (geometry, resize tables,
        kernel parameters).
        """
        geo = config.geometry(frame.width, frame.height)
        cols, rows = resize_tables(frame.width, frame.height, geo.content_w, geo.content_h)
        params = np.zeros((), dtype=PARAMS_DTYPE)
        for name, value in (("encoding", frame.encoding_id), ("src_pitch", frame.step),
                            ("src_w", frame.width), ("src_h", frame.height),
                            ("dst_w", config.width), ("dst_h", config.height),
                            ("content_w", geo.content_w), ("content_h", geo.content_h),
                            ("pad_x", geo.pad_x), ("pad_y", geo.pad_y),
                            ("pad_value", config.pad_value), ("bgr_out", config.color_order == "bgr"),
                            ("nhwc", config.layout == "nhwc"), ("half_out", config.dtype == "float16"),
                            ("scale", config.scale), ("bias", config.bias)):
            params[name] = value
        return cls(config, frame, geo, params, cols, rows, launch_grid(config.width, config.height))

    @property
    def output_nbytes(self) -> int:
        """Bytes of the input tensor the kernel writes."""
        return int(np.prod(self.config.input_shape)) * self.config.np_dtype.itemsize
