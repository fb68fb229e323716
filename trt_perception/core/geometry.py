"""Resize geometry between source-image pixels and model-input pixels.

Coordinate convention (used everywhere in the package): continuous pixel coordinates, x to the
right and y down, with the *edges* of the image at 0 and W (or H) and the centre of pixel
(row i, column j) at (j + 0.5, i + 0.5). This is the convention of OpenCV's INTER_LINEAR resize
(half-pixel centres), so a point maps between images by a pure scale and offset:

    model_x = source_x * scale_x + pad_x
    model_y = source_y * scale_y + pad_y
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RESIZE_MODES = ("stretch", "letterbox")


@dataclass(frozen=True)
class ResizeGeometry:
    """How a source image of ``src_w x src_h`` pixels is placed in a ``dst_w x dst_h`` input.

    ``content_w x content_h`` is the size of the resized image inside the input; ``pad_x, pad_y``
    (integers, in model pixels) is where its top-left corner lies. For ``stretch`` the content
    fills the input and the pads are 0.
    """

    src_w: int
    src_h: int
    dst_w: int
    dst_h: int
    content_w: int
    content_h: int
    pad_x: int
    pad_y: int

    @classmethod
    def create(cls, src_w: int, src_h: int, dst_w: int, dst_h: int, mode: str) -> "ResizeGeometry":
        """Geometry for ``mode`` ("stretch" or "letterbox": aspect kept, content centred)."""
        if min(src_w, src_h, dst_w, dst_h) <= 0:
            raise ValueError(f"image sizes must be positive, got source {src_w}x{src_h}, "
                             f"input {dst_w}x{dst_h}")
        if mode == "stretch":
            return cls(src_w, src_h, dst_w, dst_h, dst_w, dst_h, 0, 0)
        if mode != "letterbox":
            raise ValueError(f"resize mode must be one of {RESIZE_MODES}, got {mode!r}")
        scale = min(dst_w / src_w, dst_h / src_h)
        content_w = min(dst_w, max(1, int(round(src_w * scale))))
        content_h = min(dst_h, max(1, int(round(src_h * scale))))
        return cls(src_w, src_h, dst_w, dst_h, content_w, content_h,
                   (dst_w - content_w) // 2, (dst_h - content_h) // 2)

    @property
    def scale_x(self) -> float:
        """Model pixels per source pixel along x."""
        return self.content_w / self.src_w

    @property
    def scale_y(self) -> float:
        """Model pixels per source pixel along y."""
        return self.content_h / self.src_h

    def to_source(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Map model-input pixel coordinates to source-image pixel coordinates (same shapes)."""
        return ((np.asarray(x, dtype=np.float64) - self.pad_x) / self.scale_x,
                (np.asarray(y, dtype=np.float64) - self.pad_y) / self.scale_y)

    def boxes_to_source(self, boxes_xyxy: np.ndarray, clip: bool = True) -> np.ndarray:
        """Map float[K,4] (xmin, ymin, xmax, ymax) boxes in model pixels to source pixels.

        With ``clip`` the result is clipped to the source image [0, W] x [0, H].
        """
        boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
        x0, y0 = self.to_source(boxes[:, 0], boxes[:, 1])
        x1, y1 = self.to_source(boxes[:, 2], boxes[:, 3])
        out = np.stack([x0, y0, x1, y1], axis=1)
        if clip:
            np.clip(out[:, 0::2], 0.0, self.src_w, out=out[:, 0::2])
            np.clip(out[:, 1::2], 0.0, self.src_h, out=out[:, 1::2])
        return out
