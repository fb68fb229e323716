"""The one small interface every inference backend implements.

A backend owns a loaded model. Lifecycle: construct (cheap, nothing loaded) -> :meth:`activate`
(load model / engine, allocate buffers) -> :meth:`infer` any number of times -> :meth:`deactivate`
(free everything; may be activated again). It is also a context manager.

Public methods check state and inputs, then call the ``_*_impl`` methods a subclass provides.
Arrays returned by :meth:`infer` may be buffers the backend reuses on the next call: copy what
you keep (``Backend.outputs_reused`` says whether this backend does).

Capability "on device buffers" (:attr:`Backend.runs_on_device`): the backend runs the network on a
GPU and can :meth:`~Backend.enqueue` a run on device buffers someone else filled (GPU
preprocessing) on its :attr:`~Backend.cuda_stream`, without waiting: the TensorRT backend, and
the ONNX Runtime backend with ``device_buffers=True`` (its CUDA provider with IOBinding).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Mapping, Optional

import numpy as np

from trt_perception.core.tensor_spec import BackendError, TensorSpec, format_shape

__all__ = ["Backend", "BackendError", "TensorSpec", "format_shape"]


class Backend(ABC):
    """Base class of inference backends (see the module docstring for the contract)."""

    name: ClassVar[str] = "base"

    #: the CUDA device the network runs on (backends that run on a GPU set it)
    device_id: int = 0

    @property
    def outputs_reused(self) -> bool:
        """True when the arrays :meth:`infer` returns are overwritten by the next call."""
        return False

    @property
    def runs_on_device(self) -> bool:
        """True when :meth:`enqueue` runs the network on device buffers (module docstring)."""
        return False

    @property
    def cuda_stream(self) -> Any:
        """The pycuda ``Stream`` :meth:`enqueue` runs on (needs :attr:`runs_on_device`)."""
        raise BackendError(f"the {self.name} backend does not run on device buffers")

    def enqueue(self, input_ptr: int, output_ptrs: Mapping[str, int], stream: Any,
                batch: Optional[int] = None) -> None:
        """Enqueue one run of a single-input network on device buffers, without waiting, with the
        device current: read the input tensor at ``input_ptr`` (the model's dtype and static shape;
        with ``batch``, ``batch`` rows of a model with a dynamic batch dimension 0), write output
        ``name`` to ``output_ptrs[name]`` (with ``batch``: its first ``batch`` rows). ``stream``
        must be :attr:`cuda_stream`. Needs :attr:`runs_on_device`.
        """
        raise BackendError(f"the {self.name} backend does not run on device buffers")

    def __init__(self) -> None:
        self._active = False

    @property
    def is_active(self) -> bool:
        """True between a successful :meth:`activate` and :meth:`deactivate`."""
        return self._active

    def activate(self) -> None:
        """Load the model and allocate buffers. Raises :class:`BackendError` with a reason."""
        if not self._active:
            self._activate_impl()
            self._active = True

    def deactivate(self) -> None:
        """Free the model and every buffer. Safe to call twice."""
        if self._active:
            self._active = False
            self._deactivate_impl()

    def __enter__(self) -> "Backend":
        self.activate()
        return self

    def __exit__(self, *exc: object) -> None:
        self.deactivate()

    def input_specs(self) -> dict[str, TensorSpec]:
        """Inputs by name, in the model's order. Needs an active backend."""
        self._require_active()
        return self._input_specs_impl()

    def output_specs(self) -> dict[str, TensorSpec]:
        """Outputs by name, in the model's order. Needs an active backend."""
        self._require_active()
        return self._output_specs_impl()

    def infer(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the model on ``feeds`` (name -> array); returns every output by name."""
        self._require_active()
        specs = self._input_specs_impl()
        missing = sorted(set(specs) - set(feeds))
        unknown = sorted(set(feeds) - set(specs))
        if missing or unknown:
            raise BackendError(f"feeds do not match the model inputs {sorted(specs)}: "
                               f"missing {missing}, unknown {unknown}")
        for name, spec in specs.items():
            problem = spec.accepts(feeds[name])
            if problem:
                raise BackendError(problem)
        return self._infer_impl(feeds)

    def _require_active(self) -> None:
        if not self._active:
            raise BackendError(f"{self.name} backend is not active: call activate() first")

    @abstractmethod
    def _activate_impl(self) -> None: ...

    @abstractmethod
    def _deactivate_impl(self) -> None: ...

    @abstractmethod
    def _input_specs_impl(self) -> dict[str, TensorSpec]: ...

    @abstractmethod
    def _output_specs_impl(self) -> dict[str, TensorSpec]: ...

    @abstractmethod
    def _infer_impl(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...
