"""Engine I/O tensors -> specs, buffer sizes and input-shape checks (no TensorRT needed).

The runtime backend reads each I/O tensor's metadata from the engine into an
:class:`EngineTensor` (dims ``-1`` = dynamic; for dynamic inputs the min/opt/max shapes of
optimization profile 0), and this module decides the rest: the :class:`TensorSpec` the backend
reports (``None`` for dynamic dims), the buffers to allocate (largest shapes the profile allows),
and whether a given input shape is inside the profile.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Optional, Sequence

import numpy as np

from trt_perception.core.tensor_spec import TensorSpec, format_shape

#: TensorRT ``DataType`` member name -> numpy dtype (types numpy lacks, e.g. BF16/FP8, are absent)
TRT_DTYPES: dict[str, np.dtype] = {
    "FLOAT": np.dtype(np.float32),
    "HALF": np.dtype(np.float16),
    "INT8": np.dtype(np.int8),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
}

Shape = tuple[int, ...]


class IOPlanError(ValueError):
    """Engine I/O that this package cannot serve, or inputs that do not fit the engine."""


def numpy_dtype(trt_dtype_name: str, tensor_name: str) -> np.dtype:
    """Numpy dtype of a TensorRT ``DataType`` given by member name (``"FLOAT"``, ``"HALF"``, ...)."""
    try:
        return TRT_DTYPES[trt_dtype_name]
    except KeyError:
        raise IOPlanError(f"tensor {tensor_name!r} has TensorRT type {trt_dtype_name}, which has no numpy "
                          f"equivalent (supported: {', '.join(TRT_DTYPES)}); export the model with "
                          "float32/float16 I/O") from None


@dataclass(frozen=True)
class EngineTensor:
    """One engine I/O tensor as the engine describes it.

    ``shape``: engine dims, ``-1`` for dynamic ones. ``profile``: for an input with dynamic dims,
    the (min, opt, max) shapes of optimization profile 0, else ``None``. ``linear``: the tensor's
    memory format is TensorRT's row-major ``LINEAR`` (the only one numpy buffers can hold).
    """

    name: str
    is_input: bool
    dtype: np.dtype
    shape: Shape
    profile: Optional[tuple[Shape, Shape, Shape]] = None
    linear: bool = True

    @property
    def is_dynamic(self) -> bool:
        """True when any dimension is dynamic (-1 in the engine's shape)."""
        return any(d < 0 for d in self.shape)

    def spec(self) -> TensorSpec:
        """The backend-facing spec: dtype and shape with ``None`` for dynamic dims."""
        return TensorSpec(self.name, self.dtype, tuple(None if d < 0 else d for d in self.shape))

    def max_input_shape(self) -> Shape:
        """Largest shape this input accepts (the profile's max for dynamic inputs)."""
        if not self.is_dynamic:
            return self.shape
        if self.profile is None:
            raise IOPlanError(f"input {self.name!r} has dynamic shape {format_shape(self.spec().shape)} "
                              "but the engine has no optimization profile for it")
        return self.profile[2]

    def check_input_shape(self, shape: Sequence[int]) -> Optional[str]:
        """None when ``shape`` is a valid shape for this input, else a sentence saying why not."""
        shape = tuple(int(d) for d in shape)
        if len(shape) != len(self.shape) or any(e >= 0 and e != d for e, d in zip(self.shape, shape)):
            return f"input {self.name!r} must have shape {format_shape(self.spec().shape)}, got {list(shape)}"
        if self.is_dynamic:
            low, _, high = self.profile or (self.shape, self.shape, self.shape)
            if any(d < lo or d > hi for d, lo, hi in zip(shape, low, high)):
                return (f"input {self.name!r} shape {list(shape)} is outside the engine's optimization "
                        f"profile {list(low)}..{list(high)}; rebuild the engine with a larger batch range")
        return None


def check_engine_tensors(tensors: Iterable[EngineTensor]) -> None:
    """Raise :class:`IOPlanError` unless every I/O tensor can be served with numpy buffers."""
    problems = []
    for tensor in tensors:
        if not tensor.linear:
            problems.append(f"tensor {tensor.name!r} uses a vectorized (non-LINEAR) memory format; "
                            "build the engine without custom I/O formats")
        if tensor.is_input and tensor.is_dynamic and tensor.profile is None:
            problems.append(f"input {tensor.name!r} is dynamic but has no optimization profile")
    if problems:
        raise IOPlanError("engine I/O not supported: " + "; ".join(problems))


def io_specs(tensors: Iterable[EngineTensor], output_shapes: Optional[Mapping[str, Sequence[int]]] = None
             ) -> tuple[dict[str, TensorSpec], dict[str, TensorSpec]]:
    """(input specs, output specs) by name, in engine order.

    When every dynamic input's profile has min == max (e.g. a batch-dynamic ONNX built for batch
    1..1), the engine takes one shape only: the inputs report it, and the outputs their shapes in
    ``output_shapes`` (what the context reports for it), so single-shape callers see static specs.
    """
    tensors = list(tensors)
    pinned = all(t.profile is not None and t.profile[0] == t.profile[2]
                 for t in tensors if t.is_input and t.is_dynamic)

    def spec(t: EngineTensor) -> TensorSpec:
        if pinned and t.is_dynamic:
            shape = t.profile[0] if t.is_input and t.profile else (output_shapes or {}).get(t.name)
            if shape is not None:
                return TensorSpec(t.name, t.dtype, tuple(int(d) for d in shape))
        return t.spec()

    return ({t.name: spec(t) for t in tensors if t.is_input},
            {t.name: spec(t) for t in tensors if not t.is_input})


@dataclass(frozen=True)
class BufferPlan:
    """A host/device buffer pair for one I/O tensor, sized for its largest shape."""

    name: str
    is_input: bool
    dtype: np.dtype
    shape: Shape

    @property
    def nbytes(self) -> int:
        """Size of the buffer in bytes (its shape times the element size)."""
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize


def plan_buffers(tensors: Iterable[EngineTensor], output_max_shapes: Mapping[str, Sequence[int]]
                 ) -> list[BufferPlan]:
    """Buffers for every I/O tensor: inputs at :meth:`EngineTensor.max_input_shape`, outputs at
    ``output_max_shapes`` (what the execution context reports with every input at its max).

    Raises :class:`IOPlanError` for an output whose size still depends on the data (``-1``).
    """
    plans = []
    for tensor in tensors:
        if tensor.is_input:
            shape = tensor.max_input_shape()
        else:
            if tensor.name not in output_max_shapes:
                raise IOPlanError(f"no shape known for output {tensor.name!r}")
            shape = tuple(int(d) for d in output_max_shapes[tensor.name])
            if any(d < 0 for d in shape):
                raise IOPlanError(f"output {tensor.name!r} has a data-dependent shape {list(shape)}; "
                                  "engines with data-dependent outputs are not supported")
        plans.append(BufferPlan(tensor.name, tensor.is_input, tensor.dtype, shape))
    return plans


@dataclass(frozen=True)
class DeviceTensor:
    """An input that already lies in GPU memory (e.g. written by GPU preprocessing).

    ``ptr``: device address (``int(pycuda DeviceAllocation)`` or a CUDA pointer), ``shape`` and
    ``dtype`` of the contiguous row-major tensor at that address. The memory must stay valid and
    unchanged until the inference that reads it has returned.
    """

    ptr: int
    shape: Shape
    dtype: np.dtype

    @property
    def nbytes(self) -> int:
        """Size of the device tensor in bytes (its shape times the element size)."""
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize

    def check(self, tensor: EngineTensor) -> Optional[str]:
        """None when this device tensor can feed ``tensor``, else a sentence saying why not."""
        if not isinstance(self.ptr, int) or self.ptr <= 0:
            return f"device input {tensor.name!r} needs a non-null device pointer, got {self.ptr!r}"
        if np.dtype(self.dtype) != tensor.dtype:
            return f"input {tensor.name!r} must be {tensor.dtype}, got a device tensor of {np.dtype(self.dtype)}"
        return tensor.check_input_shape(self.shape)
