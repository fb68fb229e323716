"""Inference backends behind one interface (:class:`~.base.Backend`).

Backends are imported lazily, so the package imports without TensorRT or pycuda installed.
``auto`` picks TensorRT when ``tensorrt`` and ``pycuda`` import, else ONNX Runtime.
"""

from __future__ import annotations

import importlib.util
from contextlib import contextmanager
from typing import Any, Iterator

from trt_perception.core.backends.base import Backend, BackendError, TensorSpec

BACKENDS = ("auto", "onnxruntime", "tensorrt")

__all__ = ["BACKENDS", "Backend", "BackendError", "TensorSpec", "activated_backend", "create_backend",
           "resolve_backend"]


def tensorrt_available() -> bool:
    """True when both ``tensorrt`` and ``pycuda`` are installed as real packages (a stubs-only
    ``tensorrt`` namespace package, with no ``__init__``, does not count).
    """
    specs = [importlib.util.find_spec(m) for m in ("tensorrt", "pycuda")]
    return all(spec is not None and spec.origin is not None for spec in specs)


def resolve_backend(kind: str) -> str:
    """Turn ``auto`` into a concrete backend name; check the name is known."""
    if kind not in BACKENDS:
        raise BackendError(f"backend must be one of {BACKENDS}, got {kind!r}")
    if kind == "auto":
        return "tensorrt" if tensorrt_available() else "onnxruntime"
    return kind


def create_backend(kind: str, model_path: str, **options: Any) -> Backend:
    """An inactive backend of ``kind`` for the model at ``model_path``.

    ``options`` are the chosen backend's keyword arguments (see its class). Call
    :meth:`Backend.activate` (or use it as a context manager) before inference.
    """
    name = resolve_backend(kind)
    if name == "onnxruntime":
        from trt_perception.core.backends.onnxrt import OnnxRuntimeBackend
        return OnnxRuntimeBackend(model_path, **options)
    from trt_perception.core.backends.tensorrt import TensorRTBackend
    return TensorRTBackend(model_path, **options)


@contextmanager
def activated_backend(kind: str, model_path: str, **options: Any) -> Iterator[Backend]:
    """The backend :func:`create_backend` makes, activated for the block; deactivated again when the
    block raises (when it completes, whoever the block gave the backend to owns it).
    """
    backend = create_backend(kind, model_path, **options)
    backend.activate()
    try:
        yield backend
    except BaseException:
        backend.deactivate()
        raise
