"""GpuBatchPipeline: the raw frames of several cameras through one network call on the GPU.

Per batch of n frames (raw camera frames, :attr:`SourceFrame.image
<trt_perception.core.pipeline.SourceFrame.image>`, each of any encoding the fused kernel reads and
of any size), on two CUDA streams::

    upload stream:    event start -> per frame i: upload, fused kernel into row i of the batch input -> event ready
    inference stream: wait ready -> backend.enqueue(batch input, outputs, batch=n) -> n output rows to pinned host
                      -> event done
    host:             wait done -> per frame i: the decoder on output row i with frame i's geometry

Each camera's frame crosses to the GPU once and the fused preprocessing kernel
(:class:`~trt_perception.core.gpu.gpu_preprocess.GpuPreprocessor`) writes it straight into its row
(slot) of one preallocated batch tensor ``[limit, C, H, W]`` (or NHWC): no batch is assembled by
copies. Boxes come out in each frame's own source pixels.

``depth`` D batch slots (batch input tensor, pinned outputs, events, preprocessors) take turns.
With D = 1 :meth:`GpuBatchPipeline.submit_batch` returns the batch's own results (synchronous).
With D > 1 up to D batches are in flight: the uploads and kernels of batch k + 1 run on the upload
stream while the network runs batch k, and the host decodes batch k while the GPU works on k + 1
(a slot's previous batch is finished before the slot is reused); :meth:`~GpuBatchPipeline.submit_batch`
then returns the results finished so far (always in submission order; :meth:`~GpuBatchPipeline.drain`
waits for the rest).

Each slot keeps one preprocessor per frame layout (encoding, size, row step, byte order) it has seen,
at most ``limit`` of them (the least recently used is freed first), so cameras of different
resolutions and encodings never re-plan the kernel per frame; frames of one layout in one batch
share a preprocessor (its upload and kernel run in stream order).

Frames in page-locked memory upload asynchronously at the bus's full speed; message bytes in
pageable memory make the host stage them during the batch. :meth:`GpuBatchPipeline.stage`, called
by each camera's producer thread as the frame arrives (while the batch is still gathering), copies
the frame into a page-locked buffer of a pool (:class:`~trt_perception.core.cuda.pinned_pool.PinnedBufferPool`),
taking that copy off the batch's critical path.

Stage times of each result (:class:`~trt_perception.core.batching.batch_pipeline.BatchStageTimes`
of its batch): preprocess = GPU time start -> ready (every upload and kernel of the batch),
inference = GPU time ready -> done (the network and the output copies; pipelined, also any wait
for the previous batch), postprocess = the host's decoding of the whole batch.

Made by :func:`trt_perception.core.pipeline_factory.create_batch_pipeline` (``preprocess: auto |
gpu`` where a GPU and a backend on device buffers are at hand).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import OrderedDict, deque
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from trt_perception.core.backends import Backend, BackendError, activated_backend
from trt_perception.core.batching.batch_pipeline import BatchStageTimes
from trt_perception.core.batching.batch_plan import BatchCalls
from trt_perception.core.cuda.device import CudaDevice, HostDeviceBuffer
from trt_perception.core.cuda.pinned_pool import PinnedBufferPool
from trt_perception.core.decode import Decoder, create_decoder
from trt_perception.core.geometry import ResizeGeometry
from trt_perception.core.gpu.gpu_preprocess import GpuPreprocessor, Layout, layout_of
from trt_perception.core.image import RawImage
from trt_perception.core.model_config import ModelConfig, load_model_config
from trt_perception.core.pipeline import ClosedOnExit, FrameResult, SourceFrame, check_decoder_roles, outputs_by_role


class _BatchSlot:
    """One batch's buffers: the batch input tensor, pinned outputs, preprocessors by layout, events."""

    def __init__(self, device: CudaDevice, stream: Any, input_shape: tuple[int, ...], input_dtype: np.dtype,
                 output_shapes: dict[str, tuple[tuple[int, ...], np.dtype]]) -> None:
        driver = device.driver
        self.device = device
        self.stream = stream
        self.row_nbytes = int(np.prod(input_shape[1:])) * input_dtype.itemsize
        self.input = driver.mem_alloc(max(1, input_shape[0] * self.row_nbytes))
        self.outputs = {name: HostDeviceBuffer(driver, shape, dtype) for name, (shape, dtype) in output_shapes.items()}
        self.output_ptrs = {name: buffer.device_ptr for name, buffer in self.outputs.items()}
        self.preprocessors: OrderedDict[Layout, GpuPreprocessor] = OrderedDict()
        self.start = driver.Event()
        self.ready = driver.Event()
        self.done = driver.Event()

    @property
    def input_ptr(self) -> int:
        """Device address of row 0 of the batch input tensor."""
        return int(self.input)

    def preprocessor(self, config: Any, layout: Layout, limit: int) -> GpuPreprocessor:
        """The preprocessor of ``layout`` (made and planned on first use; the least recently used
        one freed when more than ``limit`` layouts are kept). Raises ImageError for a layout the
        kernel cannot read.
        """
        found = self.preprocessors.get(layout)
        if found is not None:
            self.preprocessors.move_to_end(layout)
            return found
        made = GpuPreprocessor(self.device, self.stream)
        made.configure(config, *layout, output_ptr=self.input_ptr)
        self.preprocessors[layout] = made
        while len(self.preprocessors) > limit:
            self.preprocessors.popitem(last=False)[1].release()
        return made

    def free(self) -> None:
        for preprocessor in self.preprocessors.values():
            preprocessor.release()
        self.preprocessors.clear()
        for buffer in self.outputs.values():
            buffer.free()
        self.input.free()


class GpuBatchPipeline(ClosedOnExit):
    """GPU preprocessing into one batch tensor, one network call per batch, a host decoder per frame
    (module docstring). A :class:`~trt_perception.core.pipeline.PerceptionPipeline`.

    backend: an *active* backend that :attr:`~trt_perception.core.backends.Backend.runs_on_device`
    with a batch dimension 0 that is dynamic (any batch up to ``max_batch``: TensorRT with the
    profile 1 / N / N, ONNX Runtime with ``device_batch``) or fixed (every call that batch, empty
    rows padded). ``max_batch``: the most frames a batch holds (the number of cameras). A pipeline
    made by :meth:`from_config` owns its backend and :meth:`close` deactivates it.
    Raises BackendError when the backend does not run on device buffers.
    """

    #: preprocessing reads the raw frame (:attr:`SourceFrame.image`), never decoded pixels
    takes_raw_images = True

    def __init__(self, config: ModelConfig, backend: Backend, decoder: Decoder, device: CudaDevice,
                 max_batch: int, depth: int = 1) -> None:
        if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
            raise ValueError(f"max_batch must be an integer >= 1, got {max_batch!r}")
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
            raise ValueError(f"pipeline_depth must be an integer >= 1, got {depth!r}")
        if not backend.runs_on_device:
            raise BackendError(f"GPU preprocessing needs a network on device buffers; the {backend.name} "
                               "backend as configured runs on the CPU")
        check_decoder_roles(config, decoder)
        spec = backend.input_specs().get(config.input_name)
        if spec is None or not spec.shape:
            raise BackendError(f"the model has no input {config.input_name!r} with a batch dimension")
        self.config = config
        self.backend = backend
        self.decoder = decoder
        self.device = device
        self.depth = depth
        self.calls = BatchCalls.for_model(spec.shape[0], max_batch)
        limit = self.calls.limit
        row_shapes: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
        for name, out in backend.output_specs().items():
            if not out.shape or None in out.shape[1:]:
                raise BackendError(f"output {name!r} has shape {list(out.shape)}; the GPU batch pipeline needs "
                                   "every dimension but the batch static")
            row_shapes[name] = ((limit, *(int(d or 0) for d in out.shape[1:])), out.dtype)
        input_shape = (limit, *config.preprocess.input_shape[1:])
        with device.current():
            self.upload_stream = device.driver.Stream()
            self.infer_stream = backend.cuda_stream
            self._slots = [_BatchSlot(device, self.upload_stream, input_shape, config.preprocess.np_dtype, row_shapes)
                           for _ in range(depth)]
        # per batch in flight: its slot, (tag, geometry) per frame, and its images (their bytes, maybe
        # lent by a staging pool, must live until the upload is done)
        self._in_flight: deque[tuple[_BatchSlot, list[tuple[Any, ResizeGeometry]], list[RawImage]]] = deque()
        self._pools: dict[int, PinnedBufferPool] = {}
        self._pools_lock = threading.Lock()
        #: page-locked buffers per frame size: every camera's frame waiting, being staged, and in flight
        self.staging_limit = limit * (depth + 2)
        self._pending: list[FrameResult] = []   # finished, not handed out yet (kept across a failed submit)
        self._next = 0
        self._owns_backend = False

    @classmethod
    def from_config(cls, path: str | Path, backend_kind: str, max_batch: int, depth: int = 1, device_id: int = 0,
                    **backend_options: Any) -> "GpuBatchPipeline":
        """Load the config at ``path``, build its decoder, create and activate the backend
        ``backend_kind`` with ``backend_options`` (and ``device_id``) on CUDA device ``device_id``.
        Raises ModelConfigError or BackendError.
        """
        from trt_perception.core.cuda.runtime import shared_device
        config = load_model_config(path)
        decoder = create_decoder(config)
        device = shared_device(device_id)
        options = {**backend_options, "device_id": device_id}
        with activated_backend(backend_kind, str(config.model_path), **options) as backend:
            pipeline = cls(config, backend, decoder, device, max_batch, depth)
        pipeline._owns_backend = True
        return pipeline

    def stage(self, frame: SourceFrame) -> SourceFrame:
        """``frame`` with its raw bytes copied into page-locked memory, so that its batch uploads it
        asynchronously (module docstring); called from the producer's thread as the frame arrives.
        Frames without a raw image, and frames for which every staging buffer of their size is in
        use (:attr:`staging_limit`), come back unchanged (uploaded from where they are).
        """
        image = frame.image
        if image is None or not self._slots:
            return frame
        nbytes = int(image.data.size)
        with self._pools_lock:
            pool = self._pools.get(nbytes)
            if pool is None:
                pool = self._pools[nbytes] = PinnedBufferPool(self.device, nbytes, self.staging_limit)
        try:
            pinned = pool.acquire()
        except Exception:  # noqa: BLE001 - no page-locked memory to be had: upload from where it is
            pinned = None
        if pinned is None:
            return frame
        np.copyto(pinned, image.data.reshape(-1))
        return dataclasses.replace(frame, image=dataclasses.replace(image, data=pinned))

    def submit(self, frame: SourceFrame, tag: Any = None) -> list[FrameResult]:
        """``frame`` as a batch of one (the pipeline contract)."""
        return self.submit_batch([(frame, tag)])

    def submit_batch(self, items: Sequence[tuple[SourceFrame, Any]]) -> list[FrameResult]:
        """Enqueue ``items`` (``(frame, tag)`` each; the frame's raw :attr:`~SourceFrame.image`)
        as one batch (more frames than the model's batch limit: several); the results finished now,
        in submission order (module docstring).

        Raises ValueError for a frame without a raw image, ImageError for one the kernel cannot
        read (an unsupported encoding, data too short for its layout), and BackendError when the
        network fails: the batch is then lost and the caller counts its frames (results of earlier
        batches are kept for the next call or :meth:`drain`).
        """
        if not self._slots:
            raise BackendError("the GPU batch pipeline was closed")
        images = [_raw_image(frame) for frame, _ in items]
        done = 0
        for count, size in self.calls.calls(len(items)):
            self._enqueue(images[done:done + count], [tag for _, tag in items[done:done + count]], size)
            done += count
        finished, self._pending = self._pending, []
        return finished + self.poll()

    def _enqueue(self, images: list[RawImage], tags: list[Any], size: int) -> None:
        """Enqueue one network call of ``size`` rows on the next slot; the results of the slot's
        previous batch (finished first) and, with depth 1, of this one go to ``_pending``.
        """
        slot = self._slots[self._next]
        while len(self._in_flight) >= self.depth:
            self._pending += self._finish()
        cfg = self.config.preprocess
        with self.device.current():
            preprocessors = [slot.preprocessor(cfg, layout_of(image), self.calls.limit) for image in images]
            slot.start.record(self.upload_stream)
            for row, (image, preprocessor) in enumerate(zip(images, preprocessors)):
                preprocessor.upload(image.data)
                preprocessor.launch(slot.input_ptr + row * slot.row_nbytes)
            slot.ready.record(self.upload_stream)
            self.infer_stream.wait_for_event(slot.ready)
            self.backend.enqueue(slot.input_ptr, slot.output_ptrs, self.infer_stream,
                                 batch=None if self.calls.fixed else size)
            for buffer in slot.outputs.values():
                rows = buffer.host[:len(images)]
                self.device.driver.memcpy_dtoh_async(rows, buffer.device, self.infer_stream)
            slot.done.record(self.infer_stream)
        geometries = [cfg.geometry(image.width, image.height) for image in images]
        self._next = (self._next + 1) % self.depth
        self._in_flight.append((slot, list(zip(tags, geometries)), images))
        if self.depth == 1:
            self._pending += self._finish()

    def poll(self) -> list[FrameResult]:
        """Results of the batches already finished on the GPU, in order, without waiting."""
        results = []
        with self.device.current():
            while self._in_flight and self._in_flight[0][0].done.query():
                results += self._finish()
        return results

    def drain(self) -> list[FrameResult]:
        """Wait for every batch in flight; their results in order."""
        finished, self._pending = self._pending, []
        return finished + [result for _ in range(len(self._in_flight)) for result in self._finish()]

    def _finish(self) -> list[FrameResult]:
        slot, frames, images = self._in_flight.popleft()
        with self.device.current():
            slot.done.synchronize()
            preprocess_ms = slot.ready.time_since(slot.start)
            inference_ms = slot.done.time_since(slot.ready)
        outputs = outputs_by_role(self.config, {name: buffer.host for name, buffer in slot.outputs.items()})
        started = time.perf_counter_ns()
        decoded = [self.decoder({role: array[row:row + 1] for role, array in outputs.items()}, geometry)
                   for row, (_, geometry) in enumerate(frames)]
        times = BatchStageTimes(round(preprocess_ms * 1e6), round(inference_ms * 1e6),
                                time.perf_counter_ns() - started, batch_size=len(images))
        return [FrameResult(tag, result, geometry, times) for (tag, geometry), result in zip(frames, decoded)]

    def close(self) -> None:
        """Wait for the GPU, free every buffer, deactivate the backend if this pipeline created it.
        Safe to call twice.
        """
        if self._slots:
            with self.device.current():
                self.upload_stream.synchronize()
                self.infer_stream.synchronize()
                for slot in self._slots:
                    slot.free()
            self._slots = []
            self._in_flight.clear()
            with self._pools_lock:
                for pool in self._pools.values():
                    pool.close()
                self._pools = {}
            if self._owns_backend:
                self.backend.deactivate()



def _raw_image(frame: SourceFrame) -> RawImage:
    """``frame.image``; ValueError when the frame has only decoded pixels."""
    if frame.image is None:
        raise ValueError("GPU preprocessing takes raw images: the frame has only decoded pixels")
    return frame.image

