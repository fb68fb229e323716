"""OrtCudaRunner in the FramePipeline against the CPU pipeline, on the real SSD model and real
frames (skipped without a GPU, pycuda or onnxruntime-gpu's CUDA provider)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from trt_perception.core.gpu.cuda_runtime import gpu_available
from trt_perception.core.gpu.ort_runner import cuda_provider_available

ROOT = Path(__file__).resolve().parents[2]
MODEL_CONFIG = ROOT / "models" / "ssdlite_pedestrian" / "ssdlite_pedestrian.yaml"
FRAMES = sorted((ROOT / "test" / "data").glob("vtest_*.jpg"))

GPU_OK, GPU_REASON = gpu_available()
CUDA_OK, CUDA_REASON = cuda_provider_available()
pytestmark = [pytest.mark.skipif(not GPU_OK, reason=f"no usable GPU: {GPU_REASON}"),
              pytest.mark.skipif(not CUDA_OK, reason=CUDA_REASON)]


@pytest.mark.parametrize("depth", [1, 2])
def test_gpu_pipeline_detections_match_the_cpu_pipeline(depth: int) -> None:
    from trt_perception.core.gpu.cuda_runtime import shared_device
    from trt_perception.core.gpu.frame_pipeline import FramePipeline
    from trt_perception.core.gpu.ort_runner import OrtCudaRunner
    from trt_perception.core.pipeline import Pipeline
    assert FRAMES, "test/data/vtest_*.jpg are missing"
    images = [cv2.imread(str(path)) for path in FRAMES]
    with Pipeline.from_config(MODEL_CONFIG, "onnxruntime", threads=1) as cpu:
        config, decoder = cpu.config, cpu.decoder
        want = [cpu.run(image, "bgr")[0] for image in images]
    device = shared_device(0)
    with device.current():
        stream = device.driver.Stream()
    runner = OrtCudaRunner(config.model_path, stream)
    assert runner.input_spec.shape == config.preprocess.input_shape

    def decode(outputs, geometry):
        return decoder({role: outputs[name] for role, name in config.outputs.items()}, geometry)

    pipeline = FramePipeline(device, config.preprocess, runner, decode, depth=depth, infer_stream=stream)
    try:
        height, width = images[0].shape[:2]
        pipeline.configure("bgr8", width, height, width * 3)
        results = []
        for index, image in enumerate(images):
            results += pipeline.submit(image.tobytes(), tag=index)
        results += pipeline.drain()
    finally:
        pipeline.close()
    assert [r.tag for r in results] == list(range(len(images)))
    assert sum(len(d) for d in want) > 0, "the CPU pipeline found nobody: the comparison would be empty"
    for result, expected in zip(results, want):
        got = result.result
        assert len(got) == len(expected)
        np.testing.assert_allclose(got.scores, expected.scores, atol=2e-3)
        np.testing.assert_allclose(got.boxes_xyxy, expected.boxes_xyxy, atol=0.5)
