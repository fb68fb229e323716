"""Hardware description and GPU memory in use, as the diagnostics report them."""

import pytest

from trt_perception.core.backends.onnxrt import OnnxRuntimeBackend
from trt_perception.core.cuda.runtime import gpu_available, shared_device
from trt_perception.core.telemetry.device_info import GpuMemoryProbe, describe_hardware, gpu_device_id, memory_probe


def test_a_cpu_backend_has_no_gpu():
    backend = OnnxRuntimeBackend("model.onnx")
    assert gpu_device_id(backend) is None and memory_probe(backend) is None
    assert describe_hardware(backend).startswith("onnxruntime on CPU (")


def gpu_name():
    ok, name = gpu_available(0)
    if not ok:
        pytest.skip(f"no usable GPU: {name}")
    return name


def test_a_cuda_provider_backend_is_described_by_its_gpu():
    name = gpu_name()
    backend = OnnxRuntimeBackend("model.onnx", providers=["CUDAExecutionProvider"])
    assert gpu_device_id(backend) == 0
    assert describe_hardware(backend) == f"onnxruntime on {name} (CUDA device 0)"


def test_memory_probe_sees_an_allocation():
    gpu_name()
    probe = GpuMemoryProbe(0)
    used, total = probe()
    assert 0 < used <= total
    device = shared_device(0)
    size = 512 * 1024 * 1024
    with device.current():
        block = device.driver.mem_alloc(size)
    try:
        used_with, total_with = probe()
    finally:
        with device.current():
            block.free()
    assert total_with == total
    assert used_with - used >= size * 0.95  # other processes may free memory meanwhile, rarely
