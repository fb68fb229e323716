"""ReplayRunner: a stand-in network on device buffers, to measure and test the GPU pipeline
where no TensorRT engine or GPU execution provider is at hand.

Each run keeps the GPU busy for ``busy_us`` microseconds (one spinning thread: the network's run
time, with no memory traffic) and then writes every output: a fixed array recorded from a real
model, or (``echo_input``) the first bytes of the input tensor, so a test can see which frame an
output came from. It follows :class:`~trt_perception.core.gpu.frame_pipeline.DeviceRunner`.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

import numpy as np

from trt_perception.core.cuda.device import CudaDevice
from trt_perception.core.cuda.runtime import load_kernel
from trt_perception.core.tensor_spec import TensorSpec


class ReplayRunner:
    """See the module docstring. ``outputs``: name -> array (its values, or with ``echo_input``
    only its shape and dtype), one row of a batch; ``input_row_nbytes``: bytes of one input row
    (echoing batches). Call :meth:`free` when done.
    """

    def __init__(self, device: CudaDevice, outputs: Mapping[str, np.ndarray], busy_us: float = 0.0,
                 echo_input: bool = False, input_row_nbytes: int = 0) -> None:
        if busy_us < 0:
            raise ValueError(f"busy_us must be >= 0, got {busy_us}")
        self.device = device
        self.busy_ns = np.uint64(round(busy_us * 1000))
        self.echo_input = echo_input
        self.input_row_nbytes = input_row_nbytes
        self._arrays = {name: np.ascontiguousarray(array) for name, array in outputs.items()}
        with device.current():
            self._spin = load_kernel(device, "trt_perception.testing", "spin_kernel.cu", "spin")
            self._recorded = {} if echo_input else {
                name: device.driver.to_device(array) for name, array in self._arrays.items()}

    def output_specs(self) -> dict[str, TensorSpec]:
        """Name, dtype and shape of each recorded output."""
        return {name: TensorSpec(name, array.dtype, array.shape) for name, array in self._arrays.items()}

    def enqueue(self, input_ptr: int, output_ptrs: Mapping[str, int], stream: Any,
                batch: Optional[int] = None) -> None:
        """On ``stream``: spin ``busy_ns`` if set, then copy each output (the recorded array, or the input when
        echoing) to ``output_ptrs``; with ``batch``, to each of its first ``batch`` rows (the recorded
        array is one row; echoing, row i gets the first bytes of input row i, whose size is
        ``input_row_nbytes``).
        """
        if self.busy_ns:
            self._spin(self.busy_ns, block=(1, 1, 1), grid=(1, 1), stream=stream)
        for row in range(1 if batch is None else batch):
            for name, array in self._arrays.items():
                source = (input_ptr + row * self.input_row_nbytes if self.echo_input
                          else int(self._recorded[name]))
                self.device.driver.memcpy_dtod_async(output_ptrs[name] + row * array.nbytes, source,
                                                     array.nbytes, stream)

    def free(self) -> None:
        """Free the recorded device outputs."""
        with self.device.current():
            for buffer in self._recorded.values():
                buffer.free()
        self._recorded = {}
