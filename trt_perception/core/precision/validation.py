"""Validate a conversion: the FP32 ONNX in ONNX Runtime (the reference) and a candidate on the
same preprocessed frames, compared with :mod:`.compare` and judged by :class:`~.compare.Tolerances`.

The candidate is a TensorRT engine (``.engine``/``.plan``/``.trt``, run by the ``tensorrt``
backend where TensorRT and a GPU are present) or an ONNX model (FP16, Q/DQ INT8, or any other
conversion) run by ONNX Runtime anywhere.

*Jittered draws* test whether a verdict is stable: the candidate also runs on every frame plus
uniform noise of ``+-jitter`` (model input units, far below one pixel level), once per draw, and
each draw is compared with the FP32 outputs of the clean frames. An INT8 model rounds its
activations, so a value near a rounding boundary goes either way under any tiny change, and the
detections near the score threshold follow: the figures of one clean run are one sample of a
spread (measured: ``benchmarks/results/int8_noise_floor.md``). With draws, the candidate passes
only when the clean run and every draw are within the tolerances.
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
    jitter: float = 0.0
    jittered: tuple[dict[str, Any], ...] = ()  # summaries of the jittered draws, in draw order

    @property
    def passed(self) -> bool:
        """True when no tolerance failed."""
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        """The result as a JSON-ready mapping (pass/fail, failures, tolerances, the summary)."""
        return {"passed": self.passed, "failures": self.failures, "reference": self.reference,
                "candidate": self.candidate, "candidate_backend": self.candidate_backend,
                "tolerances": self.tolerances.to_dict(), **self.summary,
                **({"jitter": self.jitter, "jittered": list(self.jittered)} if self.jittered else {})}


def validate(config: ModelConfig, candidate: Path, tensors: Sequence[np.ndarray],
             geometries: Sequence[ResizeGeometry], tolerances: Tolerances, *, threads: int = 1,
             iou_threshold: float = 0.5, device_id: int = 0, jitter: float = 0.0, draws: int = 0,
             progress: Optional[Callable[[Any], Any]] = None) -> ValidationResult:
    """Run the config's FP32 model and ``candidate`` on ``tensors`` and judge the differences.

    ``draws`` > 0: also ``draws`` jittered runs of the candidate (uniform noise of ``+-jitter``
    added to each input tensor, draw ``k`` from seed ``k``: repeatable), each judged against the
    clean FP32 outputs; their failures are named ``jitter draw k: ...``.
    Raises :class:`ValidationError` (candidate file, bad jitter settings), BackendError (a backend
    cannot load it, or no TensorRT for an engine) or CompareError (outputs that differ in name or
    shape).
    """
    if not candidate.is_file():
        raise ValidationError(f"candidate {candidate} does not exist")
    if draws < 0 or not (np.isfinite(jitter) and jitter >= 0) or (draws > 0) != (jitter > 0):
        raise ValidationError(f"jittered draws need draws >= 1 and jitter > 0 together, got draws={draws}, "
                              f"jitter={jitter}")
    kind = candidate_backend(candidate)
    options: dict[str, Any] = {"threads": threads} if kind == "onnxruntime" else {"device_id": device_id}
    decode_frame = detection_decoder(config, geometries)
    comparison = OutputComparison(iou_threshold)
    noisy = [(OutputComparison(iou_threshold), np.random.default_rng(draw)) for draw in range(draws)]
    with create_backend("onnxruntime", str(config.model_path), threads=threads) as reference, \
            create_backend(kind, str(candidate), **options) as tested:

        def run(model: Any, tensor: np.ndarray) -> dict[str, np.ndarray]:
            return {k: v.copy() for k, v in model.infer({config.input_name: tensor}).items()}  # reused buffers

        indices = range(len(tensors))
        for index in (progress(indices) if progress is not None else indices):
            tensor = tensors[index]
            ref = run(reference, tensor)
            comparison.add(ref, run(tested, tensor), decode_frame, index)
            for draw_comparison, rng in noisy:
                shaken = (tensor + rng.uniform(-jitter, jitter, tensor.shape)).astype(tensor.dtype)
                draw_comparison.add(ref, run(tested, shaken), decode_frame, index)
    summary = comparison.summary()
    jittered = tuple(draw_comparison.summary() for draw_comparison, _ in noisy)
    failures = tolerances.failures(summary) + [f"jitter draw {draw}: {problem}" for draw, s in enumerate(jittered)
                                               for problem in tolerances.failures(s)]
    return ValidationResult(summary, tolerances, failures, str(config.model_path), str(candidate), kind,
                            jitter, jittered)
