"""Which hardware a backend runs on, and how much GPU memory is in use (for diagnostics).

pycuda is imported only when a GPU is in use, so this module imports anywhere.
"""

from __future__ import annotations

import platform
from typing import Optional

from trt_perception.core.backends import Backend


def gpu_device_id(backend: Backend) -> Optional[int]:
    """The CUDA device the backend runs on (TensorRT, ONNX Runtime with a CUDA provider first), or
    None when it runs on the CPU.
    """
    if backend.name == "tensorrt":
        return int(getattr(backend, "device_id", 0))
    providers = getattr(backend, "providers", [])
    if providers and providers[0] in ("CUDAExecutionProvider", "TensorrtExecutionProvider"):
        return int(getattr(backend, "device_id", 0))
    return None


def describe_hardware(backend: Backend) -> str:
    """e.g. ``tensorrt on NVIDIA H100 80GB HBM3 (CUDA device 0)`` or ``onnxruntime on CPU (x86_64)``."""
    device_id = gpu_device_id(backend)
    if device_id is None:
        return f"{backend.name} on CPU ({platform.processor() or platform.machine()})"
    from trt_perception.core.cuda.runtime import gpu_available
    ok, name = gpu_available(device_id)
    return f"{backend.name} on {name if ok else 'an unknown GPU'} (CUDA device {device_id})"


def memory_probe(backend: Backend) -> Optional["GpuMemoryProbe"]:
    """The GPU memory probe of the device ``backend`` runs on; None when it runs on the CPU."""
    device_id = gpu_device_id(backend)
    return GpuMemoryProbe(device_id) if device_id is not None else None


class GpuMemoryProbe:
    """``probe()`` -> (bytes in use, bytes total) of one CUDA device, as ``nvidia-smi`` reports them
    (every process's allocations). Uses the device's primary context, which TensorRT and ONNX
    Runtime's CUDA provider already hold, so probing allocates nothing.
    """

    def __init__(self, device_id: int) -> None:
        from trt_perception.core.cuda.runtime import shared_device
        self._device = shared_device(device_id)

    def __call__(self) -> tuple[int, int]:
        """Used and total device memory now, in bytes: ``(used, total)``."""
        with self._device.current():
            free, total = self._device.driver.mem_get_info()
        return int(total - free), int(total)
