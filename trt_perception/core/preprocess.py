"""CPU reference preprocessing: uint8 pixels -> normalized network input tensor.

This is the reference every other path (the GPU kernels) is checked against. Steps, in order:

1. bilinear resize (OpenCV ``INTER_LINEAR``, half-pixel centres) of the source to the content size
   of a :class:`~trt_perception.core.geometry.ResizeGeometry` ("stretch" fills the input,
   "letterbox" keeps the aspect ratio and pads with ``pad_value`` around the centred content);
2. colour order: the source order (``rgb``, ``bgr`` or ``mono``) is brought to ``color_order``;
3. normalization ``(x - mean[c]) / std[c]`` with x the uint8 value as float (so ``mean=127.5,
   std=127.5`` gives [-1, 1] and ``mean=0, std=255`` gives [0, 1]); channel c is in the *output*
   colour order; the letterbox padding is normalized like any other pixel;
4. layout ``nchw`` or ``nhwc`` with a batch dimension of 1, dtype ``float32`` or ``float16``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

import cv2
import numpy as np

from trt_perception.core.geometry import RESIZE_MODES, ResizeGeometry

COLOR_ORDERS = ("rgb", "bgr")
SOURCE_ORDERS = ("rgb", "bgr", "mono")
LAYOUTS = ("nchw", "nhwc")
DTYPES = ("float32", "float16")


@dataclass(frozen=True)
class PreprocessConfig:
    """What the network expects as input. ``width``/``height`` in pixels; mean/std in uint8 units."""

    width: int
    height: int
    resize: str = "stretch"
    color_order: str = "rgb"
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    layout: str = "nchw"
    dtype: str = "float32"
    pad_value: int = 0
    _scale: np.ndarray = field(init=False, repr=False, compare=False)
    _bias: np.ndarray = field(init=False, repr=False, compare=False)
    _table: np.ndarray = field(init=False, repr=False, compare=False)
    _geometries: dict[tuple[int, int], ResizeGeometry] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        problems = []
        if not (isinstance(self.width, int) and isinstance(self.height, int)
                and 0 < self.width <= 8192 and 0 < self.height <= 8192):
            problems.append(f"width/height must be integers in 1..8192, got {self.width}x{self.height}")
        for name, value, allowed in (("resize", self.resize, RESIZE_MODES),
                                     ("color_order", self.color_order, COLOR_ORDERS),
                                     ("layout", self.layout, LAYOUTS),
                                     ("dtype", self.dtype, DTYPES)):
            if value not in allowed:
                problems.append(f"{name} must be one of {allowed}, got {value!r}")
        mean = np.asarray(self.mean, dtype=np.float64)
        std = np.asarray(self.std, dtype=np.float64)
        if mean.shape != (3,) or std.shape != (3,) or not np.all(np.isfinite(mean)):
            problems.append(f"mean and std must be 3 finite numbers, got {self.mean}, {self.std}")
        elif not np.all(np.isfinite(std)) or np.any(std == 0):
            problems.append(f"std must be finite and non-zero, got {self.std}")
        if not 0 <= int(self.pad_value) <= 255:
            problems.append(f"pad_value must be in 0..255, got {self.pad_value}")
        if problems:
            raise ValueError("invalid preprocess config: " + "; ".join(problems))
        object.__setattr__(self, "mean", tuple(float(v) for v in mean))
        object.__setattr__(self, "std", tuple(float(v) for v in std))
        object.__setattr__(self, "_scale", (1.0 / std).astype(np.float32))
        object.__setattr__(self, "_bias", (-mean / std).astype(np.float32))
        table = np.empty((3, 1, 256), np.float32)  # each uint8 value normalized per channel, as below
        for c in range(3):
            _normalize_into(table[c], np.arange(256, dtype=np.uint8).reshape(1, 256), self._scale[c], self._bias[c])
        object.__setattr__(self, "_table", table)
        object.__setattr__(self, "_geometries", {})

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "PreprocessConfig":
        """Build from a mapping (a YAML section); unknown keys are an error."""
        allowed = {"width", "height", "resize", "color_order", "mean", "std", "layout", "dtype",
                   "pad_value"}
        unknown = set(values) - allowed
        if unknown:
            raise ValueError(f"unknown preprocess keys {sorted(unknown)}; allowed: {sorted(allowed)}")
        kwargs = dict(values)
        for key in ("mean", "std"):
            if key in kwargs:
                kwargs[key] = tuple(kwargs[key])
        return cls(**kwargs)

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        """Shape of the tensor :func:`preprocess` writes: (1, 3, H, W) or (1, H, W, 3)."""
        if self.layout == "nchw":
            return (1, 3, self.height, self.width)
        return (1, self.height, self.width, 3)

    @property
    def np_dtype(self) -> np.dtype:
        """The input tensor's element type as a numpy dtype."""
        return np.dtype(self.dtype)

    def geometry(self, src_w: int, src_h: int) -> ResizeGeometry:
        """Where a ``src_w x src_h`` source lands in this input (kept for the last few sizes)."""
        geometry = self._geometries.get((src_w, src_h))
        if geometry is None:
            geometry = ResizeGeometry.create(src_w, src_h, self.width, self.height, self.resize)
            if len(self._geometries) >= 8:  # a camera rarely changes size; bound the cache
                self._geometries.clear()
            self._geometries[(src_w, src_h)] = geometry
        return geometry

    @property
    def scale(self) -> np.ndarray:
        """float32[3]: per output channel multiplier, ``1 / std``."""
        return self._scale

    @property
    def bias(self) -> np.ndarray:
        """float32[3]: per output channel offset, ``-mean / std``."""
        return self._bias


def allocate_input(cfg: PreprocessConfig) -> np.ndarray:
    """A zeroed tensor of ``cfg.input_shape`` and ``cfg.dtype`` for :func:`preprocess` to fill."""
    return np.zeros(cfg.input_shape, dtype=cfg.np_dtype)


def _to_output_order(img: np.ndarray, source_order: str, color_order: str) -> np.ndarray:
    if source_order == "mono":
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)  # same for either output order
    if source_order != color_order:
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)  # a swap of channels 0 and 2 either way
    return img


def _normalize_into(target: np.ndarray, values: np.ndarray, scale: np.ndarray | np.float32,
                    bias: np.ndarray | np.float32) -> None:
    """``target[...] = values * scale + bias``, computed in float32 (then cast to target's dtype)."""
    if target.dtype == np.float32:
        np.multiply(values, scale, out=target, casting="unsafe")
        target += bias
    else:
        target[...] = values * scale + bias


def _normalize_plane(target: np.ndarray, values: np.ndarray, cfg: PreprocessConfig, channel: int) -> None:
    """:func:`_normalize_into` for one uint8[H, W] channel: when ``target`` is a contiguous float32
    plane, a look-up of each value in the channel's table of the 256 results (one pass instead of
    two, same values).
    """
    if target.dtype == np.float32 and target.flags.c_contiguous and values.flags.c_contiguous:
        written = cv2.LUT(values, cfg._table[channel], dst=target)
        if written.ctypes.data != target.ctypes.data:  # OpenCV did not write in place
            target[...] = written
    else:
        _normalize_into(target, values, cfg.scale[channel], cfg.bias[channel])


def _write_planes(resized: np.ndarray, source_order: str, cfg: PreprocessConfig,
                  geo: ResizeGeometry, planes: np.ndarray) -> None:
    """Normalize the resized content into float[3, H, W] ``planes``, one output channel at a time.

    Same arithmetic per pixel as the HWC path (so bit-identical), but each plane is written
    contiguously from a contiguous source channel (split once), and the colour order is handled by
    picking the source channel of each plane.
    """
    letterboxed = (geo.content_w, geo.content_h) != (cfg.width, cfg.height)
    channels = (resized,) * 3 if source_order == "mono" else cv2.split(resized)
    for c in range(3):
        values = channels[c if source_order in ("mono", cfg.color_order) else 2 - c]
        plane = planes[c]
        if letterboxed:
            plane[...] = np.float32(cfg.pad_value) * cfg.scale[c] + cfg.bias[c]
            plane = plane[geo.pad_y:geo.pad_y + geo.content_h, geo.pad_x:geo.pad_x + geo.content_w]
        _normalize_plane(plane, values, cfg, c)


def preprocess(pixels: np.ndarray, source_order: str, cfg: PreprocessConfig,
               out: Optional[np.ndarray] = None) -> tuple[np.ndarray, ResizeGeometry]:
    """Turn ``pixels`` into the network input described by ``cfg``.

    pixels: uint8[H, W, 3] in ``source_order`` "rgb"/"bgr", or uint8[H, W] (or [H, W, 1]) for
    "mono". ``out``: optional preallocated tensor from :func:`allocate_input` (reused, no
    allocation of the output). Returns (tensor of ``cfg.input_shape``, geometry used).
    """
    if source_order not in SOURCE_ORDERS:
        raise ValueError(f"source_order must be one of {SOURCE_ORDERS}, got {source_order!r}")
    if pixels.dtype != np.uint8:
        raise ValueError(f"pixels must be uint8, got {pixels.dtype}")
    if source_order == "mono":
        if pixels.ndim == 3 and pixels.shape[2] == 1:
            pixels = pixels[:, :, 0]
        if pixels.ndim != 2:
            raise ValueError(f"mono pixels must be [H, W] or [H, W, 1], got {pixels.shape}")
    elif pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(f"{source_order} pixels must be [H, W, 3], got {pixels.shape}")
    if out is None:
        out = allocate_input(cfg)
    elif out.shape != cfg.input_shape or out.dtype != cfg.np_dtype:
        raise ValueError(f"out must be {cfg.dtype}{list(cfg.input_shape)}, "
                         f"got {out.dtype}{list(out.shape)}")

    geo = cfg.geometry(pixels.shape[1], pixels.shape[0])
    if (geo.content_w, geo.content_h) == (pixels.shape[1], pixels.shape[0]):
        resized = pixels
    else:
        resized = cv2.resize(pixels, (geo.content_w, geo.content_h), interpolation=cv2.INTER_LINEAR)
    if cfg.layout == "nchw":
        _write_planes(resized, source_order, cfg, geo, out[0])
        return out, geo
    content = _to_output_order(resized, source_order, cfg.color_order)
    if geo.content_w != cfg.width or geo.content_h != cfg.height:
        canvas = np.full((cfg.height, cfg.width, 3), cfg.pad_value, dtype=np.uint8)
        canvas[geo.pad_y:geo.pad_y + geo.content_h, geo.pad_x:geo.pad_x + geo.content_w] = content
        content = canvas
    _normalize_into(out[0], content, cfg.scale, cfg.bias)
    return out, geo
