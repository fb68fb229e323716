"""ONNX Runtime backend: an ONNX model run by ``onnxruntime`` on the CPU (or the CUDA EP).

Options: ``threads`` (intra-op threads; 0 = ONNX Runtime's default, one per core), ``providers``
(execution providers in priority order, default CPU only; e.g. ``["CUDAExecutionProvider",
"CPUExecutionProvider"]`` with ``onnxruntime-gpu``), ``io_binding`` (run through IOBinding into
preallocated output buffers; ``None`` = only when the first provider is not the CPU, where it saves
the per-frame output allocation and device copies -- on the CPU it measured no faster). IOBinding
needs static output shapes, so with it a batch-dynamic model (input dimension 0 named ``batch``,
as ``trt-perception dynamic-batch`` writes) runs with a batch of 1.

With IOBinding the arrays :meth:`infer` returns are reused by the next call (``outputs_reused``).
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


class OnnxRuntimeBackend(Backend):
    """Runs an ONNX model with ONNX Runtime (see the module docstring for the options)."""

    name = "onnxruntime"
    outputs_reused = True

    def __init__(self, model_path: str | Path, threads: int = 0,
                 providers: Optional[Sequence[str]] = None,
                 io_binding: Optional[bool] = None) -> None:
        super().__init__()
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
            raise BackendError(f"threads must be an integer >= 0 (0 = ONNX Runtime's default), got {threads!r}")
        self.model_path = Path(model_path)
        self.threads = threads
        self.providers = list(providers) if providers else [CPU_PROVIDER]
        self.io_binding = io_binding
        self._session: Any = None
        self._binding: Any = None
        self._inputs: dict[str, TensorSpec] = {}
        self._outputs: dict[str, TensorSpec] = {}
        self._buffers: dict[str, np.ndarray] = {}

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
        use_binding = self.io_binding if self.io_binding is not None else self.providers[0] != CPU_PROVIDER
        if use_binding:   # IOBinding needs static outputs: a batch-dynamic model runs batch 1
            options.add_free_dimension_override_by_name(BATCH_DIM, 1)
        try:
            session = ort.InferenceSession(str(self.model_path), options, providers=self.providers)
        except Exception as exc:  # ORT raises its own exception types (InvalidProtobuf, Fail, ...)
            raise BackendError(f"cannot load ONNX model {self.model_path}: {exc}") from exc
        not_loaded = [p for p in self.providers if p not in session.get_providers()]
        if not_loaded:
            raise BackendError(f"execution providers {not_loaded} failed to load for {self.model_path} "
                               "(for CUDA: are the CUDA and cuDNN libraries onnxruntime-gpu needs installed?)")
        inputs = {n.name: _spec(n) for n in session.get_inputs()}
        outputs = {n.name: _spec(n) for n in session.get_outputs()}
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

    def _deactivate_impl(self) -> None:
        self._session = self._binding = None
        self._inputs, self._outputs, self._buffers = {}, {}, {}

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
