"""ONNX Runtime backend: an ONNX model run by ``onnxruntime`` on the CPU (or the CUDA EP).

Options: ``threads`` (intra-op threads; 0 = ONNX Runtime's default, one per core), ``providers``
(execution providers in priority order, default CPU only; e.g. ``["CUDAExecutionProvider",
"CPUExecutionProvider"]`` with ``onnxruntime-gpu``), ``io_binding`` (run through IOBinding into
preallocated output buffers; ``None`` = only when the first provider is not the CPU, where it saves
the per-frame output allocation and device copies -- on the CPU it measured no faster),
``device_buffers``, ``device_batch`` and ``device_id`` (below). IOBinding needs static output shapes,
so with it (and with ``device_buffers``) a batch-dynamic model (input dimension 0 named ``batch``, as
``trt-perception dynamic-batch`` writes) runs with a batch of 1, unless ``device_batch``.

With IOBinding the arrays :meth:`infer` returns are reused by the next call (``outputs_reused``).

``device_buffers=True`` (``onnxruntime-gpu``): the session runs on the CUDA provider of device
``device_id`` on a pycuda stream of its own (the provider's ``user_compute_stream``, TF32 off so
float32 results stay as close to the CPU's as the CUDA kernels give), and :meth:`enqueue` runs it
on device buffers the caller filled (GPU preprocessing): IOBinding binds the input and outputs to
those buffers (no copy; one binding per set of buffers, made once) and a run only enqueues
(``disable_synchronize_execution_providers``), so the caller's CUDA events order it. With
``device_batch=True`` as well, a batch-dynamic model keeps its batch dimension free and
:meth:`~OnnxRuntimeBackend.enqueue` runs ``batch`` rows (one binding per batch size and set of
buffers; the first run of each batch size is slower, as the CUDA provider picks its kernels).
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from trt_perception.core.backends.base import Backend, BackendError, TensorSpec
from trt_perception.core.dynamic_batch import BATCH_DIM

_ORT_TYPES = {
    "tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
    "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8, "tensor(bool)": np.bool_,
}
CPU_PROVIDER = "CPUExecutionProvider"
CUDA_PROVIDER = "CUDAExecutionProvider"


def _import_ort() -> ModuleType:
    try:
        import onnxruntime
    except ImportError as exc:
        raise BackendError("the onnxruntime backend needs the 'onnxruntime' package "
                           "(pip install onnxruntime, or onnxruntime-gpu for CUDA)") from exc
    module: ModuleType = onnxruntime
    return module


def _spec(node: Any) -> TensorSpec:
    if node.type not in _ORT_TYPES:
        raise BackendError(f"tensor {node.name!r} has unsupported type {node.type}")
    shape = tuple(d if isinstance(d, int) and d >= 0 else None for d in node.shape)
    return TensorSpec(node.name, np.dtype(_ORT_TYPES[node.type]), shape)


def cuda_provider_available() -> tuple[bool, str]:
    """(True, "") when onnxruntime imports and offers the CUDA execution provider, else (False, why)."""
    try:
        import onnxruntime
    except ImportError:
        return False, "onnxruntime is not installed"
    providers = onnxruntime.get_available_providers()
    if CUDA_PROVIDER not in providers:
        return False, f"onnxruntime {onnxruntime.__version__} has no {CUDA_PROVIDER} (providers: {providers})"
    return True, ""


class OnnxRuntimeBackend(Backend):
    """Runs an ONNX model with ONNX Runtime (see the module docstring for the options)."""

    name = "onnxruntime"

    def __init__(self, model_path: str | Path, threads: int = 0,
                 providers: Optional[Sequence[str]] = None,
                 io_binding: Optional[bool] = None, device_buffers: bool = False,
                 device_id: int = 0, device_batch: bool = False) -> None:
        super().__init__()
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
            raise BackendError(f"threads must be an integer >= 0 (0 = ONNX Runtime's default), got {threads!r}")
        if isinstance(device_id, bool) or not isinstance(device_id, int) or device_id < 0:
            raise BackendError(f"device_id must be an integer >= 0, got {device_id!r}")
        if device_buffers and providers and list(providers)[0] != CUDA_PROVIDER:
            raise BackendError(f"device_buffers runs on {CUDA_PROVIDER}, not on {list(providers)}")
        if device_batch and not device_buffers:
            raise BackendError("device_batch needs device_buffers (batches of rows on device buffers)")
        self.model_path = Path(model_path)
        self.threads = threads
        self.providers = [CUDA_PROVIDER] if device_buffers else list(providers) if providers else [CPU_PROVIDER]
        self.io_binding = io_binding
        self.device_buffers = device_buffers
        self.device_batch = device_batch
        self.device_id = device_id
        self._session: Any = None
        self._binding: Any = None
        self._inputs: dict[str, TensorSpec] = {}
        self._outputs: dict[str, TensorSpec] = {}
        self._buffers: dict[str, np.ndarray] = {}
        self._stream: Any = None
        self._run_options: Any = None
        self._device_bindings: dict[tuple[int, tuple[int, ...], Optional[int]], Any] = {}

    def _activate_impl(self) -> None:
        ort = _import_ort()
        if not self.model_path.is_file():
            raise BackendError(f"ONNX model {self.model_path} does not exist")
        available = ort.get_available_providers()
        missing = [p for p in self.providers if p not in available]
        if missing:
            raise BackendError(f"execution providers {missing} are not available in this onnxruntime "
                               f"build (available: {available})")
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        providers: list[Any] = list(self.providers)
        if self.device_buffers:
            providers = [(CUDA_PROVIDER, self._device_provider_options(ort))]
        use_binding = self.io_binding if self.io_binding is not None else self.providers[0] != CPU_PROVIDER
        use_binding = use_binding and not self.device_batch   # host IOBinding needs static output shapes
        if (use_binding or self.device_buffers) and not self.device_batch:   # static shapes: batch 1
            options.add_free_dimension_override_by_name(BATCH_DIM, 1)
        try:
            session = ort.InferenceSession(str(self.model_path), options, providers=providers)
        except Exception as exc:  # ORT raises its own exception types (InvalidProtobuf, Fail, ...)
            raise BackendError(f"cannot load ONNX model {self.model_path}: {exc}") from exc
        not_loaded = [p for p in self.providers if p not in session.get_providers()]
        if not_loaded:
            raise BackendError(f"execution providers {not_loaded} failed to load for {self.model_path} "
                               "(for CUDA: are the CUDA and cuDNN libraries onnxruntime-gpu needs installed?)")
        inputs = {n.name: _spec(n) for n in session.get_inputs()}
        outputs = {n.name: _spec(n) for n in session.get_outputs()}
        if self.device_buffers:
            self._check_device_io(inputs, outputs)
        if use_binding:
            dynamic = [s.name for s in outputs.values() if None in s.shape]
            if dynamic:
                raise BackendError(f"io_binding needs static output shapes; {dynamic} are dynamic")
            binding = session.io_binding()
            buffers = {name: np.empty([d for d in s.shape if d is not None], dtype=s.dtype)
                       for name, s in outputs.items()}
            for name, buffer in buffers.items():
                binding.bind_ortvalue_output(name, ort.OrtValue.ortvalue_from_numpy(buffer))
            self._binding, self._buffers = binding, buffers
        self._session, self._inputs, self._outputs = session, inputs, outputs

    def _check_device_io(self, inputs: Mapping[str, TensorSpec], outputs: Mapping[str, TensorSpec]) -> None:
        """device_buffers: one input; every dimension static but dimension 0 with ``device_batch``."""
        free = 1 if self.device_batch else 0
        shapes = [s.shape[free:] for s in (*inputs.values(), *outputs.values())]
        if len(inputs) != 1 or any(None in shape for shape in shapes) or any(not s.shape for s in inputs.values()):
            kind = "static shapes but the batch dimension" if self.device_batch else "static shapes"
            raise BackendError(f"device_buffers: {self.model_path} must have one input and {kind}, has inputs "
                               f"{[(s.name, s.shape) for s in inputs.values()]}, outputs "
                               f"{[(s.name, s.shape) for s in outputs.values()]}")

    @property
    def outputs_reused(self) -> bool:
        """True with IOBinding (the bound output buffers are overwritten by the next call); without
        it each call returns new arrays.
        """
        return self._binding is not None

    def _device_provider_options(self, ort: ModuleType) -> dict[str, str]:
        """The CUDA provider's options for ``device_buffers``: a pycuda stream of the device's primary
        context (the one GPU preprocessing uses) as the session's compute stream, TF32 off.
        """
        from trt_perception.core.cuda.runtime import shared_device
        device = shared_device(self.device_id)
        with device.current():
            self._stream = device.driver.Stream()
        self._run_options = ort.RunOptions()
        self._run_options.add_run_config_entry("disable_synchronize_execution_providers", "1")
        return {"device_id": str(self.device_id), "has_user_compute_stream": "1",
                "user_compute_stream": str(self._stream.handle), "use_tf32": "0"}

    @property
    def runs_on_device(self) -> bool:
        """With ``device_buffers`` (module docstring)."""
        return self.device_buffers

    @property
    def cuda_stream(self) -> Any:
        """The pycuda stream the session computes on (``device_buffers``)."""
        self._require_active()
        if self._stream is None:
            return super().cuda_stream
        return self._stream

    def enqueue(self, input_ptr: int, output_ptrs: Mapping[str, int], stream: Any,
                batch: Optional[int] = None) -> None:
        """Enqueue one run on device buffers (:meth:`Backend.enqueue`; ``device_buffers``; ``batch``
        needs ``device_batch``).
        """
        self._require_active()
        if not self.device_buffers:
            super().enqueue(input_ptr, output_ptrs, stream, batch)
        if stream is not self._stream:
            raise BackendError("the onnxruntime backend runs on its own stream; give the pipeline "
                               "backend.cuda_stream as its inference stream")
        (spec,) = self._inputs.values()
        if batch is not None and (not self.device_batch or batch < 1):
            raise BackendError(f"enqueue: a batch of {batch!r} rows needs device_batch and a batch >= 1")
        if batch is None and spec.shape[0] is None:
            raise BackendError(f"enqueue: {self.model_path.name} has a free batch dimension; give the batch")
        key = (input_ptr, tuple(output_ptrs[name] for name in self._outputs), batch)
        binding = self._device_bindings.get(key)
        if binding is None:   # one binding per set of buffers (the pipeline's slots) and batch, made once
            binding = self._session.io_binding()
            rows = [] if batch is None else [batch]
            binding.bind_input(spec.name, "cuda", self.device_id, spec.dtype, rows + list(spec.shape[len(rows):]),
                               input_ptr)
            for name, out in self._outputs.items():
                binding.bind_output(name, "cuda", self.device_id, out.dtype, rows + list(out.shape[len(rows):]),
                                    output_ptrs[name])
            self._device_bindings[key] = binding
        try:
            self._session.run_with_iobinding(binding, self._run_options)
        except Exception as exc:
            raise BackendError(f"ONNX Runtime (CUDA) failed to run: {exc}") from exc

    def _deactivate_impl(self) -> None:
        self._device_bindings = {}
        self._session = self._binding = None   # the session before the stream it computes on
        self._inputs, self._outputs, self._buffers = {}, {}, {}
        self._stream = self._run_options = None

    def _input_specs_impl(self) -> dict[str, TensorSpec]:
        return dict(self._inputs)

    def _output_specs_impl(self) -> dict[str, TensorSpec]:
        return dict(self._outputs)

    def _infer_impl(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            if self._binding is None:
                values = self._session.run(None, {n: np.ascontiguousarray(a) for n, a in feeds.items()})
                return dict(zip(self._outputs, values))
            for name, array in feeds.items():
                self._binding.bind_cpu_input(name, np.ascontiguousarray(array))
            self._session.run_with_iobinding(self._binding)
        except Exception as exc:  # ORT's runtime errors carry the reason in their message
            raise BackendError(f"ONNX Runtime failed to run {self.model_path.name}: {exc}") from exc
        return dict(self._buffers)
