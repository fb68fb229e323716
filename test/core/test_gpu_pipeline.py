"""FramePipeline on a real GPU (skipped without pycuda or a GPU): every frame's outputs come back
right and in order at any depth, with a stand-in network slow enough for frames to overlap."""

from __future__ import annotations

from typing import Mapping

import numpy as np
import pytest

from trt_perception.core.cuda.runtime import gpu_available
from trt_perception.core.geometry import ResizeGeometry
from trt_perception.testing.gpu_parity import SSD_CONFIG, ParityCase, make_frame, reference

GPU_OK, GPU_REASON = gpu_available()
pytestmark = pytest.mark.skipif(not GPU_OK, reason=f"no usable GPU: {GPU_REASON}")

HEAD = 600   # the stand-in network echoes the first HEAD values of its input tensor


def _keep(outputs: Mapping[str, np.ndarray], geometry: ResizeGeometry) -> dict[str, np.ndarray]:
    return {name: array.copy() for name, array in outputs.items()}


@pytest.fixture(scope="module")
def device():
    from trt_perception.core.cuda.runtime import shared_device
    return shared_device(0)


@pytest.mark.parametrize("zero_copy", [False, True], ids=["upload", "zero_copy"])
@pytest.mark.parametrize("depth", [1, 2, 3])
def test_results_are_right_and_in_order(device, depth: int, zero_copy: bool) -> None:
    from trt_perception.core.gpu.frame_pipeline import FramePipeline
    from trt_perception.testing.stand_in_network import ReplayRunner
    case = ParityCase("bgr8", 1280, 720, 0, SSD_CONFIG)
    rng = np.random.default_rng(depth)
    frames = [make_frame(case, rng) for _ in range(7)]
    runner = ReplayRunner(device, {"head": np.zeros((1, HEAD), np.float32)}, busy_us=300, echo_input=True)
    pipeline = FramePipeline(device, SSD_CONFIG, runner, _keep, depth=depth, zero_copy_input=zero_copy)
    try:
        layout = case.layout
        pipeline.configure("bgr8", layout.width, layout.height, layout.step)
        results = []
        for index, (data, _) in enumerate(frames):
            returned = pipeline.submit(data, tag=index)
            assert len(pipeline._in_flight) <= depth - 1
            results += returned
        results += pipeline.drain()
    finally:
        pipeline.close()
        runner.free()
    assert [r.tag for r in results] == list(range(len(frames)))
    for result, (data, layout) in zip(results, frames):
        want = reference(case, data, layout).reshape(-1)[:HEAD]
        np.testing.assert_array_equal(result.result["head"].reshape(-1), want)
        assert result.geometry == SSD_CONFIG.geometry(1280, 720)


def test_depth_one_returns_each_frame_at_once(device) -> None:
    from trt_perception.core.gpu.frame_pipeline import FramePipeline
    from trt_perception.testing.stand_in_network import ReplayRunner
    runner = ReplayRunner(device, {"a": np.arange(8, dtype=np.float32), "b": np.ones((2, 3), np.int32)})
    pipeline = FramePipeline(device, SSD_CONFIG, runner, _keep, depth=1)
    try:
        with pytest.raises(RuntimeError, match="configure"):
            pipeline.submit(b"")
        pipeline.configure("mono8", 64, 48, 64)
        (result,) = pipeline.submit(bytes(range(64)) * 48, tag="x")
        assert result.tag == "x" and pipeline.drain() == []
        np.testing.assert_array_equal(result.result["a"], np.arange(8, dtype=np.float32))
        np.testing.assert_array_equal(result.result["b"], np.ones((2, 3), np.int32))
    finally:
        pipeline.close()
        runner.free()
    with pytest.raises(ValueError, match="pipeline_depth"):
        FramePipeline(device, SSD_CONFIG, runner, _keep, depth=0)
