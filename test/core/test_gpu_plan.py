"""Host-side plan of the GPU preprocessing (no GPU needed): frame layouts, resize tables, params."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from trt_perception.core.backends.base import BackendError
from trt_perception.core.cuda.runtime import gpu_available
from trt_perception.core.gpu.preprocess_plan import (
    BLOCK,
    COEF_ONE,
    PARAMS_DTYPE,
    FrameLayout,
    PreprocessPlan,
    launch_grid,
    resize_tables,
)
from trt_perception.core.image import ImageError
from trt_perception.core.pipeline_factory import resolve_preprocess_mode
from trt_perception.core.preprocess import PreprocessConfig


def _resize_with_tables(image: np.ndarray, dst_w: int, dst_h: int) -> np.ndarray:
    """uint8 resize evaluated from the tables with OpenCV's fixed-point passes (the kernel's maths)."""
    cols, rows = resize_tables(image.shape[1], image.shape[0], dst_w, dst_h)
    wide = image.astype(np.int64).reshape(image.shape[0], image.shape[1], -1)

    def horizontal(row_ids: np.ndarray) -> np.ndarray:
        return (wide[row_ids][:, cols[:, 0]] * cols[None, :, 2, None]
                + wide[row_ids][:, cols[:, 1]] * cols[None, :, 3, None])

    h0, h1 = horizontal(rows[:, 0]), horizontal(rows[:, 1])
    out = ((((h0 >> 4) * rows[:, 2, None, None]) >> 16)
           + (((h1 >> 4) * rows[:, 3, None, None]) >> 16) + 2) >> 2
    return np.clip(out, 0, 255).astype(np.uint8).reshape((dst_h, dst_w) + image.shape[2:])


@pytest.mark.parametrize("src, dst", [((1920, 1080), (300, 300)), ((641, 479), (300, 300)),
                                      ((37, 29), (300, 300)), ((600, 400), (300, 200)),
                                      ((300, 300), (300, 300)), ((1, 1), (7, 5)), ((5, 9), (1, 1)),
                                      ((1281, 723), (75, 61))])
@pytest.mark.parametrize("channels", [1, 3])
def test_resize_tables_reproduce_opencv_exactly(src: tuple[int, int], dst: tuple[int, int],
                                                channels: int) -> None:
    rng = np.random.default_rng(src[0] * 7 + dst[1])
    shape = (src[1], src[0], 3) if channels == 3 else (src[1], src[0])
    image = rng.integers(0, 256, size=shape, dtype=np.uint8)
    want = cv2.resize(image, dst, interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(_resize_with_tables(image, *dst), want)


def test_resize_tables_stay_inside_the_image_and_weigh_one() -> None:
    cols, rows = resize_tables(640, 480, 300, 300)
    assert cols.dtype == np.int32 and cols.shape == (300, 4) and rows.shape == (300, 4)
    assert cols[:, :2].min() >= 0 and cols[:, :2].max() <= 639
    assert rows[:, :2].min() >= 0 and rows[:, :2].max() <= 479
    assert np.all(np.abs(cols[:, 2] + cols[:, 3] - COEF_ONE) <= 1)
    assert np.all(np.abs(rows[:, 2] + rows[:, 3] - COEF_ONE) <= 1)
    identity_cols, _ = resize_tables(5, 5, 5, 5)
    np.testing.assert_array_equal(identity_cols[:, 0], np.arange(5))
    np.testing.assert_array_equal(identity_cols[:, 2], COEF_ONE)


@pytest.mark.parametrize("encoding, width, height, step, nbytes", [
    ("bgr8", 640, 480, 1920, 640 * 480 * 3), ("bgra8", 3, 2, 13, 26), ("mono16", 5, 3, 10, 30),
    ("yuyv", 4, 3, 9, 27), ("nv12", 6, 4, 8, 8 * 6), ("nv21", 2, 2, 2, 6)])
def test_frame_layout_sizes(encoding: str, width: int, height: int, step: int, nbytes: int) -> None:
    assert FrameLayout.create(encoding, width, height, step).nbytes == nbytes


def test_frame_layout_encoding_ids_follow_byte_order() -> None:
    assert FrameLayout.create("yuv422", 2, 1, 4).encoding_id == FrameLayout.create("uyvy", 2, 1, 4).encoding_id
    assert (FrameLayout.create("mono16", 2, 1, 4, is_bigendian=True).encoding_id
            != FrameLayout.create("mono16", 2, 1, 4).encoding_id)


@pytest.mark.parametrize("args, message", [
    (("bayer_rggb8", 4, 4, 4), "not supported by the GPU"), (("bgr8", 0, 4, 12), "zero size"),
    (("yuyv", 3, 2, 8), "width must be even"), (("nv12", 4, 3, 4), "height must be even"),
    (("rgb8", 4, 4, 11), "shorter than one rgb8 row")])
def test_frame_layout_rejects_bad_formats(args: tuple, message: str) -> None:
    with pytest.raises(ImageError, match=message):
        FrameLayout.create(*args)


def test_plan_packs_letterbox_placement_and_normalization() -> None:
    cfg = PreprocessConfig(300, 300, resize="letterbox", color_order="bgr", mean=(1.0, 2.0, 3.0),
                           std=(2.0, 4.0, 8.0), layout="nhwc", dtype="float16", pad_value=7)
    plan = PreprocessPlan.create(cfg, FrameLayout.create("nv12", 640, 480, 640))
    p, geo = plan.params, plan.geometry
    assert PARAMS_DTYPE.itemsize == 14 * 4 + 6 * 4 and len(p.tobytes()) == PARAMS_DTYPE.itemsize
    assert (geo.content_w, geo.content_h, geo.pad_x, geo.pad_y) == (300, 225, 0, 37)
    assert (int(p["content_w"]), int(p["content_h"]), int(p["pad_x"]), int(p["pad_y"])) == (300, 225, 0, 37)
    assert (int(p["bgr_out"]), int(p["nhwc"]), int(p["half_out"]), int(p["pad_value"])) == (1, 1, 1, 7)
    assert (int(p["src_pitch"]), int(p["src_w"]), int(p["src_h"])) == (640, 640, 480)
    np.testing.assert_allclose(p["scale"], [0.5, 0.25, 0.125])
    np.testing.assert_allclose(p["bias"], [-0.5, -0.5, -0.375])
    assert plan.col_table.shape == (300, 4) and plan.row_table.shape == (225, 4)
    assert plan.output_nbytes == 300 * 300 * 3 * 2


@pytest.mark.parametrize("width, height", [(300, 300), (1, 1), (32, 8), (33, 9)])
def test_launch_grid_covers_the_output_once(width: int, height: int) -> None:
    grid = launch_grid(width, height)
    assert grid[0] * BLOCK[0] >= width > (grid[0] - 1) * BLOCK[0]
    assert grid[1] * BLOCK[1] >= height > (grid[1] - 1) * BLOCK[1]


def test_preprocess_mode_resolution() -> None:
    assert resolve_preprocess_mode("cpu")[0] == "cpu"
    with pytest.raises(ValueError, match="auto"):
        resolve_preprocess_mode("fast")
    ok, reason = gpu_available()
    if ok:
        pytest.skip(f"a GPU is present ({reason}): the no-GPU fallback cannot be observed here")
    mode, why = resolve_preprocess_mode("auto")
    assert mode == "cpu" and reason in why
    with pytest.raises(BackendError, match="preprocess: gpu"):
        resolve_preprocess_mode("gpu")
