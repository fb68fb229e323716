"""GpuPreprocessor: camera frame bytes -> network input tensor on the GPU, in one fused kernel.

Per frame: the bytes are uploaded on the preprocessor's stream and one kernel
(``preprocess_kernel.cu``) writes the input tensor straight into the device buffer the network
reads. Frame bytes in ordinary (pageable) memory, such as a ROS message's, are uploaded from where
they are (the driver stages them; measured faster than copying them into pinned memory first);
a producer that can write the frame into the page-locked :attr:`GpuPreprocessor.host_frame` itself
gets the fastest, fully asynchronous upload. With ``zero_copy_input`` that buffer is mapped into the
device's address space and the kernel reads it in place, with no upload (the fast path on
integrated GPUs such as Jetson, where host and device share memory; on a discrete GPU the kernel
then reads over PCIe); frames given as bytes are then copied into it.

The result equals :func:`trt_perception.core.preprocess.preprocess` applied to
:func:`trt_perception.core.image.decode_image` of the same frame (see ``preprocess_kernel.cu``).
The kernel is compiled once per process and every buffer is allocated by :meth:`configure` and
reused by every frame; nothing is allocated per frame.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from trt_perception.core.cuda.device import CudaDevice
from trt_perception.core.cuda.runtime import load_kernel
from trt_perception.core.geometry import ResizeGeometry
from trt_perception.core.gpu.preprocess_plan import BLOCK, PARAMS_DTYPE, FrameLayout, PreprocessPlan
from trt_perception.core.image import BytesLike, ImageError, RawImage
from trt_perception.core.preprocess import PreprocessConfig

#: what a kernel plan depends on in a raw frame: encoding, width, height, row step, big-endian
Layout = tuple[str, int, int, int, bool]


def layout_of(image: RawImage) -> Layout:
    """The :data:`Layout` of ``image`` (frames of equal layouts share a :meth:`GpuPreprocessor.configure`)."""
    return (image.encoding, image.width, image.height, image.step, bool(image.is_bigendian))


KERNEL_SOURCE = "preprocess_kernel.cu"
KERNEL_NAME = "preprocess_frame"


class GpuPreprocessor:
    """Fused GPU preprocessing of one frame format into one input tensor (module docstring).

    device: the GPU (:func:`~trt_perception.core.cuda.runtime.shared_device`); stream: a
    pycuda ``Stream`` to work on (default: a stream of its own), so the upload and the kernel stay
    in order with the inference enqueued after them on the same stream.
    """

    def __init__(self, device: CudaDevice, stream: Optional[Any] = None,
                 zero_copy_input: bool = False) -> None:
        self.device = device
        self.zero_copy_input = bool(zero_copy_input)
        self._driver = device.driver
        with device.current():
            self.stream = stream if stream is not None else self._driver.Stream()
            self._kernel = load_kernel(device, "trt_perception.core.gpu", KERNEL_SOURCE, KERNEL_NAME)
            self._kernel.prepare(f"PPPP{PARAMS_DTYPE.itemsize}s")
            self._frame_free = self._driver.Event(self._driver.event_flags.DISABLE_TIMING)
        self.plan: Optional[PreprocessPlan] = None
        self._buffers: dict[str, Any] = {}
        self._staging: Optional[np.ndarray] = None
        self._src_ptr = 0
        self._dst_ptr = 0
        self._args: tuple[Any, ...] = ()

    # setup --------------------------------------------------------------------------------

    def configure(self, config: PreprocessConfig, encoding: str, width: int, height: int, step: int,
                  is_bigendian: bool = False, output_ptr: Optional[int] = None) -> PreprocessPlan:
        """Prepare for frames of this format: resize tables, staging and device buffers.

        ``output_ptr``: a device buffer of at least the input tensor's bytes to write into (for
        example an engine's input binding); by default the preprocessor allocates its own
        (:attr:`input_ptr`). Raises :class:`~trt_perception.core.image.ImageError` for a frame
        format the kernel cannot read. Buffers of an earlier configuration are freed.
        """
        plan = PreprocessPlan.create(config, FrameLayout.create(encoding, width, height, step, is_bigendian))
        with self.device.current():
            self._free_buffers()
            drv = self._driver
            buffers = {"cols": drv.to_device(plan.col_table), "rows": drv.to_device(plan.row_table)}
            if self.zero_copy_input:
                mapped = drv.pagelocked_empty(plan.frame.nbytes, np.uint8, mem_flags=drv.host_alloc_flags.DEVICEMAP)
                self._src_ptr = int(mapped.base.get_device_pointer())
                self._staging = mapped
            else:
                self._staging = drv.pagelocked_empty(plan.frame.nbytes, np.uint8)
                buffers["frame"] = drv.mem_alloc(plan.frame.nbytes)
                self._src_ptr = int(buffers["frame"])
            if output_ptr is None:
                buffers["input"] = drv.mem_alloc(plan.output_nbytes)
                output_ptr = int(buffers["input"])
            self._buffers = buffers
        self._dst_ptr = int(output_ptr)
        self._args = (self._src_ptr, self._dst_ptr, int(buffers["cols"]), int(buffers["rows"]),
                      plan.params.tobytes())
        self.plan = plan
        return plan

    def release(self) -> None:
        """Free every buffer (the preprocessor may be configured again)."""
        with self.device.current():
            self._free_buffers()
        self.plan = None

    def _free_buffers(self) -> None:
        if self._buffers or self._staging is not None:
            self.stream.synchronize()
        for buffer in self._buffers.values():
            buffer.free()
        if self._staging is not None:
            allocation: Any = self._staging.base  # pycuda's page-locked host allocation
            allocation.free()
        self._buffers, self._staging = {}, None

    # per frame ----------------------------------------------------------------------------

    @property
    def host_frame(self) -> np.ndarray:
        """uint8[frame bytes], the page-locked staging buffer (mapped for zero-copy input). A
        producer may write the next frame here and pass this array to :meth:`__call__`: the
        fastest upload (asynchronous, from pinned memory), or none with zero-copy input. Call
        :meth:`wait_frame_free` first, as the previous frame may still be read from it.
        """
        return self._require_staging()

    @property
    def input_ptr(self) -> int:
        """Device address of the input tensor the kernel writes (``config.input_shape``)."""
        self._require_plan()
        return self._dst_ptr

    def synchronize(self) -> None:
        """Block until everything enqueued on the stream so far has run."""
        with self.device.current():
            self.stream.synchronize()

    def wait_frame_free(self) -> None:
        """Block until the previous frame no longer needs :attr:`host_frame`."""
        with self.device.current():
            self._frame_free.synchronize()

    def __call__(self, data: BytesLike) -> ResizeGeometry:
        """Enqueue the preprocessing of one frame (bytes of the configured format) on the stream:
        :meth:`upload` then :meth:`launch`.

        Returns once ``data`` may be reused (at once for :attr:`host_frame`); work enqueued later
        on the same stream sees the finished tensor. Raises :class:`ImageError` when ``data`` is
        shorter than the configured frame.
        """
        self.upload(data)
        self.launch()
        return self._require_plan().geometry

    def upload(self, data: BytesLike) -> None:
        """Enqueue the upload of one frame: :attr:`host_frame` asynchronously, other bytes from
        where they are (the call returns once the driver has staged them); with zero-copy input,
        bytes are copied into :attr:`host_frame` and nothing is uploaded.
        """
        plan = self._require_plan()
        staging = self._require_staging()
        with self.device.current():
            if isinstance(data, np.ndarray) and data.ctypes.data == staging.ctypes.data:
                if not self.zero_copy_input:
                    self._driver.memcpy_htod_async(self._src_ptr, staging, self.stream)
                    self._frame_free.record(self.stream)
                return
            frame = data.reshape(-1) if isinstance(data, np.ndarray) else np.frombuffer(data, np.uint8)
            if frame.size < staging.size or frame.dtype != np.uint8:
                raise ImageError(f"frame data has {frame.size} {frame.dtype} values but a {plan.frame.width}x"
                                 f"{plan.frame.height} {plan.frame.encoding} frame with step "
                                 f"{plan.frame.step} needs {staging.size} bytes")
            if self.zero_copy_input:
                self._frame_free.synchronize()
                np.copyto(staging, frame[:staging.size])
            else:
                self._driver.memcpy_htod_async(self._src_ptr, frame[:staging.size], self.stream)

    def launch(self, output_ptr: Optional[int] = None) -> None:
        """Enqueue the kernel on the frame last uploaded (zero-copy: on :attr:`host_frame`), writing
        the input tensor to :attr:`input_ptr`, or to ``output_ptr`` (a device buffer of at least
        :attr:`PreprocessPlan.output_nbytes`, e.g. one row of a batch tensor) for this launch.
        """
        plan = self._require_plan()
        args = self._args if output_ptr is None else (self._args[0], int(output_ptr), *self._args[2:])
        with self.device.current():
            self._kernel.prepared_async_call(plan.grid, BLOCK, self.stream, *args)
            if self.zero_copy_input:  # the kernel reads the staging buffer itself
                self._frame_free.record(self.stream)

    def download(self, out: Optional[np.ndarray] = None) -> np.ndarray:
        """Wait for the stream and copy the input tensor to the host (tests, CPU backends)."""
        plan = self._require_plan()
        cfg = plan.config
        if out is None:
            out = np.empty(cfg.input_shape, dtype=cfg.np_dtype)
        elif out.shape != cfg.input_shape or out.dtype != cfg.np_dtype or not out.flags.c_contiguous:
            raise ValueError(f"out must be a contiguous {cfg.dtype}{list(cfg.input_shape)}, "
                             f"got {out.dtype}{list(out.shape)}")
        with self.device.current():
            self.stream.synchronize()
            self._driver.memcpy_dtoh(out, self._dst_ptr)
        return out

    def _require_plan(self) -> PreprocessPlan:
        if self.plan is None:
            raise RuntimeError("GpuPreprocessor is not configured: call configure() first")
        return self.plan

    def _require_staging(self) -> np.ndarray:
        self._require_plan()
        assert self._staging is not None, "configure() allocates the staging buffer with the plan"
        return self._staging
