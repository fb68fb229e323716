"""``preprocess: auto | gpu | cpu`` (choose_preprocess): what the nodes run, and why, on this machine."""

from __future__ import annotations

import pytest

from trt_perception.core.backends import BackendError
from trt_perception.core.backends.onnxrt import cuda_provider_available
from trt_perception.core.cuda.runtime import gpu_available
from trt_perception.core.pipeline_factory import PipelineOptions, backend_options, choose_preprocess, create_pipeline

GPU_OK, GPU_REASON = gpu_available()
CUDA_OK, _ = cuda_provider_available()


@pytest.mark.parametrize("backend", ["onnxruntime", "tensorrt"])
def test_cpu_is_always_cpu(backend: str) -> None:
    assert choose_preprocess("cpu", backend)[0] == "cpu"


@pytest.mark.skipif(GPU_OK, reason="this machine has a usable GPU")
@pytest.mark.parametrize("backend", ["onnxruntime", "tensorrt"])
def test_without_a_gpu_auto_falls_back_and_gpu_is_refused(backend: str) -> None:
    mode, reason = choose_preprocess("auto", backend)
    assert mode == "cpu" and GPU_REASON in reason
    with pytest.raises(BackendError, match="preprocess: gpu"):
        choose_preprocess("gpu", backend)


@pytest.mark.skipif(not GPU_OK, reason=f"no usable GPU: {GPU_REASON}")
def test_with_a_gpu_onnxruntime_needs_its_cuda_provider() -> None:
    mode, reason = choose_preprocess("auto", "onnxruntime")
    assert mode == ("gpu" if CUDA_OK else "cpu"), reason
    if not CUDA_OK:
        with pytest.raises(BackendError, match="onnxruntime-gpu"):
            choose_preprocess("gpu", "onnxruntime")
    assert choose_preprocess("auto", "tensorrt")[0] == "gpu"


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="preprocess must be one of"):
        choose_preprocess("fpga", "onnxruntime")


@pytest.mark.parametrize("preprocess", ["cpu", "gpu"])
def test_device_id_reaches_the_tensorrt_backend(preprocess: str) -> None:
    """Review defect 2: the node's ``device_id`` chose the device of GPU preprocessing and ONNX
    Runtime but never reached the TensorRT backend, whose engine then ran on GPU 0."""
    options = backend_options(PipelineOptions(device_id=1), "tensorrt", preprocess, "model.yaml")
    assert options.get("device_id") == 1, f"TensorRT backend options: {options}"


def test_onnxruntime_on_the_gpu_path_runs_on_device_buffers_of_device_id() -> None:
    assert backend_options(PipelineOptions(device_id=2), "onnxruntime", "gpu") == {
        "device_buffers": True, "device_id": 2}
    assert backend_options(PipelineOptions(threads=2), "onnxruntime", "cpu") == {"threads": 2}


def test_pipeline_options_from_node_parameters_ignore_other_keys() -> None:
    options = PipelineOptions.from_mapping({"backend": "onnxruntime", "device_id": 3, "qos_depth": 5})
    assert options == PipelineOptions(backend="onnxruntime", device_id=3)


def test_create_pipeline_on_the_cpu_follows_the_pipeline_contract() -> None:
    """The CPU pipeline returns each frame's result at once, with its tag; drain has nothing."""
    from pathlib import Path

    import numpy as np

    from trt_perception.core.pipeline import Pipeline, SourceFrame
    config = Path(__file__).resolve().parents[2] / "models" / "ssdlite_pedestrian" / "ssdlite_pedestrian.yaml"
    pipeline, why = create_pipeline(config, PipelineOptions(backend="onnxruntime", preprocess="cpu", threads=1))
    try:
        assert isinstance(pipeline, Pipeline) and not pipeline.takes_raw_images and why == "preprocess: cpu"
        pixels = np.full((120, 160, 3), 90, np.uint8)
        (done,) = pipeline.submit(SourceFrame(pixels, "bgr"), tag="a")
        assert done.tag == "a" and done.geometry.src_w == 160
        want, _ = pipeline.run(pixels, "bgr")
        np.testing.assert_array_equal(done.result.scores, want.scores)
        assert pipeline.drain() == []
    finally:
        pipeline.close()
