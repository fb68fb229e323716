"""Thin CUDA layer over pycuda (imported only when a GPU is used).

- :class:`CudaDevice`: the primary context of one GPU, made current around each use (so a
  backend can be driven from any thread, e.g. a ROS executor's), and the device's identity;
- :class:`HostDeviceBuffer`: a page-locked host array and a device allocation of the same size;
- :class:`CudaGraph`: capture of the work enqueued on a stream into a CUDA graph and its replay,
  through the CUDA driver API (``libcuda``) with ``ctypes``, as pycuda has no graph API.

TensorRT uses the CUDA runtime, which works in the device's primary context: pycuda is attached
to that same context here (``retain_primary_context``), never to a context of its own.
"""

from __future__ import annotations

import contextlib
import ctypes
import threading
from types import ModuleType
from typing import Any, Callable, Iterator, Optional

import numpy as np

from trt_perception.core.cuda.identity import GpuIdentity
from trt_perception.core.tensor_spec import BackendError

_INIT_LOCK = threading.Lock()


def import_pycuda() -> ModuleType:
    """``pycuda.driver``, initialized; :class:`BackendError` when pycuda is missing."""
    try:
        import pycuda.driver as driver
    except ImportError as exc:
        raise BackendError("pycuda is not installed (needed for TensorRT buffers): "
                           "pip install pycuda, on the machine with the GPU") from exc
    with _INIT_LOCK:
        driver.init()
    module: ModuleType = driver
    return module


class CudaDevice:
    """One GPU's primary context, retained until :meth:`release`."""

    def __init__(self, device_id: int) -> None:
        self.driver = import_pycuda()
        count = int(self.driver.Device.count())
        if not 0 <= device_id < count:
            raise BackendError(f"device_id {device_id} does not exist: this machine has {count} CUDA device(s)")
        self.device_id = device_id
        self.device = self.driver.Device(device_id)
        self._context: Any = self.device.retain_primary_context()

    def identity(self) -> GpuIdentity:
        """Name and compute capability (the engine cache key fields of the GPU)."""
        major, minor = self.device.compute_capability()
        return GpuIdentity(str(self.device.name()), f"{major}.{minor}")

    @contextlib.contextmanager
    def current(self) -> Iterator[None]:
        """Make this device's primary context current on the calling thread for the block."""
        if self._context is None:
            raise BackendError(f"CUDA device {self.device_id} was released")
        self._context.push()
        try:
            yield
        finally:
            self.driver.Context.pop()

    def release(self) -> None:
        """Drop the retained primary context (everything allocated in it must be freed first)."""
        if self._context is not None:
            self._context.detach()
            self._context = None


class HostDeviceBuffer:
    """A page-locked host array of ``shape``/``dtype`` plus a device allocation of equal size.

    Create and free it with the device's context current. :meth:`host_view` gives the leading
    part of the host array as a contiguous array of a smaller (dynamic) shape.
    """

    def __init__(self, driver: ModuleType, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self._host_allocation: Any = driver.pagelocked_empty(shape, dtype)
        self.host: np.ndarray = self._host_allocation
        self.device: Any = driver.mem_alloc(max(1, self.host.nbytes))

    @property
    def device_ptr(self) -> int:
        """The device allocation's address, as an int (for kernels and TensorRT bindings)."""
        return int(self.device)

    def host_view(self, shape: tuple[int, ...]) -> np.ndarray:
        """The first ``prod(shape)`` elements of the pinned host buffer viewed as ``shape`` (no copy); raises
        :class:`BackendError` when they do not fit.
        """
        size = int(np.prod(shape, dtype=np.int64))
        if size > self.host.size:
            raise BackendError(f"shape {list(shape)} does not fit a buffer of {self.host.size} elements")
        return self.host.reshape(-1)[:size].reshape(shape)

    def free(self) -> None:
        """Free both allocations now (the arrays must not be used afterwards)."""
        self.device.free()
        self._host_allocation.base.free()


# CUDA driver API, for stream capture (values from cuda.h)
_CAPTURE_MODE_THREAD_LOCAL = 1
_lib: Optional[ctypes.CDLL] = None


def _libcuda() -> ctypes.CDLL:
    global _lib
    if _lib is None:
        try:
            _lib = ctypes.CDLL("libcuda.so.1")
        except OSError as exc:
            raise BackendError(f"cannot load the CUDA driver library libcuda.so.1: {exc}") from exc
        for name in ("cuStreamBeginCapture_v2", "cuStreamEndCapture", "cuGraphInstantiateWithFlags",
                     "cuGraphLaunch", "cuGraphExecDestroy", "cuGraphDestroy", "cuGetErrorString"):
            getattr(_lib, name).restype = ctypes.c_int
    return _lib


def _check(result: int, what: str) -> None:
    if result != 0:
        text = ctypes.c_char_p()
        _libcuda().cuGetErrorString(result, ctypes.byref(text))
        raise BackendError(f"{what} failed: CUDA error {result} "
                           f"({text.value.decode() if text.value else 'unknown'})")


class CudaGraph:
    """The work ``enqueue()`` puts on a stream, captured once and replayed with :meth:`launch`.

    The graph replays the same kernels on the same addresses and shapes: capture a new one when
    tensor addresses or shapes change. Capture uses the thread-local mode, so other threads may
    keep using CUDA meanwhile. Raises :class:`BackendError` when the work cannot be captured
    (the stream is left usable).
    """

    def __init__(self, stream_handle: int, enqueue: Callable[[], None]) -> None:
        lib = _libcuda()
        self._stream = ctypes.c_void_p(stream_handle)
        graph = ctypes.c_void_p()
        _check(lib.cuStreamBeginCapture_v2(self._stream, _CAPTURE_MODE_THREAD_LOCAL), "cuStreamBeginCapture")
        try:
            enqueue()
        except BaseException:
            lib.cuStreamEndCapture(self._stream, ctypes.byref(graph))
            if graph.value:
                lib.cuGraphDestroy(graph)
            raise
        _check(lib.cuStreamEndCapture(self._stream, ctypes.byref(graph)), "stream capture (cuStreamEndCapture)")
        self._graph = graph
        self._exec = ctypes.c_void_p()
        try:
            _check(lib.cuGraphInstantiateWithFlags(ctypes.byref(self._exec), graph, ctypes.c_ulonglong(0)),
                   "cuGraphInstantiate")
        except BackendError:
            lib.cuGraphDestroy(graph)
            raise

    def launch(self) -> None:
        """Enqueue one replay of the captured work on the stream."""
        _check(_libcuda().cuGraphLaunch(self._exec, self._stream), "cuGraphLaunch")

    def destroy(self) -> None:
        """Free the graph (the device context must be current)."""
        lib = _libcuda()
        if self._exec.value:
            lib.cuGraphExecDestroy(self._exec)
            self._exec = ctypes.c_void_p()
        if self._graph.value:
            lib.cuGraphDestroy(self._graph)
            self._graph = ctypes.c_void_p()
