"""FramePipeline: frame bytes -> GPU preprocessing -> network on device buffers -> host results.

Per frame, on two CUDA streams::

    upload stream:    event start -> upload -> fused preprocessing -> event ready
    inference stream: wait ready -> runner.enqueue(input, outputs) -> outputs to pinned host -> event done
    host:             wait done -> decode(outputs, geometry)

Each result carries its stage times (:class:`~trt_perception.core.pipeline.StageTimes`):
preprocess = GPU time start -> ready (upload and kernel), inference = GPU time ready -> done (the
network and the output copies; pipelined, also any wait for the previous frame's network), both
from CUDA events; postprocess = the host's ``decode``.

The frame crosses to the GPU once; only the network outputs come back. Each of the ``depth`` slots
owns its staging buffer, input tensor and output buffers, all allocated by :meth:`configure` and
reused. With ``depth`` 1 :meth:`FramePipeline.submit` returns the frame's own result (synchronous).
With ``depth`` D > 1 up to D - 1 frames stay in flight: the upload and preprocessing of
frame n + 1 and the decoding of frame n overlap the network's run of frame n + 1 or n, and
:meth:`submit` returns the results that are finished, always in submission order (one frame
later than depth 1 does). :meth:`poll` hands out finished results without waiting; :meth:`drain`
waits for all.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any, Callable, Mapping, Optional, Protocol

import numpy as np

from trt_perception.core.cuda.device import CudaDevice, HostDeviceBuffer
from trt_perception.core.geometry import ResizeGeometry
from trt_perception.core.gpu.gpu_preprocess import GpuPreprocessor
from trt_perception.core.image import BytesLike
from trt_perception.core.pipeline import FrameResult, StageTimes
from trt_perception.core.preprocess import PreprocessConfig
from trt_perception.core.tensor_spec import BackendError, TensorSpec

Decode = Callable[[Mapping[str, np.ndarray], ResizeGeometry], Any]


class DeviceRunner(Protocol):
    """A network that reads and writes device buffers (a :class:`~trt_perception.core.backends.Backend`
    that :attr:`~trt_perception.core.backends.Backend.runs_on_device`, or the tests' stand-in).
    :meth:`enqueue` is called with the device current.
    """

    def output_specs(self) -> Mapping[str, TensorSpec]:
        """Outputs by name; every shape static."""
        ...

    def enqueue(self, input_ptr: int, output_ptrs: Mapping[str, int], stream: Any,
                batch: Optional[int] = None) -> None:
        """Enqueue one inference on the pycuda ``stream``: read the input tensor at ``input_ptr``
        (``batch`` rows of a dynamic-batch input, or the static shape when None), write each output
        to ``output_ptrs[name]``. Returns without waiting for the GPU.
        """
        ...


class _Slot:
    """One frame's buffers: preprocessor (staging, input tensor), outputs, and three timing events."""

    def __init__(self, device: CudaDevice, stream: Any, zero_copy_input: bool,
                 specs: Mapping[str, TensorSpec]) -> None:
        driver = device.driver
        self.preprocessor = GpuPreprocessor(device, stream, zero_copy_input)
        self.outputs = {name: HostDeviceBuffer(driver, spec.static_shape(), spec.dtype)
                        for name, spec in specs.items()}
        self.output_ptrs = {name: buffer.device_ptr for name, buffer in self.outputs.items()}
        self.start = driver.Event()
        self.ready = driver.Event()
        self.done = driver.Event()

    def free(self) -> None:
        self.preprocessor.release()
        for buffer in self.outputs.values():
            buffer.free()


class FramePipeline:
    """Pipelined GPU preprocessing + inference + output copy over ``depth`` slots (module docstring).

    runner: a :class:`DeviceRunner`; decode: ``decode(outputs by output name, geometry)`` -> the
    frame's result, run on the host (the output arrays are reused by later frames: copy what you
    keep). infer_stream: the stream the runner must run on, if it has one (a
    backend's :attr:`~trt_perception.core.backends.Backend.cuda_stream`); zero_copy_input: see
    :class:`GpuPreprocessor`. Raises :class:`BackendError` when the runner has an output of
    dynamic shape.
    """

    def __init__(self, device: CudaDevice, config: PreprocessConfig, runner: DeviceRunner, decode: Decode,
                 depth: int = 1, zero_copy_input: bool = False, infer_stream: Optional[Any] = None) -> None:
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
            raise ValueError(f"pipeline_depth must be an integer >= 1, got {depth!r}")
        specs = dict(runner.output_specs())
        dynamic = [name for name, spec in specs.items() if any(d is None for d in spec.shape)]
        if dynamic:
            raise BackendError(f"outputs {dynamic} have dynamic shapes; the GPU pipeline needs static ones")
        self.device = device
        self.config = config
        self.runner = runner
        self.decode = decode
        self.depth = depth
        with device.current():
            driver = device.driver
            self.upload_stream = driver.Stream()
            self.infer_stream = infer_stream if infer_stream is not None else driver.Stream()
            self._slots = [_Slot(device, self.upload_stream, zero_copy_input, specs) for _ in range(depth)]
        self._in_flight: deque[tuple[_Slot, Any, ResizeGeometry]] = deque()
        self._next = 0
        self._configured = False

    def configure(self, encoding: str, width: int, height: int, step: int, is_bigendian: bool = False) -> None:
        """Prepare every slot for frames of this format (waits for frames in flight; their results
        are dropped, so :meth:`drain` first to keep them).
        """
        with self.device.current():
            self.upload_stream.synchronize()
            self.infer_stream.synchronize()
            self._in_flight.clear()
            for slot in self._slots:
                slot.preprocessor.configure(self.config, encoding, width, height, step, is_bigendian)
        self._configured = True

    def next_host_frame(self) -> np.ndarray:
        """The pinned staging buffer the next :meth:`submit` reads (free to write now): a producer
        that writes the frame here and submits this array gets the fast, asynchronous upload.
        """
        preprocessor = self._slots[self._next].preprocessor
        preprocessor.wait_frame_free()
        return preprocessor.host_frame

    def submit(self, data: BytesLike, tag: Any = None) -> list[FrameResult]:
        """Enqueue one frame; return the results now finished (in order; see the module docstring)."""
        if not self._configured:
            raise RuntimeError("FramePipeline is not configured: call configure() first")
        slot = self._slots[self._next]
        with self.device.current():
            slot.start.record(self.upload_stream)
            geometry = slot.preprocessor(data)
            slot.ready.record(self.upload_stream)
            self.infer_stream.wait_for_event(slot.ready)
            self.runner.enqueue(slot.preprocessor.input_ptr, slot.output_ptrs, self.infer_stream)
            for buffer in slot.outputs.values():
                self.device.driver.memcpy_dtoh_async(buffer.host, buffer.device, self.infer_stream)
            slot.done.record(self.infer_stream)
        self._next = (self._next + 1) % self.depth
        self._in_flight.append((slot, tag, geometry))
        results = []
        while len(self._in_flight) >= self.depth:
            results.append(self._finish())
        return results + self.poll()

    def poll(self) -> list[FrameResult]:
        """Results of the frames already finished on the GPU, in order, without waiting."""
        results = []
        with self.device.current():
            while self._in_flight and self._in_flight[0][0].done.query():
                results.append(self._finish())
        return results

    def drain(self) -> list[FrameResult]:
        """Wait for every frame in flight; their results in order."""
        return [self._finish() for _ in range(len(self._in_flight))]

    def _finish(self) -> FrameResult:
        slot, tag, geometry = self._in_flight.popleft()
        with self.device.current():
            slot.done.synchronize()
            preprocess_ms = slot.ready.time_since(slot.start)
            inference_ms = slot.done.time_since(slot.ready)
        outputs = {name: buffer.host for name, buffer in slot.outputs.items()}
        started = time.perf_counter_ns()
        result = self.decode(outputs, geometry)
        times = StageTimes(round(preprocess_ms * 1e6), round(inference_ms * 1e6), time.perf_counter_ns() - started)
        return FrameResult(tag, result, geometry, times)

    def close(self) -> None:
        """Wait for the GPU and free every buffer. Safe to call twice."""
        with self.device.current():
            self.upload_stream.synchronize()
            self.infer_stream.synchronize()
            for slot in self._slots:
                slot.free()
        self._slots = []
        self._in_flight.clear()
        self._configured = False
