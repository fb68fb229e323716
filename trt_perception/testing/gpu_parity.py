"""Parity of the GPU preprocessing with the CPU reference path, case by case.

A :class:`ParityCase` is one frame format and one :class:`PreprocessConfig`; :func:`parity_cases`
covers every encoding the kernel reads, stretch and letterbox, up- and downscaling, odd sizes,
row padding, both layouts, both dtypes and both colour orders. :func:`make_frame` draws random
frame bytes (any bytes are a valid frame of every encoding) and :func:`reference` runs the CPU
path on them: :func:`~trt_perception.core.image.decode_image` then
:func:`~trt_perception.core.preprocess.preprocess`. Used by the GPU tests and by
``benchmarks/gpu_pipeline.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trt_perception.core.gpu.preprocess_plan import FrameLayout, min_step
from trt_perception.core.image import decode_image
from trt_perception.core.preprocess import PreprocessConfig, preprocess

SSD_CONFIG = PreprocessConfig(300, 300, mean=(127.5,) * 3, std=(127.5,) * 3)
LETTERBOX_CONFIG = PreprocessConfig(75, 61, resize="letterbox", color_order="bgr",
                                    mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375),
                                    layout="nhwc", dtype="float16", pad_value=114)
CASE_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8", "mono16", "yuyv", "uyvy", "nv12", "nv21")


@dataclass(frozen=True)
class ParityCase:
    """A frame format (``row_padding`` bytes after each row) and the config it is fed to."""

    encoding: str
    width: int
    height: int
    row_padding: int
    config: PreprocessConfig
    is_bigendian: bool = False

    @property
    def layout(self) -> FrameLayout:
        """The frame layout of this case (its row step includes ``row_padding``)."""
        step = min_step(self.encoding, self.width) + self.row_padding
        return FrameLayout.create(self.encoding, self.width, self.height, step, self.is_bigendian)

    def __str__(self) -> str:
        cfg = self.config
        return (f"{self.encoding}{'-be' if self.is_bigendian else ''} {self.width}x{self.height}+"
                f"{self.row_padding} -> {cfg.width}x{cfg.height} {cfg.resize} {cfg.layout} {cfg.dtype}")


def parity_cases() -> list[ParityCase]:
    """Every encoding x {SSD stretch float32 NCHW RGB, letterbox float16 NHWC BGR} x sizes."""
    cases = []
    for encoding in CASE_ENCODINGS:
        even_h = encoding in ("nv12", "nv21")
        for width, height, padding in ((642, 479 + even_h, 0), (642, 479 + even_h, 13), (38, 28, 5)):
            for config in (SSD_CONFIG, LETTERBOX_CONFIG):
                cases.append(ParityCase(encoding, width, height, padding, config))
    cases.append(ParityCase("mono16", 300, 201, 3, SSD_CONFIG, is_bigendian=True))
    cases.append(ParityCase("bgr8", 300, 300, 7, SSD_CONFIG))               # no resize at all
    cases.append(ParityCase("rgb8", 600, 400, 0, PreprocessConfig(300, 200)))  # exact 2x (area path)
    cases.append(ParityCase("bgr8", 1921, 1081, 1, SSD_CONFIG))             # odd, large
    return cases


def make_frame(case: ParityCase, rng: np.random.Generator) -> tuple[bytes, FrameLayout]:
    """Random bytes of one frame of ``case`` (row padding included) and its layout."""
    layout = case.layout
    return rng.integers(0, 256, size=layout.nbytes, dtype=np.uint8).tobytes(), layout


def reference(case: ParityCase, data: bytes, layout: FrameLayout) -> np.ndarray:
    """The CPU reference path's input tensor for this frame."""
    pixels, order = decode_image(data, layout.encoding, layout.width, layout.height, layout.step,
                                 layout.is_bigendian)
    return preprocess(pixels, order, case.config)[0]


def max_abs_error(got: np.ndarray, want: np.ndarray) -> float:
    """Largest |got - want| (in float64); raises ValueError on a shape or dtype mismatch."""
    if got.shape != want.shape or got.dtype != want.dtype:
        raise ValueError(f"got {got.dtype}{list(got.shape)}, want {want.dtype}{list(want.shape)}")
    return float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64))))
