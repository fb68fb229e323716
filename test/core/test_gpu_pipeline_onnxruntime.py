"""GpuPipeline with the ONNX Runtime backend on device buffers (its CUDA provider) against the CPU pipeline, on the
real SSD model and real frames (skipped without a GPU, pycuda or onnxruntime-gpu's CUDA provider)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from trt_perception.core.backends.onnxrt import cuda_provider_available
from trt_perception.core.cuda.runtime import gpu_available
from trt_perception.core.image import RawImage
from trt_perception.core.pipeline import SourceFrame
from trt_perception.core.pipeline_factory import PipelineOptions, create_pipeline

ROOT = Path(__file__).resolve().parents[2]
MODEL_CONFIG = ROOT / "models" / "ssdlite_pedestrian" / "ssdlite_pedestrian.yaml"
FRAMES = sorted((ROOT / "test" / "data").glob("vtest_*.jpg"))

GPU_OK, GPU_REASON = gpu_available()
CUDA_OK, CUDA_REASON = cuda_provider_available()
pytestmark = [pytest.mark.skipif(not GPU_OK, reason=f"no usable GPU: {GPU_REASON}"),
              pytest.mark.skipif(not CUDA_OK, reason=CUDA_REASON)]


def _raw(image: np.ndarray, encoding: str, pad: int) -> RawImage:
    """``image`` (BGR) as a raw message buffer of ``encoding`` (bgr8/rgb8) with ``pad`` bytes per row."""
    pixels = image if encoding == "bgr8" else image[:, :, ::-1]
    height, width = pixels.shape[:2]
    rows = np.zeros((height, width * 3 + pad), np.uint8)
    rows[:, :width * 3] = pixels.reshape(height, -1)
    return RawImage.create_from(rows.reshape(-1), encoding, width, height, width * 3 + pad)


@pytest.mark.parametrize("depth", [1, 2])
def test_gpu_pipeline_detections_match_the_cpu_pipeline(depth: int) -> None:
    """create_pipeline with preprocess gpu and backend onnxruntime (GpuPipeline, ONNX Runtime's CUDA
    provider on device buffers): the CPU pipeline's detections, in order, across a
    change of frame format in mid-stream (bgr8, then rgb8 with padded rows)."""
    from trt_perception.core.gpu.gpu_pipeline import GpuPipeline
    from trt_perception.core.pipeline import Pipeline
    assert FRAMES, "test/data/vtest_*.jpg are missing"
    images = [cv2.imread(str(path)) for path in FRAMES]
    frames = [_raw(image, "bgr8", 0) for image in images] + [_raw(image, "rgb8", 64) for image in images]
    with Pipeline.from_config(MODEL_CONFIG, "onnxruntime", threads=1) as cpu:
        want = [cpu.run(*frame.decode())[0] for frame in frames]
    pipeline, _ = create_pipeline(MODEL_CONFIG, PipelineOptions(backend="onnxruntime", preprocess="gpu",
                                                                pipeline_depth=depth))
    try:
        assert isinstance(pipeline, GpuPipeline) and pipeline.takes_raw_images
        assert pipeline.backend.name == "onnxruntime" and pipeline.backend.runs_on_device
        results = []
        for index, frame in enumerate(frames):
            results += pipeline.submit(SourceFrame(image=frame), tag=index)
        results += pipeline.drain()
    finally:
        pipeline.close()
    assert [r.tag for r in results] == list(range(len(frames)))
    assert sum(len(d) for d in want) > 0, "the CPU pipeline found nobody: the comparison would be empty"
    for result, expected in zip(results, want):
        got = result.result
        assert len(got) == len(expected)
        np.testing.assert_allclose(got.scores, expected.scores, atol=2e-3)
        np.testing.assert_allclose(got.boxes_xyxy, expected.boxes_xyxy, atol=0.5)
        assert result.times.preprocess_ns > 0 and result.times.inference_ns > 0
