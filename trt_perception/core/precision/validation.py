"""Validate a conversion: the FP32 ONNX in ONNX Runtime (the reference) and a candidate on the
same preprocessed frames, compared with :mod:`.compare` and judged by :class:`~.compare.Tolerances`.

The candidate is a TensorRT engine (``.engine``/``.plan``/``.trt``, run by the ``tensorrt``
backend where TensorRT and a GPU are present) or an ONNX model (FP16, Q/DQ INT8, or any other
conversion) run by ONNX Runtime anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

from trt_perception.core.backends import create_backend
from trt_perception.core.backends.tensorrt import ENGINE_SUFFIXES
from trt_perception.core.geometry import ResizeGeometry
from trt_perception.core.model_config import ModelConfig
from trt_perception.core.precision.compare import OutputComparison, Tolerances
from trt_perception.core.precision.model_frames import detection_decoder


class ValidationError(ValueError):
    """A candidate that cannot be validated (unknown file type, missing file), with the reason."""


def candidate_backend(candidate: Path) -> str:
    """The backend that runs ``candidate``: ``tensorrt`` for an engine file, ``onnxruntime`` for ONNX."""
    suffix = candidate.suffix.lower()
    if suffix in ENGINE_SUFFIXES:
        return "tensorrt"
    if suffix == ".onnx":
        return "onnxruntime"
    raise ValidationError(f"candidate {candidate.name}: expected a TensorRT engine ({', '.join(ENGINE_SUFFIXES)}) "
                          "or an ONNX model (.onnx)")


@dataclass(frozen=True)
class ValidationResult:
    """The comparison summary, the tolerances, why it failed (empty: passed), what was compared."""

    summary: dict[str, Any]
    tolerances: Tolerances
    failures: list[str]
    reference: str
    candidate: str
    candidate_backend: str

    @property
    def passed(self) -> bool:
        """True when no tolerance failed."""
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        """The result as a JSON-ready mapping (pass/fail, failures, tolerances, the summary)."""
        return {"passed": self.passed, "failures": self.failures, "reference": self.reference,
                "candidate": self.candidate, "candidate_backend": self.candidate_backend,
                "tolerances": self.tolerances.to_dict(), **self.summary}


def validate(config: ModelConfig, candidate: Path, tensors: Sequence[np.ndarray],
             geometries: Sequence[ResizeGeometry], tolerances: Tolerances, *, threads: int = 1,
             iou_threshold: float = 0.5, device_id: int = 0,
             progress: Optional[Callable[[Any], Any]] = None) -> ValidationResult:
    """Run the config's FP32 model and ``candidate`` on ``tensors`` and judge the differences.

    Raises :class:`ValidationError` (candidate file), BackendError (a backend cannot load it,
    or no TensorRT for an engine) or CompareError (outputs that differ in name or shape).
    """
    if not candidate.is_file():
        raise ValidationError(f"candidate {candidate} does not exist")
    kind = candidate_backend(candidate)
    options: dict[str, Any] = {"threads": threads} if kind == "onnxruntime" else {"device_id": device_id}
    decode_frame = detection_decoder(config, geometries)
    comparison = OutputComparison(iou_threshold)
    with create_backend("onnxruntime", str(config.model_path), threads=threads) as reference, \
            create_backend(kind, str(candidate), **options) as tested:
        indices = range(len(tensors))
        for index in (progress(indices) if progress is not None else indices):
            feed = {config.input_name: tensors[index]}
            ref = {k: v.copy() for k, v in reference.infer(feed).items()}  # outputs are reused buffers
            cand = {k: v.copy() for k, v in tested.infer(feed).items()}
            comparison.add(ref, cand, decode_frame, index)
    summary = comparison.summary()
    return ValidationResult(summary, tolerances, tolerances.failures(summary), str(config.model_path),
                            str(candidate), kind)
