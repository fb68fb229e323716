"""The identity of a GPU as the TensorRT engine cache keys it (no CUDA needed to use it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GpuIdentity:
    """The device an engine is built for: ``name`` as the driver reports it, compute capability
    as ``"major.minor"`` (e.g. ``"8.7"`` for Orin).
    """

    name: str
    compute_capability: str
