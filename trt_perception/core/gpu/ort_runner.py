"""OrtCudaRunner: an ONNX model run by ONNX Runtime's CUDA execution provider on device buffers.

The GPU executor for machines without TensorRT (``onnxruntime-gpu``). It follows
:class:`~trt_perception.core.gpu.frame_pipeline.DeviceRunner`: the session computes on the pycuda
stream it was created for (the provider's ``user_compute_stream``), IOBinding binds the input and
outputs to the caller's device buffers (the pipeline's input tensors and output buffers, no copy),
and a run only enqueues (``disable_synchronize_execution_providers``): the caller's events order it
after the preprocessing and the output copies after it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from trt_perception.core.backends.base import BackendError, TensorSpec
from trt_perception.core.backends.onnxrt import _import_ort, _spec
from trt_perception.core.dynamic_batch import BATCH_DIM

CUDA_PROVIDER = "CUDAExecutionProvider"


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


class OrtCudaRunner:
    """See the module docstring. ``stream``: the pycuda stream every run is enqueued on (the
    pipeline's inference stream). Raises :class:`BackendError` when the model cannot be loaded
    on the CUDA provider or has a dynamic or non-single input."""

    def __init__(self, model_path: str | Path, stream: Any, device_id: int = 0) -> None:
        ort = _import_ort()
        available, reason = cuda_provider_available()
        if not available:
            raise BackendError(f"{reason}: install onnxruntime-gpu")
        self.stream = stream
        self.device_id = device_id
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.add_free_dimension_override_by_name(BATCH_DIM, 1)   # a batch-dynamic model: one frame
        # TF32 off: float32 results as close to the CPU path as the CUDA kernels give
        provider_options = {"device_id": str(device_id), "has_user_compute_stream": "1",
                            "user_compute_stream": str(stream.handle), "use_tf32": "0"}
        try:
            self._session = ort.InferenceSession(str(model_path), options,
                                                 providers=[(CUDA_PROVIDER, provider_options)])
        except Exception as exc:  # ORT raises its own exception types
            raise BackendError(f"cannot load {model_path} on {CUDA_PROVIDER}: {exc}") from exc
        if CUDA_PROVIDER not in self._session.get_providers():
            raise BackendError(f"{CUDA_PROVIDER} failed to load for {model_path} (are the CUDA and cuDNN "
                               "libraries onnxruntime-gpu needs installed?)")
        inputs = [_spec(node) for node in self._session.get_inputs()]
        if len(inputs) != 1 or None in inputs[0].shape:
            raise BackendError(f"{model_path} must have one input of static shape, has "
                               f"{[(s.name, s.shape) for s in inputs]}")
        self.input_spec = inputs[0]
        self._outputs = {node.name: _spec(node) for node in self._session.get_outputs()}
        self._run_options = ort.RunOptions()
        self._run_options.add_run_config_entry("disable_synchronize_execution_providers", "1")
        self._bindings: dict[tuple[int, tuple[int, ...]], Any] = {}

    #: what runs the network, as a Backend's ``name`` says it
    name = "onnxruntime (CUDA provider)"

    @property
    def providers(self) -> list[str]:
        """The session's execution providers, CUDA first."""
        return list(self._session.get_providers())

    def input_specs(self) -> dict[str, TensorSpec]:
        return {self.input_spec.name: self.input_spec}

    def output_specs(self) -> dict[str, TensorSpec]:
        return dict(self._outputs)

    def enqueue(self, input_ptr: int, output_ptrs: Mapping[str, int], stream: Any) -> None:
        """Enqueue one run on the session's stream (``stream`` must be it)."""
        if stream is not self.stream:
            raise BackendError("OrtCudaRunner runs on the stream it was created for; "
                               "give the pipeline that stream as its inference stream")
        key = (input_ptr, tuple(output_ptrs[name] for name in self._outputs))
        binding = self._bindings.get(key)
        if binding is None:   # one binding per set of buffers (the pipeline's slots), made once
            binding = self._session.io_binding()
            spec = self.input_spec
            binding.bind_input(spec.name, "cuda", self.device_id, spec.dtype, list(spec.shape), input_ptr)
            for name, out in self._outputs.items():
                binding.bind_output(name, "cuda", self.device_id, out.dtype, list(out.shape), output_ptrs[name])
            self._bindings[key] = binding
        try:
            self._session.run_with_iobinding(binding, self._run_options)
        except Exception as exc:
            raise BackendError(f"ONNX Runtime (CUDA) failed to run: {exc}") from exc
