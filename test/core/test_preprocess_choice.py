"""``preprocess: auto | gpu | cpu`` (choose_preprocess): what the nodes run, and why, on this machine."""

from __future__ import annotations

import pytest

from trt_perception.core.backends import BackendError
from trt_perception.core.cuda.runtime import gpu_available
from trt_perception.core.gpu.gpu_pipeline import choose_preprocess
from trt_perception.core.gpu.ort_runner import cuda_provider_available

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
