"""Whether a GPU can be used here, the process-wide device, and the kernels compiled for it.

pycuda is imported only inside these functions, so the package imports without it. The device is
:class:`~trt_perception.core.cuda.device.CudaDevice` (the GPU's primary context, which TensorRT
and ONNX Runtime's CUDA provider use too): buffers made here can be handed to either.
"""

from __future__ import annotations

import threading
from importlib import resources
from typing import Any

from trt_perception.core.cuda.device import CudaDevice
from trt_perception.core.tensor_spec import BackendError

_LOCK = threading.Lock()
_DEVICES: dict[int, CudaDevice] = {}
_MODULES: dict[tuple[int, str], Any] = {}     # kept alive: their kernels live in them
_KERNELS: dict[tuple[int, str, str], Any] = {}


def gpu_available(device_id: int = 0) -> tuple[bool, str]:
    """(True, device name) when pycuda imports and CUDA device ``device_id`` exists, else
    (False, the reason).
    """
    try:
        import pycuda.driver as driver
    except ImportError as exc:
        return False, f"pycuda is not installed ({exc})"
    try:
        driver.init()
        count = driver.Device.count()
    except driver.Error as exc:
        return False, f"the CUDA driver cannot be used: {exc}"
    if not 0 <= device_id < count:
        return False, f"CUDA device {device_id} does not exist ({count} device(s))"
    return True, str(driver.Device(device_id).name())


def shared_device(device_id: int = 0) -> CudaDevice:
    """The process-wide :class:`CudaDevice` for ``device_id`` (created once, never released)."""
    with _LOCK:
        device = _DEVICES.get(device_id)
        if device is None:
            device = _DEVICES[device_id] = CudaDevice(device_id)
        return device


def load_kernel(device: CudaDevice, package: str, source_file: str, name: str) -> Any:
    """Kernel ``name`` of ``source_file`` (a .cu file of the Python package ``package``, e.g.
    ``trt_perception.core.gpu``), compiled once per device.

    Compiles with nvcc through ``pycuda.compiler.SourceModule`` (cubins are cached on disk by
    pycuda, so a later process loads them without compiling). Call with the device current.
    """
    key = (device.device_id, f"{package}/{source_file}", name)
    with _LOCK:
        kernel = _KERNELS.get(key)
        if kernel is None:
            module = _MODULES.get(key[:2]) or _compile(package, source_file)
            _MODULES[key[:2]] = module
            kernel = _KERNELS[key] = module.get_function(name)
        return kernel


def _compile(package: str, source_file: str) -> Any:
    from pycuda.compiler import SourceModule
    source = resources.files(package).joinpath(source_file).read_text()
    try:
        return SourceModule(source, no_extern_c=True, options=["-std=c++17"])
    except Exception as exc:   # CompileError, or OSError when nvcc is not on the PATH
        raise BackendError(f"cannot compile the GPU kernel {source_file}: {exc} "
                           "(nvcc of the CUDA toolkit must be on the PATH)") from exc
