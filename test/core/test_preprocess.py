"""preprocess() against OpenCV-built references, and exact letterbox mapping back to the source."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest

from trt_perception.core.preprocess import PreprocessConfig, allocate_input, preprocess


def _source(order: str, w: int = 97, h: int = 61, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (h, w) if order == "mono" else (h, w, 3)
    return rng.integers(0, 256, size=shape, dtype=np.uint8)


def _opencv_reference(pixels: np.ndarray, order: str, cfg: PreprocessConfig) -> np.ndarray:
    """The documented steps with OpenCV: resize, colour order, pad, float32 x*(1/std) - mean/std."""
    h, w = pixels.shape[:2]
    if cfg.resize == "stretch":
        cw, ch, px, py = cfg.width, cfg.height, 0, 0
    else:
        s = min(cfg.width / w, cfg.height / h)
        cw, ch = min(cfg.width, max(1, round(w * s))), min(cfg.height, max(1, round(h * s)))
        px, py = (cfg.width - cw) // 2, (cfg.height - ch) // 2
    resized = cv2.resize(pixels, (cw, ch), interpolation=cv2.INTER_LINEAR)
    if order == "mono":
        rgb = cv2.cvtColor(resized, cv2.COLOR_GRAY2RGB)
    elif order == cfg.color_order:
        rgb = resized
    else:
        rgb = cv2.cvtColor(resized, cv2.COLOR_BGR2RGB)
    canvas = np.full((cfg.height, cfg.width, 3), cfg.pad_value, np.uint8)
    canvas[py:py + ch, px:px + cw] = rgb
    scale = (1.0 / np.array(cfg.std)).astype(np.float32)
    bias = (-np.array(cfg.mean) / np.array(cfg.std)).astype(np.float32)
    hwc = (canvas.astype(np.float32) * scale + bias).astype(cfg.dtype)
    return (hwc.transpose(2, 0, 1) if cfg.layout == "nchw" else hwc)[None]


@pytest.mark.parametrize("resize, order, color_order, layout, dtype", list(itertools.product(
    ["stretch", "letterbox"], ["rgb", "bgr", "mono"], ["rgb", "bgr"], ["nchw", "nhwc"],
    ["float32", "float16"])))
def test_bit_identical_to_opencv_reference(resize: str, order: str, color_order: str, layout: str,
                                           dtype: str) -> None:
    cfg = PreprocessConfig(width=64, height=48, resize=resize, color_order=color_order,
                           mean=(123.7, 116.3, 103.5), std=(58.4, 57.1, 57.4), layout=layout,
                           dtype=dtype, pad_value=114)
    pixels = _source(order)
    got, geo = preprocess(pixels, order, cfg)
    assert got.shape == cfg.input_shape and got.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(got, _opencv_reference(pixels, order, cfg))


def test_values_follow_the_mean_std_formula() -> None:
    cfg = PreprocessConfig(width=300, height=300, mean=(127.5,) * 3, std=(127.5,) * 3)
    pixels = _source("bgr", 300, 300)          # same size: no resize, so values are exact pixels
    got, _ = preprocess(pixels, "bgr", cfg)
    expected = (pixels[:, :, ::-1].astype(np.float64) - 127.5) / 127.5
    np.testing.assert_allclose(got[0].transpose(1, 2, 0), expected, atol=1e-6)
    assert got.min() >= -1.0 and got.max() <= 1.0


def test_out_buffer_is_reused_and_fully_rewritten() -> None:
    cfg = PreprocessConfig(width=40, height=40, resize="letterbox", pad_value=7)
    out = allocate_input(cfg)
    out.fill(np.nan)
    result, _ = preprocess(_source("rgb", 80, 20), "rgb", cfg, out=out)
    assert result is out and np.isfinite(out).all()
    first = out.copy()
    preprocess(_source("rgb", 20, 80, seed=1), "rgb", cfg, out=out)   # other orientation
    np.testing.assert_array_equal(out, _opencv_reference(_source("rgb", 20, 80, seed=1), "rgb", cfg))
    assert not np.array_equal(first, out)


@pytest.mark.parametrize("src_w, src_h, box", [(600, 400, (100, 60, 200, 240)),     # pads top/bottom
                                               (400, 600, (40, 120, 360, 180))])    # pads left/right
def test_letterbox_box_maps_back_exactly(src_w: int, src_h: int, box: tuple) -> None:
    """A rectangle drawn in the source is found in the model input and maps back to itself.

    A 2x downscale with half-pixel centres averages 2x2 blocks, so even-aligned edges stay sharp.
    """
    cfg = PreprocessConfig(width=300, height=300, resize="letterbox", mean=(0,) * 3,
                           std=(1,) * 3, pad_value=0)
    source = np.full((src_h, src_w, 3), 50, np.uint8)
    x0, y0, x1, y1 = box
    source[y0:y1, x0:x1] = 250
    tensor, geo = preprocess(source, "rgb", cfg)
    ys, xs = np.nonzero(tensor[0, 0] == 250)
    found = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], dtype=np.float64)
    np.testing.assert_array_equal(geo.boxes_to_source(found), [box])
    content = tensor[0, 0] > 0                       # everything but the padding
    ys, xs = np.nonzero(content)
    np.testing.assert_array_equal(geo.boxes_to_source(
        np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]])), [[0, 0, src_w, src_h]])


def test_bad_pixels_raise_clear_errors() -> None:
    cfg = PreprocessConfig(width=8, height=8)
    with pytest.raises(ValueError, match="must be uint8"):
        preprocess(np.zeros((4, 4, 3), np.float32), "rgb", cfg)
    with pytest.raises(ValueError, match=r"must be \[H, W, 3\]"):
        preprocess(np.zeros((4, 4, 4), np.uint8), "bgr", cfg)
    with pytest.raises(ValueError, match="source_order"):
        preprocess(np.zeros((4, 4, 3), np.uint8), "yuv", cfg)
    with pytest.raises(ValueError, match="out must be float32"):
        preprocess(np.zeros((4, 4, 3), np.uint8), "rgb", cfg, out=np.zeros((1, 3, 8, 9), np.float32))
